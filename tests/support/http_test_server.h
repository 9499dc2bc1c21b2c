// A loopback HTTP/1.1 server for tests of HTTP clients (the http output, ferry receive's
// peers): it records every request and answers with whatever a handler returns, including
// misbehaviour (never answering, closing without an answer), which a real server library
// would not let a test do.
//
// It listens on 127.0.0.1 on a free port (bind to port 0), with one thread accepting and
// one thread per connection; connections are kept alive (HTTP/1.1) until the client closes
// them, a request says "Connection: close", or the server stops. Request bodies may come
// with Content-Length or chunked; "Expect: 100-continue" is answered before the body is
// read. With TlsFiles the server speaks HTTPS (OpenSSL); a client that refuses the
// certificate fails the handshake, so its request never reaches the handler.
//
// Threading: the handler runs on the connection's thread, concurrently for concurrent
// connections; it must be thread-safe. Every public member may be called from any thread.
// The destructor stops the server: it closes the listener and every connection, releases
// handlers that hang (Action::kHang), and joins all threads; it blocks until a handler
// that is still running returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::test {

struct HttpRequest {
  std::string method, target;
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  std::string body;  // raw body as received (still compressed), chunked framing removed
  std::chrono::steady_clock::time_point at;  // when the request was complete

  // The first header named `name` (case-insensitive); "" if absent.
  std::string header(std::string_view name) const;
};

struct HttpReply {
  enum class Action {
    kReply,  // answer with status, headers and body
    kHang,   // never answer (until the server stops)
    kClose,  // close the connection without answering
  };
  Action action = Action::kReply;
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Length is added
  std::string body;
};

// PEM files for the HTTPS variant.
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
};

class HttpTestServer {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;

  // Plain HTTP.
  explicit HttpTestServer(Handler handler);
  // HTTPS with the given certificate and key. If they cannot be loaded the server does not
  // listen and error() says why (port() is then 0).
  HttpTestServer(Handler handler, TlsFiles tls);
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  uint16_t port() const;
  // "http://127.0.0.1:PORT/path" ("https://..." for the TLS variant); `path` should start
  // with '/'.
  std::string url(std::string_view path = "/") const;
  // Empty when the server is listening; otherwise why it is not.
  std::string error() const;

  void setHandler(Handler handler);
  // Every complete request so far, in completion order (a copy). A request counts once
  // its body was read, before the handler runs, so hung requests are included.
  std::vector<HttpRequest> requests() const;
  size_t requestCount() const;
  // Connections accepted so far (TCP connections, whether or not a TLS handshake worked).
  size_t connectionCount() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The body of `request` decoded by its Content-Encoding (zstd, gzip, identity or none),
// with decompressWire (agent/codec/wire_compress.h). When it does not decode, returns
// "<undecodable body: REASON>" so that a comparison in a test fails with the reason.
std::string decodedBody(const HttpRequest& request);

}  // namespace ferry::test
