#include "tests/support/http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "agent/codec/wire_compress.h"

namespace ferry::test {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxDecodedBody = size_t{256} << 20;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

// One accepted connection: a socket, optionally wrapped in TLS. Owned by its thread.
class Conn {
 public:
  Conn(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~Conn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool handshake() {
    if (ssl_ == nullptr) return true;
    if (SSL_accept(ssl_) == 1) return true;
    ERR_clear_error();
    return false;
  }

  // Appends what arrives to in_; false on end of stream or error.
  bool fill() {
    char chunk[16384];
    for (;;) {
      ssize_t n;
      if (ssl_ != nullptr) {
        const int r = SSL_read(ssl_, chunk, sizeof(chunk));
        if (r <= 0) {
          ERR_clear_error();
          return false;
        }
        n = r;
      } else {
        n = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
      }
      in_.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }

  bool writeAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n;
      if (ssl_ != nullptr) {
        const int r = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (r <= 0) {
          ERR_clear_error();
          return false;
        }
        n = r;
      } else {
        n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // A line ending in CRLF (returned without it); false on end of stream.
  bool readLine(std::string* line) {
    for (;;) {
      const size_t eol = in_.find("\r\n");
      if (eol != std::string::npos) {
        line->assign(in_, 0, eol);
        in_.erase(0, eol + 2);
        return true;
      }
      if (in_.size() > kMaxHeaderBytes || !fill()) return false;
    }
  }

  bool readExactly(size_t n, std::string* out) {
    while (in_.size() < n) {
      if (!fill()) return false;
    }
    out->append(in_, 0, n);
    in_.erase(0, n);
    return true;
  }

  // Reads one request's head and body. False when the stream ended or was malformed.
  bool readRequest(HttpRequest* req) {
    std::string line;
    do {  // tolerate stray CRLFs between requests
      if (!readLine(&line)) return false;
    } while (line.empty());
    const size_t sp1 = line.find(' ');
    const size_t sp2 = line.find(' ', sp1 == std::string::npos ? sp1 : sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) return false;
    req->method = line.substr(0, sp1);
    req->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    http10_ = line.compare(sp2 + 1, std::string::npos, "HTTP/1.0") == 0;
    size_t head_bytes = line.size();
    for (;;) {
      if (!readLine(&line)) return false;
      if (line.empty()) break;
      head_bytes += line.size();
      if (head_bytes > kMaxHeaderBytes) return false;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) return false;
      req->headers.emplace_back(std::string(trim(std::string_view(line).substr(0, colon))),
                                std::string(trim(std::string_view(line).substr(colon + 1))));
    }
    if (iequals(req->header("Expect"), "100-continue")) {
      if (!writeAll("HTTP/1.1 100 Continue\r\n\r\n")) return false;
    }
    if (icontains(req->header("Transfer-Encoding"), "chunked")) {
      for (;;) {
        if (!readLine(&line)) return false;
        size_t size = 0;
        try {
          size = std::stoul(line.substr(0, line.find(';')), nullptr, 16);
        } catch (...) {
          return false;
        }
        if (size == 0) {
          do {  // trailers up to the empty line
            if (!readLine(&line)) return false;
          } while (!line.empty());
          break;
        }
        if (!readExactly(size, &req->body) || !readLine(&line) || !line.empty()) return false;
      }
    } else if (const std::string length = req->header("Content-Length"); !length.empty()) {
      size_t n = 0;
      try {
        n = std::stoul(length);
      } catch (...) {
        return false;
      }
      if (!readExactly(n, &req->body)) return false;
    }
    req->at = std::chrono::steady_clock::now();
    return true;
  }

  bool keepAlive(const HttpRequest& req) const {
    const std::string c = req.header("Connection");
    if (http10_) return iequals(c, "keep-alive");
    return !iequals(c, "close");
  }

 private:
  int fd_;
  SSL* ssl_;
  std::string in_;
  bool http10_ = false;
};

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

struct HttpTestServer::Impl {
  explicit Impl(Handler h) : handler(std::move(h)) {}

  void start() {
    // A client that goes away mid-write must not kill the test process; OpenSSL writes
    // with write(2), which cannot pass MSG_NOSIGNAL.
    std::signal(SIGPIPE, SIG_IGN);
    if (::pipe2(wake, O_CLOEXEC) != 0) {
      err = std::string("pipe: ") + std::strerror(errno);
      return;
    }
    listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) {
      err = std::string("socket: ") + std::strerror(errno);
      return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd, 128) != 0 ||
        ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      err = std::string("bind/listen: ") + std::strerror(errno);
      ::close(listen_fd);
      listen_fd = -1;
      return;
    }
    port = ntohs(addr.sin_port);
    acceptor = std::thread([this] { acceptLoop(); });
  }

