#include "ferry/record_fields.h"

#include <doctest/doctest.h>

#include <string>

using namespace ferry;

namespace {

FieldPath path(std::string_view text) {
  auto p = parseFieldPath(text);
  REQUIRE_MESSAGE(p.isOk(), p.status().message());
  return *p;
}

std::string found(std::string_view record, std::string_view p) {
  std::string scratch;
  std::string_view v;
  FieldPath fp = path(p);
  FindResult r = findField(record, fp, &v, scratch);
  if (r == FindResult::kMissing) return "<missing>";
  if (r == FindResult::kMalformed) return "<malformed>";
  return std::string(v);
}

std::string edited(const FieldEditor& e, std::string_view record) {
  std::string out;
  FieldEditor::Scratch s;
  if (!e.apply(record, out, s)) return "<malformed>";
  return out;
}

}  // namespace

TEST_SUITE("common.record_fields") {
  TEST_CASE("field paths: dots, backticks, errors with columns") {
    CHECK(path("a") == FieldPath{"a"});
    CHECK(path("a.b-c.d_1") == FieldPath{"a", "b-c", "d_1"});
    CHECK(path("`odd key`.x") == FieldPath{"odd key", "x"});
    CHECK(path("`a.b`") == FieldPath{"a.b"});
    CHECK(path("`ünï`") == FieldPath{"ünï"});
    CHECK(formatFieldPath({"a", "odd key", "b.c", "x"}) == "a.`odd key`.`b.c`.x");
    CHECK(parseFieldPath("").status().message() == "column 1: expected a field name");
    CHECK(parseFieldPath("a..b").status().message().rfind(
              "column 3: expected a field name, got '.'", 0) == 0);
    CHECK(parseFieldPath("a b").status().message().rfind("column 2: unexpected ' ' in field path",
                                                         0) == 0);
    CHECK(parseFieldPath("`a").status().message() == "column 1: unterminated ` in field name");
    CHECK(parseFieldPath("``").status().message() == "column 1: empty field name ``");
    size_t used = 0;
    auto p = parseFieldPath("a.b == 3", &used);
    REQUIRE(p.isOk());
    CHECK(used == 3);
  }

  TEST_CASE("findField walks nested objects and unescapes keys") {
    const std::string r =
        R"( { "a" : { "b" : [1, {"x":"}"}], "c": {"d": "v\"q"} }, "k\u00e9": 1, "n": -2.5e3 } )";
    CHECK(found(r, "a.b") == R"([1, {"x":"}"}])");
    CHECK(found(r, "a.c.d") == R"("v\"q")");
    CHECK(found(r, "a.c") == R"({"d": "v\"q"})");
    CHECK(found(r, "`ké`") == "1");
    CHECK(found(r, "n") == "-2.5e3");
    CHECK(found(r, "a.x") == "<missing>");
    CHECK(found(r, "n.x") == "<missing>");
    CHECK(found("{}", "a") == "<missing>");
    CHECK(found("[1]", "a") == "<malformed>");
    CHECK(found(R"({"a":1,})", "b") == "<malformed>");
    CHECK(found(R"({"a":{"b":1)", "a.b") == "<malformed>");
    CHECK(found(R"({"a":{"b":1)", "c") == "<malformed>");
    CHECK(found(R"({"a" "b"})", "a") == "<malformed>");
  }

  TEST_CASE("unescapeJsonString handles escapes, surrogate pairs and lone surrogates") {
    std::string out;
    REQUIRE(unescapeJsonString(R"(a\"b\\c\/\n\t\u00e9\ud83d\ude00)", out));
    CHECK(out == "a\"b\\c/\n\té\xF0\x9F\x98\x80");
    REQUIRE(unescapeJsonString(R"(\ud800x)", out));
    CHECK(out == "\xEF\xBF\xBDx");
    CHECK_FALSE(unescapeJsonString(R"(\x)", out));
    CHECK_FALSE(unescapeJsonString(R"(\u12)", out));
    CHECK_FALSE(unescapeJsonString("\\", out));
  }

  TEST_CASE("set, remove and rename, top level and nested, keeping untouched bytes") {
    FieldEditor e;
    e.set(path("site"), R"("north")");
    e.set(path("meta.unit"), R"("C")");
    e.remove(path("debug"));
    e.remove(path("meta.raw"));
    e.rename(path("t"), path("temp"));
    REQUIRE(e.compile().isOk());
    CHECK(edited(e, R"({"t":21.50,"debug":true,"meta":{"raw":"x","id":7},"n":1e2})") ==
          R"({"meta":{"id":7,"unit":"C"},"n":1e2,"site":"north","temp":21.50})");  // a new field
                                                                                   // goes last
    // Missing fields: set creates them (and their parents), remove/rename do nothing.
    CHECK(edited(e, R"({"x":1})") == R"({"x":1,"site":"north","meta":{"unit":"C"}})");
    // A set below a value that is not an object replaces it.
    CHECK(edited(e, R"({"meta":5,"site":"south"})") == R"({"meta":{"unit":"C"},"site":"north"})");
    // The rename target is replaced when the source exists, kept when it does not.
    CHECK(edited(e, R"({"temp":1,"t":2})") == R"({"temp":2,"site":"north","meta":{"unit":"C"}})");
    CHECK(edited(e, R"({"temp":1})") == R"({"temp":1,"site":"north","meta":{"unit":"C"}})");
    CHECK(edited(e, R"({"t":)") == "<malformed>");
  }

  TEST_CASE("rename across objects and keys that need escaping") {
    FieldEditor e;
    e.rename(path("a.b"), path("`new key`.c"));
    e.set(path("`quote\"d`"), "1");
    REQUIRE(e.compile().isOk());
    CHECK(edited(e, R"({"a":{"b":[1,2],"z":0}})") ==
          R"({"a":{"z":0},"new key":{"c":[1,2]},"quote\"d":1})");
  }

  TEST_CASE("escaped keys in records match their unescaped names") {
    FieldEditor e;
    e.remove(path("`ké`"));
    REQUIRE(e.compile().isOk());
    CHECK(edited(e, R"({"k\u00e9":1,"b":2})") == R"({"b":2})");
    CHECK(edited(e, R"({"ké":1,"b":2})") == R"({"b":2})");
  }

  TEST_CASE("keep leaves only the kept paths and the objects leading to them") {
    FieldEditor e;
    e.keep(path("ts"));
    e.keep(path("dev.id"));
    REQUIRE(e.compile().isOk());
    CHECK(edited(e, R"({"ts":1,"x":2,"dev":{"id":"a","fw":"1.2"},"y":{"z":1}})") ==
          R"({"ts":1,"dev":{"id":"a"}})");
    CHECK(edited(e, R"({"dev":{"fw":"1.2"},"x":1})") == "{}");
    CHECK(edited(e, R"({"dev":"flat","ts":3})") == R"({"ts":3})");
  }

  TEST_CASE("conflicting edits are refused at compile time") {
    FieldEditor a;
    a.set(path("a"), "1");
    a.remove(path("a.b"));
    CHECK(a.compile().message() == "field a is edited and so is a field inside it (a.b)");
    FieldEditor b;
    b.rename(path("a"), path("a.b"));
    CHECK(b.compile().message() == "field a is edited and so is a field inside it (a.b)");
    FieldEditor c;
    c.keep(path("a"));
    c.remove(path("b"));
    CHECK(c.compile().message() == "keep cannot be combined with other edits (b)");
    FieldEditor d;
    d.rename(path("x.y"), path("x"));
    CHECK_FALSE(d.compile().isOk());
    FieldEditor chain;
    chain.rename(path("a"), path("b"));
    chain.rename(path("b"), path("c"));
    CHECK(chain.compile().message() == "field b is renamed and also edited otherwise");
    FieldEditor twice;
    twice.rename(path("a"), path("x"));
    twice.rename(path("b"), path("x"));
    CHECK(twice.compile().message() ==
          "field x is the target of a rename and also edited otherwise");
  }
}
