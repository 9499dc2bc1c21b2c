#include "plugins/inputs/tail/tail.h"

#include "ferry/json.h"

#include <fcntl.h>
#include <glob.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "ferry/log.h"

namespace ferry {
namespace {

constexpr std::string_view kFormats[] = {"json", "text"};
constexpr std::string_view kStartAt[] = {"beginning", "end"};

constexpr Duration kMinPollInterval = std::chrono::milliseconds(10);
constexpr uint64_t kMaxLimitBytes = 64 << 20;  // max_line_bytes, batch_max_bytes
constexpr int64_t kMaxBatchRecords = 1'000'000;

// The read buffer starts here and grows (up to max_line_bytes + 1) only for longer lines.
constexpr size_t kReadChunk = 256 << 10;
// Bytes one pump reads from one file before the next file gets its turn.
constexpr uint64_t kPumpBudget = 1 << 20;
constexpr Duration kDropLogEvery = std::chrono::minutes(1);
// Positions of closed files that still exist under another name, kept in case they are
// matched again; bounded so that years of renaming rotation cannot grow the map forever.
constexpr size_t kMaxRemembered = 10000;

constexpr std::string_view kKeyPrefix = "file/";

// Checkpoints carry the FNV-1a 64 hash of the file's first min(size, 1024) bytes, so that a
// new file that got the inode number of a deleted one is not mistaken for it.
constexpr uint64_t kFingerprintBytes = 1024;
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;  // FNV-1a 64 of no bytes
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
// FileState::committed of a file whose stored checkpoint is stale: the first pump commits.
constexpr uint64_t kNotCommitted = ~uint64_t{0};

constexpr OptionSpec kOptions[] = {
    {.key = "paths",
     .type = OptionType::kStringList,
     .help = "files to follow: glob(3) patterns, re-expanded every poll so new files are "
             "picked up",
     .required = true},
    {.key = "format",
     .type = OptionType::kEnum,
     .default_value = "json",
     .help = "json: each line is one JSON object, emitted as is (invalid lines are dropped); "
             "text: each line becomes {\"message\":..,\"path\":..}",
     .choices = kFormats},
    {.key = "start_at",
     .type = OptionType::kEnum,
     .default_value = "beginning",
     .help = "where to start in a file that has no checkpoint and exists at startup "
             "(files that appear later are always read from their beginning)",
     .choices = kStartAt},
    {.key = "poll_interval",
     .type = OptionType::kDuration,
     .default_value = "250ms",
     .help = "time between two looks at the files; at least 10ms"},
    {.key = "max_line_bytes",
     .type = OptionType::kSize,
     .default_value = "1MiB",
     .help = "longer lines are skipped and counted (reason line_too_long); at most 64MiB"},
    {.key = "batch_max_records",
     .type = OptionType::kInt,
     .default_value = "1000",
     .help = "records per emitted batch, at most"},
    {.key = "batch_max_bytes",
     .type = OptionType::kSize,
     .default_value = "256KiB",
     .help = "bytes per emitted batch, at most (a single longer record goes alone); keep it "
             "at most buffer.block.max_bytes"},
};

// "file:line: path" of `key`, falling back to the bare key so a message always names it.
std::string locate(const Options& opts, std::string_view key, int index = -1) {
  SourceLocation loc = opts.where(key);
  if (loc.path.empty()) loc.path = std::string(key);
  if (index >= 0) loc.path += "[" + std::to_string(index) + "]";
  return loc.describe();
}


bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void appendUint(std::string& out, uint64_t v) {
  char buf[24];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 24 bytes always fit a uint64_t
  out.append(buf, ptr);
}

void makeKey(std::string& out, dev_t dev, ino_t ino) {
  out.assign(kKeyPrefix);
  appendUint(out, static_cast<uint64_t>(dev));
  out.push_back(':');
  appendUint(out, static_cast<uint64_t>(ino));
}

void appendHex16(std::string& out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i, v >>= 4) buf[i] = kDigits[v & 0xf];
  out.append(buf, sizeof buf);
}

uint64_t fnv1a(uint64_t h, const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= kFnvPrime;
  }
  return h;
}

