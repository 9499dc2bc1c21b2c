#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "plugins/processors/filter/filter_expr.h"
#include "tests/support/processor_harness.h"

namespace ferry {
const PluginDescriptor& filterProcessorDescriptor();

namespace {

using Outcome = FilterExpression::Outcome;

Outcome eval(std::string_view expr, std::string_view record) {
  auto e = FilterExpression::parse(expr);
  REQUIRE_MESSAGE(e.isOk(), e.status().message());
  return e->evaluate(record);
}

std::string parseError(std::string_view expr) {
  auto e = FilterExpression::parse(expr);
  REQUIRE_FALSE(e.isOk());
  return e.status().message();
}

Result<std::unique_ptr<Processor>> makeFilter(std::string_view yaml) {
  return test::makeProcessor(filterProcessorDescriptor(), yaml);
}

using test::batchOf;
using test::recordsOf;

}  // namespace

TEST_SUITE("processors.filter") {
  TEST_CASE("comparisons of numbers, strings, booleans and null") {
    const std::string r = R"({"temp":21.5,"site":"north","ok":true,"n":null,"count":3})";
    CHECK(eval("temp > 20", r) == Outcome::kTrue);
    CHECK(eval("temp >= 21.5", r) == Outcome::kTrue);
    CHECK(eval("temp < 21.5", r) == Outcome::kFalse);
    CHECK(eval("temp <= -1e3", r) == Outcome::kFalse);
    CHECK(eval("count == 3.0", r) == Outcome::kTrue);
    CHECK(eval("site == \"north\"", r) == Outcome::kTrue);
    CHECK(eval("site == 'north'", r) == Outcome::kTrue);
    CHECK(eval("site != \"south\"", r) == Outcome::kTrue);
    CHECK(eval("site < \"p\"", r) == Outcome::kTrue);
    CHECK(eval("ok == true", r) == Outcome::kTrue);
    CHECK(eval("ok", r) == Outcome::kTrue);
    CHECK(eval("not ok", r) == Outcome::kFalse);
    CHECK(eval("n == null", r) == Outcome::kTrue);
    CHECK(eval("true", r) == Outcome::kTrue);
    CHECK(eval("false or temp > 1", r) == Outcome::kTrue);
  }

  TEST_CASE("type rules: different types are unequal and unordered, a missing field is null") {
    const std::string r = R"({"temp":"21","count":3,"obj":{"a":1},"arr":[1]})";
    CHECK(eval("temp == 21", r) == Outcome::kFalse);  // string vs number
    CHECK(eval("temp != 21", r) == Outcome::kTrue);
    CHECK(eval("temp > 1", r) == Outcome::kFalse);  // not ordered
    CHECK(eval("temp <= 100", r) == Outcome::kFalse);
    CHECK(eval("missing == null", r) == Outcome::kTrue);
    CHECK(eval("missing > 0", r) == Outcome::kFalse);
    CHECK(eval("missing < 0", r) == Outcome::kFalse);
    CHECK(eval("missing != 1", r) == Outcome::kTrue);
    CHECK(eval("missing", r) == Outcome::kFalse);
    CHECK(eval("count", r) == Outcome::kFalse);  // only the boolean true holds alone
    CHECK(eval("obj == obj", r) == Outcome::kFalse);
    CHECK(eval("arr != 1", r) == Outcome::kTrue);
    CHECK(eval("exists(obj.a)", r) == Outcome::kTrue);
    CHECK(eval("exists(obj.b)", r) == Outcome::kFalse);
    CHECK(eval("exists(temp.x)", r) == Outcome::kFalse);  // temp is not an object
  }

  TEST_CASE("and, or, not and parentheses follow precedence") {
    const std::string r = R"({"a":1,"b":2,"c":3})";
    CHECK(eval("a == 1 or b == 5 and c == 5", r) == Outcome::kTrue);  // and binds tighter
    CHECK(eval("(a == 1 or b == 5) and c == 5", r) == Outcome::kFalse);
    CHECK(eval("not a == 2 and not (b == 3)", r) == Outcome::kTrue);
    CHECK(eval("not not a == 1", r) == Outcome::kTrue);
  }

  TEST_CASE("nested and quoted field paths, escaped keys and unicode") {
    const std::string r =
        R"({"dev":{"loc":{"room":"kitchen"}},"odd key":5,"a.b":7,"k\u00e9y":"caf\u00e9","name":"Zürich","esc":"say \"hi\""})";
    CHECK(eval("dev.loc.room == \"kitchen\"", r) == Outcome::kTrue);
    CHECK(eval("`odd key` == 5", r) == Outcome::kTrue);
    CHECK(eval("`a.b` == 7", r) == Outcome::kTrue);
    CHECK(eval("a.b == 7", r) == Outcome::kFalse);
    CHECK(eval("`kéy` == \"café\"", r) == Outcome::kTrue);
    CHECK(eval("name == \"Z\\u00fcrich\"", r) == Outcome::kTrue);
    CHECK(eval("name =~ \"^Z.rich$\"", r) == Outcome::kTrue);  // . is one code point (UTF mode)
    CHECK(eval("esc == 'say \"hi\"'", r) == Outcome::kTrue);
  }

  TEST_CASE("regex match and its negation") {
    const std::string r = R"({"msg":"disk /dev/sda1 FULL","n":5})";
    CHECK(eval("msg =~ \"FULL\"", r) == Outcome::kTrue);
    CHECK(eval("msg =~ \"^disk /dev/sd[a-z][0-9]+ \"", r) == Outcome::kTrue);
    CHECK(eval("msg =~ \"(?i)full\"", r) == Outcome::kTrue);
    CHECK(eval("msg !~ \"empty\"", r) == Outcome::kTrue);
    CHECK(eval("n =~ \"5\"", r) == Outcome::kFalse);  // not a string
    CHECK(eval("n !~ \"5\"", r) == Outcome::kTrue);
    CHECK(eval("missing =~ \".*\"", r) == Outcome::kFalse);
  }

  TEST_CASE("a pathological regex hits the backtracking limit instead of hanging") {
    const std::string r =
        R"({"s":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"})";
    CHECK(eval("s =~ \"^(a+)+$\"", r) == Outcome::kRegexLimit);
  }

  TEST_CASE("a malformed record is reported, not guessed") {
    CHECK(eval("a == 1", "not json") == Outcome::kMalformed);
    CHECK(eval("a == 1", R"({"a":)") == Outcome::kMalformed);
    CHECK(eval("a == 1", R"({"a" 1})") == Outcome::kMalformed);
    CHECK(eval("exists(b)", R"({"a":"unterminated})") == Outcome::kMalformed);
  }

  TEST_CASE("parse errors name the column and what was expected") {
    CHECK(parseError("(temp > 3") == "column 10: expected ')' after \"(temp > 3\"");
    CHECK(parseError("temp > 3 and (site == \"x\" or") ==
          "column 29: expected a field, a value, not or '(' after \"temp > 3 and (site == \"x\" "
          "or\"");
    CHECK(parseError("temp > ") ==
          "column 8: expected a field or a value after \">\" after \"temp >\"");
    CHECK(parseError("temp = 3") == "column 6: unexpected '=' (equality is ==)");
    CHECK(parseError("temp > 3 site") ==
          "column 10: unexpected \"site\" after \"temp > 3\" (expected and, or, or the end)");
    CHECK(parseError("site == \"north") == "column 9: unterminated string");
    CHECK(parseError("a =~ 5") ==
          "column 6: expected a string literal (the regular expression) after \"=~\" after \"a "
          "=~\", got \"5\"");
    CHECK(parseError("a =~ \"(unclosed\"")
              .find("column 6: bad regular expression: missing closing parenthesis") == 0);
    CHECK(parseError("1 < a < 3") ==
          "column 7: comparisons do not chain: use and (a < b and b < c)");
    CHECK(parseError("3") ==
          "column 1: a value alone is not a condition: compare it (==, <, =~, ...)");
    CHECK(parseError("") == "column 1: the expression is empty");
    CHECK(parseError("   ") == "column 1: the expression is empty");
    CHECK(parseError("exists(a, b)") ==
          "column 9: expected ')' (exists takes one field path) after \"exists(a\", got \",\"");
    CHECK(parseError("a == 1 # comment") == "column 8: unexpected character '#'");
    CHECK(parseError("a ==1and b") ==
          "column 5: bad number \"1a\" (a field name starting with a digit goes in backticks)");
    CHECK(parseError("`unclosed == 1") == "column 1: unterminated ` in field name");
    CHECK(parseError("a. == 1") ==
          "column 3: expected a field name, got ' ' (write names with other characters "
          "in backticks: `odd name`)");
  }

  TEST_CASE("nesting is capped") {
    std::string deep(40, '(');
    deep += "a == 1";
    deep += std::string(40, ')');
    CHECK(parseError(deep) == "column 33: nested more than 32 levels deep");
    std::string nots;
    for (int i = 0; i < 40; ++i) nots += "not ";
    nots += "a";
    CHECK(parseError(nots) == "column 129: nested more than 32 levels deep");
    std::string ok(30, '(');
    ok += "a == 1";
    ok += std::string(30, ')');
    CHECK(eval(ok, R"({"a":1})") == Outcome::kTrue);
    CHECK(parseError(std::string(5000, 'a')) == "expression longer than 4096 bytes");
    // A long flat chain is no nesting.
    std::string chain = "a == 0";
    for (int i = 1; i < 300; ++i) chain += " or a == " + std::to_string(i);
    CHECK(eval(chain, R"({"a":299})") == Outcome::kTrue);
  }

  TEST_CASE("the processor keeps or drops, counts filtered and refused records, keeps order") {
    auto keep = makeFilter("expression: 'temp > 20'\n");
    REQUIRE(keep.isOk());
    RecordBatch in =
        batchOf({R"({"temp":25,"i":1})", R"({"temp":15,"i":2})", R"({"temp":30,"i":3})", "garbage",
                 R"({"temp":"hot","i":5})", R"({"temp":21,"i":6})"});
    RecordBatch out;
    ProcessResult result;
    REQUIRE((*keep)->process("s", in, out, result).isOk());
    CHECK(recordsOf(out) == std::vector<std::string>{R"({"temp":25,"i":1})", R"({"temp":30,"i":3})",
                                                     R"({"temp":21,"i":6})"});
    CHECK(result.filtered == 2);
    REQUIRE(result.dropped.size() == 1);
    CHECK(result.dropped[0].first == "bad_json");
    CHECK(result.dropped[0].second == 1);

    auto drop = makeFilter("expression: 'temp > 20'\naction: drop\n");
    REQUIRE(drop.isOk());
    RecordBatch out2;
    ProcessResult r2;
    REQUIRE((*drop)->process("s", in, out2, r2).isOk());
    CHECK(recordsOf(out2) ==
          std::vector<std::string>{R"({"temp":15,"i":2})", R"({"temp":"hot","i":5})"});
    CHECK(r2.filtered == 3);

    RecordBatch empty, out3;
    ProcessResult r3;
    REQUIRE((*keep)->process("s", empty, out3, r3).isOk());
    CHECK(out3.empty());
    CHECK(r3.filtered == 0);
  }

  TEST_CASE("the factory names the option's location in errors") {
    CHECK(test::processorError(filterProcessorDescriptor(), "expression: 'temp >'\n") ==
          "<options>:1: expression: filter expression: column 7: expected a field or a value after "
          "\">\" after \"temp >\"");
    auto missing = optionsFromYaml("action: keep\n", filterProcessorDescriptor().options);
    CHECK_FALSE(missing.isOk());
  }
}

}  // namespace ferry
