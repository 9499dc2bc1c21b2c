// The loopback HTTP test server itself: framing, keep-alive and misbehaviour, driven by a
// raw socket client so that what the server sees is exactly what was written.
#include "tests/support/http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "agent/codec/wire_compress.h"
#include "tests/support/net.h"

using namespace ferry;
using namespace ferry::test;

namespace {

int connectTo(uint16_t port) { return connectLoopback(port, SOCK_STREAM); }
void mustSend(int fd, std::string_view data) { REQUIRE(sendAll(fd, data)); }


// Reads until `needle` was seen or the peer closed; returns everything read.
std::string readUntil(int fd, std::string_view needle) {
  std::string got;
  char buf[4096];
  while (got.find(needle) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

}  // namespace

TEST_SUITE("support.http_test_server") {
  TEST_CASE("keep-alive connection carries a Content-Length and a chunked request") {
    HttpTestServer server([](const HttpRequest& r) {
      HttpReply reply;
      reply.status = 201;
      reply.headers.emplace_back("X-Echo", r.target);
      reply.body = r.body;
      return reply;
    });
    REQUIRE(server.error().empty());
    REQUIRE(server.port() != 0);
    CHECK(server.url("/x") == "http://127.0.0.1:" + std::to_string(server.port()) + "/x");
    const int fd = connectTo(server.port());
    REQUIRE(fd >= 0);
    mustSend(fd, "POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello");
    std::string first = readUntil(fd, "hello");
    CHECK(first.rfind("HTTP/1.1 201 ", 0) == 0);
    CHECK(first.find("X-Echo: /a\r\n") != std::string::npos);
    mustSend(fd, "PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
    std::string second = readUntil(fd, "abcde");
    CHECK(second.find("abcde") != std::string::npos);
    ::close(fd);
    const auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].header("Content-Length") == "5");
    CHECK(reqs[0].header("missing").empty());
    CHECK(reqs[1].method == "PUT");
    CHECK(reqs[1].target == "/b");
    CHECK(reqs[1].body == "abcde");
    CHECK(server.connectionCount() == 1);
  }

  TEST_CASE("Expect: 100-continue is answered before the body is read") {
    HttpTestServer server([](const HttpRequest&) { return HttpReply{}; });
    const int fd = connectTo(server.port());
    REQUIRE(fd >= 0);
    mustSend(fd, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    CHECK(readUntil(fd, "\r\n\r\n").rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
    mustSend(fd, "ok");
    CHECK(readUntil(fd, "\r\n\r\n").rfind("HTTP/1.1 200 ", 0) == 0);
    ::close(fd);
    CHECK(server.requests().at(0).body == "ok");
  }

  TEST_CASE("kClose closes without an answer; kHang is released when the server stops") {
    auto server = std::make_unique<HttpTestServer>([](const HttpRequest& r) {
      HttpReply reply;
      reply.action = r.target == "/close" ? HttpReply::Action::kClose : HttpReply::Action::kHang;
      return reply;
    });
    const int a = connectTo(server->port());
    mustSend(a, "GET /close HTTP/1.1\r\n\r\n");
    CHECK(readUntil(a, "HTTP").empty());
    ::close(a);
    const int b = connectTo(server->port());
    mustSend(b, "GET /hang HTTP/1.1\r\n\r\n");
    while (server->requestCount() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto t0 = std::chrono::steady_clock::now();
    server.reset();  // must not wait for the hung handler forever
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    CHECK(readUntil(b, "HTTP").empty());
    ::close(b);
  }

  TEST_CASE("decodedBody undoes the Content-Encoding") {
    HttpRequest r;
    WireCompressor zstd(WireEncoding::kZstd, 0);
    REQUIRE(zstd.compress("{\"a\":1}\n", &r.body).isOk());
    r.headers.emplace_back("Content-Encoding", "zstd");
    CHECK(decodedBody(r) == "{\"a\":1}\n");
    r.headers[0].second = "br";
    CHECK(decodedBody(r).rfind("<undecodable body", 0) == 0);
  }

  TEST_CASE("a TLS server without a readable certificate says why") {
    HttpTestServer server([](const HttpRequest&) { return HttpReply{}; },
                          TlsFiles{"/nonexistent/cert.pem", "/nonexistent/key.pem"});
    CHECK(server.port() == 0);
    CHECK(server.error().find("/nonexistent/cert.pem") != std::string::npos);
  }
}