// Continues `*hash` over the file's bytes [from, to). Returns how many bytes were hashed
// (fewer than to - from when the file ends first), or -errno. `*hash` is left as it was on
// an error.
int64_t hashFileRange(int fd, uint64_t from, uint64_t to, uint64_t* hash) {
  char buf[kFingerprintBytes];
  uint64_t h = *hash;
  uint64_t pos = from;
  while (pos < to) {
    const auto want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, to - pos));
    const ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -static_cast<int64_t>(errno);
    }
    if (n == 0) break;  // end of file
    h = fnv1a(h, buf, static_cast<size_t>(n));
    pos += static_cast<uint64_t>(n);
  }
  *hash = h;
  return static_cast<int64_t>(pos - from);
}

// `text` is a whole unsigned number in `base` (no sign, no spaces).
bool parseWhole(std::string_view text, uint64_t* out, int base = 10) {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// A checkpoint value: "<offset> <fp_len> <fp as 16 hex digits> <path>", or the format
// written before fingerprints, "<offset> <path>" (read as: no fingerprint). A value whose
// second and third fields do not look like fp_len (at most kFingerprintBytes) and fp is
// taken to be in the old format. False when not even the offset is readable.
bool parseCheckpoint(std::string_view value, uint64_t* offset, bool* has_fp, uint64_t* fp_len,
                     uint64_t* fp) {
  const size_t end = std::min(value.find(' '), value.size());
  if (!parseWhole(value.substr(0, end), offset)) return false;
  *has_fp = false;
  if (end == value.size()) return true;
  const std::string_view rest = value.substr(end + 1);
  const size_t sp = rest.find(' ');
  if (sp == std::string_view::npos || !parseWhole(rest.substr(0, sp), fp_len) ||
      *fp_len > kFingerprintBytes) {
    return true;
  }
  const std::string_view hex = rest.substr(sp + 1);
  if (hex.size() < 16 || (hex.size() > 16 && hex[16] != ' ') ||
      !parseWhole(hex.substr(0, 16), fp, 16)) {
    return true;
  }
  *has_fp = true;
  return true;
}

Result<std::unique_ptr<Input>> makeTailInput(const PluginContext& ctx, const Options& opts) {
  Result<TailSettings> settings = TailSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  const Clock& clock = ctx.clock != nullptr ? *ctx.clock : systemClock();
  return std::unique_ptr<Input>(
      std::make_unique<TailInput>(std::move(settings).value(), ctx.name, clock, ctx.metrics));
}

}  // namespace

Result<TailSettings> TailSettings::fromOptions(const Options& opts) {
  TailSettings s;

  s.paths = opts.getStringList("paths");
  if (s.paths.empty()) {
    return invalidArgument(locate(opts, "paths") + ": at least one path pattern is required");
  }
  for (size_t i = 0; i < s.paths.size(); ++i) {
    if (s.paths[i].empty()) {
      return invalidArgument(locate(opts, "paths", static_cast<int>(i)) + ": empty pattern");
    }
  }

  if (opts.has("format")) {
    const std::string& f = opts.getString("format");
    if (f == "json") {
      s.format = Format::kJson;
    } else if (f == "text") {
      s.format = Format::kText;
    } else {
      return invalidArgument(locate(opts, "format") + ": expected json or text, got \"" + f + "\"");
    }
  }
  if (opts.has("start_at")) {
    const std::string& a = opts.getString("start_at");
    if (a == "beginning") {
      s.start_at = StartAt::kBeginning;
    } else if (a == "end") {
      s.start_at = StartAt::kEnd;
    } else {
      return invalidArgument(locate(opts, "start_at") + ": expected beginning or end, got \"" + a +
                             "\"");
    }
  }
  if (opts.has("poll_interval")) {
    const Duration d = opts.getDuration("poll_interval");
    if (d < kMinPollInterval) {
      return invalidArgument(locate(opts, "poll_interval") + ": poll_interval " +
                             formatDuration(d) + " is below the minimum of " +
                             formatDuration(kMinPollInterval));
    }
    s.poll_interval = d;
  }
  for (const auto& [key, slot] : {std::pair{"max_line_bytes", &s.max_line_bytes},
                                  std::pair{"batch_max_bytes", &s.batch_max_bytes}}) {
    if (!opts.has(key)) continue;
    const uint64_t v = opts.getSize(key);
    if (v == 0 || v > kMaxLimitBytes) {
      return invalidArgument(locate(opts, key) + ": " + key + " must be between 1 and " +
                             formatSize(kMaxLimitBytes) + ", got " + formatSize(v));
    }
    *slot = v;
  }
  if (opts.has("batch_max_records")) {
    const int64_t v = opts.getInt("batch_max_records");
    if (v < 1 || v > kMaxBatchRecords) {
      return invalidArgument(locate(opts, "batch_max_records") +
                             ": batch_max_records must be between 1 and " +
                             std::to_string(kMaxBatchRecords) + ", got " + std::to_string(v));
    }
    s.batch_max_records = static_cast<uint64_t>(v);
  }
  return s;
}

