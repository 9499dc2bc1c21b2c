#include "plugins/inputs/tail/tail.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>

#include "ferry/json.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "ferry/log.h"

namespace ferry {
namespace {

constexpr std::string_view kStartAt[] = {"beginning", "end"};
constexpr std::string_view kOnLongLine[] = {"cut", "dead_letter"};

constexpr Duration kMinPollInterval = std::chrono::milliseconds(10);
constexpr uint64_t kMaxLimitBytes = 64 << 20;  // max_line_bytes, batch_max_bytes
constexpr int64_t kMaxBatchRecords = 1'000'000;
constexpr int64_t kMaxMultilineLines = 100'000;
constexpr Duration kMaxRotateWait = std::chrono::hours(1);
// A dead-lettered long line keeps at most this many of its first bytes.
constexpr uint64_t kDeadLetterCap = 64 << 10;

// The read buffer starts here and grows (up to max_line_bytes + 1) only for longer lines.
constexpr size_t kReadChunk = 256 << 10;
// Bytes one pump reads from one file before the next file gets its turn.
constexpr uint64_t kPumpBudget = 1 << 20;
constexpr Duration kDropLogEvery = std::chrono::minutes(1);
// Positions of closed files that still exist (and checkpoints not applied yet), kept in case
// they are matched again; bounded so that years of renaming rotation cannot grow the map
// forever (the oldest is forgotten first).
constexpr size_t kMaxRemembered = 10000;

constexpr std::string_view kKeyPrefix = "file/";

// Checkpoints carry the FNV-1a 64 hash of the file's first min(size, 1024) bytes, so that a
// new file that got the inode number of a deleted one is not mistaken for it.
constexpr uint64_t kFingerprintBytes = 1024;
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;  // FNV-1a 64 of no bytes
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
// FileState::committed of a file whose stored checkpoint is stale: the first pump commits.
constexpr uint64_t kNotCommitted = ~uint64_t{0};

constexpr OptionSpec kMultiline[] = {
    {.key = "start_pattern",
     .type = OptionType::kString,
     .help = "a line this PCRE2 regular expression matches (searched anywhere in the line; "
             "anchor it with ^) starts a new record; other lines are appended to the pending "
             "one, joined with \\n. Empty: multiline is off"},
    {.key = "max_lines",
     .type = OptionType::kInt,
     .default_value = "500",
     .help = "a record that reaches this many lines is emitted; the next line starts a new "
             "one (1..100000)"},
    {.key = "timeout",
     .type = OptionType::kDuration,
     .default_value = "1s",
     .help = "a pending record that got no new line for this long is emitted"},
};

constexpr OptionSpec kOwnOptions[] = {
    {.key = "paths",
     .type = OptionType::kStringList,
     .help = "files to follow: glob(3) patterns, re-expanded every poll so new files are "
             "picked up",
     .required = true},
    {.key = "exclude",
     .type = OptionType::kStringList,
     .help = "fnmatch(3) patterns of files not to follow even though `paths` matches them; a "
             "pattern without '/' is matched against the file name, one with '/' against the "
             "whole path"},
    {.key = "start_at",
     .type = OptionType::kEnum,
     .default_value = "beginning",
     .help = "where to start in the files there at the input's first start ever (no "
             "checkpoint stored yet); files that appear later, or that a later start does "
             "not know, are always read from their beginning",
     .choices = kStartAt},
    {.key = "poll_interval",
     .type = OptionType::kDuration,
     .default_value = "250ms",
     .help = "time between two looks at the files; at least 10ms"},
    {.key = "rotate_wait",
     .type = OptionType::kDuration,
     .default_value = "5s",
     .help = "a rotated file (renamed, replaced, deleted or no longer matched) is kept open "
             "and read until it has not grown for this long; at most 1h"},
    {.key = "max_line_bytes",
     .type = OptionType::kSize,
     .default_value = "1MiB",
     .help = "longest line (and multiline record) in bytes; longer lines are handled as "
             "on_long_line says; at most 64MiB"},
    {.key = "on_long_line",
     .type = OptionType::kEnum,
     .default_value = "dead_letter",
     .help = "cut: the first max_line_bytes bytes become the record (counted as line_cut); "
             "dead_letter: the line (its first 64KiB) goes to the dead-letter queue",
     .choices = kOnLongLine},
    {.key = "multiline",
     .type = OptionType::kObject,
     .help = "join lines into records: a line matching start_pattern starts a record",
     .fields = kMultiline},
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
// Then format, pattern, columns, delimiter, invalid_utf8 (docs/formats.md).
constexpr auto kOptions = withLineFormatOptions(kOwnOptions);

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

// Reads up to `n` bytes at `off` into `buf`, fewer only at the end of the file. Returns the
// count, or -errno.
int64_t readAt(int fd, char* buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -static_cast<int64_t>(errno);
    }
    if (r == 0) break;  // end of file
    got += static_cast<size_t>(r);
  }
  return static_cast<int64_t>(got);
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
                     uint64_t* fp, std::string* path) {
  const size_t end = std::min(value.find(' '), value.size());
  if (!parseWhole(value.substr(0, end), offset)) return false;
  *has_fp = false;
  path->clear();
  if (end == value.size()) return true;
  const std::string_view rest = value.substr(end + 1);
  path->assign(rest);
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
  path->assign(hex.size() > 17 ? hex.substr(17) : std::string_view());
  return true;
}

// The name an open fd now has (its file may have been renamed), or "" when it is deleted or
// /proc is not there.
std::string currentName(int fd) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[4096];
  const ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n <= 0) return {};
  std::string name(target, static_cast<size_t>(n));
  if (name.empty() || name[0] != '/' || name.ends_with(" (deleted)")) return {};
  return name;
}

