// The `tail` input: follows local files matched by glob patterns and emits one record per
// complete line, with the file position committed atomically with the records.
//
// Each collect() re-expands `paths` with glob(3) (new files are picked up), opens the files
// it has not seen yet (fds stay open across polls in a map keyed by dev:inode), and reads
// every file from its position up to its last complete line (files take turns of about
// 1 MiB, until all are at their end or one interval has passed). Records are emitted in
// batches of at most batch_max_records / batch_max_bytes with Emitter::emitWithCheckpoint;
// the checkpoint is
//     key   "file/<dev>:<inode>"
//     value "<offset> <fp_len> <fp> <path>"
// offset: after the last line the batch consumed; fp: FNV-1a 64 of the file's first fp_len
// bytes as 16 lowercase hex digits (fp_len = min(size, 1024), see "Fingerprints" below);
// path: the name it was read under (informational, may contain spaces). So after a crash
// the input resumes exactly after the last committed line: a line is neither lost nor read
// twice. Lines that are consumed without producing a record (empty,
// invalid JSON, too long) still move the offset; a batch may therefore be empty and carry
// only a checkpoint. A partial last line (no '\n' yet) is never emitted: it waits.
//
// Formats:
//  - json: every line must hold one JSON object (validated with simdjson's DOM parser); the
//    record is the line with surrounding whitespace (and the '\r' of CRLF) trimmed. Invalid
//    lines are dropped: ferry_dropped_records_total{reason="invalid_json"}.
//  - text: every line becomes {"message":"<line>","path":"<path>"}, JSON-escaped, invalid
//    UTF-8 replaced with U+FFFD.
// Lines longer than max_line_bytes are skipped up to their newline (even across reads and
// polls) and counted with reason "line_too_long". Drops are logged at most once a minute
// per reason, naming the file and the line's offset.
//
// Positions: on the first collect() of a run the committed checkpoints ("file/" keys) are
// loaded; a file opened in this run whose dev:inode has one resumes there, if the
// fingerprint matches. A file without a (matching) checkpoint starts at its beginning, or
// at its end when start_at is `end` and the file was already there at the first collect
// (files that appear later are new: read in full).
// A file whose size drops below its position was truncated: it is read again from 0.
//
// Fingerprints: checkpoints are never deleted, and ext4 & co. hand the inode number of a
// deleted file to the next new file, so a dev:inode alone does not name one file over
// time. A checkpoint is therefore only trusted when the FNV-1a 64 hash of the first fp_len
// bytes of the file now at that dev:inode equals the stored fp (a log file only grows at
// its end, so its head does not change). Otherwise (hash differs, or the file is shorter
// than fp_len) the checkpoint belonged to a deleted file: this is logged (info) and the
// file is treated as a new one (start_at applies). A file's fingerprint starts over what
// it holds when first opened (fp_len < 1024 for a short file, 0 for an empty one, which
// matches anything) and is extended as the file grows, until it covers 1024 bytes; a
// truncation starts it over. Old values "<offset> <path>" (before fingerprints) are still
// read, as checkpoints without a fingerprint: trusted unless the file is now shorter than
// the offset, as before; the next checkpoint of the file is written in the new format.
// Files no longer matched by any pattern (deleted, renamed away) are read to their end
// once more and then closed. (Rotation detection and multiline come later.)
//
// Back-pressure: when the emitter refuses a batch (kResourceExhausted, kCancelled) the
// file's position does not move; the same lines are read again on the next collect, and
// collect() returns the emitter's status at once.
//
// Hot path: one reused read buffer (256 KiB, grown up to max_line_bytes + 1 when a line
// needs it), one reused RecordBatch, one reused simdjson parser, pread(2) at explicit
// offsets. In json mode a line costs no heap allocation once the batch and the parser have
// reached their working size.
//
// Threading: constructed on the control thread (by the factory); interval() and collect()
// are then called only from the input's own thread. No internal locking.
// Ownership: the input owns the file descriptors (closed on destruction); the clock and
// the metrics registry are borrowed and must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/input.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace simdjson::dom {
class parser;
}  // namespace simdjson::dom

namespace ferry {

// The options of one instance after validation and defaulting.
struct TailSettings {
  enum class Format : uint8_t { kJson, kText };
  enum class StartAt : uint8_t { kBeginning, kEnd };

  std::vector<std::string> paths;  // glob(3) patterns
  Format format = Format::kJson;
  StartAt start_at = StartAt::kBeginning;
  Duration poll_interval = std::chrono::milliseconds(250);
  uint64_t max_line_bytes = 1 << 20;
  uint64_t batch_max_records = 1000;
  uint64_t batch_max_bytes = 256 << 10;

