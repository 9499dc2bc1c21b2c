#include "agent/formats/line_format.h"

#include <doctest/doctest.h>
#include <simdjson.h>

#include <chrono>
#include <string>
#include <vector>

#include "ferry/json.h"

using namespace ferry;
using Kind = LineOutcome::Kind;

namespace {

LineParser makeParser(const LineFormatSpec& spec) {
  Result<LineParser> p = LineParser::make(spec);
  REQUIRE_MESSAGE(p.isOk(), p.status().toString());
  return std::move(p).value();
}

LineParser makeParser(LineFormat format) {
  LineFormatSpec spec;
  spec.format = format;
  return makeParser(spec);
}

bool isJsonObject(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::padded_string padded(text);
  return parser.parse(padded).get(doc) == simdjson::SUCCESS &&
         doc.type() == simdjson::dom::element_type::OBJECT;
}

struct Parsed {
  LineOutcome outcome;
  std::string record;  // the appended record, "" when none
};

// Parses `line` into a batch that already holds one record, and checks the batch invariants:
// exactly one record more (a valid JSON object on one line) or the batch untouched.
Parsed run(LineParser& p, std::string_view line, std::string_view extra = {}) {
  RecordBatch batch;
  batch.append("{\"before\":1}");
  const size_t bytes = batch.bytes();
  Parsed r;
  r.outcome = p.parse(line, batch, extra);
  if (r.outcome.appended()) {
    REQUIRE(batch.size() == 2);
    r.record = std::string(batch[1]);
    CHECK_MESSAGE(isJsonObject(r.record), r.record);
    CHECK(r.record.find('\n') == std::string::npos);
    CHECK(r.outcome.reason.empty());
  } else {
    CHECK(batch.size() == 1);
    CHECK(batch.bytes() == bytes);
    CHECK_FALSE(r.outcome.reason.empty());
  }
  CHECK(batch[0] == "{\"before\":1}");
  return r;
}

std::string record(LineParser& p, std::string_view line, std::string_view extra = {}) {
  Parsed r = run(p, line, extra);
  CHECK_MESSAGE(r.outcome.appended(), std::string(line), " → ", r.outcome.reason);
  return r.record;
}

std::string_view refusal(LineParser& p, std::string_view line) {
  Parsed r = run(p, line);
  CHECK_MESSAGE(r.outcome.kind == Kind::kRefused, std::string(line), " → ", r.record);
  return r.outcome.reason;
}

std::string_view skip(LineParser& p, std::string_view line) {
  Parsed r = run(p, line);
  CHECK_MESSAGE(r.outcome.kind == Kind::kSkipped, std::string(line), " → ", r.record);
  return r.outcome.reason;
}

Options options(std::vector<std::pair<std::string, OptionValue>> values) {
  Options o;
  int line = 10;
  for (auto& [k, v] : values) {
    o.set(k, std::move(v), SourceLocation{"agent.yaml", line++, "inputs[2]." + k});
  }
  o.setLocation(SourceLocation{"agent.yaml", 9, "inputs[2]"});
  return o;
}

}  // namespace