// Where to cut `p` (`have` bytes read) at most `n` bytes in, not inside a UTF-8 character:
// when p[n] continues a character, the cut moves back to that character's lead byte.
size_t utf8Boundary(const char* p, size_t n, size_t have) {
  auto cont = [p](size_t i) { return (static_cast<unsigned char>(p[i]) & 0xC0) == 0x80; };
  if (n >= have || !cont(n)) return n;
  size_t k = n;
  while (k > 0 && n - k < 3 && cont(k - 1)) --k;
  if (k > 0 && (static_cast<unsigned char>(p[k - 1]) & 0xC0) == 0xC0) return k - 1;
  return n;
}

Result<std::unique_ptr<Input>> makeTailInput(const PluginContext& ctx, const Options& opts) {
  Result<TailSettings> settings = TailSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  const Clock& clock = ctx.clock != nullptr ? *ctx.clock : systemClock();
  Result<std::unique_ptr<TailInput>> input =
      TailInput::make(std::move(settings).value(), ctx.name, clock);
  if (!input.isOk()) return input.status();
  return std::unique_ptr<Input>(std::move(input).value());
}

// Backtracking steps one start_pattern test may take (a pathological pattern on a long line
// gives up and the line counts as no start, rather than stalling the input).
constexpr uint32_t kStartMatchLimit = 1'000'000;

}  // namespace

class TailInput::StartPattern {
 public:
  // Compiles `pattern` (UTF mode, safe on lines that are not valid UTF-8), JIT when the
  // platform has it. The error names PCRE2's message and the offset.
  static Result<std::unique_ptr<StartPattern>> compile(const std::string& pattern) {
    auto p = std::unique_ptr<StartPattern>(new StartPattern());
    int code = 0;
    PCRE2_SIZE at = 0;
    p->code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &at, nullptr);
    if (p->code_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(code, msg, sizeof msg);
      return invalidArgument("does not compile at offset " + std::to_string(at) + ": " +
                             reinterpret_cast<const char*>(msg));
    }
    (void)pcre2_jit_compile(p->code_, PCRE2_JIT_COMPLETE);  // interpreted without JIT
    p->match_ = pcre2_match_data_create_from_pattern(p->code_, nullptr);
    p->context_ = pcre2_match_context_create(nullptr);
    if (p->match_ == nullptr || p->context_ == nullptr) {
      return invalidArgument("out of memory preparing the pattern");
    }
    pcre2_set_match_limit(p->context_, kStartMatchLimit);
    return p;
  }
  ~StartPattern() {
    pcre2_match_context_free(context_);
    pcre2_match_data_free(match_);
    pcre2_code_free(code_);
  }
  StartPattern(const StartPattern&) = delete;
  StartPattern& operator=(const StartPattern&) = delete;

  // Does the pattern match somewhere in `line`? One call per line; no allocation.
  bool matches(const char* line, size_t len) const {
    return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(line), len, 0, 0, match_, context_) >= 0;
  }

 private:
  StartPattern() = default;
  pcre2_code* code_ = nullptr;
  pcre2_match_data* match_ = nullptr;
  pcre2_match_context* context_ = nullptr;
};

