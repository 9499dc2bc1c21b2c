#include "plugins/inputs/syslog/syslog.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/common/listen_address.h"
#include "ferry/log.h"
#include "plugins/inputs/syslog/syslog_parser.h"

namespace ferry {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr uint64_t kMaxMessageLimit = uint64_t{16} << 20;
constexpr int64_t kMaxConnectionsLimit = 4096;
constexpr size_t kBatchRecords = 1000;
constexpr auto kBatchWindow = std::chrono::milliseconds(50);
constexpr auto kRetryDelay = std::chrono::milliseconds(100);
constexpr auto kBadLogInterval = std::chrono::seconds(10);
constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kMaxDatagram = 64 << 10;

constexpr std::string_view kProtocols[] = {"udp", "tcp"};
constexpr std::string_view kFramings[] = {"auto", "octet_counted", "newline"};

constexpr OptionSpec kOptions[] = {
    {.key = "listen",
     .type = OptionType::kString,
     .default_value = "127.0.0.1:5514",
     .help = "host:port to listen on (\":5514\" for every interface, port 0 for any free port)"},
    {.key = "protocol",
     .type = OptionType::kEnum,
     .default_value = "udp",
     .help = "udp (one datagram per message) or tcp",
     .choices = kProtocols},
    {.key = "framing",
     .type = OptionType::kEnum,
     .default_value = "auto",
     .help = "tcp only: octet_counted (RFC 6587 \"<len> <msg>\"), newline, or auto (per message: "
             "a digit run and a space start an octet-counted frame)",
     .choices = kFramings},
    {.key = "max_message_bytes",
     .type = OptionType::kSize,
     .default_value = "64KiB",
     .help = "longer messages are dropped and counted (reason syslog_too_long)"},
    {.key = "max_connections",
     .type = OptionType::kInt,
     .default_value = "64",
     .help = "tcp only: most connections served at once (others wait in the backlog)"},
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

Result<SyslogSettings> SyslogSettings::fromOptions(const Options& opts) {
  SyslogSettings s;
  if (opts.has("listen")) s.listen = opts.getString("listen");
  sockaddr_storage addr{};
  socklen_t len = 0;
  Status parsed = parseListenAddress(s.listen, &addr, &len);
  if (!parsed.isOk()) {
    return invalidArgument(opts.where("listen").describe() + ": " + parsed.message());
  }
  if (opts.has("protocol") && opts.getString("protocol") == "tcp") s.protocol = SyslogProtocol::kTcp;
  if (opts.has("framing")) {
    const std::string& f = opts.getString("framing");
    if (f == "octet_counted") s.framing = SyslogFraming::kOctetCounted;
    if (f == "newline") s.framing = SyslogFraming::kNewline;
  }
  if (opts.has("max_message_bytes")) s.max_message_bytes = opts.getSize("max_message_bytes");
  if (s.max_message_bytes == 0 || s.max_message_bytes > kMaxMessageLimit) {
    return invalidArgument(opts.where("max_message_bytes").describe() + ": must be between 1 and " +
                           formatSize(kMaxMessageLimit));
  }
  if (opts.has("max_connections")) {
    const int64_t n = opts.getInt("max_connections");
    if (n < 1 || n > kMaxConnectionsLimit) {
      return invalidArgument(opts.where("max_connections").describe() +
                             ": must be between 1 and " + std::to_string(kMaxConnectionsLimit));
    }
    s.max_connections = static_cast<unsigned>(n);
  }
  return s;
}

struct SyslogInput::Connection {
  int fd = -1;
  std::string buf;
  uint64_t skip_bytes = 0;  // rest of a too-long octet-counted frame
  bool skip_line = false;   // rest of a too-long newline-terminated message
  ~Connection() { closeFd(fd); }
};

SyslogInput::SyslogInput(SyslogSettings settings, std::string instance, MetricsRegistry* metrics)
    : settings_(std::move(settings)), instance_(std::move(instance)) {
  if (metrics != nullptr) {
    too_long_ = &metrics->counter("ferry_dropped_records_total", {{"reason", "syslog_too_long"}},
                                  "records dropped, by reason");
    bad_ = &metrics->counter("ferry_dropped_records_total", {{"reason", "syslog_bad_message"}},
                             "records dropped, by reason");
  }
  pending_.reserve(kBatchRecords, 256 * kBatchRecords);
}

SyslogInput::~SyslogInput() { stop(); }

Status SyslogInput::start(Emitter& emitter) {
  std::lock_guard life(life_mu_);
  if (thread_.joinable()) return {StatusCode::kFailedPrecondition, "syslog input already started"};
  sockaddr_storage addr{};
  socklen_t len = 0;
  Status parsed = parseListenAddress(settings_.listen, &addr, &len);
  if (!parsed.isOk()) return invalidArgument("listen: " + parsed.message());
  const bool tcp = settings_.protocol == SyslogProtocol::kTcp;
  int fd = ::socket(addr.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
  if (fd < 0) return unavailable(std::string("syslog: socket: ") + std::strerror(errno));
  const int one = 1;
  if (tcp) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      (tcp && ::listen(fd, 128) != 0)) {
    const int err = errno;
    ::close(fd);
    return unavailable("syslog: cannot listen on " + settings_.listen + ": " + std::strerror(err));
  }
  socklen_t bound_len = sizeof(bound_);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound_), &bound_len) != 0) {
    const int err = errno;
    ::close(fd);
    return unavailable(std::string("syslog: getsockname: ") + std::strerror(err));
  }
  const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    const int err = errno;
    ::close(fd);
    return unavailable(std::string("syslog: eventfd: ") + std::strerror(err));
  }
  listen_fd_ = fd;
  wake_fd_ = wake;
  emitter_ = &emitter;
  stop_.store(false);
  read_buf_.resize(tcp ? kReadChunk
                       : static_cast<size_t>(std::min<uint64_t>(settings_.max_message_bytes,
                                                                kMaxDatagram)) + 1);
  thread_ = std::thread([this] { run(); });
  logInfo("input", instance_, ": syslog listening on ", (tcp ? "tcp " : "udp "), boundAddressLocked());
  return Status::ok();
}

