#include "plugins/processors/common/dom_fields.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace ferry::processors {
namespace {

simdjson::dom::element parsed(RecordParser& p, std::string_view text) {
  simdjson::dom::element root;
  REQUIRE(p.parse(text, &root));
  return root;
}

TEST_SUITE("processors.dom_fields") {
  TEST_CASE("field paths walk nested objects and refuse empty segments") {
    RecordParser p;
    simdjson::dom::element root = parsed(p, R"({"a":{"b":{"c":5}},"x":[1],"s":"t"})");
    Result<DomField> abc = DomField::parse("a.b.c");
    REQUIRE(abc.isOk());
    simdjson::dom::element v;
    REQUIRE(abc->find(root, &v));
    double d = 0;
    CHECK(numberOf(v, &d));
    CHECK(d == 5);
    CHECK_FALSE(DomField::parse("a.c")->find(root, &v));
    CHECK_FALSE(DomField::parse("s.t")->find(root, &v));  // a step through a string
    CHECK_FALSE(DomField::parse("x.0")->find(root, &v));  // arrays are not walked
    CHECK_FALSE(DomField::parse("").isOk());
    CHECK_FALSE(DomField::parse("a.").isOk());
    CHECK_FALSE(DomField::parse(".a").isOk());
    CHECK_FALSE(DomField::parse("a..b").isOk());
    // The path syntax of ferry/record_fields.h: backticks around a key holding a dot.
    simdjson::dom::element odd = parsed(p, R"({"site.id":{"x":7}})");
    Result<DomField> quoted = DomField::parse("`site.id`.x");
    REQUIRE(quoted.isOk());
    CHECK(quoted->name() == "`site.id`.x");
    REQUIRE(quoted->find(odd, &v));
    CHECK((numberOf(v, &d) && d == 7));
  }

  TEST_CASE("numberOf takes integers and doubles only") {
    RecordParser p;
    simdjson::dom::element root =
        parsed(p, R"({"i":-3,"u":18446744073709551615,"d":2.5,"s":"1","b":true,"n":null})");
    double d = 0;
    CHECK((numberOf(root["i"].value(), &d) && d == -3));
    CHECK((numberOf(root["u"].value(), &d) && d == 18446744073709551615.0));
    CHECK((numberOf(root["d"].value(), &d) && d == 2.5));
    CHECK_FALSE(numberOf(root["s"].value(), &d));
    CHECK_FALSE(numberOf(root["b"].value(), &d));
    CHECK_FALSE(numberOf(root["n"].value(), &d));
  }

  TEST_CASE("values are written back as compact JSON; non-finite numbers as null") {
    RecordParser p;
    const std::string text =
        R"({"a":[1,-2,3.25,"x\"y\u001f",true,false,null,{}],"b":{"c":[]},"u":18446744073709551615})";
    simdjson::dom::element root = parsed(p, text);
    std::string out;
    appendJsonValue(out, root);
    CHECK(
        out ==
        R"({"a":[1,-2,3.25,"x\"y\u001f",true,false,null,{}],"b":{"c":[]},"u":18446744073709551615})");
    out.clear();
    appendNumber(out, 0.1);
    out += ' ';
    appendNumber(out, 1e300 * 1e300);
    out += ' ';
    appendNumber(out, std::numeric_limits<double>::quiet_NaN());
    out += ' ';
    appendNumber(out, 42);
    CHECK(out == "0.1 null null 42");
  }

  TEST_CASE("series keys separate streams, types, missing and null; fields come back out") {
    RecordParser p;
    SeriesKey key({*DomField::parse("id"), *DomField::parse("loc.room")});
    std::string k1;
    std::string k2;
    key.build("s", parsed(p, R"({"id":1,"loc":{"room":"a b"}})"), k1);
    key.build("s", parsed(p, R"({"id":"1","loc":{"room":"a b"}})"), k2);
    CHECK(k1 != k2);
    key.build("t", parsed(p, R"({"id":1,"loc":{"room":"a b"}})"), k2);
    CHECK(k1 != k2);
    key.build("s", parsed(p, R"({"id":null})"), k1);
    key.build("s", parsed(p, R"({})"), k2);
    CHECK(k1 != k2);

    std::string fields;
    key.build("s", parsed(p, R"({"id":7,"loc":{"room":"a\"b"}})"), k1);
    key.appendFields(k1, fields);
    CHECK(fields == R"(,"id":7,"loc.room":"a\"b")");
    fields.clear();
    key.appendFields(k2, fields);  // neither field present
    CHECK(fields.empty());
  }
}

}  // namespace
}  // namespace ferry::processors