TailInput::Fd& TailInput::Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd >= 0) ::close(fd);
    fd = o.fd;
    o.fd = -1;
  }
  return *this;
}

TailInput::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

TailInput::TailInput(TailSettings settings, std::string instance, const Clock& clock,
                     MetricsRegistry* metrics)
    : settings_(std::move(settings)), instance_(std::move(instance)), clock_(clock) {
  buf_cap_ = kReadChunk;
  buf_ = std::make_unique<char[]>(buf_cap_ + simdjson::SIMDJSON_PADDING);
  batch_.reserve(std::min<uint64_t>(settings_.batch_max_records, 4096),
                 std::min<uint64_t>(settings_.batch_max_bytes, kReadChunk) + 1024);
  if (settings_.format == TailSettings::Format::kJson) {
    parser_ = std::make_unique<simdjson::dom::parser>();
  }
  if (metrics != nullptr) {
    for (DropReason* r : {&invalid_json_, &too_long_}) {
      r->counter =
          &metrics->counter("ferry_dropped_records_total", {{"reason", std::string(r->reason)}},
                            "records dropped, by reason");
    }
  }
}

TailInput::~TailInput() = default;

void TailInput::loadCheckpoints(const Emitter& emitter) {
  for (const auto& [key, value] : emitter.checkpoints().list(kKeyPrefix)) {
    Restored r;
    if (!parseCheckpoint(value, &r.offset, &r.has_fp, &r.fp_len, &r.fp)) {
      logWarn("input", instance_, ": ignoring unreadable checkpoint ", key, " = \"", value, "\"");
      continue;
    }
    restored_[key] = r;
  }
}

Status TailInput::extendFingerprint(FileState& f, uint64_t size) {
  const int64_t n = hashFileRange(f.fd.fd, f.fp_len, std::min(size, kFingerprintBytes), &f.fp);
  if (n < 0) return errnoStatus("read " + f.path, static_cast<int>(-n));
  f.fp_len += static_cast<uint64_t>(n);
  return Status::ok();
}