  bool loadTls(const TlsFiles& files) {
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr ||
        SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      char text[256] = "unknown OpenSSL error";
      if (const unsigned long e = ERR_get_error(); e != 0) ERR_error_string_n(e, text, sizeof(text));
      ERR_clear_error();
      err = "TLS certificate/key " + files.cert_file + ", " + files.key_file + ": " + text;
      return false;
    }
    return true;
  }

  void acceptLoop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::lock_guard lock(mu);
      if (stopping) {
        ::close(fd);
        return;
      }
      ++connections;
      open_fds.insert(fd);
      workers.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    {
      SSL* ssl = nullptr;
      if (ctx != nullptr) {
        ssl = SSL_new(ctx);
        if (ssl != nullptr) SSL_set_fd(ssl, fd);
      }
      Conn conn(fd, ssl);
      if ((ctx == nullptr || ssl != nullptr) && conn.handshake()) serveRequests(conn);
    }
    std::lock_guard lock(mu);
    open_fds.erase(fd);  // before close: stop() must never shut down a reused number
    ::close(fd);
  }

  void serveRequests(Conn& conn) {
    for (;;) {
      HttpRequest req;
      if (!conn.readRequest(&req)) return;
      Handler h;
      {
        std::lock_guard lock(mu);
        if (stopping) return;
        recorded.push_back(req);
        h = handler;
      }
      const HttpReply reply = h ? h(req) : HttpReply{};
      if (reply.action == HttpReply::Action::kClose) return;
      if (reply.action == HttpReply::Action::kHang) {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return stopping; });
        return;
      }
      std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                        std::string(reasonPhrase(reply.status)) + "\r\n";
      bool close_after = !conn.keepAlive(req);
      for (const auto& [k, v] : reply.headers) {
        out += k + ": " + v + "\r\n";
        if (iequals(k, "Connection") && iequals(v, "close")) close_after = true;
      }
      out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
      if (close_after) out += "Connection: close\r\n";
      out += "\r\n";
      if (req.method != "HEAD") out += reply.body;
      if (!conn.writeAll(out) || close_after) return;
    }
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      stopping = true;
      for (int fd : open_fds) ::shutdown(fd, SHUT_RDWR);
    }
    cv.notify_all();
    if (wake[1] >= 0) {
      const char c = 'x';
      [[maybe_unused]] const ssize_t n = ::write(wake[1], &c, 1);
    }
    if (acceptor.joinable()) acceptor.join();
    // No new workers after the acceptor ended; the list is only read from here on.
    for (std::thread& t : workers) t.join();
    if (listen_fd >= 0) ::close(listen_fd);
    for (int& fd : wake) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    if (ctx != nullptr) SSL_CTX_free(ctx);
    ctx = nullptr;
  }

  mutable std::mutex mu;
  std::condition_variable cv;
  Handler handler;                    // guarded by mu
  std::vector<HttpRequest> recorded;  // guarded by mu
  std::set<int> open_fds;             // guarded by mu
  std::list<std::thread> workers;     // appended under mu by the acceptor
  size_t connections = 0;             // guarded by mu
  bool stopping = false;              // guarded by mu
  std::string err;                    // set before the acceptor starts
  SSL_CTX* ctx = nullptr;             // set before the acceptor starts
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  uint16_t port = 0;
  std::thread acceptor;
};

HttpTestServer::HttpTestServer(Handler handler) : impl_(std::make_unique<Impl>(std::move(handler))) {
  impl_->start();
}

HttpTestServer::HttpTestServer(Handler handler, TlsFiles tls)
    : impl_(std::make_unique<Impl>(std::move(handler))) {
  if (impl_->loadTls(tls)) impl_->start();
}

HttpTestServer::~HttpTestServer() { impl_->stop(); }

uint16_t HttpTestServer::port() const { return impl_->port; }

std::string HttpTestServer::url(std::string_view path) const {
  return std::string(impl_->ctx != nullptr ? "https" : "http") + "://127.0.0.1:" +
         std::to_string(impl_->port) + std::string(path);
}

std::string HttpTestServer::error() const { return impl_->err; }

void HttpTestServer::setHandler(Handler handler) {
  std::lock_guard lock(impl_->mu);
  impl_->handler = std::move(handler);
}

std::vector<HttpRequest> HttpTestServer::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->recorded;
}

size_t HttpTestServer::requestCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->recorded.size();
}

size_t HttpTestServer::connectionCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->connections;
}

std::string decodedBody(const HttpRequest& request) {
  std::string encoding = request.header("Content-Encoding");
  if (encoding.empty()) encoding = "identity";
  WireEncoding wire;
  if (!parseWireEncoding(encoding, &wire)) {
    return "<undecodable body: unknown Content-Encoding \"" + encoding + "\">";
  }
  std::string out;
  if (Status s = decompressWire(wire, request.body, &out, kMaxDecodedBody); !s.isOk()) {
    return "<undecodable body: " + s.toString() + ">";
  }
  return out;
}

}  // namespace ferry::test
