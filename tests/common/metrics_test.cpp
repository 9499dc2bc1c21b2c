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
