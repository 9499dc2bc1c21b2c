#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

#include "tests/support/temp_dir.h"

namespace ferry::test {

Process::Process(std::vector<std::string> argv, const std::string& out_dir, const std::string& name,
                 int stdout_fd)
    : stdout_path_(out_dir + "/" + name + ".stdout"), stderr_path_(out_dir + "/" + name + ".stderr") {
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int out = ::open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) throw std::runtime_error("cannot create output files in " + out_dir);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(stdout_fd >= 0 ? stdout_fd : out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    // The test runner's own signal handlers (doctest reports crashes) must not run in the
    // child if a signal arrives before execv; then the child starts with a clean mask.
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGPIPE}) {
      ::signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(err);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(5));
  }
}

void Process::signal(int sig) const { ::kill(pid_, sig); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Process::running() { return pid_ > 0 && !wait(std::chrono::milliseconds(0)).has_value(); }

std::string Process::stdoutText() const { return readFile(stdout_path_); }
std::string Process::stderrText() const { return readFile(stderr_path_); }

RunResult runCommand(std::vector<std::string> argv, const std::string& tmp_dir, std::chrono::milliseconds timeout) {
  Process p(std::move(argv), tmp_dir, "cmd");
  RunResult r;
  auto code = p.wait(timeout);
  r.code = code ? *code : -1;
  r.out = p.stdoutText();
  r.err = p.stderrText();
  return r;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace ferry::test
