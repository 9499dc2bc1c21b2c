#include "agent/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "agent/common/listen_address.h"

using namespace ferry;

namespace {

// One HTTP/1.0 GET over a plain socket; returns the whole response.
std::string get(const std::string& address, const std::string& path) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  REQUIRE(parseListenAddress(address, &addr, &len).isOk());
  int fd = ::socket(addr.ss_family, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

TEST_SUITE("metrics.server") {
  TEST_CASE("serves Prometheus text after refreshing, and /healthz") {
    MetricsRegistry metrics;
    metrics.counter("ferry_output_records_total", {{"output", "up"}}, "records delivered").add(7);
    int refreshed = 0;
    bool healthy = true;
    auto server = MetricsServer::start(
        "127.0.0.1:0", metrics,
        [&] {
          ++refreshed;
          metrics.gauge("ferry_buffer_records", {{"output", "up"}}, "backlog").set(3);
        },
        [&](std::string* why) {
          *why = "output up is down";
          return healthy;
        });
    REQUIRE_MESSAGE(server.isOk(), server.status().toString());
    const std::string address = (*server)->address();
    CHECK(address.rfind("127.0.0.1:", 0) == 0);
    CHECK(address != "127.0.0.1:0");

    std::string r = get(address, "/metrics");
    CHECK(r.rfind("HTTP/1.", 0) == 0);
    CHECK(r.find(" 200 ") != std::string::npos);
    CHECK(r.find("text/plain; version=0.0.4") != std::string::npos);
    CHECK(r.find("ferry_output_records_total{output=\"up\"} 7") != std::string::npos);
    CHECK(r.find("ferry_buffer_records{output=\"up\"} 3") != std::string::npos);
    CHECK(refreshed == 1);

    CHECK(get(address, "/healthz").find(" 200 ") != std::string::npos);
    healthy = false;
    std::string h = get(address, "/healthz");
    CHECK(h.find(" 503 ") != std::string::npos);
    CHECK(h.find("output up is down") != std::string::npos);
    CHECK(get(address, "/nope").find(" 404 ") != std::string::npos);
  }

  TEST_CASE("a bad or busy address is a clear error") {
    MetricsRegistry metrics;
    auto bad = MetricsServer::start("nohost:x", metrics, nullptr, nullptr);
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(bad.status().message().find("nohost:x") != std::string::npos);
    auto first = MetricsServer::start("127.0.0.1:0", metrics, nullptr, nullptr);
    REQUIRE(first.isOk());
    auto second = MetricsServer::start((*first)->address(), metrics, nullptr, nullptr);
    CHECK_FALSE(second.isOk());
    CHECK(second.status().message().find("cannot listen") != std::string::npos);
  }
}
