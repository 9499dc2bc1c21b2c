#include "plugins/outputs/file/file_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

#include "ferry/log.h"

namespace ferry {
namespace {

constexpr std::string_view kLogComponent = "output.file";

// errnoStatus() with the causes that pass by themselves made retryable, so the sender
// keeps backing off instead of giving up on a flaky SD card or a descriptor shortage.
Status fileError(std::string_view what, int err) {
  Status s = errnoStatus(what, err);
  switch (err) {
    case EINTR:
    case EAGAIN:
    case EBUSY:
    case EIO:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return unavailable(s.message());
    default:
      return s;
  }
}

// A rotated file's suffix: digits without a leading zero, so "app.log.07" (not ours) is
// never deleted by the pruning.
bool parseRotatedIndex(std::string_view suffix, int64_t* index) {
  if (suffix.empty() || suffix.size() > 9 || suffix[0] == '0') return false;
  int64_t v = 0;
  for (char c : suffix) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *index = v;
  return true;
}

std::string formatFileMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode));
  return text;
}

// Offset just past the last '\n' among the first `size` bytes of `path`; 0 when none.
Result<uint64_t> endOfLastLine(const std::string& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fileError(path, errno);
  char chunk[4096];
  uint64_t end = size;
  int err = 0;
  while (end > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(chunk), end));
    const ssize_t got = ::pread(fd, chunk, n, static_cast<off_t>(end - n));
    if (got < 0 && errno == EINTR) continue;
    if (got != static_cast<ssize_t>(n)) {
      err = got < 0 ? errno : EIO;  // shorter than fstat said: changed under us
      break;
    }
    if (const void* nl = ::memrchr(chunk, '\n', n)) {
      end = end - n + static_cast<uint64_t>(static_cast<const char*>(nl) - chunk) + 1;
      break;
    }
    end -= n;
  }
  ::close(fd);
  if (err != 0) return fileError(path, err);
  return end;
}

// Parses one decimal number at the front of `text` and removes it; no sign, no leading
// zero except "0" itself.
bool takeNumber(std::string_view* text, uint64_t* out) {
  const char* first = text->data();
  const char* last = first + text->size();
  if (first == last || (*first == '0' && last - first > 1 && first[1] >= '0' && first[1] <= '9')) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(first, last, *out);
  if (ec != std::errc() || ptr == first) return false;
  text->remove_prefix(static_cast<size_t>(ptr - first));
  return true;
}

bool takeSpace(std::string_view* text) {
  if (text->empty() || text->front() != ' ') return false;
  text->remove_prefix(1);
  return true;
}

std::string describeFile(uint64_t dev, uint64_t inode) {
  return strCat("device ", dev, " inode ", inode);
}

}  // namespace

std::string FileCommitState::format() const { return strCat("v1 ", dev, ' ', inode, ' ', length); }

std::optional<FileCommitState> FileCommitState::parse(std::string_view text) {
  constexpr std::string_view kVersion = "v1";
  if (text.substr(0, kVersion.size()) != kVersion) return std::nullopt;
  text.remove_prefix(kVersion.size());
  FileCommitState st;
  if (!takeSpace(&text) || !takeNumber(&text, &st.dev) || !takeSpace(&text) ||
      !takeNumber(&text, &st.inode) || !takeSpace(&text) || !takeNumber(&text, &st.length) ||
      !text.empty()) {
    return std::nullopt;
  }
  return st;
}

bool parseFileMode(std::string_view text, mode_t* out) {
  if (text.empty() || text.size() > 5) return false;
  mode_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return false;
    v = static_cast<mode_t>(v * 8 + static_cast<mode_t>(c - '0'));
  }
  if (v > 07777) return false;
  *out = v;
  return true;
}

