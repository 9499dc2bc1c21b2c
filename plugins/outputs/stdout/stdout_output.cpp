#include "plugins/outputs/stdout/stdout_output.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

namespace ferry {

StdoutOutput::StdoutOutput(int fd, const Clock& clock) : fd_(fd), clock_(clock) {}

SendResult StdoutOutput::send(const Block& block, SteadyTime deadline) {
  if (!(unfinished_ && block.seq == unfinished_seq_)) {
    // A different block while the previous one stopped mid-line: end the torn line so
    // the reader's next line is a whole record, not garbage glued to one.
    const bool torn_line = unfinished_ && written_ > 0 && buf_[written_ - 1] != '\n';
    buf_.clear();
    if (torn_line) buf_.push_back('\n');
    block.records.appendNdjson(buf_);
    written_ = 0;
    unfinished_ = false;
  }
  if (written_ == buf_.size()) return SendResult::delivered();

  const int err = writeRest(deadline);
  if (err == 0) {
    unfinished_ = false;
    return SendResult::delivered();
  }
  // Remember the tail only when part of the block is out: a retry that starts from the
  // beginning would repeat those records.
  unfinished_ = written_ > 0;
  unfinished_seq_ = block.seq;
  return retryWith(err);
}

int StdoutOutput::writeRest(SteadyTime deadline) {
  while (written_ < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + written_, buf_.size() - written_);
    if (n > 0) {
      written_ += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return EIO;  // not expected from write(2); do not spin on it
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;

    // Non-blocking descriptor and a full pipe: wait for room, but not past the deadline.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_.now());
    if (left.count() <= 0) return EAGAIN;
    pollfd pfd{.fd = fd_, .events = POLLOUT, .revents = 0};
    const int timeout_ms = static_cast<int>(std::min<int64_t>(left.count(), 60'000));
    if (::poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR) return errno;
    // Ready, timed out, hung up or interrupted: the next write() tells which.
  }
  return 0;
}

SendResult StdoutOutput::retryWith(int err) const {
  std::string why = fd_ == STDOUT_FILENO ? "stdout" : "fd " + std::to_string(fd_);
  why += ": ";
  why += std::strerror(err);
  if (err == EPIPE) why += " (the reader went away)";
  if (err == EAGAIN) why += " (the reader is not keeping up)";
  return SendResult::retry(std::move(why));
}

namespace {

Result<std::unique_ptr<Output>> makeStdoutOutput(const PluginContext& ctx,
                                                 const Options& /*opts*/) {
  const Clock& clock = ctx.clock != nullptr ? *ctx.clock : systemClock();
  return std::unique_ptr<Output>(std::make_unique<StdoutOutput>(STDOUT_FILENO, clock));
}

}  // namespace

const PluginDescriptor& stdoutOutputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kOutput,
      .name = "stdout",
      .summary = "writes records as NDJSON to standard output",
      .options = {},
      .make_output = &makeStdoutOutput,
  };
  return kDescriptor;
}

}  // namespace ferry
