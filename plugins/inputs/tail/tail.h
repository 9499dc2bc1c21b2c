// The `tail` input: follows local files matched by glob patterns and emits one record per
// complete line (or per multiline record), with the file position committed atomically with
// the records. README.md in this directory is the user-facing description; this comment is
// the implementer's summary.
//
// Each collect() re-expands `paths` with glob(3) (new files are picked up, files matching an
// `exclude` pattern are ignored), opens the files it has not seen yet (fds stay open across
// polls in a map keyed by dev:inode), and reads every file from its position up to its last
// complete line. Records are emitted in batches of at most batch_max_records /
// batch_max_bytes with Emitter::emitWithCheckpoint; the checkpoint is
//     key   "file/<dev>:<inode>"
//     value "<offset> <fp_len> <fp> <path>"
// offset: the end of everything handed over (a pending multiline record is not: the offset
// stays at its first line); fp: FNV-1a 64 of the file's first fp_len bytes (fp_len =
// min(size, 1024)); path: the name it was last read under. After a crash the input resumes
// exactly there: a line is neither lost nor read twice. Lines consumed without a record
// (empty, refused by the format, dead-lettered) still move the offset: a batch may be empty
// and carry only a checkpoint.
//
// Rotation: a followed file whose name now belongs to another inode, or that no pattern
// matches any more (renamed away, excluded, deleted), is "rotated": it is kept open and read
// through its fd, before every other file of the poll, until it has been at its end for
// rotate_wait; then it is closed. The sizes of the other files are taken before the rotated
// ones are read, so with one writer no line of a successor is read before the last lines of
// its predecessor. At the first poll of a run, checkpoints whose file no pattern matches are
// looked up by inode in the directory of their recorded path (one readdir per directory), so
// a file renamed while the agent was down is finished too. Truncation (size below the
// position or below the fingerprinted head) and rewriting (the head's hash changed; checked
// when the file changed at the start of a poll, and after every read) restart the file at 0.
//
// Long lines: a line longer than max_line_bytes is skipped up to its newline (across reads
// and polls, keeping at most max_line_bytes + 1 bytes in memory); at its newline its head is
// read again and either emitted cut (on_long_line: cut) or dead-lettered (dead_letter).
//
// Drops are counted per batch through Emitter::countDropped when the batch is accepted (a
// refused batch is read again and counts then), and logged at most once a minute per reason.
//
// Threading: constructed on the control thread (by the factory); interval() and collect()
// are then called only from the input's own thread. No internal locking.
// Ownership: the input owns the file descriptors (closed on destruction); the clock is
// borrowed and must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/formats/line_format.h"
#include "ferry/clock.h"
#include "ferry/input.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

// The options of one instance after validation and defaulting.
struct TailSettings {
  enum class StartAt : uint8_t { kBeginning, kEnd };
  enum class OnLongLine : uint8_t { kCut, kDeadLetter };

  std::vector<std::string> paths;          // glob(3) patterns
  std::vector<std::string> exclude;        // fnmatch(3) patterns (basename when without '/')
  LineFormatSpec line_format;              // format, pattern, columns, delimiter, invalid_utf8
  StartAt start_at = StartAt::kBeginning;  // kEnd: only on the input's first run ever
  Duration poll_interval = std::chrono::milliseconds(250);
  Duration rotate_wait = std::chrono::seconds(5);
  uint64_t max_line_bytes = 1 << 20;
  OnLongLine on_long_line = OnLongLine::kDeadLetter;
  uint64_t batch_max_records = 1000;
  uint64_t batch_max_bytes = 256 << 10;
  // Multiline: enabled when start_pattern is not empty.
  std::string ml_start_pattern;
  uint64_t ml_max_lines = 500;
  Duration ml_timeout = std::chrono::seconds(1);

  // Reads `opts` (validated against the descriptor's table). Unset values take the
  // documented defaults. Errors name the key's location: no paths or an empty pattern, a
  // poll_interval below 10ms, limits of 0 or above 64MiB, a format setting the formats
  // library refuses, a start_pattern that does not compile, max_lines out of 1..100000.
  static Result<TailSettings> fromOptions(const Options& opts);
};

