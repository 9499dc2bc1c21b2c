#include "plugins/inputs/exec/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "ferry/json.h"
#include "ferry/log.h"

extern char** environ;  // NOLINT: POSIX

namespace ferry {
namespace {


constexpr uint64_t kMaxOutputLimit = 64 << 20;
constexpr size_t kFirstOutputChunk = 64 << 10;
constexpr size_t kMaxStderrLine = 4096;  // a longer stderr line is logged in pieces
constexpr auto kKillGrace = std::chrono::seconds(1);
constexpr auto kPollSlice = std::chrono::milliseconds(100);  // how often stop is checked
constexpr auto kNoPidfdSlice = std::chrono::milliseconds(10);
constexpr Duration kLogWindow = std::chrono::minutes(1);

constexpr std::string_view kFailureReasons[] = {"spawn_failed", "exit_status", "signal",
                                                "timeout", "output_too_large"};

constexpr OptionSpec kOwnOptions[] = {
    {.key = "command",
     .type = OptionType::kStringList,
     .help = "argv of the command (no shell); the first item is an absolute path or a name "
             "found in PATH",
     .required = true},
    {.key = "interval",
     .type = OptionType::kDuration,
     .default_value = "10s",
     .help = "time between two runs"},
    {.key = "timeout",
     .type = OptionType::kDuration,
     .help = "a run still going after this is killed (SIGTERM, SIGKILL 1s later); default "
             "and maximum: interval"},
    {.key = "max_output_bytes",
     .type = OptionType::kSize,
     .default_value = "4MiB",
     .help = "stdout of one run beyond this is not read (the run is reported); at most 64MiB"},
    {.key = "env",
     .type = OptionType::kStringMap,
     .help = "extra environment variables for the command (override the agent's)"},
    {.key = "working_dir",
     .type = OptionType::kString,
     .help = "directory the command runs in; default: the agent's"},
};
// format, pattern, columns, delimiter, invalid_utf8: as every line-format user (docs/formats.md).
constexpr auto kOptions = withLineFormatOptions(kOwnOptions);

bool isExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// A descriptor that becomes readable when `pid` exits, or -1 (kernels before 5.3). Called
// through syscall(2): glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.
int openPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

// Closes on destruction.
struct UniqueFd {
  int fd = -1;
  UniqueFd() = default;
  explicit UniqueFd(int f) : fd(f) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// Moves a descriptor that landed on 0..2 (an agent started with them closed) above 2, so
// the child's dup2 onto 0..2 never meets an fd equal to its target.
int liftFd(int fd) {
  if (fd < 0 || fd > 2) return fd;
  const int up = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return up;
}

Status makePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return errnoStatus("pipe2", errno);
  read_end->fd = liftFd(p[0]);
  write_end->fd = liftFd(p[1]);
  if (read_end->fd < 0 || write_end->fd < 0) return errnoStatus("fcntl", errno);
  // Only our end is non-blocking: the child's end is its own open file description.
  if (::fcntl(read_end->fd, F_SETFL, O_NONBLOCK) != 0) return errnoStatus("fcntl", errno);
  return Status::ok();
}

Result<std::unique_ptr<Input>> makeExecInput(const PluginContext& ctx, const Options& opts) {
  Result<ExecSettings> settings = ExecSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  const Clock& clock = ctx.clock != nullptr ? *ctx.clock : systemClock();
  return std::unique_ptr<Input>(
      std::make_unique<ExecInput>(std::move(settings).value(), ctx.name, clock, ctx.metrics));
}

}  // namespace

Result<ExecSettings> ExecSettings::fromOptions(const Options& opts) {
  ExecSettings s;
  s.command = opts.getStringList("command");
  if (s.command.empty() || s.command[0].empty()) {
    return invalidArgument(opts.locate("command") + ": the command (argv[0]) is missing");
  }
  std::string& prog = s.command[0];
  if (prog.find('/') != std::string::npos) {
    if (prog[0] != '/') {
      return invalidArgument(opts.locate("command", 0) + ": \"" + prog +
                             "\" must be an absolute path or a name found in PATH");
    }
    if (!isExecutableFile(prog)) {
      return invalidArgument(opts.locate("command", 0) + ": \"" + prog +
                             "\" is not an executable file");
    }
  } else {
    const char* path_env = std::getenv("PATH");
    const std::string_view path = path_env != nullptr ? path_env : "/usr/bin:/bin";
    std::string found;
    size_t pos = 0;
    while (pos <= path.size() && found.empty()) {
      const size_t end = std::min(path.find(':', pos), path.size());
      const std::string_view dir = path.substr(pos, end - pos);
      pos = end + 1;
      if (dir.empty() || dir[0] != '/') continue;  // relative PATH entries are not trusted
      std::string candidate = std::string(dir) + "/" + prog;
      if (isExecutableFile(candidate)) found = std::move(candidate);
    }
    if (found.empty()) {
      return invalidArgument(opts.locate("command", 0) + ": \"" + prog +
                             "\" was not found in PATH (" + std::string(path) + ")");
    }
    prog = std::move(found);
  }

  if (opts.has("interval")) s.interval = opts.getDuration("interval");
  if (s.interval <= Duration::zero()) {
    return invalidArgument(opts.locate("interval") + ": must be greater than 0");
  }
  s.timeout = opts.has("timeout") ? opts.getDuration("timeout") : s.interval;
  if (s.timeout <= Duration::zero() || s.timeout > s.interval) {
    return invalidArgument(opts.locate("timeout") + ": must be greater than 0 and at most " +
                           "interval (" + formatDuration(s.interval) + ")");
  }
  Result<LineFormatSpec> format = lineFormatSpecFromOptions(opts);
  if (!format.isOk()) return format.status();
  s.format = std::move(format).value();
  if (opts.has("max_output_bytes")) s.max_output_bytes = opts.getSize("max_output_bytes");
  if (s.max_output_bytes == 0 || s.max_output_bytes > kMaxOutputLimit) {
    return invalidArgument(opts.locate("max_output_bytes") +
                           ": must be between 1 byte and 64MiB");
  }
  if (opts.has("env")) s.env = opts.getStringMap("env");
  for (const auto& [name, value] : s.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return invalidArgument(opts.locate("env") + ": \"" + name +
                             "\" is not a valid environment variable name");
    }
  }
  if (opts.has("working_dir")) s.working_dir = opts.getString("working_dir");
  if (!s.working_dir.empty()) {
    struct stat st {};
    if (::stat(s.working_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return invalidArgument(opts.locate("working_dir") + ": \"" + s.working_dir +
                             "\" is not a directory");
    }
  }
  return s;
}

ExecInput::ExecInput(ExecSettings settings, std::string instance, const Clock& clock,
                     MetricsRegistry* metrics)
    : settings_(std::move(settings)), instance_(std::move(instance)), clock_(clock) {
  for (const std::string& a : settings_.command) argv_.push_back(const_cast<char*>(a.c_str()));
  argv_.push_back(nullptr);
  out_cap_ = std::min<size_t>(kFirstOutputChunk, settings_.max_output_bytes);
  out_ = std::make_unique<char[]>(out_cap_ + kLinePadding);
  // The spec was checked by fromOptions (the regex compiled there); make() cannot fail then.
  Result<LineParser> parser = LineParser::make(settings_.format);
  if (parser.isOk()) parser_.emplace(std::move(parser).value());
  if (metrics != nullptr) {
    for (int i = 0; i < static_cast<int>(Failure::kCount); ++i) {
      failures_[i] = &metrics->counter(
          "ferry_input_errors_total",
          {{"input", instance_}, {"reason", std::string(kFailureReasons[i])}},
          "failed collections or service starts");
    }
  }
}

ExecInput::~ExecInput() = default;

bool ExecInput::allow(LogWindow& w, uint64_t* suppressed) {
  const SteadyTime now = clock_.now();
  if (!w.started || now - w.start >= kLogWindow) {
    w.started = true;
    w.start = now;
    w.used = 0;
  }
  if (w.used >= w.limit) {
    ++w.suppressed;
    return false;
  }
  ++w.used;
  *suppressed = w.suppressed;
  w.suppressed = 0;
  return true;
}

void ExecInput::reportFailure(Failure f, const std::string& detail) {
  Counter* c = failures_[static_cast<int>(f)];
  if (c != nullptr) c->add();
  uint64_t suppressed = 0;
  if (!allow(failure_log_, &suppressed)) return;
  logWarn("input", instance_, ": command ", settings_.command[0], " ", detail,
          suppressed > 0 ? strCat(" (", suppressed, " earlier failures not logged)") : "");
}

void ExecInput::logStderrLine(std::string_view line) {
  uint64_t suppressed = 0;
  if (!allow(stderr_log_, &suppressed)) return;
  logWarn("input", instance_, ": stderr: ", line,
          suppressed > 0 ? strCat(" (", suppressed, " stderr lines not logged)") : "");
}

void ExecInput::appendStderr(const char* data, size_t n) {
  err_.append(data, n);
  size_t start = 0;
  for (size_t nl; (nl = err_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(err_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) logStderrLine(line);
  }
  err_.erase(0, start);
  if (err_.size() >= kMaxStderrLine) flushStderr();
}

void ExecInput::flushStderr() {
  if (!err_.empty()) logStderrLine(err_);
  err_.clear();
}

ExecInput::RunResult ExecInput::run(Emitter& emitter) {
  RunResult r;
  UniqueFd out_r, out_w, err_r, err_w;
  Status st = makePipe(&out_r, &out_w);
  if (st.isOk()) st = makePipe(&err_r, &err_w);
  UniqueFd devnull(liftFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (st.isOk() && devnull.fd < 0) st = errnoStatus("open /dev/null", errno);
  if (!st.isOk()) {
    reportFailure(Failure::kSpawn, "could not be started: " + st.toString());
    return r;
  }

  // The environment: the agent's, minus the names `env` sets, plus `env`.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const std::string_view name = kv.substr(0, kv.find('='));
    const bool overridden = std::any_of(settings_.env.begin(), settings_.env.end(),
                                        [&](const auto& p) { return p.first == name; });
    if (!overridden) env_strings.emplace_back(kv);
  }
  for (const auto& [name, value] : settings_.env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, devnull.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (!settings_.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&fa, settings_.working_dir.c_str());
  }
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc =
      ::posix_spawn(&pid, settings_.command[0].c_str(), &fa, &attr, argv_.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  out_w.reset();
  err_w.reset();
  devnull.reset();
  if (rc != 0) {
    reportFailure(Failure::kSpawn, strCat("could not be started: ", std::strerror(rc)));
    return r;
  }
  r.spawned = true;

  UniqueFd pidfd(openPidfd(pid));  // -1 on kernels before 5.3: waitpid polling
  int status = 0;
  bool reaped = false;
  auto tryReap = [&](bool block) {
    if (reaped) return true;
    pid_t w;
    do {
      w = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    } while (w < 0 && errno == EINTR);
    reaped = w == pid || (w < 0 && errno == ECHILD);
    return reaped;
  };

  // Reads what the pipes hold now (until EAGAIN or EOF).
  auto readOut = [&] {
    while (out_r.fd >= 0) {
      if (out_len_ >= settings_.max_output_bytes) {
        char probe;  // one byte beyond the limit tells "cut" from "ended exactly there"
        const ssize_t n = ::read(out_r.fd, &probe, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n > 0) r.cut = true;
        out_r.reset();
        return;
      }
      if (out_len_ == out_cap_) {
        const size_t cap = std::min<size_t>(out_cap_ * 2, settings_.max_output_bytes);
        auto bigger = std::make_unique<char[]>(cap + kLinePadding);
        std::memcpy(bigger.get(), out_.get(), out_len_);
        out_ = std::move(bigger);
        out_cap_ = cap;
      }
      const ssize_t n = ::read(out_r.fd, out_.get() + out_len_, out_cap_ - out_len_);
      if (n > 0) {
        out_len_ += static_cast<size_t>(n);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        out_r.reset();
      } else if (errno == EAGAIN) {
        return;
      }
    }
  };
  auto readErr = [&] {
    char buf[4096];
    while (err_r.fd >= 0) {
      const ssize_t n = ::read(err_r.fd, buf, sizeof buf);
      if (n > 0) {
        appendStderr(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        err_r.reset();
      } else if (errno == EAGAIN) {
        return;
      }
    }
  };

  using SteadyClock = std::chrono::steady_clock;
  const auto deadline = SteadyClock::now() + settings_.timeout;
  while (!reaped) {
    const auto now = SteadyClock::now();
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    if (emitter.stopping()) {
      r.cancelled = true;
      break;
    }
    const auto slice = pidfd.fd >= 0 ? kPollSlice : kNoPidfdSlice;
    const auto wait = std::min<Duration>(deadline - now, slice);
    pollfd fds[3];
    nfds_t n = 0;
    int out_i = -1, err_i = -1, pid_i = -1;
    if (out_r.fd >= 0) fds[out_i = static_cast<int>(n++)] = {out_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) fds[err_i = static_cast<int>(n++)] = {err_r.fd, POLLIN, 0};
    if (pidfd.fd >= 0) fds[pid_i = static_cast<int>(n++)] = {pidfd.fd, POLLIN, 0};
    const int wait_ms = static_cast<int>(
        std::max<int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    if (::poll(fds, n, wait_ms) < 0 && errno != EINTR) {
      reportFailure(Failure::kSpawn, strCat("could not be watched: poll: ", std::strerror(errno)));
      r.timed_out = true;  // kill it: we cannot watch it
      break;
    }
    if (out_i >= 0 && fds[out_i].revents != 0) readOut();
    if (err_i >= 0 && fds[err_i].revents != 0) readErr();
    if (pid_i < 0 || fds[pid_i].revents != 0) tryReap(pid_i >= 0);
  }

  if (!reaped) {
    // The group, and the child itself in case it left the group (setsid).
    ::kill(-pid, SIGTERM);
    ::kill(pid, SIGTERM);
    const auto grace_end = SteadyClock::now() + kKillGrace;
    while (!tryReap(false) && SteadyClock::now() < grace_end) {
      if (pidfd.fd >= 0) {
        pollfd p{pidfd.fd, POLLIN, 0};
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(grace_end -
                                                                       SteadyClock::now());
        (void)::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count())));
      } else {
        ::usleep(10'000);
      }
    }
    if (!reaped) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      tryReap(true);
    }
  } else {
    r.exited = true;
  }
  r.wait_status = status;
  // What the child wrote before it ended is still in the pipes.
  readOut();
  readErr();
  flushStderr();
  return r;
}

void ExecInput::handleLine(const char* line, size_t len, uint64_t number) {
  if (!parser_) return;
  // out_ has kLinePadding allocated bytes past its capacity: json parses in place.
  const LineOutcome r = parser_->parsePadded(std::string_view(line, len), batch_);
  if (!r.refused()) return;
  drops_.add(r.reason);
  ++refused_since_log_;
  uint64_t suppressed = 0;
  if (allow(refused_log_, &suppressed)) {
    logWarn("input", instance_, ": dropped line ", number, " of the command's output (", r.reason, "; ",
            refused_since_log_, " such lines since the last report)");
    refused_since_log_ = 0;
  }
}

void ExecInput::buildRecords(bool last_line_complete) {
  const char* p = out_.get();
  size_t start = 0;
  uint64_t number = 0;
  while (start < out_len_) {
    const void* nl = std::memchr(p + start, '\n', out_len_ - start);
    if (nl == nullptr) {
      if (last_line_complete) handleLine(p + start, out_len_ - start, ++number);
      break;
    }
    const size_t end = static_cast<size_t>(static_cast<const char*>(nl) - p);
    handleLine(p + start, end - start, ++number);
    start = end + 1;
  }
}

Status ExecInput::collect(Emitter& emitter) {
  if (pending_) {
    Status st = emitter.emit(batch_);
    if (!st.isOk()) return st;
    pending_ = false;
    batch_.clear();
  }
  out_len_ = 0;
  err_.clear();
  const RunResult r = run(emitter);
  if (r.cancelled) return cancelled("stopping: the command was killed");
  if (!r.spawned) return Status::ok();

  if (r.timed_out) {
    reportFailure(Failure::kTimeout,
                  strCat("did not finish within ", formatDuration(settings_.timeout),
                         "; killed (complete lines are kept)"));
  }
  if (r.cut) {
    reportFailure(Failure::kTooLarge,
                  strCat("wrote more than max_output_bytes (",
                         formatSize(settings_.max_output_bytes),
                         ") to stdout; the rest was not read"));
  }
  if (r.exited && WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) != 0) {
    reportFailure(Failure::kExit, strCat("exited with status ", WEXITSTATUS(r.wait_status)));
  } else if (r.exited && WIFSIGNALED(r.wait_status) &&
             !(r.cut && WTERMSIG(r.wait_status) == SIGPIPE)) {
    const int sig = WTERMSIG(r.wait_status);
    const char* name = ::sigdescr_np(sig);  // thread-safe, unlike strsignal()
    reportFailure(Failure::kSignal,
                  strCat("was killed by signal ", sig, " (", name != nullptr ? name : "?", ")"));
  }

  buildRecords(r.exited && WIFEXITED(r.wait_status) && !r.cut);
  drops_.drain([&](std::string_view reason, uint64_t n) { emitter.countDropped(reason, n); });
  if (batch_.empty()) return Status::ok();
  Status st = emitter.emit(batch_);
  if (st.isOk()) {
    batch_.clear();
    return st;
  }
  if (st.code() == StatusCode::kResourceExhausted) {
    pending_ = true;  // offered again first on the next collect
    return st;
  }
  batch_.clear();
  return st;
}

const PluginDescriptor& execInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "exec",
      .summary = "runs a command every interval, one record per stdout line (json or text)",
      .options = kOptions,
      .make_input = &makeExecInput,
  };
  return kDescriptor;
}

}  // namespace ferry