Result<TailSettings> TailSettings::fromOptions(const Options& opts) {
  TailSettings s;

  s.paths = opts.getStringList("paths");
  if (s.paths.empty()) {
    return invalidArgument(opts.locate("paths") + ": at least one path pattern is required");
  }
  for (size_t i = 0; i < s.paths.size(); ++i) {
    if (s.paths[i].empty()) {
      return invalidArgument(opts.locate("paths", static_cast<int>(i)) + ": empty pattern");
    }
  }
  if (opts.has("exclude")) {
    s.exclude = opts.getStringList("exclude");
    for (size_t i = 0; i < s.exclude.size(); ++i) {
      if (s.exclude[i].empty()) {
        return invalidArgument(opts.locate("exclude", static_cast<int>(i)) + ": empty pattern");
      }
    }
  }

  Result<LineFormatSpec> format = lineFormatSpecFromOptions(opts);
  if (!format.isOk()) return format.status();
  s.line_format = std::move(format).value();
  if (opts.has("start_at")) {
    const std::string& a = opts.getString("start_at");
    if (a == "beginning") {
      s.start_at = StartAt::kBeginning;
    } else if (a == "end") {
      s.start_at = StartAt::kEnd;
    } else {
      return invalidArgument(opts.locate("start_at") + ": expected beginning or end, got \"" + a +
                             "\"");
    }
  }
  if (opts.has("on_long_line")) {
    const std::string& a = opts.getString("on_long_line");
    if (a == "cut") {
      s.on_long_line = OnLongLine::kCut;
    } else if (a == "dead_letter") {
      s.on_long_line = OnLongLine::kDeadLetter;
    } else {
      return invalidArgument(opts.locate("on_long_line") +
                             ": expected cut or dead_letter, got \"" + a + "\"");
    }
  }
  if (opts.has("poll_interval")) {
    const Duration d = opts.getDuration("poll_interval");
    if (d < kMinPollInterval) {
      return invalidArgument(opts.locate("poll_interval") + ": poll_interval " +
                             formatDuration(d) + " is below the minimum of " +
                             formatDuration(kMinPollInterval));
    }
    s.poll_interval = d;
  }
  if (opts.has("rotate_wait")) {
    const Duration d = opts.getDuration("rotate_wait");
    if (d < Duration::zero() || d > kMaxRotateWait) {
      return invalidArgument(opts.locate("rotate_wait") + ": rotate_wait must be between 0s and " +
                             formatDuration(kMaxRotateWait) + ", got " + formatDuration(d));
    }
    s.rotate_wait = d;
  }
  for (const auto& [key, slot] : {std::pair{"max_line_bytes", &s.max_line_bytes},
                                  std::pair{"batch_max_bytes", &s.batch_max_bytes}}) {
    if (!opts.has(key)) continue;
    const uint64_t v = opts.getSize(key);
    if (v == 0 || v > kMaxLimitBytes) {
      return invalidArgument(opts.locate(key) + ": " + key + " must be between 1 and " +
                             formatSize(kMaxLimitBytes) + ", got " + formatSize(v));
    }
    *slot = v;
  }
  if (opts.has("batch_max_records")) {
    const int64_t v = opts.getInt("batch_max_records");
    if (v < 1 || v > kMaxBatchRecords) {
      return invalidArgument(opts.locate("batch_max_records") +
                             ": batch_max_records must be between 1 and " +
                             std::to_string(kMaxBatchRecords) + ", got " + std::to_string(v));
    }
    s.batch_max_records = static_cast<uint64_t>(v);
  }
  if (opts.has("multiline.start_pattern")) {
    s.ml_start_pattern = opts.getString("multiline.start_pattern");
    if (!s.ml_start_pattern.empty()) {
      Result<std::unique_ptr<TailInput::StartPattern>> re =
          TailInput::StartPattern::compile(s.ml_start_pattern);
      if (!re.isOk()) {
        return invalidArgument(opts.locate("multiline.start_pattern") + ": \"" +
                               s.ml_start_pattern + "\" " + re.status().message());
      }
    }
  }
  if (opts.has("multiline.max_lines")) {
    const int64_t v = opts.getInt("multiline.max_lines");
    if (v < 1 || v > kMaxMultilineLines) {
      return invalidArgument(opts.locate("multiline.max_lines") +
                             ": max_lines must be between 1 and " +
                             std::to_string(kMaxMultilineLines) + ", got " + std::to_string(v));
    }
    s.ml_max_lines = static_cast<uint64_t>(v);
  }
  if (opts.has("multiline.timeout")) {
    const Duration d = opts.getDuration("multiline.timeout");
    if (d <= Duration::zero()) {
      return invalidArgument(opts.locate("multiline.timeout") + ": timeout must be above 0");
    }
    s.ml_timeout = d;
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

Result<std::unique_ptr<TailInput>> TailInput::make(TailSettings settings, std::string instance,
                                                   const Clock& clock) {
  Result<LineParser> parser = LineParser::make(settings.line_format);
  if (!parser.isOk()) return parser.status();
  std::unique_ptr<StartPattern> start;
  if (!settings.ml_start_pattern.empty()) {
    Result<std::unique_ptr<StartPattern>> re = StartPattern::compile(settings.ml_start_pattern);
    if (!re.isOk()) return invalidArgument("multiline.start_pattern " + re.status().message());
    start = std::move(re).value();
  }
  return std::unique_ptr<TailInput>(
      new TailInput(std::move(settings), std::move(instance), clock,
                    std::make_unique<LineParser>(std::move(parser).value()), std::move(start)));
}

TailInput::TailInput(TailSettings settings, std::string instance, const Clock& clock,
                     std::unique_ptr<LineParser> parser, std::unique_ptr<StartPattern> start)
    : settings_(std::move(settings)),
      instance_(std::move(instance)),
      clock_(clock),
      parser_(std::move(parser)),
      start_(std::move(start)) {
  buf_cap_ = kReadChunk;
  buf_ = std::make_unique<char[]>(buf_cap_ + kLinePadding);
  batch_.reserve(std::min<uint64_t>(settings_.batch_max_records, 4096),
                 std::min<uint64_t>(settings_.batch_max_bytes, kReadChunk) + 1024);
}

TailInput::~TailInput() = default;

void TailInput::loadCheckpoints(const Emitter& emitter) {
  for (const auto& [key, value] : emitter.checkpoints().list(kKeyPrefix)) {
    had_checkpoints_ = true;
    Restored r;
    if (!parseCheckpoint(value, &r.offset, &r.has_fp, &r.fp_len, &r.fp, &r.path)) {
      logWarn("input", instance_, ": ignoring unreadable checkpoint ", key, " = \"", value, "\"");
      continue;
    }
    r.seq = ++restored_seq_;
    restored_[key] = std::move(r);
  }
}

bool TailInput::excluded(const char* path) const {
  if (settings_.exclude.empty()) return false;
  const char* slash = std::strrchr(path, '/');
  const char* base = slash != nullptr ? slash + 1 : path;
  for (const std::string& pattern : settings_.exclude) {
    const bool whole = pattern.find('/') != std::string::npos;
    if (::fnmatch(pattern.c_str(), whole ? path : base, whole ? FNM_PATHNAME : 0) == 0) {
      return true;
    }
  }
  return false;
}

TailInput::FileState* TailInput::open(const char* path, bool first_poll, Found how) {
  std::string& key = key_;
  // O_NONBLOCK: the path may have been replaced by a FIFO since the stat.
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return nullptr;  // removed since the glob: not there any more
    if (open_failed_.emplace(path).second) {
      logWarn("input", instance_, ": cannot open ", path, ": ", errnoStatus("open", err).message(),
              " (retrying every poll; not logged again until it opens)");
    }
    return nullptr;
  }
  Fd owned(fd);
  struct stat st {};
  // The fd is what will be read: key it by its own identity.
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  makeKey(key, st.st_dev, st.st_ino);
  if (auto it = files_.find(key); it != files_.end()) return &it->second;
  auto r = restored_.find(key);
  if (how == Found::kRenamed && r == restored_.end()) return nullptr;

  FileState f;
  f.key = key;
  f.path = path;
  f.fp = kFnvBasis;  // fp_len 0; snapshot() extends it over the file's head
  const auto size = static_cast<uint64_t>(st.st_size);
  // start_at: end applies to the input's very first run only: once it has checkpoints, a
  // file it does not know at a start is new content (rotated while the agent was down).
  const bool skip_existing =
      first_poll && !had_checkpoints_ && settings_.start_at == TailSettings::StartAt::kEnd;
  bool fresh = true;  // no checkpoint to trust: a new file, start_at applies
  if (r != restored_.end()) {
    const Restored cp = r->second;
    // The checkpoint is this file's only if the head it fingerprinted is still there:
    // dev:inode numbers are reused for new files once a file is deleted.
    bool same = true;
    if (cp.has_fp) {
      char head[kFingerprintBytes];
      const int64_t n = readAt(fd, head, static_cast<size_t>(cp.fp_len), 0);
      if (n < 0) {
        if (open_failed_.emplace(path).second) {
          logWarn("input", instance_, ": cannot read ", path, ": ",
                  errnoStatus("read", static_cast<int>(-n)).message(),
                  " (retrying every poll; not logged again until it succeeds)");
        }
        return nullptr;  // the checkpoint stays for the next try
      }
      same = static_cast<uint64_t>(n) == cp.fp_len &&
             fnv1a(kFnvBasis, head, static_cast<size_t>(n)) == cp.fp;
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
    } else if (how == Found::kRenamed) {
      return nullptr;  // another file got the inode: not ours to finish
    } else {
      logInfo("input", instance_, ": ", f.path,
              ": a different file than the one checkpointed for inode ", st.st_ino,
              " (fingerprint differs); reading it from ",
              skip_existing ? "its end (start_at: end)" : "the start");
      f.committed = kNotCommitted;  // the stale checkpoint is replaced at once
    }
  }
  if (fresh) {
    // The position of a new file is committed at once (an empty batch when it has no line
    // yet), so that a restart finds it even if it is renamed before it has a line.
    f.committed = kNotCommitted;
    if (skip_existing) f.offset = size;
  }
  f.base = f.offset;  // change_ns -1: the first snapshot() checks and extends the head
  f.fd = std::move(owned);
  appendExtraMember(f.extra, "path", f.path);
  if (how == Found::kRenamed) {
    f.rotated = true;
    f.quiet_since = clock_.now();
    logInfo("input", instance_, ": finishing ", f.path,
            " (renamed while the agent was down) from offset ", f.offset);
  } else {
    logInfo("input", instance_, ": following ", f.path, " from offset ", f.offset);
  }
  if (auto o = open_failed_.find(std::string_view(path)); o != open_failed_.end()) {
    open_failed_.erase(o);
  }
  return &files_.emplace(key, std::move(f)).first->second;
}

void TailInput::findRenamed(bool first_poll) {
  // Directory → (inode → key) of the checkpoints no pattern matched.
  std::map<std::string, std::unordered_map<uint64_t, std::string>> wanted;
  for (const auto& [key, r] : restored_) {
    const size_t slash = r.path.rfind('/');
    const size_t colon = key.rfind(':');
    uint64_t ino = 0;
    if (slash == std::string::npos || colon == std::string::npos ||
        !parseWhole(std::string_view(key).substr(colon + 1), &ino)) {
      continue;
    }
    wanted[r.path.substr(0, slash == 0 ? 1 : slash)][ino] = key;
  }
  for (auto& [dir, inodes] : wanted) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) continue;  // not there (yet): the checkpoints stay
    std::string path;
    std::set<std::string> keep;  // found but not opened (yet): kept for later polls
    while (const dirent* e = ::readdir(d)) {
      if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue;
      auto it = inodes.find(static_cast<uint64_t>(e->d_ino));
      if (it == inodes.end()) continue;
      path = dir == "/" ? "/" + std::string(e->d_name) : dir + "/" + e->d_name;
      if (open(path.c_str(), first_poll, Found::kRenamed) == nullptr &&
          restored_.count(it->second) != 0) {
        keep.insert(it->second);
      }
      inodes.erase(it);
    }
    ::closedir(d);
    // Not in their directory any more: deleted (or moved elsewhere). Forgotten.
    size_t forgotten = 0;
    for (const auto& [ino, key] : inodes) {
      if (keep.count(key) == 0) forgotten += restored_.erase(key);
    }
    if (forgotten > 0) {
      logInfo("input", instance_, ": forgot ", forgotten, " checkpoint(s) of files no longer in ",
              dir);
    }
  }
}

