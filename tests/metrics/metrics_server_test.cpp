#include "agent/metrics/metrics_server.h"

#include <doctest/doctest.h>

#include <string>

#include "agent/common/listen_address.h"
#include "tests/support/net.h"

using namespace ferry;


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

    std::string r = test::httpGet(address, "/metrics");
    CHECK(r.rfind("HTTP/1.", 0) == 0);
    CHECK(r.find(" 200 ") != std::string::npos);
    CHECK(r.find("text/plain; version=0.0.4") != std::string::npos);
    CHECK(r.find("ferry_output_records_total{output=\"up\"} 7") != std::string::npos);
    CHECK(r.find("ferry_buffer_records{output=\"up\"} 3") != std::string::npos);
    CHECK(refreshed == 1);

    CHECK(test::httpGet(address, "/healthz").find(" 200 ") != std::string::npos);
    healthy = false;
    std::string h = test::httpGet(address, "/healthz");
    CHECK(h.find(" 503 ") != std::string::npos);
    CHECK(h.find("output up is down") != std::string::npos);
    CHECK(test::httpGet(address, "/nope").find(" 404 ") != std::string::npos);
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