class TailInput final : public Input {
 public:
  // Builds the line parser and compiles start_pattern (errors name the option).
  static Result<std::unique_ptr<TailInput>> make(TailSettings settings, std::string instance,
                                                 const Clock& clock);
  ~TailInput() override;
  TailInput(const TailInput&) = delete;
  TailInput& operator=(const TailInput&) = delete;

  // A compiled multiline start_pattern (PCRE2, JIT); defined in tail.cpp.
  class StartPattern;

  Duration interval() const override { return settings_.poll_interval; }

  // Expands the patterns, reads every matched (and every rotated) file up to its last
  // complete line and emits the records. Returns the emitter's status when it refuses a
  // batch, kCancelled when the agent is stopping, kIoError when a file could not be read
  // (the other files are still read), OK otherwise.
  Status collect(Emitter& emitter) override;

 private:
  // `instance` is the input's name in the config (log lines).
  TailInput(TailSettings settings, std::string instance, const Clock& clock,
            std::unique_ptr<LineParser> parser, std::unique_ptr<StartPattern> start);

  // Closes on destruction; movable so FileState can live in a map.
  struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
    Fd& operator=(Fd&& o) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
  };

  struct FileState {
    Fd fd;
    std::string key;    // "file/<dev>:<inode>"
    std::string path;   // the path it was last matched (or found) under
    std::string extra;  // "path":"<matched path>", added to records of text-like formats
    // Read position: after the last line consumed (into a record, the pending multiline
    // record, a drop or a dead letter).
    uint64_t offset = 0;
    uint64_t committed = 0;  // the offset last passed to an accepted emitWithCheckpoint
    // Where reading restarts when a batch is refused: the last accepted checkpoint, or the
    // starting position when none was accepted in this run.
    uint64_t base = 0;
    // When > offset: the line starting at `offset` is too long and [offset, skip_to) holds
    // no newline; reading resumes at skip_to.
    uint64_t skip_to = 0;
    // 1 + the offset of the last line dead-lettered (not again when its batch is refused).
    uint64_t dead_done = 0;
    uint64_t seen_poll = 0;  // the last poll whose patterns matched this file
    // Fingerprint: FNV-1a 64 of the file's bytes [0, fp_len); fp_len grows up to
    // kFingerprintBytes as the file does, and restarts at 0 on truncation.
    uint64_t fp_len = 0;
    uint64_t fp = 0;  // set to the FNV offset basis (the hash of nothing) when opened
    // This poll's view of the file (snapshot()): its size and change time; reading stops
    // at `limit`.
    uint64_t limit = 0;
    int64_t change_ns = -1;  // st_size and st_mtim as last checked against the head
    uint64_t change_size = 0;
    // Rotated: renamed, replaced under its name, unmatched or deleted. Read first, closed
    // once at its end for rotate_wait (`quiet_since` is when it was last seen growing).
    bool rotated = false;
    SteadyTime quiet_since{};
    // The pending multiline record: its first line's offset, lines so far, text (lines
    // joined with '\n') and when a line was last added.
    uint64_t ml_start = 0;
    uint64_t ml_lines = 0;
    std::string ml_text;
    SteadyTime ml_last{};

    uint64_t checkpointOffset() const { return ml_lines > 0 ? ml_start : offset; }
  };

  // A checkpoint read back from the store (or kept for a file closed in this run).
  struct Restored {
    uint64_t offset = 0;
    bool has_fp = false;  // false: old format "<offset> <path>", no fingerprint
    uint64_t fp_len = 0;
    uint64_t fp = 0;
    std::string path;  // the recorded path (finding renamed files at startup)
    uint64_t seq = 0;  // insertion order: the oldest is forgotten first
  };

  // Drops of one reason: counted when the batch is accepted, logged once a minute.
  struct DropReason {
    std::string reason;
    uint64_t pending = 0;  // in the batch being built
    uint64_t since_log = 0;
    SteadyTime last_log{};
    bool logged = false;
  };

  // How a file is being opened (discover()).
  enum class Found : uint8_t { kGlob, kRenamed };

  void loadCheckpoints(const Emitter& emitter);
  // Globs the patterns, opens / re-matches files, marks rotated ones; fills order_ with the
  // rotated files first.
  void discover(bool first_poll);
  // Opens `path` (stat `st`) as a new FileState, applying its restored checkpoint. kRenamed:
  // found by inode at startup; only opened when the checkpoint's fingerprint matches.
  FileState* open(const char* path, bool first_poll, Found how);
  // Startup: restored checkpoints no pattern matched are looked for by inode in the
  // directory of their path; those not found there are forgotten.
  void findRenamed(bool first_poll);
  bool excluded(const char* path) const;
  void remember(const FileState& f);
  // Stats `f`, handles truncation and rewriting (a pending multiline record read before is
  // emitted first), sets f.limit.
  Status snapshot(FileState& f, Emitter& emitter);
  // Checks the head [0, fp_len) still hashes to fp and extends it to min(size, 1024).
  // *same is false when it changed (the file was truncated and rewritten).
  Status checkHead(FileState& f, uint64_t size, bool extend, bool* same);
  // Reads `f` from its position for at most about kPumpBudget bytes, emitting batches.
  // *more is set when the budget, not the limit, stopped the read.
  Status pump(FileState& f, Emitter& emitter, bool* more);
  // One complete line (without its '\n') starting at file offset `at`; `cut`: the head of
  // a longer line.
  Status handleLine(FileState& f, Emitter& emitter, const char* line, size_t len, uint64_t at,
                    bool cut);
  // Turns one record's text into a record of the format (or a drop); `at` is the offset
  // of its first line. At least kLinePadding readable bytes must follow the text.
  Status produce(FileState& f, Emitter& emitter, const char* text, size_t len, uint64_t at,
                 bool cut);
  // Emits the pending multiline record.
  Status finishPending(FileState& f, Emitter& emitter);
  // A too-long line [at, at + len) just ended: cut or dead-letter it.
  Status longLine(FileState& f, Emitter& emitter, uint64_t at, uint64_t len);
  // Makes room for a record of about `bytes` (emitting the batch first when it is full);
  // the batch's checkpoint is `at` (everything before it handed over).
  Status roomFor(FileState& f, Emitter& emitter, size_t bytes, uint64_t at);
  // Emits batch_ with the checkpoint `at`; on success moves f.committed / base and counts
  // the batch's drops. A refused batch rewinds f to f.base.
  Status flush(FileState& f, Emitter& emitter, uint64_t at);
  void rewind(FileState& f);
  void drop(FileState& f, std::string_view reason, uint64_t at);
  void growBuffer();
  // Closes a rotated file (emitting a pending record first) when it is done.
  Status closeIfDone(FileState& f, Emitter& emitter, bool* closed);

  const TailSettings settings_;
  const std::string instance_;
  const Clock& clock_;
  std::unique_ptr<LineParser> parser_;
  std::unique_ptr<StartPattern> start_;  // multiline start_pattern; null: one line, one record

  std::map<std::string, FileState, std::less<>> files_;  // by key (dev:inode)
  std::vector<FileState*> order_;                        // this poll's files
  std::vector<FileState*> matched_;                      // this poll's matched files, in glob order
  std::vector<char> done_;  // per order_ entry: 1 read to its limit, 2 failed this poll
  std::map<std::string, Restored, std::less<>> restored_;  // checkpoints not yet applied
  uint64_t restored_seq_ = 0;
  std::set<std::string, std::less<>> open_failed_;  // paths whose failure was logged
  bool loaded_ = false;
  bool had_checkpoints_ = false;  // the store held checkpoints of this input at the start
  bool emit_refused_ = false;     // the last flush() was refused by the emitter
  uint64_t poll_ = 0;

  std::unique_ptr<char[]> buf_;  // buf_cap_ bytes + kLinePadding
  size_t buf_cap_ = 0;
  RecordBatch batch_;
  RecordBatch dead_;               // one dead-lettered line
  std::string key_;                // the key being looked up in discover()
  SourceCheckpoint cp_;            // reused for every batch
  std::vector<DropReason> drops_;  // by reason, in first-seen order
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& tailInputDescriptor();

}  // namespace ferry
