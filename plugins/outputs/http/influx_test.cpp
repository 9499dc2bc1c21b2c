#include "plugins/outputs/http/influx.h"

#include <doctest/doctest.h>

using namespace ferry;

namespace {
Block blockOf(std::string stream, std::initializer_list<std::string_view> records) {
  Block b;
  b.seq = 1;
  b.lineage.stream = std::move(stream);
  for (std::string_view r : records) b.records.append(r);
  return b;
}
}  // namespace

TEST_SUITE("output.http.influx") {
  TEST_CASE("strings are tags, numbers and bools fields, nested objects flattened") {
    InfluxEncoder enc;
    std::string out;
    const auto st = enc.encode(
        blockOf("sensors", {R"({"site":"north hall","temp":21.5,"count":3,"ok":true,"loc":{"x":1,"name":"a,b=c"},"arr":[1],"n":null})"}),
        &out);
    CHECK(st.lines == 1);
    CHECK(out == "sensors,site=north\\ hall,loc.name=a\\,b\\=c temp=21.5,count=3i,ok=true,loc.x=1i\n");
  }

  TEST_CASE("ts and time become the timestamp in nanoseconds, whatever their unit") {
    InfluxEncoder enc;
    std::string out;
    enc.encode(blockOf("m", {R"({"v":1,"ts":1700000000})", R"({"v":1,"ts":1700000000123})",
                             R"({"v":1,"time":1700000000123456})",
                             R"({"v":1,"ts":1700000000123456789})", R"({"v":1,"ts":1700000000.5})",
                             R"({"v":1,"time":"2023-11-14T22:13:20.25Z"})",
                             R"({"v":1,"time":"2023-11-15T00:13:20+02:00"})"}),
               &out);
    CHECK(out ==
          "m v=1i 1700000000000000000\n"
          "m v=1i 1700000000123000000\n"
          "m v=1i 1700000000123456000\n"
          "m v=1i 1700000000123456789\n"
          "m v=1i 1700000000500000000\n"
          "m v=1i 1700000000250000000\n"
          "m v=1i 1700000000000000000\n");
  }

  TEST_CASE("a ts that is not a time is an ordinary value; no ts means no timestamp") {
    InfluxEncoder enc;
    std::string out;
    enc.encode(blockOf("m", {R"({"v":2.0,"ts":"yesterday"})", R"({"v":-4})"}), &out);
    CHECK(out == "m,ts=yesterday v=2\nm v=-4i\n");
  }

  TEST_CASE("records without a field, or not objects, are skipped and counted") {
    InfluxEncoder enc;
    std::string out;
    const auto st =
        enc.encode(blockOf("my stream", {R"({"only":"strings"})", "[1,2]", "not json", R"({"a":1})"}), &out);
    CHECK(st.lines == 1);
    CHECK(st.no_fields == 1);
    CHECK(st.not_object == 2);
    CHECK(out == "my\\ stream a=1i\n");
  }

  TEST_CASE("RFC 3339 parsing") {
    CHECK(parseRfc3339Nanos("1970-01-01T00:00:00Z") == 0);
    CHECK(parseRfc3339Nanos("1970-01-01T00:00:01.000000001Z") == 1'000'000'001);
    CHECK(parseRfc3339Nanos("1970-01-01T01:00:00+01:00") == 0);
    CHECK_FALSE(parseRfc3339Nanos("1970-01-01T00:00:00").has_value());
    CHECK_FALSE(parseRfc3339Nanos("1970-02-30T00:00:00Z").has_value());
    CHECK_FALSE(parseRfc3339Nanos("1970-01-01T00:00:00.Z").has_value());
  }
}