void TailInput::discover(bool first_poll) {
  order_.clear();
  std::string& key = key_;
  for (const std::string& pattern : settings_.paths) {
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    if (rc != 0) {
      // GLOB_NOMATCH: nothing there yet; GLOB_ABORTED/NOSPACE: try again next poll.
      if (rc != GLOB_NOMATCH) logDebug("input", instance_, ": glob ", pattern, " failed: ", rc);
      ::globfree(&g);
      continue;
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      const char* path = g.gl_pathv[i];
      struct stat st {};
      if (::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      makeKey(key, st.st_dev, st.st_ino);
      auto it = files_.find(key);
      if (it == files_.end()) {
        // O_NONBLOCK: the path may have been replaced by a FIFO since the stat.
        const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
          const int err = errno;
          if (err == ENOENT) continue;  // removed since the glob: not there any more
          if (open_failed_.emplace(path).second) {
            logWarn("input", instance_, ": cannot open ", path, ": ",
                    errnoStatus("open", err).message(),
                    " (retrying every poll; not logged again until it opens)");
          }
          continue;
        }
        Fd owned(fd);
        // The fd is what will be read: key it by its own identity.
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        makeKey(key, st.st_dev, st.st_ino);
        it = files_.find(key);
        if (it == files_.end()) {
          FileState f;
          f.key = key;
          f.path = path;
          f.fp = kFnvBasis;  // fp_len 0; pump() extends it over the file's head
          const auto size = static_cast<uint64_t>(st.st_size);
          const bool skip_existing =
              first_poll && settings_.start_at == TailSettings::StartAt::kEnd;
          bool fresh = true;  // no checkpoint to trust: a new file, start_at applies
          if (auto r = restored_.find(key); r != restored_.end()) {
            const Restored cp = r->second;
            // The checkpoint is this file's only if the head it fingerprinted is still
            // there: dev:inode numbers are reused for new files once a file is deleted.
            bool same = true;
            if (cp.has_fp) {
              uint64_t h = kFnvBasis;
              const int64_t n = hashFileRange(fd, 0, cp.fp_len, &h);
              if (n < 0) {
                if (open_failed_.emplace(path).second) {
                  logWarn("input", instance_, ": cannot read ", path, ": ",
                          errnoStatus("read", static_cast<int>(-n)).message(),
                          " (retrying every poll; not logged again until it succeeds)");
                }
                continue;  // the checkpoint stays for the next try
              }
              same = static_cast<uint64_t>(n) == cp.fp_len && h == cp.fp;
            }
            restored_.erase(r);
            if (same) {
              fresh = false;
              f.offset = f.committed = cp.offset;
              if (cp.has_fp) {
                f.fp_len = cp.fp_len;
                f.fp = cp.fp;
              }
              if (size < f.offset) {
                logWarn("input", instance_, ": ", f.path, " is shorter (", size,
                        " bytes) than its checkpoint (", f.offset,
                        "): truncated, reading it again from the start");
                f.offset = 0;  // committed differs: the new position is committed at once
                f.fp_len = 0;  // a truncated file gets a new head
                f.fp = kFnvBasis;
              }
            } else {
              logInfo("input", instance_, ": ", f.path,
                      ": a different file than the one checkpointed for inode ", st.st_ino,
                      " (fingerprint differs); reading it from ",
                      skip_existing ? "its end (start_at: end)" : "the start");
              f.committed = kNotCommitted;  // the stale checkpoint is replaced at once
            }
          }
          if (fresh && skip_existing) {
            f.offset = size;  // committed differs from it: the position is committed at once
          }
          f.fd = std::move(owned);
          appendJsonString(f.path_json, f.path);
          logInfo("input", instance_, ": following ", f.path, " from offset ", f.offset);
          it = files_.emplace(key, std::move(f)).first;
        }
        if (auto o = open_failed_.find(std::string_view(path)); o != open_failed_.end()) {
          open_failed_.erase(o);
        }
      }
      FileState& f = it->second;
      if (f.seen_poll == poll_) continue;  // matched twice (patterns overlap, hard links)
      f.seen_poll = poll_;
      if (f.path != path) {
        logInfo("input", instance_, ": ", f.path, " is now ", path);
        f.path = path;
        f.path_json.clear();
        appendJsonString(f.path_json, f.path);
      }
      order_.push_back(&f);
    }
    ::globfree(&g);
  }
  // Files no pattern matches any more (deleted, renamed away) are read to their end once
  // more, then closed (see collect()).
  for (auto& [k, f] : files_) {
    if (f.seen_poll != poll_) order_.push_back(&f);
  }
}

void TailInput::growBuffer() {
  const size_t limit = static_cast<size_t>(settings_.max_line_bytes) + 1;
  const size_t cap = std::min(limit, std::max(buf_cap_ * 2, buf_cap_ + 1));
  auto bigger = std::make_unique<char[]>(cap + simdjson::SIMDJSON_PADDING);
  std::memcpy(bigger.get(), buf_.get(), buf_cap_);
  buf_ = std::move(bigger);
  buf_cap_ = cap;
}

void TailInput::drop(FileState& f, DropReason& why, uint64_t line_off, std::string_view what) {
  if (line_off < f.counted_to) return;  // counted before its batch was refused
  f.counted_to = line_off + 1;
  if (why.counter != nullptr) why.counter->add();
  ++why.since_log;
  const SteadyTime now = clock_.now();
  if (!why.logged || now - why.last_log >= kDropLogEvery) {
    logWarn("input", instance_, ": dropped ", what, " at ", f.path, " offset ", line_off, " (",
            why.since_log, " dropped since the last message, reason ", why.reason, ")");
    why.since_log = 0;
    why.last_log = now;
    why.logged = true;
  }
}