Result<FileOutputConfig> fileOutputConfigFromOptions(const Options& opts) {
  // has() tells an unset key from an explicit 0/false; the loader normally fills the
  // defaults, but a caller that builds Options by hand gets the documented ones too.
  FileOutputConfig c;
  c.path = opts.getString("path");
  if (c.path.empty()) {
    return invalidArgument(opts.locate("path") + ": a file path is required");
  }
  if (c.path.back() == '/') {
    return invalidArgument(opts.locate("path") + ": \"" + c.path +
                           "\" names a directory; give the path of a file");
  }
  if (opts.has("max_size") && opts.getSize("max_size") > 0) c.max_size = opts.getSize("max_size");
  if (opts.has("max_files")) c.max_files = opts.getInt("max_files");
  if (c.max_files < 0 || c.max_files > FileOutputConfig::kMaxMaxFiles) {
    return invalidArgument(opts.locate("max_files") + ": must be between 0 and " +
                           std::to_string(FileOutputConfig::kMaxMaxFiles) + ", got " +
                           std::to_string(c.max_files));
  }
  if (opts.has("sync")) c.sync = opts.getBool("sync");
  const std::string& mode = opts.getString("mode");
  if (!mode.empty()) {
    if (!parseFileMode(mode, &c.mode)) {
      return invalidArgument(opts.locate("mode") +
                             ": must be octal permissions such as \"0640\", got \"" + mode + "\"");
    }
    // Creating works whatever the mode, but after a restart the agent could not open its
    // own file again: refuse that now rather than then.
    if ((c.mode & S_IWUSR) == 0) {
      return invalidArgument(opts.locate("mode") + ": \"" + mode +
                             "\" does not let the owner write; the agent reopens the file "
                             "after a restart");
    }
  }
  return c;
}

FileOutput::FileOutput(FileOutputConfig config) : config_(std::move(config)) {
  const std::filesystem::path p(config_.path);
  dir_ = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  base_ = p.filename().string();
}

FileOutput::~FileOutput() { close(); }