void SyslogInput::stop() {
  std::lock_guard life(life_mu_);
  if (!thread_.joinable()) return;
  stop_.store(true);
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof(one)) < 0) {
    // The eventfd counter cannot overflow with one write per stop(); the loop also polls
    // with a timeout, so a failed wake-up only delays it.
  }
  thread_.join();
  closeFd(listen_fd_);
  closeFd(wake_fd_);
}

std::string SyslogInput::boundAddressLocked() const {
  return describeAddress(reinterpret_cast<const sockaddr*>(&bound_));
}

std::string SyslogInput::boundAddress() const {
  std::lock_guard life(life_mu_);
  return boundAddressLocked();
}

uint16_t SyslogInput::port() const {
  std::lock_guard life(life_mu_);
  if (bound_.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&bound_)->sin_port);
  }
  if (bound_.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&bound_)->sin6_port);
  }
  return 0;
}

void SyslogInput::run() {
  const bool tcp = settings_.protocol == SyslogProtocol::kTcp;
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    const auto now = SteadyClock::now();
    if (paused_ && now >= retry_at_) flush();
    const bool reading = !paused_;
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    const bool accepting = reading && (!tcp || connections.size() < settings_.max_connections);
    fds.push_back({listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0});
    for (const auto& c : connections) {
      fds.push_back({c->fd, static_cast<short>(reading ? POLLIN : 0), 0});
    }
    int timeout_ms = 1000;
    auto until = [&](SteadyClock::time_point t) {
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(t - now).count();
      timeout_ms = std::min<int>(timeout_ms, static_cast<int>(std::max<int64_t>(ms, 0)));
    };
    if (paused_) {
      until(retry_at_);
    } else if (!pending_.empty()) {
      until(first_pending_ + kBatchWindow);
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      logError("input", instance_, ": syslog: poll: ", std::strerror(errno));
      break;
    }
    if (ready > 0) {
      if ((fds[1].revents & POLLIN) != 0) {
        if (tcp) {
          acceptConnections(connections);
        } else {
          readDatagrams();
        }
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Connection& c = *connections[i - 2];
        if (!readConnection(c)) closeFd(c.fd);
      }
      std::erase_if(connections, [](const auto& c) { return c->fd < 0; });
    }
    if (!paused_ && !pending_.empty() &&
        (pending_.size() >= kBatchRecords || SteadyClock::now() >= first_pending_ + kBatchWindow)) {
      flush();
    }
  }
  if (!pending_.empty()) {
    // Stopping: one last hand-over; a refusal loses these (nothing was acknowledged to
    // the senders, syslog has no acknowledgement).
    paused_ = false;
    flush();
    if (!pending_.empty()) {
      logWarn("input", instance_, ": syslog: ", pending_.size(),
              " message(s) not handed over at stop");
      pending_.clear();
    }
  }
  connections.clear();
}

void SyslogInput::readDatagrams() {
  while (pending_.size() < kBatchRecords) {
    const ssize_t n =
        ::recv(listen_fd_, read_buf_.data(), read_buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        logWarn("input", instance_, ": syslog: recv: ", std::strerror(errno));
      }
      return;
    }
    // MSG_TRUNC: n is the datagram's real length, even when it did not fit the buffer.
    if (static_cast<uint64_t>(n) > settings_.max_message_bytes) {
      too_long_->add();
      continue;
    }
    addMessage(std::string_view(read_buf_.data(), static_cast<size_t>(n)));
  }
}

void SyslogInput::acceptConnections(std::vector<std::unique_ptr<Connection>>& connections) {
  while (connections.size() < settings_.max_connections) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
        logWarn("input", instance_, ": syslog: accept: ", std::strerror(errno));
      }
      return;
    }
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    connections.push_back(std::move(c));
  }
}