void TailInput::discover(bool first_poll) {
  order_.clear();
  matched_.clear();
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
      if (excluded(path)) continue;
      struct stat st {};
      if (::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      makeKey(key, st.st_dev, st.st_ino);
      auto it = files_.find(key);
      FileState* fp = it != files_.end() ? &it->second : open(path, first_poll, Found::kGlob);
      if (fp == nullptr) continue;
      FileState& f = *fp;
      if (f.seen_poll == poll_) continue;  // matched twice (patterns overlap, hard links)
      f.seen_poll = poll_;
      matched_.push_back(&f);
      if (f.path != path) {
        logInfo("input", instance_, ": ", f.path, " is now ", path, " (renamed)");
        f.path = path;
        f.extra.clear();
        appendExtraMember(f.extra, "path", f.path);
        if (!f.rotated) {
          f.rotated = true;  // read before the file that took its name
          f.quiet_since = clock_.now();
        }
      }
    }
    ::globfree(&g);
  }
  if (first_poll && !restored_.empty()) findRenamed(first_poll);
  // Files no pattern matches any more (deleted, renamed away or excluded) are rotated:
  // read through their fd until quiet for rotate_wait (see collect()).
  for (auto& [k, f] : files_) {
    if (f.seen_poll == poll_ || f.rotated) continue;
    f.rotated = true;
    f.quiet_since = clock_.now();
    std::string now_at = currentName(f.fd.fd);
    logInfo("input", instance_, ": ", f.path, " was rotated (",
            now_at.empty() ? std::string("deleted") : "now " + now_at, "): reading it to its end");
    if (!now_at.empty()) f.path = std::move(now_at);
  }
  for (auto& [k, f] : files_) {
    if (f.rotated) order_.push_back(&f);
  }
  for (FileState* f : matched_) {
    if (!f->rotated) order_.push_back(f);  // in glob order
  }
}