Status FileOutput::open(std::string_view committed_state) {
  close();  // open() is called again after a failed open; never leak the descriptor
  std::optional<FileCommitState> committed;
  if (!committed_state.empty()) {
    committed = FileCommitState::parse(committed_state);
    if (!committed) {
      logWarn(kLogComponent, config_.path, ": ignoring a malformed commit state \"",
              committed_state, "\"; appending without cutting back (records may repeat)");
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return fileError(config_.path + ": cannot create directory " + dir_, ec.value());
  }
  bool created = false;
  FERRY_RETURN_IF_ERROR(openFile(&created));
  Status cut = committed ? cutToCommitted(*committed, created) : cutPartialLine();
  if (!cut) {
    close();
    return cut;
  }
  pruneRotated();
  // What the file holds now counts as delivered: a mid-run reopen cuts back to it.
  last_state_ = currentState().format();
  return Status::ok();
}

bool FileOutput::isCommittedFile(const FileCommitState& committed, uint64_t dev,
                                 uint64_t inode, const std::string& path) const {
  if (inode != committed.inode) return false;
  if (dev != committed.dev) {
    // Device numbers of some filesystems (overlayfs in a container, USB media, network
    // mounts) change across a restart; the inode number at the same path does not.
    logWarn(kLogComponent, path, ": same inode ", inode, " as at the last acknowledged block ",
            "but device ", dev, " instead of ", committed.dev,
            " (remounted?); taking it for the same file");
  }
  return true;
}

Status FileOutput::syncAfterCut(int fd, const std::string& path) const {
  if (config_.sync && ::fsync(fd) != 0) return fileError(path + ": fsync after cut", errno);
  return Status::ok();
}

Status FileOutput::cutToCommitted(const FileCommitState& committed, bool created) {
  if (!created && isCommittedFile(committed, dev_, inode_, config_.path)) {
    if (size_ < committed.length) {
      logWarn(kLogComponent, config_.path, ": ", size_,
              " bytes, shorter than the ", committed.length,
              " it had at the last acknowledged block: something else truncated it; keeping it "
              "as it is");
      return cutPartialLine();
    }
    if (size_ > committed.length) {
      if (::ftruncate(fd_, static_cast<off_t>(committed.length)) != 0) {
        return fileError(config_.path + ": cut back to the last acknowledged block", errno);
      }
      FERRY_RETURN_IF_ERROR(syncAfterCut(fd_, config_.path));
      logInfo(kLogComponent, config_.path, ": cut ", size_ - committed.length,
              " bytes written after the last acknowledged block (they are sent again)");
      size_ = committed.length;
    }
    return Status::ok();
  }

  // The output rotated after the last ack (or the file is gone): the committed file should
  // be path.1, and whatever the current file holds was never acknowledged.
  Result<bool> rotated = cutRotatedToCommitted(committed);
  if (!rotated) return rotated.status();
  if (created) return Status::ok();  // a new file: nothing to cut
  if (*rotated || config_.max_files == 0) {
    // With max_files 0 a rotation replaces the file, so the committed one is gone.
    if (size_ > 0) {
      if (::ftruncate(fd_, 0) != 0) {
        return fileError(config_.path + ": cut blocks written after a rotation", errno);
      }
      FERRY_RETURN_IF_ERROR(syncAfterCut(fd_, config_.path));
      logInfo(kLogComponent, config_.path, ": cut ", size_,
              " bytes written after the last acknowledged block and a rotation (they are "
              "sent again)");
      size_ = 0;
    }
    return Status::ok();
  }
  logWarn(kLogComponent, config_.path, ": the file of the last acknowledged block (",
          describeFile(committed.dev, committed.inode), ") is neither this file nor ",
          rotatedPath(1), "; appending without cutting back (records may repeat)");
  return cutPartialLine();
}

Result<bool> FileOutput::cutRotatedToCommitted(const FileCommitState& committed) const {
  const std::string path = rotatedPath(1);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return fileError(path, errno);
  }
  if (!S_ISREG(st.st_mode) || !isCommittedFile(committed, static_cast<uint64_t>(st.st_dev),
                                                static_cast<uint64_t>(st.st_ino), path)) {
    return false;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < committed.length) {
    logWarn(kLogComponent, path, ": ", size, " bytes, shorter than the ", committed.length,
            " it had at the last acknowledged block: something else truncated it; keeping it "
            "as it is");
    return true;
  }
  if (size == committed.length) return true;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fileError(path + ": cut back to the last acknowledged block", errno);
  Status s = Status::ok();
  struct stat again {};
  if (::fstat(fd, &again) != 0) {
    s = fileError(path, errno);
  } else if (again.st_ino != st.st_ino || again.st_dev != st.st_dev) {
    s = unavailable(path + ": replaced while being checked");
  } else if (::ftruncate(fd, static_cast<off_t>(committed.length)) != 0) {
    s = fileError(path + ": cut back to the last acknowledged block", errno);
  } else {
    s = syncAfterCut(fd, path);
  }
  ::close(fd);
  if (!s) return s;
  logInfo(kLogComponent, path, ": cut ", size - committed.length,
          " bytes written after the last acknowledged block (they are sent again)");
  return true;
}

Status FileOutput::cutPartialLine() {
  if (size_ == 0) return Status::ok();
  // A crash in the middle of a write leaves a partial line; its block was not
  // acknowledged and comes again, so cut the fragment rather than glue records to it.
  Result<uint64_t> end = endOfLastLine(config_.path, size_);
  if (!end.isOk()) {
    logWarn(kLogComponent, "cannot check for a partial last line: ", end.status().message());
    return Status::ok();
  }
  if (*end < size_) {
    if (::ftruncate(fd_, static_cast<off_t>(*end)) != 0) {
      return fileError(config_.path + ": cut a partial last line", errno);
    }
    FERRY_RETURN_IF_ERROR(syncAfterCut(fd_, config_.path));
    logWarn(kLogComponent, config_.path, ": cut a partial last line of ", size_ - *end,
            " bytes (left by an interrupted write; its block is sent again)");
    size_ = *end;
  }
  return Status::ok();
}

