#include "plugins/outputs/file/file_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

// "<file>:<line>: <key path>" of `key`, or the bare key when nothing is known.
std::string keyLocation(const Options& opts, std::string_view key) {
  std::string loc = opts.where(key).describe();
  return loc.empty() ? std::string(key) : loc;
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

}  // namespace

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
    return invalidArgument(keyLocation(opts, "path") + ": a file path is required");
  }
  if (c.path.back() == '/') {
    return invalidArgument(keyLocation(opts, "path") + ": \"" + c.path +
                           "\" names a directory; give the path of a file");
  }
  if (opts.has("max_size") && opts.getSize("max_size") > 0) c.max_size = opts.getSize("max_size");
  if (opts.has("max_files")) c.max_files = opts.getInt("max_files");
  if (c.max_files < 0 || c.max_files > FileOutputConfig::kMaxMaxFiles) {
    return invalidArgument(keyLocation(opts, "max_files") + ": must be between 0 and " +
                           std::to_string(FileOutputConfig::kMaxMaxFiles) + ", got " +
                           std::to_string(c.max_files));
  }
  if (opts.has("sync")) c.sync = opts.getBool("sync");
  const std::string& mode = opts.getString("mode");
  if (!mode.empty()) {
    if (!parseFileMode(mode, &c.mode)) {
      return invalidArgument(keyLocation(opts, "mode") +
                             ": must be octal permissions such as \"0640\", got \"" + mode + "\"");
    }
    // Creating works whatever the mode, but after a restart the agent could not open its
    // own file again: refuse that now rather than then.
    if ((c.mode & S_IWUSR) == 0) {
      return invalidArgument(keyLocation(opts, "mode") + ": \"" + mode +
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

Status FileOutput::open(std::string_view /*committed_state*/) {
  close();  // open() is called again after a failed open; never leak the descriptor
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return fileError(config_.path + ": cannot create directory " + dir_, ec.value());
  }
  FERRY_RETURN_IF_ERROR(openFile());
  pruneRotated();
  return Status::ok();
}

Status FileOutput::openFile() {
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
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > 0) {
    // A crash in the middle of a write leaves a partial line; its block was not
    // acknowledged and comes again, so cut the fragment rather than glue records to it.
    Result<uint64_t> end = endOfLastLine(config_.path, size);
    if (!end.isOk()) {
      logWarn(kLogComponent, "cannot check for a partial last line: ", end.status().message());
    } else if (*end < size) {
      if (::ftruncate(fd, static_cast<off_t>(*end)) != 0) {
        const int err = errno;
        ::close(fd);
        return fileError(config_.path + ": cut a partial last line", err);
      }
      logWarn(kLogComponent, config_.path, ": cut a partial last line of ", size - *end,
              " bytes (left by an interrupted write; its block is sent again)");
      size = *end;
    }
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
  size_ = size;
  torn_ = false;
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
    // O_APPEND writes follow the new end, so the descriptor stays usable.
    if (::ftruncate(fd_, 0) != 0) return fileError(config_.path + ": truncate", errno);
    size_ = 0;
    return Status::ok();
  }
  // rename() replaces the target, so the oldest kept file disappears with the first step.
  for (int64_t i = config_.max_files - 1; i >= 1; --i) {
    const std::string from = rotatedPath(i);
    if (::rename(from.c_str(), rotatedPath(i + 1).c_str()) != 0 && errno != ENOENT) {
      return fileError(from + ": rotate", errno);
    }
  }
  if (::rename(config_.path.c_str(), rotatedPath(1).c_str()) != 0) {
    return fileError(config_.path + ": rotate", errno);
  }
  dir_dirty_ = true;
  close();
  size_ = 0;
  logDebug(kLogComponent, "rotated ", config_.path);
  // On failure fd_ stays closed and the next send() opens the file again.
  return openFile();
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
    // Never opened, or a rotation could not create the new file.
    if (Status s = open({}); !s) return SendResult::retry(s.message());
  }
  if (torn_) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      return SendResult::retry(fileError(config_.path + ": cut a partial write", errno).message());
    }
    torn_ = false;
  }

  buf_.clear();
  block.records.appendNdjson(buf_);
  if (buf_.empty()) return SendResult::delivered();

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
  return SendResult::delivered();
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
             "none: the file is truncated instead"},
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
