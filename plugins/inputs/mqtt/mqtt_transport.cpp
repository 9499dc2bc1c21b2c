#include "plugins/inputs/mqtt/mqtt_transport.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace ferry::mqttc {
namespace {

std::string sslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

int pollTimeoutMs(SteadyPoint deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count() + 1, 60'000));
}

// A name lookup on a thread of its own: getaddrinfo cannot be interrupted, and a broker named
// by host name while DNS is unreachable (an uplink outage) would hold the reader thread, and
// so stop(), for the resolver's whole timeout. The caller waits for the answer, the deadline
// or its wake fd; an abandoned lookup finishes alone and frees what it found.
struct Lookup {
  std::mutex mu;
  bool done = false;
  bool abandoned = false;
  int gai = 0;
  addrinfo* found = nullptr;
  int pipe_fds[2] = {-1, -1};
  ~Lookup() {
    if (found != nullptr) ::freeaddrinfo(found);
    for (int fd : pipe_fds) {
      if (fd >= 0) ::close(fd);
    }
  }
};

// OK with `*found` (the caller frees it), kUnavailable when the name does not resolve,
// kDeadlineExceeded, or kCancelled when `wake_fd` became readable.
Status resolve(const std::string& host, const std::string& port, int wake_fd, SteadyPoint deadline,
               addrinfo** found, int* gai_error) {
  auto lookup = std::make_shared<Lookup>();
  if (::pipe2(lookup->pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status(StatusCode::kIoError, std::string("pipe: ") + std::strerror(errno));
  }
  try {
    std::thread([lookup, host, port] {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
      std::lock_guard lock(lookup->mu);
      lookup->gai = rc;
      lookup->found = res;  // freed by ~Lookup unless the caller takes it
      lookup->done = true;
      const char one = 1;
      (void)!::write(lookup->pipe_fds[1], &one, 1);
    }).detach();
  } catch (const std::system_error& e) {
    return Status(StatusCode::kIoError, std::string("cannot start a name lookup: ") + e.what());
  }
  pollfd fds[2] = {{lookup->pipe_fds[0], POLLIN, 0}, {wake_fd, POLLIN, 0}};
  const nfds_t n = wake_fd >= 0 ? 2 : 1;
  for (;;) {
    {
      std::lock_guard lock(lookup->mu);
      if (lookup->done) {
        *gai_error = lookup->gai;
        *found = std::exchange(lookup->found, nullptr);
        return lookup->gai == 0 ? Status::ok() : unavailable(::gai_strerror(lookup->gai));
      }
    }
    const int r = ::poll(fds, n, pollTimeoutMs(deadline));
    if (r < 0 && errno != EINTR) return Status(StatusCode::kIoError, std::string("poll: ") + std::strerror(errno));
    if (n == 2 && (fds[1].revents & POLLIN) != 0) return cancelled("stopping");
    if (r == 0 && std::chrono::steady_clock::now() >= deadline) {
      return Status(StatusCode::kDeadlineExceeded, "name lookup timed out");
    }
  }
}

bool isIpAddress(const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::make(const TlsFiles& files) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Status(StatusCode::kInternal, "TLS: " + sslError());
  std::shared_ptr<TlsContext> out(new TlsContext(ctx, !files.insecure_skip_verify));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (files.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const int loaded = files.ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(ctx)
                           : SSL_CTX_load_verify_locations(ctx, files.ca_file.c_str(), nullptr);
    if (loaded != 1) {
      return invalidArgument("tls.ca_file: cannot load \"" +
                             (files.ca_file.empty() ? std::string("system CAs") : files.ca_file) +
                             "\": " + sslError());
    }
  }
  if (!files.cert_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
    return invalidArgument("tls.cert_file: cannot load \"" + files.cert_file + "\": " + sslError());
  }
  if (!files.key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return invalidArgument("tls.key_file: cannot load \"" + files.key_file + "\": " + sslError());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return invalidArgument("tls.key_file: \"" + files.key_file +
                             "\" does not match tls.cert_file: " + sslError());
    }
  }
  return out;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

BrokerStream::~BrokerStream() { close(); }

void BrokerStream::close() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int BrokerStream::waitFor(short events, int wake_fd, SteadyPoint deadline) const {
  pollfd fds[2] = {{fd_, events, 0}, {wake_fd, POLLIN, 0}};
  const nfds_t n = wake_fd >= 0 ? 2 : 1;
  for (;;) {
    const int r = ::poll(fds, n, pollTimeoutMs(deadline));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -2;
    }
    if (n == 2 && (fds[1].revents & POLLIN) != 0) return -1;
    if (r > 0 && fds[0].revents != 0) return 1;
    if (std::chrono::steady_clock::now() >= deadline) return 0;
  }
}

Status BrokerStream::open(const BrokerAddress& address, const TlsContext* tls, int wake_fd,
                          SteadyPoint deadline) {
  close();
  peer_ = address.host + ":" + std::to_string(address.port);
  const std::string host = address.bareHost();
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  int gai = 0;
  Status looked_up = resolve(host, port, wake_fd, deadline, &found, &gai);
  if (looked_up.code() == StatusCode::kCancelled) return looked_up;
  if (!looked_up.isOk()) return unavailable("broker " + peer_ + ": cannot resolve: " + looked_up.message());
  std::string last = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    fd_ = fd;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = std::strerror(errno);
      close();
      continue;
    }
    const int w = waitFor(POLLOUT, wake_fd, deadline);
    if (w == -1) {
      close();
      ::freeaddrinfo(found);
      return cancelled("stopping");
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (w != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      last = w == 0 ? "connect timed out" : std::strerror(err != 0 ? err : errno);
      close();
      continue;
    }
    break;
  }
  ::freeaddrinfo(found);
  if (fd_ < 0) return unavailable("broker " + peer_ + ": cannot connect: " + last);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (address.tls) {
    if (tls == nullptr) {
      close();
      return Status(StatusCode::kInternal, "broker " + peer_ + ": TLS without a TLS context");
    }
    Status st = handshake(address, *tls, wake_fd, deadline);
    if (!st.isOk()) {
      close();
      return st;
    }
  }
  return Status::ok();
}

