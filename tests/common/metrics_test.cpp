#include <doctest/doctest.h>

#include "ferry/metrics.h"

using namespace ferry;

TEST_SUITE("common.metrics") {
  TEST_CASE("counters by label render in Prometheus text format") {
    MetricsRegistry m;
    m.counter("ferry_dropped_records_total", {{"reason", "max_age"}}, "records dropped").add(3);
    m.counter("ferry_dropped_records_total", {{"reason", "drop_oldest"}}).add(2);
    m.counter("ferry_dropped_records_total", {{"reason", "max_age"}}).add(1);
    m.gauge("ferry_buffer_bytes").set(1024);
    CHECK(m.counterValue("ferry_dropped_records_total", {{"reason", "max_age"}}) == 4);
    CHECK(m.counterValue("ferry_dropped_records_total", {{"reason", "nope"}}) == 0);
    std::string text = m.prometheusText();
    CHECK(text.find("# HELP ferry_dropped_records_total records dropped\n") != std::string::npos);
    CHECK(text.find("# TYPE ferry_dropped_records_total counter\n") != std::string::npos);
    CHECK(text.find("ferry_dropped_records_total{reason=\"max_age\"} 4\n") != std::string::npos);
    CHECK(text.find("ferry_dropped_records_total{reason=\"drop_oldest\"} 2\n") != std::string::npos);
    CHECK(text.find("ferry_buffer_bytes 1024\n") != std::string::npos);
  }

  TEST_CASE("label values are escaped") {
    MetricsRegistry m;
    m.counter("x_total", {{"input", "a\"b\\c"}}).add();
    CHECK(m.prometheusText().find("x_total{input=\"a\\\"b\\\\c\"} 1") != std::string::npos);
  }
}

TEST_CASE("histograms render cumulative buckets, sum and count") {
  ferry::MetricsRegistry m;
  auto& h = m.histogram("ferry_output_latency_seconds", {{"output", "up"}}, {0.1, 1}, "latency");
  h.observe(0.05);
  h.observe(0.5, 2);
  h.observe(7);
  std::string t = m.prometheusText();
  CHECK(t.find("# TYPE ferry_output_latency_seconds histogram") != std::string::npos);
  CHECK(t.find("ferry_output_latency_seconds_bucket{output=\"up\",le=\"0.1\"} 1\n") != std::string::npos);
  CHECK(t.find("ferry_output_latency_seconds_bucket{output=\"up\",le=\"1\"} 3\n") != std::string::npos);
  CHECK(t.find("ferry_output_latency_seconds_bucket{output=\"up\",le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(t.find("ferry_output_latency_seconds_count{output=\"up\"} 4\n") != std::string::npos);
  CHECK(t.find("ferry_output_latency_seconds_sum{output=\"up\"} 8.05\n") != std::string::npos);
}
