#include <doctest/doctest.h>

#include "ferry/options.h"
#include "ferry/record.h"

using namespace ferry;
using namespace std::chrono_literals;

TEST_SUITE("common.options") {
  TEST_CASE("durations in config syntax") {
    Duration d{};
    REQUIRE(parseDuration("250ms", &d));
    CHECK(d == 250ms);
    REQUIRE(parseDuration("30s", &d));
    CHECK(d == 30s);
    REQUIRE(parseDuration("7d", &d));
    CHECK(d == std::chrono::hours(24 * 7));
    REQUIRE(parseDuration("1.5s", &d));
    CHECK(d == 1500ms);
    CHECK_FALSE(parseDuration("30", &d));
    CHECK_FALSE(parseDuration("abc", &d));
    CHECK_FALSE(parseDuration("5 parsecs", &d));
    CHECK_FALSE(parseDuration("", &d));
    CHECK(formatDuration(90s) == "90s");
    CHECK(formatDuration(2h) == "2h");
  }

  TEST_CASE("sizes in config syntax") {
    uint64_t v = 0;
    REQUIRE(parseSize("64KiB", &v));
    CHECK(v == 65536);
    REQUIRE(parseSize("1GiB", &v));
    CHECK(v == (1ull << 30));
    REQUIRE(parseSize("10MB", &v));
    CHECK(v == 10'000'000);
    REQUIRE(parseSize("512", &v));
    CHECK(v == 512);
    CHECK_FALSE(parseSize("1.5B", &v));
    CHECK_FALSE(parseSize("12 apples", &v));
    CHECK_FALSE(parseSize("-1", &v));
    CHECK(formatSize(256 << 10) == "256KiB");
  }

  TEST_CASE("Options returns typed values and locations") {
    Options o;
    o.setLocation({"f.yaml", 3, "inputs[0]"});
    o.set("interval", Duration(10s), {"f.yaml", 5, "inputs[0].interval"});
    o.set("paths", std::vector<std::string>{"a", "b"}, {"f.yaml", 6, "inputs[0].paths"});
    CHECK(o.getDuration("interval") == 10s);
    CHECK(o.getStringList("paths").size() == 2);
    CHECK(o.where("paths").describe() == "f.yaml:6: inputs[0].paths");
    CHECK(o.where("missing").describe() == "f.yaml:3: inputs[0].missing");
    CHECK_FALSE(o.has("missing"));
    CHECK(o.getString("missing").empty());
  }
}

TEST_SUITE("common.record") {
  TEST_CASE("a batch keeps records in one arena and renders NDJSON") {
    RecordBatch b;
    b.append("{\"a\":1}");
    b.append("{\"b\":2}");
    b.append("{}");
    CHECK(b.size() == 3);
    CHECK(b[1] == "{\"b\":2}");
    CHECK(b.rangeBytes(1, 3) == 9);
    RecordBatch c;
    c.append("{\"z\":0}");
    c.appendRange(b, 1, 3);
    CHECK(c.size() == 3);
    CHECK(c[1] == "{\"b\":2}");
    CHECK(c[2] == "{}");
    std::string out;
    c.appendNdjson(out);
    CHECK(out == "{\"z\":0}\n{\"b\":2}\n{}\n");
  }
}