Status FileOutput::openFile(bool* created_out) {
  const char* path = config_.path.c_str();
  int fd = -1;
  bool created = false;
  // Open an existing file as it is; only a file this output creates gets config_.mode.
  // Three rounds cover another process creating or deleting the file in between.
  for (int attempt = 0; attempt < 3; ++attempt) {
    // O_NONBLOCK: a FIFO at `path` must fail (ENXIO) or be refused below, not hang here.
    fd = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 || errno != ENOENT) break;
    fd =
        ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NONBLOCK, config_.mode);
    if (fd >= 0) {
      created = true;
      break;
    }
    if (errno != EEXIST) break;
  }
  if (fd < 0) return fileError(config_.path, errno);

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fileError(config_.path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    // Rotation would rename a device or a FIFO; refuse rather than surprise.
    ::close(fd);
    return invalidArgument(config_.path + ": not a regular file");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(fd);
    return fileError(config_.path, err);
  }
  if (created) {
    // open() filtered the mode through the umask; the config states the exact mode.
    // Filesystems without permissions (vfat on an SD card) refuse, which is harmless.
    if (::fchmod(fd, config_.mode) != 0) {
      logWarn(kLogComponent, config_.path, ": cannot set mode ", formatFileMode(config_.mode), ": ",
              std::strerror(errno));
    }
    dir_dirty_ = true;
  }
  fd_ = fd;
  size_ = static_cast<uint64_t>(st.st_size);
  dev_ = static_cast<uint64_t>(st.st_dev);
  inode_ = static_cast<uint64_t>(st.st_ino);
  torn_ = false;
  if (created_out != nullptr) *created_out = created;
  return Status::ok();
}

void FileOutput::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string FileOutput::rotatedPath(int64_t index) const {
  return config_.path + "." + std::to_string(index);
}

Status FileOutput::rotate() {
  if (config_.max_files == 0) {
    // Replaced rather than truncated in place: the commit state of the last block names
    // the old inode, and a restart before the next ack must see a different file here
    // (cut to 0), not the same file with other contents at the committed offsets.
    if (::unlink(config_.path.c_str()) != 0 && errno != ENOENT) {
      return fileError(config_.path + ": rotate", errno);
    }
  } else {
    // Shift only up to the first missing number: a crash in the middle of an earlier
    // rotation leaves a gap, and filling it (instead of carrying it upwards forever) keeps
    // the numbering dense. Without a gap, rename() onto .max_files replaces the oldest.
    int64_t first_free = config_.max_files;
    for (int64_t i = 1; i < config_.max_files; ++i) {
      struct stat st {};
      if (::stat(rotatedPath(i).c_str(), &st) != 0 && errno == ENOENT) {
        first_free = i;
        break;
      }
    }
    for (int64_t i = first_free - 1; i >= 1; --i) {
      const std::string from = rotatedPath(i);
      if (::rename(from.c_str(), rotatedPath(i + 1).c_str()) != 0 && errno != ENOENT) {
        return fileError(from + ": rotate", errno);
      }
    }
    if (::rename(config_.path.c_str(), rotatedPath(1).c_str()) != 0) {
      return fileError(config_.path + ": rotate", errno);
    }
  }
  dir_dirty_ = true;
  // The old file stays open until the new one exists, so the new one cannot get its inode
  // number (an unlinked file's number is free for reuse once its last descriptor closes).
  const int old_fd = fd_;
  fd_ = -1;
  size_ = 0;
  logDebug(kLogComponent, "rotated ", config_.path);
  // On failure fd_ stays closed and the next send() opens the file again.
  Status s = openFile(nullptr);
  ::close(old_fd);
  return s;
}

void FileOutput::pruneRotated() const {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir_, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int64_t index = 0;
    if (name.size() <= base_.size() + 1 || name.compare(0, base_.size(), base_) != 0 ||
        name[base_.size()] != '.' ||
        !parseRotatedIndex(std::string_view(name).substr(base_.size() + 1), &index) ||
        index <= config_.max_files) {
      continue;
    }
    std::error_code rm;
    std::filesystem::remove(it->path(), rm);
    if (rm) {
      logWarn(kLogComponent, it->path().string(),
              ": cannot delete rotated file beyond max_files: ", rm.message());
    }
  }
}

