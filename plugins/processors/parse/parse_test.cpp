#include <doctest/doctest.h>

#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& parseProcessorDescriptor();

using test::makeProcessor;
using test::processorError;
using test::runOne;
using V = std::vector<std::string>;

TEST_SUITE("processors.parse") {
  TEST_CASE("logfmt in message merges into the top level; the message goes") {
    auto p = makeProcessor(parseProcessorDescriptor(), "format: logfmt\n");
    REQUIRE(p.isOk());
    CHECK(
        runOne(
            **p,
            R"({"path":"/var/log/a","message":"level=warn temp=31.5 msg=\"disk almost full\" ok"})") ==
        V{R"({"path":"/var/log/a","level":"warn","temp":31.5,"msg":"disk almost full","ok":true})"});
  }

  TEST_CASE("parsed fields replace fields of the same name; keep_original keeps the text") {
    auto p = makeProcessor(parseProcessorDescriptor(), "format: logfmt\nkeep_original: true\n");
    REQUIRE(p.isOk());
    CHECK(runOne(**p, R"({"level":"info","message":"level=error code=7"})") ==
          V{R"({"message":"level=error code=7","level":"error","code":7})"});
  }

  TEST_CASE("a target object, a nested source field and escapes in the text") {
    auto p =
        makeProcessor(parseProcessorDescriptor(), "format: json\nfield: raw.line\ntarget: data\n");
    REQUIRE(p.isOk());
    CHECK(
        runOne(**p, R"({"raw":{"line":"{\"t\":21,\"city\":\"Z\\u00fcrich\"}","n":1},"data":5})") ==
        V{R"({"raw":{"n":1},"data":{"t":21,"city":"Z\u00fcrich"}})"});
    // The target may be the parsed field itself: the text becomes the object.
    auto same =
        makeProcessor(parseProcessorDescriptor(), "format: logfmt\nfield: msg\ntarget: msg\n");
    REQUIRE(same.isOk());
    CHECK(runOne(**same, R"({"msg":"a=1 b=x","n":2})") == V{R"({"msg":{"a":1,"b":"x"},"n":2})"});
  }

  TEST_CASE("csv, regex and influx through the shared formats") {
    auto csv =
        makeProcessor(parseProcessorDescriptor(), "format: csv\ncolumns: [ts, sensor, value]\n");
    REQUIRE(csv.isOk());
    CHECK(runOne(**csv, R"({"message":"1700,temp-1,21.5"})") ==
          V{R"({"ts":1700,"sensor":"temp-1","value":21.5})"});
    // A header row is skipped by the format: the record goes on unchanged.
    CHECK(runOne(**csv, R"({"message":"ts,sensor,value"})") ==
          V{R"({"message":"ts,sensor,value"})"});
    auto re = makeProcessor(parseProcessorDescriptor(),
                            "format: regex\npattern: '^(?<host>\\S+) (?<code>\\d+)$'\n");
    REQUIRE(re.isOk());
    CHECK(runOne(**re, R"({"message":"gw-1 503"})") == V{R"({"host":"gw-1","code":"503"})"});
    auto influx = makeProcessor(parseProcessorDescriptor(), "format: influx\n");
    REQUIRE(influx.isOk());
    auto out = runOne(**influx, R"({"message":"cpu,host=a usage=0.5 1700000000000000000"})");
    REQUIRE(out.size() == 1);
    CHECK(out[0].find(R"("measurement":"cpu")") != std::string::npos);
    CHECK(out[0].find("message") == std::string::npos);
  }

  TEST_CASE(
      "unparsable records are refused with the format's reason, or kept with on_error: keep") {
    auto p = makeProcessor(parseProcessorDescriptor(), "format: json\n");
    REQUIRE(p.isOk());
    ProcessResult r;
    const V in = {R"({"message":"{\"a\":1}"})", R"({"message":"not json"})", R"({"other":1})",
                  R"({"message":42})",          R"({"message":"[1,2]"})",    "garbage"};
    CHECK(test::run(**p, in, &r) == V{R"({"a":1})"});
    CHECK(test::dropped(r, "bad_json") == 2);  // "not json" and the garbage record
    CHECK(test::dropped(r, "parse_no_field") == 1);
    CHECK(test::dropped(r, "parse_not_string") == 1);
    CHECK(test::dropped(r, "not_an_object") == 1);

    auto keep = makeProcessor(parseProcessorDescriptor(), "format: json\non_error: keep\n");
    REQUIRE(keep.isOk());
    ProcessResult rk;
    CHECK(test::run(**keep, in, &rk) == V{R"({"a":1})", R"({"message":"not json"})",
                                          R"({"other":1})", R"({"message":42})",
                                          R"({"message":"[1,2]"})", "garbage"});
    CHECK(rk.dropped.empty());
  }

  TEST_CASE("bad options name the key") {
    CHECK(processorError(parseProcessorDescriptor(), "format: csv\n").find("columns") !=
          std::string::npos);
    CHECK(processorError(parseProcessorDescriptor(), "format: regex\npattern: '(unclosed'\n")
              .find("pattern") != std::string::npos);
    CHECK(processorError(parseProcessorDescriptor(), "target: message\nkeep_original: true\n") ==
          "<options>:2: keep_original: cannot keep the original when target is the parsed field "
          "itself");
    CHECK(processorError(parseProcessorDescriptor(), "field: 'a b'\n")
              .rfind("<options>:1: field: field path", 0) == 0);
  }
}

}  // namespace ferry