void TailInput::growBuffer() {
  const size_t limit = static_cast<size_t>(settings_.max_line_bytes) + 1;
  const size_t cap = std::min(limit, std::max(buf_cap_ * 2, buf_cap_ + 1));
  auto bigger = std::make_unique<char[]>(cap + kLinePadding);
  std::memcpy(bigger.get(), buf_.get(), buf_cap_);
  buf_ = std::move(bigger);
  buf_cap_ = cap;
}

void TailInput::drop(FileState& f, std::string_view reason, uint64_t at) {
  DropReason* why = nullptr;
  for (DropReason& d : drops_) {
    if (d.reason == reason) why = &d;
  }
  if (why == nullptr) {
    drops_.push_back(DropReason{.reason = std::string(reason)});
    why = &drops_.back();
  }
  ++why->pending;
  ++why->since_log;
  const SteadyTime now = clock_.now();
  if (!why->logged || now - why->last_log >= kDropLogEvery) {
    logWarn("input", instance_, ": ", reason == "line_cut" ? "cut" : "dropped", " a line at ",
            f.path, " offset ", at, " (reason ", why->reason, "; ", why->since_log,
            " since the last message)");
    why->since_log = 0;
    why->last_log = now;
    why->logged = true;
  }
}

void TailInput::rewind(FileState& f) {
  f.offset = f.base;
  f.skip_to = 0;
  f.ml_lines = 0;
  f.ml_text.clear();
  for (DropReason& d : drops_) d.pending = 0;
}

Status TailInput::flush(FileState& f, Emitter& emitter, uint64_t at) {
  cp_.key.assign(f.key);
  cp_.value.clear();
  appendUint(cp_.value, at);
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
    rewind(f);
    return st;
  }
  f.committed = f.base = at;
  for (DropReason& d : drops_) {
    if (d.pending == 0) continue;
    emitter.countDropped(d.reason, d.pending);
    d.pending = 0;
  }
  return Status::ok();
}

Status TailInput::roomFor(FileState& f, Emitter& emitter, size_t bytes, uint64_t at) {
  if (!batch_.empty() && (batch_.size() >= settings_.batch_max_records ||
                          batch_.bytes() + bytes > settings_.batch_max_bytes)) {
    return flush(f, emitter, at);
  }
  return Status::ok();
}