Status BrokerStream::handshake(const BrokerAddress& address, const TlsContext& tls, int wake_fd,
                               SteadyPoint deadline) {
  ERR_clear_error();
  ssl_ = SSL_new(tls.get());
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
    return unavailable("broker " + peer_ + ": TLS: " + sslError());
  }
  const std::string host = address.bareHost();
  if (isIpAddress(host)) {
    if (tls.verify() && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) != 1) {
      return unavailable("broker " + peer_ + ": TLS: bad IP address for verification");
    }
  } else {
    SSL_set_tlsext_host_name(ssl_, host.c_str());
    if (tls.verify() && SSL_set1_host(ssl_, host.c_str()) != 1) {
      return unavailable("broker " + peer_ + ": TLS: cannot set the host name to verify");
    }
  }
  for (;;) {
    const int r = SSL_connect(ssl_);
    if (r == 1) return Status::ok();
    const int e = SSL_get_error(ssl_, r);
    short events = 0;
    if (e == SSL_ERROR_WANT_READ) events = POLLIN;
    if (e == SSL_ERROR_WANT_WRITE) events = POLLOUT;
    if (events == 0) {
      std::string why = sslError();
      const long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) {
        why = std::string("certificate verification failed: ") +
              X509_verify_cert_error_string(verify);
      }
      return unavailable("broker " + peer_ + ": TLS handshake failed: " + why);
    }
    const int w = waitFor(events, wake_fd, deadline);
    if (w == -1) return cancelled("stopping");
    if (w != 1) return unavailable("broker " + peer_ + ": TLS handshake timed out");
  }
}

void BrokerStream::quickAck() const {
  // Linux leaves quick-ack mode by itself; without it our kernel delays its TCP ACK (up to
  // 40 ms) while we wait for a commit before the PUBACK, and a broker that does not set
  // TCP_NODELAY (Mosquitto's default) holds its next messages back until that ACK (Nagle).
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

bool BrokerStream::pending() const { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }

Result<size_t> BrokerStream::read(char* buf, size_t cap, int wake_fd, SteadyPoint deadline) {
  if (fd_ < 0) return unavailable("broker " + peer_ + ": not connected");
  for (;;) {
    short events = POLLIN;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int r = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(cap, 1 << 30)));
      if (r > 0) {
        quickAck();
        return static_cast<size_t>(r);
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_ZERO_RETURN)
        return unavailable("broker " + peer_ + " closed the connection");
      if (e == SSL_ERROR_WANT_WRITE) {
        events = POLLOUT;
      } else if (e != SSL_ERROR_WANT_READ) {
        return unavailable("broker " + peer_ + ": TLS read: " + sslError());
      }
    } else {
      const ssize_t r = ::recv(fd_, buf, cap, 0);
      if (r > 0) {
        quickAck();
        return static_cast<size_t>(r);
      }
      if (r == 0) return unavailable("broker " + peer_ + " closed the connection");
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return unavailable("broker " + peer_ + ": read: " + std::strerror(errno));
      }
    }
    const int w = waitFor(events, wake_fd, deadline);
    if (w == -2) return unavailable(std::string("poll: ") + std::strerror(errno));
    if (w != 1) return size_t{0};
  }
}

Status BrokerStream::writeAll(std::string_view data, SteadyPoint deadline) {
  if (fd_ < 0) return unavailable("broker " + peer_ + ": not connected");
  while (!data.empty()) {
    short events = POLLOUT;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int r =
          SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
      if (r > 0) {
        data.remove_prefix(static_cast<size_t>(r));
        continue;
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) {
        events = POLLIN;
      } else if (e != SSL_ERROR_WANT_WRITE) {
        return unavailable("broker " + peer_ + ": TLS write: " + sslError());
      }
    } else {
      const ssize_t r = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (r > 0) {
        data.remove_prefix(static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        return unavailable("broker " + peer_ + ": write: " + std::strerror(errno));
      }
    }
    const int w = waitFor(events, -1, deadline);
    if (w != 1) return unavailable("broker " + peer_ + ": write timed out");
  }
  return Status::ok();
}

}  // namespace ferry::mqttc