  // Reads `opts` (validated against the descriptor's table). Unset values take the
  // documented defaults. Errors name the key's location: no paths or an empty pattern, a
  // poll_interval below 10ms, limits of 0 or above 64MiB.
  static Result<TailSettings> fromOptions(const Options& opts);
};

class TailInput final : public Input {
 public:
  // `instance` is the input's name in the config (log lines). `metrics` may be null (no
  // drop counters then).
  TailInput(TailSettings settings, std::string instance, const Clock& clock,
            MetricsRegistry* metrics);
  ~TailInput() override;
  TailInput(const TailInput&) = delete;
  TailInput& operator=(const TailInput&) = delete;

  Duration interval() const override { return settings_.poll_interval; }

  // Expands the patterns, reads every matched file up to its last complete line and emits
  // the lines. Returns the emitter's status when it refuses a batch, kCancelled when the
  // agent is stopping, kIoError when a file could not be read (the other files are still
  // read), OK otherwise.
  Status collect(Emitter& emitter) override;

 private:
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
    std::string key;         // "file/<dev>:<inode>"
    std::string path;        // the path it was last matched under
    std::string path_json;   // `path` as a JSON string literal (text format)
    uint64_t offset = 0;     // after the last line handed over (accepted) or dropped
    uint64_t committed = 0;  // the offset last passed to an accepted emitWithCheckpoint
    // When > offset: the line starting at `offset` is too long (already counted) and
    // [offset, skip_to) holds no newline; reading resumes at skip_to.
    uint64_t skip_to = 0;
    // Drops at offsets below this were already counted (a refused batch is re-read).
    uint64_t counted_to = 0;
    uint64_t seen_poll = 0;  // the last poll whose patterns matched this file
    // Fingerprint: FNV-1a 64 of the file's bytes [0, fp_len); fp_len grows up to
    // kFingerprintBytes as the file does (pump()), and restarts at 0 on truncation.
    uint64_t fp_len = 0;
    uint64_t fp = 0;  // set to the FNV offset basis (the hash of nothing) when opened
  };

  // A checkpoint read back from the store (or kept for a file closed in this run).
  struct Restored {
    uint64_t offset = 0;
    bool has_fp = false;  // false: old format "<offset> <path>", no fingerprint
    uint64_t fp_len = 0;
    uint64_t fp = 0;
  };

  // Drop accounting for one reason: counter plus a once-a-minute log line.
  struct DropReason {
    std::string_view reason;
    Counter* counter = nullptr;
    uint64_t since_log = 0;
    SteadyTime last_log{};
    bool logged = false;
  };

  void loadCheckpoints(const Emitter& emitter);
  // Extends f's fingerprint over [f.fp_len, min(size, kFingerprintBytes)).
  Status extendFingerprint(FileState& f, uint64_t size);
  // Globs the patterns and opens / re-matches files; fills order_.
  void discover(bool first_poll);
  // Reads `f` from its position for at most about kPumpBudget bytes, emitting batches.
  // *more is set when the budget, not the end of the file, stopped the read.
  Status pump(FileState& f, Emitter& emitter, bool* more);
  // One complete line (without its '\n'); `consumed` is the file offset where it starts,
  // i.e. the end of everything consumed before it.
  Status handleLine(FileState& f, Emitter& emitter, const char* line, size_t len,
                    uint64_t consumed);
  // Appends a record, first emitting the batch when the record would not fit.
  Status addRecord(FileState& f, Emitter& emitter, std::string_view record, uint64_t consumed);
  // Emits batch_ with the checkpoint `consumed`; on success moves f.offset and clears it.
  Status flush(FileState& f, Emitter& emitter, uint64_t consumed);
  void drop(FileState& f, DropReason& why, uint64_t line_off, std::string_view what);
  void growBuffer();

  const TailSettings settings_;
  const std::string instance_;
  const Clock& clock_;

  std::map<std::string, FileState, std::less<>> files_;  // by key (dev:inode)
  std::vector<FileState*> order_;                        // this poll's files, glob order
  std::vector<char> done_;  // per order_ entry: 1 read to its end, 2 failed this poll
  std::map<std::string, Restored, std::less<>> restored_;  // checkpoints not yet applied
  std::set<std::string, std::less<>> open_failed_;         // paths whose failure was logged
  bool loaded_ = false;
  bool emit_refused_ = false;  // the last flush() was refused by the emitter
  uint64_t poll_ = 0;

  std::unique_ptr<char[]> buf_;  // buf_cap_ bytes + simdjson::SIMDJSON_PADDING
  size_t buf_cap_ = 0;
  RecordBatch batch_;
  std::string scratch_;                            // the text record being built
  std::string key_;                                // the key being looked up in discover()
  SourceCheckpoint cp_;                            // reused for every batch
  std::unique_ptr<simdjson::dom::parser> parser_;  // json format only

  DropReason invalid_json_{.reason = "invalid_json"};
  DropReason too_long_{.reason = "line_too_long"};
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& tailInputDescriptor();

}  // namespace ferry