Status TailInput::produce(FileState& f, Emitter& emitter, const char* text, size_t len, uint64_t at,
                          bool cut) {
  const bool json = settings_.line_format.format == LineFormat::kJson;
  const std::string_view extra = json ? std::string_view() : std::string_view(f.extra);
  // Room for the record before it is built (other formats may quote and name every field).
  FERRY_RETURN_IF_ERROR(roomFor(f, emitter, json ? len : len + len / 2 + extra.size() + 64, at));
  const LineOutcome o = parser_->parsePadded(std::string_view(text, len), batch_, extra);
  if (o.refused()) {
    drop(f, o.reason, at);
  } else if (o.appended() && cut) {
    drop(f, "line_cut", at);
  }
  return Status::ok();
}

Status TailInput::finishPending(FileState& f, Emitter& emitter) {
  if (f.ml_lines == 0) return Status::ok();
  f.ml_lines = 0;
  const uint64_t at = f.ml_start;
  f.ml_text.reserve(f.ml_text.size() + kLinePadding);
  Status st = produce(f, emitter, f.ml_text.data(), f.ml_text.size(), at, false);
  f.ml_text.clear();
  return st;
}

Status TailInput::handleLine(FileState& f, Emitter& emitter, const char* line, size_t len,
                             uint64_t at, bool cut) {
  if (start_ == nullptr || cut) return produce(f, emitter, line, len, at, cut);
  if (len > 0 && line[len - 1] == '\r') --len;
  if (f.ml_lines == 0 && len == 0) return Status::ok();  // blank lines between records
  if (f.ml_lines > 0 &&
      (f.ml_text.size() + 1 + len > settings_.max_line_bytes || start_->matches(line, len))) {
    FERRY_RETURN_IF_ERROR(finishPending(f, emitter));
  }
  if (f.ml_lines == 0) {
    f.ml_start = at;
    f.ml_text.assign(line, len);
  } else {
    f.ml_text.push_back('\n');
    f.ml_text.append(line, len);
  }
  f.ml_last = clock_.now();
  if (++f.ml_lines >= settings_.ml_max_lines) return finishPending(f, emitter);
  return Status::ok();
}

Status TailInput::longLine(FileState& f, Emitter& emitter, uint64_t at, uint64_t len) {
  const bool cut = settings_.on_long_line == TailSettings::OnLongLine::kCut;
  const uint64_t keep =
      cut ? settings_.max_line_bytes : std::min(settings_.max_line_bytes, kDeadLetterCap);
  const uint64_t want = keep + 1;  // one more: is the cut inside a UTF-8 character?
  while (buf_cap_ < want) growBuffer();
  // The line's head is read again (the read buffer kept none of it while skipping). Fewer
  // bytes: truncated meanwhile (snapshot() notices at the next poll).
  const int64_t got = readAt(f.fd.fd, buf_.get(), static_cast<size_t>(want), at);
  if (got < 0) return errnoStatus("read " + f.path, static_cast<int>(-got));
  auto n = static_cast<size_t>(got);
  const size_t have = n;
  n = std::min<size_t>(n, keep);
  if (cut) {
    // At most max_line_bytes, not ending inside a UTF-8 character.
    n = utf8Boundary(buf_.get(), n, have);
    return handleLine(f, emitter, buf_.get(), n, at, true);
  }
  if (f.dead_done == at + 1) return Status::ok();  // kept already (its batch was refused)
  dead_.clear();
  dead_.append(std::string_view(buf_.get(), n));
  std::string reason = "line_too_long: " + f.path + " offset " + std::to_string(at) + ", " +
                       std::to_string(len) + " bytes";
  Status st = emitter.deadLetter(dead_, reason);
  if (st.code() == StatusCode::kCancelled) return st;
  f.dead_done = at + 1;
  if (!st.isOk()) {
    // The core counted it (dead_letter_failed); the line is not kept, the file goes on.
    logWarn("input", instance_, ": could not dead-letter the long line at ", f.path, " offset ", at,
            ": ", st.message());
  } else {
    logInfo("input", instance_, ": dead-lettered ", reason);
  }
  return Status::ok();
}

Status TailInput::checkHead(FileState& f, uint64_t size, bool extend, bool* same) {
  *same = true;
  const uint64_t want = extend ? std::max(f.fp_len, std::min(size, kFingerprintBytes)) : f.fp_len;
  if (want == 0) return Status::ok();
  char head[kFingerprintBytes];
  const int64_t got = readAt(f.fd.fd, head, static_cast<size_t>(want), 0);
  if (got < 0) return errnoStatus("read " + f.path, static_cast<int>(-got));
  const auto n = static_cast<uint64_t>(got);
  if (n < f.fp_len || fnv1a(kFnvBasis, head, f.fp_len) != f.fp) {
    *same = false;
    return Status::ok();
  }
  if (n > f.fp_len) {
    f.fp = fnv1a(f.fp, head + f.fp_len, n - f.fp_len);
    f.fp_len = n;
  }
  return Status::ok();
}