bool SyslogInput::readConnection(Connection& c) {
  const ssize_t n = ::read(c.fd, read_buf_.data(), read_buf_.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
    splitMessages(c, true);
    return false;
  }
  if (n == 0) {
    splitMessages(c, true);
    return false;
  }
  c.buf.append(read_buf_.data(), static_cast<size_t>(n));
  return splitMessages(c, false);
}

bool SyslogInput::splitMessages(Connection& c, bool eof) {
  const std::string_view all(c.buf);
  const uint64_t max = settings_.max_message_bytes;
  size_t pos = 0;
  bool keep_open = true;
  while (pos < all.size()) {
    std::string_view rest = all.substr(pos);
    if (c.skip_bytes > 0) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(c.skip_bytes, rest.size()));
      pos += k;
      c.skip_bytes -= k;
      continue;
    }
    if (c.skip_line) {
      const size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) {
        pos = all.size();
        break;
      }
      pos += nl + 1;
      c.skip_line = false;
      continue;
    }
    if (settings_.framing == SyslogFraming::kOctetCounted && (rest[0] == '\n' || rest[0] == '\r')) {
      ++pos;  // some senders end frames with a newline as well
      continue;
    }
    const bool octet = settings_.framing == SyslogFraming::kOctetCounted ||
                       (settings_.framing == SyslogFraming::kAuto && isDigit(rest[0]));
    if (octet) {
      size_t i = 0;
      uint64_t length = 0;
      while (i < rest.size() && i < 10 && isDigit(rest[i])) {
        length = length * 10 + static_cast<uint64_t>(rest[i] - '0');
        ++i;
      }
      if (i == rest.size() && i < 10) {  // the header is not complete yet
        if (eof) {
          noteBad("incomplete octet-counted frame at end of connection");
          pos = all.size();
        }
        break;
      }
      if (i > 0 && i < rest.size() && rest[i] == ' ') {
        if (length > max) {
          too_long_->add();
          c.skip_bytes = length;
          pos += i + 1;
          continue;
        }
        if (rest.size() - i - 1 < length) {
          if (eof) {
            noteBad("incomplete octet-counted frame at end of connection");
            pos = all.size();
          }
          break;
        }
        addMessage(rest.substr(i + 1, static_cast<size_t>(length)));
        pos += i + 1 + static_cast<size_t>(length);
        continue;
      }
      if (settings_.framing == SyslogFraming::kOctetCounted) {
        noteBad("not an octet-counted frame (\"<length> <message>\"); connection closed");
        pos = all.size();
        keep_open = false;
        break;
      }
      // auto: a message that merely starts with a digit, newline-terminated.
    }
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      if (rest.size() > max) {
        too_long_->add();
        c.skip_line = true;
        pos = all.size();
      } else if (eof) {
        addMessage(rest);
        pos = all.size();
      }
      break;
    }
    std::string_view line = rest.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max) {
      too_long_->add();
    } else if (!line.empty()) {
      addMessage(line);
    }
    pos += nl + 1;
  }
  c.buf.erase(0, pos);
  return keep_open;
}

void SyslogInput::addMessage(std::string_view message) {
  std::string& data = pending_.mutableData();
  const size_t before = data.size();
  Status st = appendSyslogRecord(message, data);
  if (!st.isOk()) {
    data.resize(before);
    noteBad(st.message());
    return;
  }
  if (pending_.empty()) first_pending_ = SteadyClock::now();
  pending_.commitRecord();
}

void SyslogInput::noteBad(std::string_view why) {
  bad_->add();
  ++bad_since_log_;
  const auto now = SteadyClock::now();
  if (now >= next_bad_log_) {
    logWarn("input", instance_, ": syslog: dropped ", bad_since_log_, " bad message(s); last: ", why);
    bad_since_log_ = 0;
    next_bad_log_ = now + kBadLogInterval;
  }
}

void SyslogInput::flush() {
  if (pending_.empty()) {
    paused_ = false;
    return;
  }
  const Status st = emitter_->emit(pending_);
  if (st.isOk()) {
    pending_.clear();
    paused_ = false;
    return;
  }
  if (st.code() == StatusCode::kResourceExhausted && !stop_.load()) {
    paused_ = true;
    retry_at_ = SteadyClock::now() + kRetryDelay;
    return;
  }
  if (st.code() != StatusCode::kCancelled) {
    logWarn("input", instance_, ": syslog: emit failed, ", pending_.size(),
            " message(s) lost: ", st.message());
  }
  pending_.clear();
  paused_ = false;
}

namespace {

Result<std::unique_ptr<Input>> makeSyslogInput(const PluginContext& ctx, const Options& opts) {
  Result<SyslogSettings> settings = SyslogSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  return std::unique_ptr<Input>(
      std::make_unique<SyslogInput>(std::move(settings).value(), ctx.name, ctx.metrics));
}

}  // namespace

const PluginDescriptor& syslogInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "syslog",
      .summary = "receives syslog (RFC 5424 / RFC 3164) over UDP or TCP",
      .options = kOptions,
      .make_input = &makeSyslogInput,
  };
  return kDescriptor;
}

}  // namespace ferry