Status TailInput::flush(FileState& f, Emitter& emitter, uint64_t consumed) {
  cp_.key.assign(f.key);
  cp_.value.clear();
  appendUint(cp_.value, consumed);
  cp_.value.push_back(' ');
  appendUint(cp_.value, f.fp_len);
  cp_.value.push_back(' ');
  appendHex16(cp_.value, f.fp);
  cp_.value.push_back(' ');
  cp_.value.append(f.path);
  Status st = emitter.emitWithCheckpoint(batch_, cp_);
  batch_.clear();
  if (!st.isOk()) {
    emit_refused_ = true;
    return st;
  }
  f.offset = f.committed = consumed;
  if (f.skip_to <= consumed) f.skip_to = 0;
  return Status::ok();
}

Status TailInput::addRecord(FileState& f, Emitter& emitter, std::string_view record,
                            uint64_t consumed) {
  if (!batch_.empty() && (batch_.size() >= settings_.batch_max_records ||
                          batch_.bytes() + record.size() > settings_.batch_max_bytes)) {
    FERRY_RETURN_IF_ERROR(flush(f, emitter, consumed));
  }
  batch_.append(record);
  return Status::ok();
}

Status TailInput::handleLine(FileState& f, Emitter& emitter, const char* line, size_t len,
                             uint64_t consumed) {
  if (len > settings_.max_line_bytes) {
    drop(f, too_long_, consumed, "a line longer than max_line_bytes");
    return Status::ok();
  }
  if (settings_.format == TailSettings::Format::kJson) {
    const char* b = line;
    const char* e = line + len;
    while (b < e && isJsonSpace(*b)) ++b;
    while (e > b && isJsonSpace(e[-1])) --e;
    if (b == e) return Status::ok();  // empty lines are skipped silently
    const auto n = static_cast<size_t>(e - b);
    // No copy: the read buffer has SIMDJSON_PADDING allocated bytes past its capacity.
    simdjson::dom::element doc;
    if (parser_->parse(b, n, false).get(doc) != simdjson::SUCCESS ||
        doc.type() != simdjson::dom::element_type::OBJECT) {
      drop(f, invalid_json_, consumed, "a line that is not a JSON object");
      return Status::ok();
    }
    return addRecord(f, emitter, std::string_view(b, n), consumed);
  }
  if (len > 0 && line[len - 1] == '\r') --len;
  if (len == 0) return Status::ok();
  scratch_.assign("{\"message\":");
  appendJsonString(scratch_, std::string_view(line, len));
  scratch_.append(",\"path\":");
  scratch_.append(f.path_json);
  scratch_.push_back('}');
  return addRecord(f, emitter, scratch_, consumed);
}