Status FileOutput::syncDirectory() const {
  const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fileError(dir_, errno);
  int err = 0;
  if (::fsync(fd) != 0) err = errno;
  ::close(fd);
  // EINVAL: the filesystem cannot sync directories; there is nothing more to do.
  if (err != 0 && err != EINVAL) return fileError(dir_ + ": fsync", err);
  return Status::ok();
}

SendResult FileOutput::failAfterWrite(uint64_t size_before, const Status& why) {
  size_ = size_before;
  // Cut what reached the file so the retry neither follows a torn line nor repeats
  // records. If the cut fails too, the next send() tries it before writing anything.
  torn_ = ::ftruncate(fd_, static_cast<off_t>(size_before)) != 0;
  return SendResult::retry(why.message());
}

SendResult FileOutput::send(const Block& block, SteadyTime /*deadline*/) {
  if (fd_ < 0) {
    // Never opened, or a rotation could not create the new file. The last state this
    // output produced cuts back anything written after the last delivered block.
    if (Status s = open(last_state_); !s) return SendResult::retry(s.message());
  }
  if (torn_) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      return SendResult::retry(fileError(config_.path + ": cut a partial write", errno).message());
    }
    torn_ = false;
  }

  buf_.clear();
  block.records.appendNdjson(buf_);
  if (buf_.empty()) return SendResult::delivered(last_state_ = currentState().format());

  // An empty file takes the block whatever its size: a block bigger than max_size gets a
  // file of its own instead of being split across two.
  if (size_ > 0 && size_ + buf_.size() > config_.max_size) {
    if (Status s = rotate(); !s) return SendResult::retry(s.message());
  }

  const uint64_t before = size_;
  size_t off = 0;
  while (off < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // write(2) returning 0 for a regular file is not expected; do not spin on it.
    return failAfterWrite(before, fileError(config_.path, n == 0 ? EIO : errno));
  }
  size_ += buf_.size();

  if (config_.sync) {
    // After a failed fdatasync the page cache may already count the pages as clean; the
    // only safe answer is to write the block again, so cut it and ask for a retry.
    if (::fdatasync(fd_) != 0) {
      return failAfterWrite(before, fileError(config_.path + ": fdatasync", errno));
    }
    // A new file's name is durable only once its directory is synced.
    if (dir_dirty_) {
      if (Status s = syncDirectory(); !s) return failAfterWrite(before, s);
      dir_dirty_ = false;
    }
  }
  last_state_ = currentState().format();
  return SendResult::delivered(last_state_);
}

namespace {

const OptionSpec kFileOptions[] = {
    {.key = "path",
     .type = OptionType::kString,
     .help = "file the records are appended to; missing parent directories are created",
     .required = true},
    {.key = "max_size",
     .type = OptionType::kSize,
     .default_value = "100MiB",
     .help = "rotate before a write would make the file bigger than this; a bigger block "
             "gets a file of its own"},
    {.key = "max_files",
     .type = OptionType::kInt,
     .default_value = "5",
     .help = "rotated files kept as <path>.1 (newest) ... <path>.N, at most 1000; 0 keeps "
             "none: the file is replaced by an empty one instead"},
    {.key = "sync",
     .type = OptionType::kBool,
     .default_value = "true",
     .help = "fdatasync every block before acknowledging it, so acknowledged records "
             "survive a power cut"},
    {.key = "mode",
     .type = OptionType::kString,
     .default_value = "0640",
     .help = "octal permissions of the files this output creates (not filtered by the "
             "umask); existing files keep theirs"},
};

Result<std::unique_ptr<Output>> makeFileOutput(const PluginContext& /*ctx*/, const Options& opts) {
  Result<FileOutputConfig> config = fileOutputConfigFromOptions(opts);
  if (!config) return config.status();
  return std::unique_ptr<Output>(std::make_unique<FileOutput>(std::move(config).value()));
}

}  // namespace

const PluginDescriptor& fileOutputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kOutput,
      .name = "file",
      .summary = "appends records as NDJSON to a local file, rotated by size",
      .options = kFileOptions,
      .make_output = &makeFileOutput,
  };
  return kDescriptor;
}

}  // namespace ferry