TEST_SUITE("formats.line_format") {
  TEST_CASE("json: objects are kept as written, trimmed, with extra members") {
    LineParser p = makeParser(LineFormat::kJson);
    CHECK(record(p, R"({"a":1,"b":[true,null],"c":{"d":"é✓"}})") ==
          R"({"a":1,"b":[true,null],"c":{"d":"é✓"}})");
    CHECK(record(p, "  {\"a\": 1}\t\r\n") == "{\"a\": 1}");
    CHECK(record(p, "{\"a\":1}\r") == "{\"a\":1}");
    CHECK(record(p, R"({"a":1})", R"("path":"/var/log/x")") == R"({"a":1,"path":"/var/log/x"})");
    CHECK(record(p, "{ \t}", R"("topic":"t")") == "{ \t\"topic\":\"t\"}");
    CHECK(record(p, "{}", R"("k":"v","k2":"v2")") == R"({"k":"v","k2":"v2"})");
    CHECK(record(p, "{\"s\":\"\\u00e9\\n\"}") == "{\"s\":\"\\u00e9\\n\"}");
    CHECK(
        record(p, "{\"big\":18446744073709551615,\"neg\":-9223372036854775808,\"tiny\":1e-400}") ==
        "{\"big\":18446744073709551615,\"neg\":-9223372036854775808,\"tiny\":1e-400}");
    // A pretty-printed document (an MQTT payload) becomes one line.
    CHECK(record(p, "{\r\n  \"a\": 1,\n  \"b\": \"x\"\n}") == "{    \"a\": 1,   \"b\": \"x\" }");
    CHECK(skip(p, "") == line_reason::kEmptyLine);
    CHECK(skip(p, " \t\r\n") == line_reason::kEmptyLine);
  }

  TEST_CASE("json: malformed lines are refused with their reason") {
    LineParser p = makeParser(LineFormat::kJson);
    CHECK(refusal(p, R"({"a":})") == line_reason::kBadJson);
    CHECK(refusal(p, R"({"a":1} {"b":2})") == line_reason::kBadJson);
    CHECK(refusal(p, R"({"a":1)") == line_reason::kBadJson);
    CHECK(refusal(p, "nope") == line_reason::kBadJson);
    CHECK(refusal(p, R"({"a":01})") == line_reason::kBadJson);
    CHECK(refusal(p, R"({"a":1.})") == line_reason::kBadJson);
    CHECK(refusal(p, R"({"a":-})") == line_reason::kBadJson);
    CHECK(refusal(p, "{\"a\":\"tab\there\"}") == line_reason::kBadJson);
    CHECK(refusal(p, "[1,2]") == line_reason::kNotAnObject);
    CHECK(refusal(p, "42") == line_reason::kNotAnObject);
    CHECK(refusal(p, "\"text\"") == line_reason::kNotAnObject);
    CHECK(refusal(p, "null") == line_reason::kNotAnObject);
    CHECK(refusal(p, "{\"a\":\"\xff\"}") == line_reason::kInvalidUtf8);
    CHECK(refusal(p, "{\"a\":\"\xc0\xaf\"}") == line_reason::kInvalidUtf8);  // overlong '/'
    CHECK(refusal(p, std::string_view("{\"a\":\"x\0y\"}", 12)) == line_reason::kNulByte);
    CHECK(refusal(p, std::string_view("{\"a\":1}\0", 8)) == line_reason::kNulByte);
    CHECK(refusal(p, R"({"a":1e400})") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, R"({"a":-1e400})") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, R"({"a":18446744073709551616})") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, R"({"a":-9223372036854775809})") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, R"({"s":"1e400 01","a":[123456789012345678901234567890]})") ==
          line_reason::kNumberOutOfRange);
    // The parser is fine after refusals.
    CHECK(record(p, R"({"ok":true})") == R"({"ok":true})");
  }

  TEST_CASE("json: parsePadded reads the caller's padded buffer in place") {
    LineParser p = makeParser(LineFormat::kJson);
    std::string buf = "{\"a\":1}\n{\"b\":2}\n";
    buf.append(kLinePadding, 'x');
    RecordBatch batch;
    CHECK(p.parsePadded(std::string_view(buf.data(), 8), batch).appended());
    CHECK(p.parsePadded(std::string_view(buf.data() + 8, 8), batch, "\"n\":\"v\"").appended());
    REQUIRE(batch.size() == 2);
    CHECK(batch[0] == "{\"a\":1}");
    CHECK(batch[1] == "{\"b\":2,\"n\":\"v\"}");
  }

  TEST_CASE("text: the line becomes an escaped message") {
    LineParser p = makeParser(LineFormat::kText);
    CHECK(record(p, "hello world") == R"({"message":"hello world"})");
    CHECK(record(p, "say \"hi\" \\ back\tslash\x01\r\n") ==
          R"({"message":"say \"hi\" \\ back\tslash\u0001"})");
    CHECK(record(p, "  padded  ") == R"({"message":"  padded  "})");
    CHECK(record(p, "ünïcödé ✓ 𝄞") == R"({"message":"ünïcödé ✓ 𝄞"})");
    CHECK(record(p, "x", R"("path":"/a")") == R"({"message":"x","path":"/a"})");
    CHECK(skip(p, "\r\n") == line_reason::kEmptyLine);
    CHECK(refusal(p, "bad \xff byte") == line_reason::kInvalidUtf8);
    CHECK(refusal(p, std::string_view("nul\0byte", 8)) == line_reason::kNulByte);
  }

  TEST_CASE("invalid_utf8: replace keeps the record with U+FFFD") {
    for (LineFormat f : {LineFormat::kText, LineFormat::kLogfmt, LineFormat::kCsv,
                         LineFormat::kInflux, LineFormat::kRegex}) {
      CAPTURE(lineFormatName(f));
      LineFormatSpec spec;
      spec.format = f;
      spec.invalid_utf8 = InvalidUtf8::kReplace;
      spec.columns = {"v"};
      spec.pattern = "(?<v>.*)";
      LineParser p = makeParser(spec);
      const std::string line = f == LineFormat::kInflux   ? "m v=\"a\xff"
                                                            "b\""
                               : f == LineFormat::kLogfmt ? "v=a\xff"
                                                            "b"
                                                          : "a\xff"
                                                            "b";
      const std::string r = record(p, line);
      const bool replaced =
          r.find("\\ufffd") != std::string::npos || r.find("\xEF\xBF\xBD") != std::string::npos;
      CHECK_MESSAGE(replaced, r);
      CHECK(refusal(p, std::string_view("a\0b", 3)) == line_reason::kNulByte);
    }
  }

  TEST_CASE("logfmt: pairs, quoted values, flags and conversions") {
    LineParser p = makeParser(LineFormat::kLogfmt);
    CHECK(
        record(p, R"(level=info msg="hello world" count=42 ratio=-0.5e2 ok=true no=false flag)") ==
        R"({"level":"info","msg":"hello world","count":42,"ratio":-0.5e2,"ok":true,"no":false,"flag":true})");
    // Quoted values stay strings; numbers that would not survive stay strings too.
    CHECK(
        record(p, R"(q="42" zip=007 big=1e400 huge=123456789012345678901234567890 x=1.)") ==
        R"({"q":"42","zip":"007","big":"1e400","huge":"123456789012345678901234567890","x":"1."})");
    CHECK(record(p, R"(msg="say \"hi\"\n\ttab \\ \q" path=C:\dir)") ==
          R"({"msg":"say \"hi\"\n\ttab \\ \\q","path":"C:\\dir"})");
    CHECK(record(p, "ключ=значение ✓=1\r\n") == R"({"ключ":"значение","✓":1})");
    CHECK(record(p, "a=1", R"("path":"/x")") == R"({"a":1,"path":"/x"})");
    CHECK(skip(p, "   \t ") == line_reason::kEmptyLine);
    CHECK(refusal(p, R"(msg="unterminated)") == line_reason::kBadLogfmt);
    CHECK(refusal(p, R"(msg="ends with backslash\)") == line_reason::kBadLogfmt);
    CHECK(refusal(p, "=value") == line_reason::kBadLogfmt);
    CHECK(refusal(p, "a=1 =2") == line_reason::kBadLogfmt);
    CHECK(refusal(p, R"(a"b=c)") == line_reason::kBadLogfmt);
    CHECK(refusal(p, R"(k="v"x)") == line_reason::kBadLogfmt);
    CHECK(refusal(p, R"(k=a"b)") == line_reason::kBadLogfmt);
    CHECK(refusal(p, "k=\xfe") == line_reason::kInvalidUtf8);
  }

  TEST_CASE("logfmt: empty values and values holding '='") {
    LineParser p = makeParser(LineFormat::kLogfmt);
    CHECK(record(p, "empty= url=http://h/p?a=b&c=d") ==
          R"({"empty":"","url":"http://h/p?a=b&c=d"})");
  }

  TEST_CASE("csv: RFC 4180 fields named by columns") {
    LineFormatSpec spec;
    spec.format = LineFormat::kCsv;
    spec.columns = {"ts", "sensor", "value", "note"};
    LineParser p = makeParser(spec);
    CHECK(record(p, R"(1700000000,"temp-1",21.5,"a ""quoted"", note")") ==
          R"({"ts":1700000000,"sensor":"temp-1","value":21.5,"note":"a \"quoted\", note"})");
    CHECK(record(p, "1,,true,\r\n") == R"({"ts":1,"sensor":"","value":true,"note":""})");
    CHECK(record(p, R"(007,"42",-1e400," spaces ")") ==
          R"({"ts":"007","sensor":"42","value":"-1e400","note":" spaces "})");
    CHECK(record(p, R"("","""",x"y,ü)", R"("path":"/p")") ==
          R"({"ts":"","sensor":"\"","value":"x\"y","note":"ü","path":"/p"})");
    CHECK(skip(p, "ts,sensor,value,note") == line_reason::kCsvHeader);
    CHECK(skip(p, "") == line_reason::kEmptyLine);
    CHECK(refusal(p, "1,2,3") == line_reason::kCsvBadRow);
    CHECK(refusal(p, "1,2,3,4,5") == line_reason::kCsvBadRow);
    CHECK(refusal(p, "1,2,3,4,") == line_reason::kCsvBadRow);
    CHECK(refusal(p, R"(1,"open,3,4)") == line_reason::kCsvBadRow);
    CHECK(refusal(p, R"(1,"closed"junk,3,4)") == line_reason::kCsvBadRow);
    CHECK(refusal(p, "1,\xff,3,4") == line_reason::kInvalidUtf8);
  }

  TEST_CASE("csv: other delimiters") {
    LineFormatSpec spec;
    spec.format = LineFormat::kCsv;
    spec.columns = {"a", "b"};
    spec.delimiter = ';';
    LineParser semi = makeParser(spec);
    CHECK(record(semi, R"(1,5;"x;y")") == R"({"a":"1,5","b":"x;y"})");
    spec.delimiter = '\t';
    LineParser tab = makeParser(spec);
    CHECK(record(tab, "1\tsome text") == R"({"a":1,"b":"some text"})");
    CHECK(refusal(tab, "1,2") == line_reason::kCsvBadRow);
  }

  TEST_CASE("influx: line protocol to measurement, tags, fields and time") {
    LineParser p = makeParser(LineFormat::kInflux);
    CHECK(
        record(
            p,
            "cpu,host=server01,region=us-west usage_idle=98.5,usage_user=1 1434055562000000000") ==
        R"({"measurement":"cpu","tags":{"host":"server01","region":"us-west"},)"
        R"("fields":{"usage_idle":98.5,"usage_user":1},"time":1434055562000000000})");
    CHECK(
        record(
            p,
            R"(my\ meas\,ure,tag\ key=tag\,va\=lue field\=key="str \"q\" \\ b\n",i=-42i,u=42u,t=t,f=FALSE -5)") ==
        R"({"measurement":"my meas,ure","tags":{"tag key":"tag,va=lue"},)"
        R"("fields":{"field=key":"str \"q\" \\ b\\n","i":-42,"u":42,"t":true,"f":false},"time":-5})");
    CHECK(record(p, "m v=.5,w=+2,x=1.,y=1E3,z=007i") ==
          R"({"measurement":"m","tags":{},"fields":{"v":0.5,"w":2,"x":1,"y":1E3,"z":7}})");
    CHECK(
        record(p, "m s=\"with space, comma=equals\" 1\r\n", R"("topic":"t")") ==
        R"({"measurement":"m","tags":{},"fields":{"s":"with space, comma=equals"},"time":1,"topic":"t"})");
    CHECK(record(p, "m,loc=Zürich temp=21.5") ==
          R"({"measurement":"m","tags":{"loc":"Zürich"},"fields":{"temp":21.5}})");
    CHECK(skip(p, "# a comment") == line_reason::kComment);
    CHECK(skip(p, "   ") == line_reason::kEmptyLine);
    CHECK(refusal(p, "cpu,host=a") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=abc") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=nan") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=1 notatime") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=1 1 2") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu,host value=1") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu,host= value=1") == line_reason::kBadInflux);
    CHECK(refusal(p, ",host=a value=1") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=\"open") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=1,") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=-1u") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu value=1.5i") == line_reason::kBadInflux);
    CHECK(refusal(p, "cpu v=99999999999999999999i") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, "cpu v=18446744073709551616u") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, "cpu v=1e400") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, "cpu v=1 99999999999999999999") == line_reason::kNumberOutOfRange);
    CHECK(refusal(p, "cpu v=\"\xff\"") == line_reason::kInvalidUtf8);
  }

  TEST_CASE("regex: named groups become string fields") {
    LineFormatSpec spec;
    spec.format = LineFormat::kRegex;
    spec.pattern =
        R"re(^(?<ip>\S+) \S+ (?<user>\S+) \[(?<time>[^\]]+)\] "(?<request>[^"]*)" (?<status>\d{3})(?: (?<bytes>\d+))?$)re";
    LineParser p = makeParser(spec);
    CHECK(
        record(p, R"(10.0.0.1 - bob [24/Nov/2026:10:00:00 +0000] "GET /a?q=1 HTTP/1.1" 200 512)") ==
        R"({"ip":"10.0.0.1","user":"bob","time":"24/Nov/2026:10:00:00 +0000",)"
        R"("request":"GET /a?q=1 HTTP/1.1","status":"200","bytes":"512"})");
    // An optional group that took no part is left out.
    CHECK(record(p, "::1 - - [t] \"GET /\" 404\r\n", R"("path":"/log")") ==
          R"({"ip":"::1","user":"-","time":"t","request":"GET /","status":"404","path":"/log"})");
    CHECK(refusal(p, "not an access log line") == line_reason::kRegexNoMatch);
    CHECK(refusal(p, "10.0.0.1 - b\xff [t] \"r\" 200") == line_reason::kInvalidUtf8);

    spec.pattern = "(?<ch>.)(?<rest>.*)";
    LineParser u = makeParser(spec);
    CHECK(record(u, "𝄞ü\t\"") == R"({"ch":"𝄞","rest":"ü\t\""})");
  }

  TEST_CASE("regex: a pattern that backtracks without end is refused, not hung") {
    LineFormatSpec spec;
    spec.format = LineFormat::kRegex;
    spec.pattern = "^(?<x>(a|a)+)+$";
    LineParser p = makeParser(spec);
    const std::string line = std::string(40, 'a') + "b";
    const auto reason = refusal(p, line);
    CHECK((reason == line_reason::kRegexLimit || reason == line_reason::kRegexNoMatch));
  }

  TEST_CASE("make: spec errors name the key") {
    LineFormatSpec spec;
    spec.format = LineFormat::kRegex;
    spec.pattern = "(?<a>x";
    Result<LineParser> p = LineParser::make(spec);
    REQUIRE_FALSE(p.isOk());
    CHECK(p.status().code() == StatusCode::kInvalidArgument);
    CHECK(p.status().message().find(
              "pattern: does not compile at offset 6: missing closing parenthesis") !=
          std::string::npos);
    spec.pattern = "(x)+";
    p = LineParser::make(spec);
    REQUIRE_FALSE(p.isOk());
    CHECK(p.status().message().find("pattern: has no named group") != std::string::npos);
    spec.pattern = "";
    CHECK_FALSE(LineParser::make(spec).isOk());

    LineFormatSpec csv;
    csv.format = LineFormat::kCsv;
    p = LineParser::make(csv);
    REQUIRE_FALSE(p.isOk());
    CHECK(p.status().message().rfind("columns: ", 0) == 0);
    csv.columns = {"a", "b", "a"};
    p = LineParser::make(csv);
    REQUIRE_FALSE(p.isOk());
    CHECK(p.status().message().find("\"a\" is named twice") != std::string::npos);
    csv.columns = {"a", ""};
    CHECK_FALSE(LineParser::make(csv).isOk());
    csv.columns = {"a"};
    csv.delimiter = '"';
    p = LineParser::make(csv);
    REQUIRE_FALSE(p.isOk());
    CHECK(p.status().message().rfind("delimiter: ", 0) == 0);
  }

  TEST_CASE("options: the spec is read from a plugin's options, errors name the location") {
    Result<LineFormatSpec> s =
        lineFormatSpecFromOptions(options({{"format", std::string("csv")},
                                           {"columns", std::vector<std::string>{"a", "b"}},
                                           {"delimiter", std::string(";")},
                                           {"invalid_utf8", std::string("replace")}}));
    REQUIRE_MESSAGE(s.isOk(), s.status().toString());
    CHECK(s->format == LineFormat::kCsv);
    CHECK(s->columns == std::vector<std::string>{"a", "b"});
    CHECK(s->delimiter == ';');
    CHECK(s->invalid_utf8 == InvalidUtf8::kReplace);

    // Nothing set: json.
    s = lineFormatSpecFromOptions(Options{});
    REQUIRE(s.isOk());
    CHECK(s->format == LineFormat::kJson);

    auto error = [](Options o, std::string_view prefix = {}) {
      Result<LineFormatSpec> r = lineFormatSpecFromOptions(o, prefix);
      REQUIRE_FALSE(r.isOk());
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      return r.status().message();
    };
    std::string m =
        error(options({{"format", std::string("regex")}, {"pattern", std::string("a(?<n>b")}}));
    CHECK_MESSAGE(
        m.rfind("agent.yaml:11: inputs[2].pattern: does not compile at offset 7: ", 0) == 0, m);
    m = error(options({{"format", std::string("regex")}, {"pattern", std::string("[a-z]+")}}));
    CHECK_MESSAGE(m.rfind("agent.yaml:11: inputs[2].pattern: has no named group", 0) == 0, m);
    m = error(options({{"format", std::string("regex")}}));
    CHECK_MESSAGE(m.rfind("agent.yaml:10: inputs[2].format: format regex needs `pattern`", 0) == 0,
                  m);
    m = error(options({{"format", std::string("csv")}}));
    CHECK_MESSAGE(m.find("inputs[2].format: format csv needs `columns`") != std::string::npos, m);
    m = error(options({{"format", std::string("json")}, {"pattern", std::string("(?<a>.)")}}));
    CHECK_MESSAGE(
        m.find("inputs[2].pattern: pattern applies only to format regex") != std::string::npos, m);
    m = error(
        options({{"format", std::string("text")}, {"columns", std::vector<std::string>{"a"}}}));
    CHECK_MESSAGE(
        m.find("inputs[2].columns: columns applies only to format csv") != std::string::npos, m);
    m = error(options({{"format", std::string("csv")},
                       {"columns", std::vector<std::string>{"a"}},
                       {"delimiter", std::string("::")}}));
    CHECK_MESSAGE(
        m.find("inputs[2].delimiter: the delimiter must be one byte") != std::string::npos, m);
    m = error(options({{"format", std::string("json")}, {"invalid_utf8", std::string("replace")}}));
    CHECK_MESSAGE(m.find("inputs[2].invalid_utf8: replace does not apply to format json") !=
                      std::string::npos,
                  m);
    m = error(options({{"format", std::string("yaml")}}));
    CHECK_MESSAGE(m.find("inputs[2].format: expected json, text") != std::string::npos, m);

    // With a prefix (a nested object: `parse: {format: ..}`).
    s = lineFormatSpecFromOptions(
        options({{"parse.format", std::string("logfmt")}, {"format", std::string("csv")}}),
        "parse.");
    REQUIRE_MESSAGE(s.isOk(), s.status().toString());
    CHECK(s->format == LineFormat::kLogfmt);
    m = error(
        options({{"parse.format", std::string("regex")}, {"parse.pattern", std::string("(")}}),
        "parse.");
    CHECK_MESSAGE(m.find("inputs[2].parse.pattern: does not compile") != std::string::npos, m);
  }

  TEST_CASE("options: the shared table splices into a plugin's own") {
    static constexpr OptionSpec kOwn[] = {{.key = "paths", .type = OptionType::kStringList}};
    static constexpr auto kAll = withLineFormatOptions(kOwn);
    static_assert(kAll.size() == 1 + std::size(kLineFormatOptions));
    CHECK(kAll[0].key == "paths");
    std::vector<std::string_view> keys;
    for (const OptionSpec& o : kAll) keys.push_back(o.key);
    CHECK(keys == std::vector<std::string_view>{"paths", "format", "pattern", "columns",
                                                "delimiter", "invalid_utf8"});
    CHECK(kAll[1].choices.size() == 6);
    LineFormat f{};
    for (std::string_view name : kLineFormatChoices) {
      REQUIRE(parseLineFormat(name, &f));
      CHECK(lineFormatName(f) == name);
    }
    CHECK_FALSE(parseLineFormat("xml", &f));
  }

  TEST_CASE("appendExtraMember builds the extra member list") {
    std::string extra;
    appendExtraMember(extra, "path", "/var/log/a \"b\".log");
    appendExtraMember(extra, "topic", "t/1");
    CHECK(extra == R"("path":"/var/log/a \"b\".log","topic":"t/1")");
  }

  TEST_CASE("8 MiB lines in every format, in linear time") {
    const size_t big = 8u << 20;
    const auto t0 = std::chrono::steady_clock::now();
    std::string value(big, 'v');
    for (size_t i = 0; i < big; i += 1000) value[i] = ' ';
    {
      LineParser p = makeParser(LineFormat::kJson);
      std::string line = "{\"s\":\"" + value + "\",\"n\":1}";
      CHECK(record(p, line).size() == line.size());
      CHECK(record(p, line, "\"k\":\"v\"").size() == line.size() + 8);
    }
    {
      LineParser p = makeParser(LineFormat::kText);
      std::string line = value;
      for (size_t i = 0; i < big; i += 3) line[i] = '"';  // every third byte escaped
      CHECK(record(p, line).size() > big + big / 3);
    }
    {
      LineParser p = makeParser(LineFormat::kLogfmt);
      std::string line;
      for (size_t i = 0; line.size() < big; ++i)
        line += "k" + std::to_string(i) + "=" + std::to_string(i) + " ";
      line += "q=\"" + std::string(big, '\\') + "\"";  // 4 Mi escaped backslashes
      CHECK(record(p, line).size() > big);
    }
    {
      LineFormatSpec spec;
      spec.format = LineFormat::kCsv;
      spec.columns = {"a", "b"};
      LineParser p = makeParser(spec);
      std::string quoted(big, '"');  // 4 Mi escaped quotes
      CHECK(record(p, "1,\"" + quoted + "\"").size() > big);
      CHECK(refusal(p, std::string(big, ',')) == line_reason::kCsvBadRow);
    }
    {
      LineParser p = makeParser(LineFormat::kInflux);
      std::string line =
          "m,t=" + std::string(big / 2, 'x') + " s=\"" + std::string(big / 2, 'y') + "\" 1";
      CHECK(record(p, line).size() > big);
    }
    {
      LineFormatSpec spec;
      spec.format = LineFormat::kRegex;
      spec.pattern = "^(?<first>\\S+) (?<rest>.*)$";
      LineParser p = makeParser(spec);
      CHECK(record(p, "head " + value).size() > big);
    }
    // Quadratic work on 8 MiB would take hours; this bound is loose enough for a busy machine.
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
  }

  TEST_CASE("a parser is reused for many lines without state leaking between them") {
    LineFormatSpec spec;
    spec.format = LineFormat::kCsv;
    spec.columns = {"n", "s"};
    LineParser p = makeParser(spec);
    RecordBatch batch;
    for (int i = 0; i < 1000; ++i) {
      const std::string line =
          i % 7 == 0 ? "broken" : std::to_string(i) + ",\"a\"\"" + std::to_string(i) + "\"";
      const LineOutcome o = p.parse(line, batch);
      CHECK(o.appended() == (i % 7 != 0));
    }
    REQUIRE(batch.size() == 1000 - 143);
    CHECK(batch[0] == R"({"n":1,"s":"a\"1"})");
    CHECK(batch[batch.size() - 1] == R"({"n":999,"s":"a\"999"})");
  }
}

TEST_SUITE("common.json") {
  TEST_CASE("UTF-8 helpers: sequence lengths and replacement") {
    CHECK(validUtf8SequenceLength("a", 0) == 1);
    CHECK(validUtf8SequenceLength("é", 0) == 2);
    CHECK(validUtf8SequenceLength("✓", 0) == 3);
    CHECK(validUtf8SequenceLength("𝄞", 0) == 4);
    CHECK(validUtf8SequenceLength("\xc0\xaf", 0) == 0);          // overlong
    CHECK(validUtf8SequenceLength("\xed\xa0\x80", 0) == 0);      // surrogate
    CHECK(validUtf8SequenceLength("\xf4\x90\x80\x80", 0) == 0);  // above U+10FFFF
    CHECK(validUtf8SequenceLength("\xe2\x9c", 0) == 0);          // cut short
    CHECK(validUtf8SequenceLength("\x80", 0) == 0);
    std::string out;
    appendUtf8Replacing(out,
                        "a\xff"
                        "b\xe2\x9c"
                        "é");
    CHECK(out ==
          "a\xEF\xBF\xBD"
          "b\xEF\xBF\xBD\xEF\xBF\xBD"
          "é");
    out.clear();
    appendJsonString(out, "q\"\xffz");
    CHECK(out == "\"q\\\"\\ufffdz\"");
  }
}