Status TailInput::snapshot(FileState& f, Emitter& emitter) {
  struct stat st {};
  if (::fstat(f.fd.fd, &st) != 0) return errnoStatus("fstat " + f.path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);
  const int64_t change_ns =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  const bool changed = size != f.change_size || change_ns != f.change_ns;
  if (changed) f.quiet_since = clock_.now();
  if (f.skip_to <= f.offset) f.skip_to = 0;
  // A file only shrinks when it is truncated; the fingerprinted head counts too (it may
  // reach past the position).
  bool truncated = size < std::max({f.offset, f.skip_to, f.fp_len});
  if (!truncated && changed) {
    // Grown or touched: is its head still the one read (truncated and written again past
    // the position between two polls is not visible in the size)?
    bool same = true;
    FERRY_RETURN_IF_ERROR(checkHead(f, size, true, &same));
    truncated = !same;
  }
  if (truncated) {
    logWarn("input", instance_, ": ", f.path, " was truncated (", size, " bytes, position was ",
            f.offset, "): reading it again from the start");
    if (f.ml_lines > 0) {
      // The pending record's lines were read before the truncation: they still go out.
      FERRY_RETURN_IF_ERROR(finishPending(f, emitter));
      FERRY_RETURN_IF_ERROR(flush(f, emitter, f.offset));
    }
    f.offset = f.base = 0;
    f.skip_to = 0;
    f.dead_done = 0;
    f.fp_len = 0;  // the head is new
    f.fp = kFnvBasis;
    bool same = true;
    FERRY_RETURN_IF_ERROR(checkHead(f, size, true, &same));
  }
  f.change_size = size;
  f.change_ns = change_ns;
  f.limit = size;
  return Status::ok();
}

Status TailInput::pump(FileState& f, Emitter& emitter, bool* more) {
  *more = false;
  batch_.clear();
  if (f.skip_to <= f.offset) f.skip_to = 0;
  bool skipping = f.skip_to > f.offset;  // inside a too-long line: looking for its end
  uint64_t buf_off = skipping ? f.skip_to : f.offset;  // file offset of buf_[0]
  const uint64_t budget_end = buf_off + kPumpBudget;
  size_t filled = 0;  // bytes in buf_
  size_t scan = 0;    // buf_[0, scan) holds no newline after `ls`
  size_t ls = 0;      // start of the current line in buf_
  auto fail = [&](Status st) {
    batch_.clear();  // not handed over: read again next poll
    rewind(f);
    return st;
  };
  while (buf_off + filled < f.limit) {
    const size_t room = std::min<uint64_t>(buf_cap_ - filled, f.limit - buf_off - filled);
    const ssize_t n =
        ::pread(f.fd.fd, buf_.get() + filled, room, static_cast<off_t>(buf_off + filled));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errnoStatus("read " + f.path, errno));
    }
    if (n == 0) break;  // end of file (shrunk since the snapshot)
    if (f.fp_len > 0) {
      // These bytes are the file's as the poll saw it only if its head is still the one
      // fingerprinted (one read of at most 1 KiB per read of up to 256 KiB): a copy-truncate
      // since the poll's size check would hand over pieces of the new content read at old
      // offsets. Then they are left out, lines of earlier reads are kept, and the next poll
      // starts the file again at 0.
      bool same = true;
      Status st = checkHead(f, 0, false, &same);
      if (!st.isOk()) return fail(st);
      if (!same) {
        logWarn("input", instance_, ": ", f.path, " was truncated while being read at offset ",
                buf_off + filled, ": reading it again from the start at the next poll");
        f.change_ns = -1;  // the next snapshot() checks the head
        break;
      }
    }
    filled += static_cast<size_t>(n);
    bool reread = false;
    while (scan < filled) {
      const auto* nl =
          static_cast<const char*>(std::memchr(buf_.get() + scan, '\n', filled - scan));
      if (nl == nullptr) {
        scan = filled;
        break;
      }
      const auto i = static_cast<size_t>(nl - buf_.get());
      if (skipping || i - ls > settings_.max_line_bytes) {
        // The too-long line [offset, here) ends: cut or dead-letter it. Its head is read
        // into buf_ again, so reading resumes after it.
        skipping = false;
        if (f.ml_lines > 0) {
          Status st = finishPending(f, emitter);  // a long line ends the pending record
          if (!st.isOk()) return fail(st);
        }
        const uint64_t at = f.offset;
        const uint64_t end = buf_off + i;
        Status st = longLine(f, emitter, at, end - at);
        if (!st.isOk()) {
          // Stopping: handled like a refused batch (collect() returns at once).
          emit_refused_ = emit_refused_ || st.code() == StatusCode::kCancelled;
          return fail(st);
        }
        f.offset = end + 1;
        if (settings_.on_long_line == TailSettings::OnLongLine::kDeadLetter) {
          // Commit the position past the dead letter at once (a crash before this keeps
          // it twice, never loses it).
          st = flush(f, emitter, f.checkpointOffset());
          if (!st.isOk()) return fail(st);
        }
        buf_off = f.offset;
        filled = scan = ls = 0;
        reread = true;
        break;
      }
      Status st = handleLine(f, emitter, buf_.get() + ls, i - ls, f.offset, false);
      if (!st.isOk()) return fail(st);
      f.offset = buf_off + i + 1;
      ls = scan = i + 1;
    }
    if (reread) {
      if (buf_off >= budget_end) {
        *more = true;
        break;
      }
      continue;
    }
    // [ls, filled) is the start of a line whose newline has not been read yet.
    if (!skipping && filled - ls > settings_.max_line_bytes) {
      skipping = true;
      Status st = finishPending(f, emitter);  // a long line ends the pending record
      if (!st.isOk()) return fail(st);
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
  f.skip_to = skipping ? buf_off : 0;  // skipping: the line at offset has no '\n' before
  if (!*more && f.ml_lines > 0 && clock_.now() - f.ml_last >= settings_.ml_timeout) {
    Status st = finishPending(f, emitter);
    if (!st.isOk()) return fail(st);
  }
  if (!batch_.empty() || f.checkpointOffset() != f.committed) {
    // A position that moved without records (drops, start_at end, truncation) is still
    // committed, so a restart does not redo the decision.
    Status st = flush(f, emitter, f.checkpointOffset());
    if (!st.isOk()) return fail(st);
  }
  return Status::ok();
}

