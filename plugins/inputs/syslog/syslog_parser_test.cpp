#include "plugins/inputs/syslog/syslog_parser.h"

#include <doctest/doctest.h>

#include <string>

namespace ferry {
namespace {

std::string record(std::string_view message) {
  std::string out;
  Status st = appendSyslogRecord(message, out);
  REQUIRE_MESSAGE(st.isOk(), st.message());
  return out;
}

TEST_SUITE("inputs.syslog.parser") {
  TEST_CASE("RFC 5424 with every header field and structured data") {
    CHECK(record("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 "
                 "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"][meta seq=\"1\"] "
                 "\xEF\xBB\xBF" "An application event") ==
          "{\"format\":\"rfc5424\",\"facility\":20,\"facility_name\":\"local4\",\"severity\":5,"
          "\"severity_name\":\"notice\",\"timestamp\":\"2003-10-11T22:14:15.003Z\","
          "\"host\":\"mymachine.example.com\",\"app\":\"evntslog\",\"procid\":\"1234\","
          "\"msgid\":\"ID47\",\"structured_data\":{\"exampleSDID@32473\":{\"iut\":\"3\","
          "\"eventSource\":\"Application\"},\"meta\":{\"seq\":\"1\"}},"
          "\"message\":\"An application event\"}");
  }

  TEST_CASE("RFC 5424 nil values are null") {
    CHECK(record("<34>1 - - - - - -") ==
          "{\"format\":\"rfc5424\",\"facility\":4,\"facility_name\":\"auth\",\"severity\":2,"
          "\"severity_name\":\"crit\",\"timestamp\":null,\"host\":null,\"app\":null,"
          "\"procid\":null,\"msgid\":null,\"structured_data\":null,\"message\":null}");
    CHECK(record("<34>1 - host su - - - 'su root' failed\n").find(
              "\"host\":\"host\",\"app\":\"su\",\"procid\":null,\"msgid\":null,"
              "\"structured_data\":null,\"message\":\"'su root' failed\"}") != std::string::npos);
  }

  TEST_CASE("RFC 5424 structured data escapes are resolved") {
    const std::string r = record("<13>1 - h a - - [x@1 q=\"say \\\"hi\\\"\" b=\"a\\]b\\\\c\\n\"] m");
    CHECK(r.find("\"structured_data\":{\"x@1\":{\"q\":\"say \\\"hi\\\"\","
                 "\"b\":\"a]b\\\\c\\\\n\"}},\"message\":\"m\"") != std::string::npos);
  }

  TEST_CASE("RFC 5424 with broken structured data keeps the text as the message") {
    const std::string r = record("<13>1 - h a - - [x@1 q=\"unterminated] m");
    CHECK(r.find("\"structured_data\":null,\"message\":\"[x@1 q=\\\"unterminated] m\"") !=
          std::string::npos);
  }

  TEST_CASE("RFC 3164 with timestamp, host, tag and pid") {
    CHECK(record("<38>Feb  5 17:32:18 myhost sshd[4321]: Accepted publickey") ==
          "{\"format\":\"rfc3164\",\"facility\":4,\"facility_name\":\"auth\",\"severity\":6,"
          "\"severity_name\":\"info\",\"timestamp\":\"Feb  5 17:32:18\",\"host\":\"myhost\","
          "\"app\":\"sshd\",\"procid\":\"4321\",\"msgid\":null,\"structured_data\":null,"
          "\"message\":\"Accepted publickey\"}");
  }

  TEST_CASE("RFC 3164 tolerates missing parts") {
    // No host: the word after the timestamp is the tag.
    std::string r = record("<13>Oct 11 22:14:15 su: 'su root' failed");
    CHECK(r.find("\"host\":null,\"app\":\"su\",\"procid\":null") != std::string::npos);
    CHECK(r.find("\"message\":\"'su root' failed\"") != std::string::npos);
    // No timestamp, no host, no tag.
    r = record("<13>hello world");
    CHECK(r.find("\"timestamp\":null,\"host\":null,\"app\":null,\"procid\":null") !=
          std::string::npos);
    CHECK(r.find("\"message\":\"hello world\"") != std::string::npos);
    // Timestamp and host, no tag.
    r = record("<13>Oct 11 22:14:15 myhost just text");
    CHECK(r.find("\"host\":\"myhost\",\"app\":null") != std::string::npos);
    CHECK(r.find("\"message\":\"just text\"") != std::string::npos);
    // Only a PRI.
    r = record("<0>");
    CHECK(r.find("\"facility_name\":\"kern\",\"severity\":0,\"severity_name\":\"emerg\"") !=
          std::string::npos);
    CHECK(r.find("\"message\":null") != std::string::npos);
  }

  TEST_CASE("invalid UTF-8 and control bytes still give valid JSON") {
    const std::string r = record("<13>bad \xff byte\x01 here");
    CHECK(r.find("\"message\":\"bad \\ufffd byte\\u0001 here\"") != std::string::npos);
  }

  TEST_CASE("messages without a valid PRI are refused and leave the output alone") {
    for (std::string_view bad : {"", "hello", "<>x", "<192>x", "<1234>x", "<12", "<a>x", "13>x"}) {
      std::string out = "keep";
      Status st = appendSyslogRecord(bad, out);
      CHECK_MESSAGE(st.code() == StatusCode::kInvalidArgument, bad);
      CHECK(out == "keep");
    }
  }

  TEST_CASE("facility and severity names") {
    CHECK(syslogFacilityName(23) == "local7");
    CHECK(syslogFacilityName(24).empty());
    CHECK(syslogSeverityName(3) == "err");
    CHECK(syslogSeverityName(8).empty());
  }
}

}  // namespace
}  // namespace ferry
