// Starts a real program (the ferry binary) as a user would, for integration tests.
// stdout and stderr go to files the test can read while the process runs.
// Thread-safety: one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ferry::test {

class Process {
 public:
  // Starts `argv` with stdout/stderr redirected to `out_dir`/<name>.stdout|.stderr.
  // `stdout_fd` >= 0: the child's stdout goes there instead (e.g. a pipe nobody reads).
  Process(std::vector<std::string> argv, const std::string& out_dir, const std::string& name = "proc",
          int stdout_fd = -1);
  ~Process();  // SIGKILLs a process still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();

  std::string stdoutText() const;
  std::string stderrText() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// Runs `argv` to completion; returns exit code and stdout (stderr appended after "\n--stderr--\n").
struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};
RunResult runCommand(std::vector<std::string> argv, const std::string& tmp_dir,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Polls `pred` every 20 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

}  // namespace ferry::test