Status TailInput::pump(FileState& f, Emitter& emitter, bool* more) {
  *more = false;
  batch_.clear();
  struct stat st {};
  if (::fstat(f.fd.fd, &st) != 0) return errnoStatus("fstat " + f.path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (f.skip_to <= f.offset) f.skip_to = 0;
  // A file only shrinks when it is truncated; the fingerprinted head counts too (it may
  // reach past the position).
  if (size < std::max({f.offset, f.skip_to, f.fp_len})) {
    logWarn("input", instance_, ": ", f.path, " was truncated (", size, " bytes, position was ",
            f.offset, "): reading it again from the start");
    f.offset = 0;
    f.skip_to = 0;
    f.counted_to = 0;
    f.fp_len = 0;  // the head is new
    f.fp = kFnvBasis;
  }
  // The fingerprint covers the first min(size, kFingerprintBytes) bytes: a file first seen
  // short (or empty, or just truncated) gets it extended as it grows.
  if (f.fp_len < kFingerprintBytes && size > f.fp_len) {
    FERRY_RETURN_IF_ERROR(extendFingerprint(f, size));
  }

  bool skipping = f.skip_to > f.offset;  // inside a too-long line: looking for its end
  uint64_t consumed = f.offset;          // end of the last line consumed
  uint64_t buf_off = skipping ? f.skip_to : f.offset;  // file offset of buf_[0]
  if (buf_off >= size) {
    // Nothing new. A position that moved without lines (start_at end, truncation) is
    // still committed, so a restart does not redo the decision.
    if (consumed != f.committed) return flush(f, emitter, consumed);
    return Status::ok();
  }
  const uint64_t budget_end = buf_off + kPumpBudget;
  size_t filled = 0;  // bytes in buf_
  size_t scan = 0;    // buf_[0, scan) holds no newline after `ls`
  size_t ls = 0;      // start of the current line in buf_
  while (true) {
    const ssize_t n = ::pread(f.fd.fd, buf_.get() + filled, buf_cap_ - filled,
                              static_cast<off_t>(buf_off + filled));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      batch_.clear();  // not handed over: read again next poll
      return errnoStatus("read " + f.path, err);
    }
    if (n == 0) break;  // end of file
    filled += static_cast<size_t>(n);
    while (scan < filled) {
      const auto* nl =
          static_cast<const char*>(std::memchr(buf_.get() + scan, '\n', filled - scan));
      if (nl == nullptr) {
        scan = filled;
        break;
      }
      const auto i = static_cast<size_t>(nl - buf_.get());
      if (skipping) {
        skipping = false;  // the too-long line ends here; it was counted when found
      } else {
        Status s = handleLine(f, emitter, buf_.get() + ls, i - ls, consumed);
        if (!s.isOk()) {
          batch_.clear();
          return s;
        }
      }
      consumed = buf_off + i + 1;
      ls = scan = i + 1;
    }
    // [ls, filled) is the start of a line whose newline has not been read yet.
    if (!skipping && filled - ls > settings_.max_line_bytes) {
      drop(f, too_long_, consumed, "a line longer than max_line_bytes");
      skipping = true;
    }
    if (skipping) {
      buf_off += filled;  // nothing of the too-long line is kept
      filled = scan = ls = 0;
    } else {
      std::memmove(buf_.get(), buf_.get() + ls, filled - ls);
      buf_off += ls;
      filled -= ls;
      scan -= ls;
      ls = 0;
      if (filled == buf_cap_) growBuffer();  // the partial line is at most max_line_bytes
    }
    if (buf_off + filled >= budget_end) {
      *more = true;
      break;
    }
  }
  if (!batch_.empty() || consumed != f.committed) {
    FERRY_RETURN_IF_ERROR(flush(f, emitter, consumed));
  }
  f.offset = consumed;
  f.skip_to = skipping ? buf_off : 0;  // skipping: the line at `consumed` has no '\n' before
  return Status::ok();
}

Status TailInput::collect(Emitter& emitter) {
  const bool first_poll = !loaded_;
  if (first_poll) {
    loadCheckpoints(emitter);
    loaded_ = true;
  }
  ++poll_;
  discover(first_poll);

  // Rounds over the files, each getting about kPumpBudget bytes per round, until every
  // file is at its end. Past one interval no new round starts: the next collect follows at
  // once (the runner does not wait when a collect overran) and re-expands the patterns.
  const SteadyTime deadline = clock_.now() + settings_.poll_interval;
  Status failure;
  done_.assign(order_.size(), 0);
  bool again = true;
  while (again) {
    again = false;
    for (size_t i = 0; i < order_.size(); ++i) {
      if (done_[i] != 0) continue;
      if (emitter.stopping()) return cancelled("stopping");
      bool more = false;
      emit_refused_ = false;
      Status st = pump(*order_[i], emitter, &more);
      if (emit_refused_) return st;  // the core refused a batch: every file waits for the next poll
      if (!st.isOk()) {
        if (failure.isOk()) failure = st;
        done_[i] = 2;
        continue;
      }
      if (more) {
        again = true;
      } else {
        done_[i] = 1;
      }
    }
    if (again && clock_.now() >= deadline) break;
  }

  // Unmatched files that were read to their end are closed. One that still exists under
  // another name keeps its position in case it is matched again.
  for (size_t i = 0; i < order_.size(); ++i) {
    FileState& f = *order_[i];
    if (f.seen_poll == poll_ || done_[i] != 1) continue;
    struct stat st {};
    const bool linked = ::fstat(f.fd.fd, &st) == 0 && st.st_nlink > 0;
    logInfo("input", instance_, ": no longer following ", f.path, " at offset ", f.offset,
            linked ? "" : " (deleted)");
    if (linked && restored_.size() < kMaxRemembered) {
      restored_[f.key] =
          Restored{.offset = f.offset, .has_fp = true, .fp_len = f.fp_len, .fp = f.fp};
    }
    files_.erase(files_.find(f.key));
  }
  order_.clear();
  return failure;
}

const PluginDescriptor& tailInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "tail",
      .summary = "follows files matched by glob patterns, one record per line (json or text)",
      .options = kOptions,
      .make_input = &makeTailInput,
  };
  return kDescriptor;
}

}  // namespace ferry
