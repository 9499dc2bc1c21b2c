// The `exec` input: runs a command every interval and turns each line of its standard
// output into a record.
//
// Running: the command is an argv list (no shell). argv[0] is resolved once, by the factory,
// to an absolute path (a bare name is looked up in the agent's PATH). Each collect() starts
// the command with posix_spawn(3) in a process group of its own, with stdin on /dev/null,
// stdout and stderr on pipes, every other descriptor closed, default signal dispositions, an
// empty signal mask, the agent's environment plus `env` (which overrides), and `working_dir`
// as its directory when set. Both pipes and the child (a pidfd; on kernels without pidfd_open
// a 10 ms waitpid poll) are watched with poll(2) until the child has exited, the timeout has
// passed or the agent is stopping. On timeout (and on stop) the process group gets SIGTERM,
// and SIGKILL when the child is still there 1 s later; collect() therefore returns at the
// latest about timeout + 1 s after it started.
//
// Output: stdout is read into one buffer of at most max_output_bytes; when the output
// reaches the limit the pipe is closed (the command gets EPIPE/SIGPIPE on its next write),
// the run is reported and nothing more is read. Stderr is read as it comes; each line is
// logged at warn level (at most 20 lines a minute per input, the rest counted and reported).
//
// Records (`format` and its keys as every line-format user, agent/formats/line_format.h and
// docs/formats.md; default json): every complete line of a run becomes a record, also
// when the run failed, timed out or was cut; a last line without its '\n' counts as complete
// only when the command exited by itself (any exit status) and the output was not cut. Empty
// lines are skipped. A line the format refuses is dropped and counted with its reason
// (bad_json, invalid_utf8, ...) through Emitter::countDropped (logged once a minute, with the
// line number). All records of a run go to the emitter in one batch (one emit()).
//
// Failures are not fatal: a spawn failure, a non-zero exit status, death by a signal, a
// timeout and a cut output are logged (warn, at most 5 a minute per input) and counted in
// ferry_input_errors_total{input,reason} with reason spawn_failed | exit_status | signal |
// timeout | output_too_large; collect() still returns OK so the core does not count the run
// a second time.
//
// Back-pressure: when the emitter refuses a run's batch (kResourceExhausted), the batch is
// kept; the next collect() offers it again first and only runs the command once it was
// accepted, so a full buffer stops the command from running.
//
// Threading: constructed on the control thread (by the factory); interval() and collect()
// are then called only from the input's own thread. No internal locking.
// Ownership: every descriptor and child of a run is closed/reaped before collect() returns;
// the clock (used for log rate limits only; timeouts use the steady clock, since they wait
// on a real process) and the metrics registry are borrowed and must outlive the input.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/formats/line_format.h"
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
struct ExecSettings {

  std::vector<std::string> command;  // argv; command[0] resolved to an absolute path
  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(10);
  LineFormatSpec format;  // json by default (docs/formats.md)
  uint64_t max_output_bytes = 4 << 20;
  std::vector<std::pair<std::string, std::string>> env;  // extra environment, in order
  std::string working_dir;                               // empty: the agent's

  // Reads `opts` (validated against the descriptor's table). Errors name the key's
  // location: an empty command, argv[0] relative or not found / not executable, an
  // interval of 0, a timeout of 0 or above interval, max_output_bytes of 0 or above 64MiB,
  // an env name that is empty or holds '=', a working_dir that is not a directory.
  static Result<ExecSettings> fromOptions(const Options& opts);
};

class ExecInput final : public Input {
 public:
  // `instance` is the input's name in the config (logs, metric labels). `metrics` may be
  // null (no counters then).
  ExecInput(ExecSettings settings, std::string instance, const Clock& clock,
            MetricsRegistry* metrics);
  ~ExecInput() override;
  ExecInput(const ExecInput&) = delete;
  ExecInput& operator=(const ExecInput&) = delete;

  Duration interval() const override { return settings_.interval; }

  // Runs the command once and emits its records (see above). Blocks at most about
  // timeout + 1 s. Returns the emitter's status when it refuses the batch, kCancelled when
  // the agent is stopping, OK otherwise (command failures are logged and counted).
  Status collect(Emitter& emitter) override;

 private:
  enum class Failure : uint8_t { kSpawn, kExit, kSignal, kTimeout, kTooLarge, kCount };

  // Rate limit for one kind of log line: at most `limit` lines a minute.
  struct LogWindow {
    int limit = 1;
    SteadyTime start{};
    bool started = false;
    int used = 0;
    uint64_t suppressed = 0;
  };
  // True when a line may be logged now; *suppressed gets the lines held back since the
  // last one that was logged.
  bool allow(LogWindow& w, uint64_t* suppressed);

  struct RunResult {
    bool spawned = false;
    bool exited = false;  // exited by itself (not killed by us)
    int wait_status = 0;
    bool timed_out = false;
    bool cut = false;  // stdout reached max_output_bytes
    bool cancelled = false;
  };

  // Spawns the command and reads its output into out_ until exit / timeout / stop.
  RunResult run(Emitter& emitter);
  void appendStderr(const char* data, size_t n);
  void flushStderr();  // logs what is left of stderr (a partial or over-long line)
  void logStderrLine(std::string_view line);
  void reportFailure(Failure f, const std::string& detail);
  // Turns out_ into records in batch_.
  void buildRecords(bool last_line_complete);
  void handleLine(const char* line, size_t len, uint64_t number);

  const ExecSettings settings_;
  const std::string instance_;
  const Clock& clock_;

  std::vector<char*> argv_;  // points into settings_.command, null-terminated

  std::unique_ptr<char[]> out_;  // out_cap_ bytes + kLinePadding
  size_t out_cap_ = 0;
  size_t out_len_ = 0;
  std::string err_;  // stderr bytes not yet logged (a partial line)
  RecordBatch batch_;
  bool pending_ = false;  // batch_ was refused by the emitter and is offered again
  std::optional<LineParser> parser_;
  LineDropTally drops_;  // refused lines of this run, by reason, counted once per run

  Counter* failures_[static_cast<int>(Failure::kCount)] = {};
  LogWindow stderr_log_{.limit = 20};
  LogWindow failure_log_{.limit = 5};
  LogWindow refused_log_{.limit = 1};
  uint64_t refused_since_log_ = 0;
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& execInputDescriptor();

}  // namespace ferry