void TailInput::remember(const FileState& f) {
  if (restored_.size() >= kMaxRemembered) {
    auto oldest = restored_.begin();
    for (auto it = restored_.begin(); it != restored_.end(); ++it) {
      if (it->second.seq < oldest->second.seq) oldest = it;
    }
    restored_.erase(oldest);
  }
  restored_[f.key] = Restored{.offset = f.checkpointOffset(),
                              .has_fp = true,
                              .fp_len = f.fp_len,
                              .fp = f.fp,
                              .path = f.path,
                              .seq = ++restored_seq_};
}

Status TailInput::closeIfDone(FileState& f, Emitter& emitter, bool* closed) {
  *closed = false;
  if (clock_.now() - f.quiet_since < settings_.rotate_wait) return Status::ok();
  if (f.seen_poll == poll_) {
    f.rotated = false;  // renamed to a matched name: followed as any other file from now on
    return Status::ok();
  }
  if (f.ml_lines > 0) {
    FERRY_RETURN_IF_ERROR(finishPending(f, emitter));
    FERRY_RETURN_IF_ERROR(flush(f, emitter, f.checkpointOffset()));
  }
  struct stat st {};
  const bool linked = ::fstat(f.fd.fd, &st) == 0 && st.st_nlink > 0;
  logInfo("input", instance_, ": no longer following ", f.path, " at offset ", f.offset,
          linked ? "" : " (deleted)");
  if (linked) remember(f);
  *closed = true;
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

  // Sizes are taken before the rotated files (first in order_) are read: with one
  // writer, a successor's lines read in this poll were written after every line of the
  // file it replaced, which the rotated file's own (later) size then covers.
  Status failure;
  done_.assign(order_.size(), 0);
  emit_refused_ = false;
  for (bool rotated : {false, true}) {
    for (size_t i = 0; i < order_.size(); ++i) {
      if (order_[i]->rotated != rotated) continue;
      Status st = snapshot(*order_[i], emitter);
      if (emit_refused_) return st;
      if (!st.isOk()) {
        if (failure.isOk()) failure = st;
        done_[i] = 2;
      }
    }
  }

  // Rounds over the files, each getting about kPumpBudget bytes per round, until every
  // file is at its snapshot size; rotated files finish before the others get a turn. Past
  // one interval no new round starts: the next collect follows at once (the runner does not
  // wait when a collect overran) and re-expands the patterns.
  const SteadyTime deadline = clock_.now() + settings_.poll_interval;
  bool again = true;
  while (again) {
    again = false;
    bool rotated_left = false;  // a rotated file needs another round: the others wait
    for (size_t i = 0; i < order_.size(); ++i) {
      if (done_[i] != 0) continue;
      FileState& f = *order_[i];
      if (!f.rotated && rotated_left) {
        again = true;
        continue;
      }
      if (emitter.stopping()) return cancelled("stopping");
      bool more = false;
      emit_refused_ = false;
      Status st = pump(f, emitter, &more);
      if (emit_refused_) return st;  // the core refused a batch: every file waits for the next poll
      if (!st.isOk()) {
        if (failure.isOk()) failure = st;
        done_[i] = 2;
        continue;
      }
      if (more) {
        again = true;
        rotated_left = rotated_left || f.rotated;
      } else {
        done_[i] = 1;
      }
    }
    if (again && clock_.now() >= deadline) break;
  }

  // Rotated files read to their end and quiet for rotate_wait are closed. One that still
  // exists under another name keeps its position in case it is matched again.
  for (size_t i = 0; i < order_.size(); ++i) {
    FileState& f = *order_[i];
    if (!f.rotated || done_[i] != 1) continue;
    bool closed = false;
    emit_refused_ = false;
    Status st = closeIfDone(f, emitter, &closed);
    if (emit_refused_) return st;
    if (closed) files_.erase(files_.find(f.key));
  }
  order_.clear();
  return failure;
}

const PluginDescriptor& tailInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "tail",
      .summary =
          "follows files matched by glob patterns (rotation-aware), one record per line "
          "or multiline record (json, text, logfmt, csv, influx, regex)",
      .options = kOptions,
      .make_input = &makeTailInput,
  };
  return kDescriptor;
}

}  // namespace ferry
