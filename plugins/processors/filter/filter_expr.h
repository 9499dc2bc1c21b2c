// The filter processor's expression language: a hand-written tokenizer and recursive-descent
// parser into a small tree, evaluated per record against the record's JSON text. Nothing is
// executed but comparisons: there is no eval, no function call beyond exists(), no loop.
//
//   expr       := or
//   or         := and ("or" and)*
//   and        := unary ("and" unary)*
//   unary      := "not" unary | primary
//   primary    := "(" expr ")" | "exists" "(" path ")" | operand [op operand]
//   op         := "==" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~"   (=~ and !~ need a
//                 string literal on the right: a PCRE2 pattern, compiled once)
//   operand    := path | number | string | true | false | null
//   path       := a field path (ferry/record_fields.h): a.b.c, `odd key`.x
//   string     := "..." or '...' with JSON escapes (\" \' \\ \n \t \uXXXX)
//
// Types (docs in the plugin README): a missing field reads as null. == / != compare values of
// the same type (numbers as doubles, strings byte for byte after unescaping); values of two
// different types are unequal. < <= > >= hold only between two numbers or two strings, else
// they are false. =~ holds when the left side is a string the pattern finds a match in (not
// anchored); !~ is its negation. A path alone holds when the field is the boolean true.
// Objects and arrays equal nothing.
//
// Limits: 4096 bytes of expression text, 32 levels of nesting (parentheses and not).
//
// Thread-safety: a FilterExpression is used by one thread at a time (the processor's calls are
// serialised by the core); it owns its regex match data. Ownership: it keeps no reference to
// the expression text or to records.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

class FilterExpression {
 public:
  // Errors read "column 14: expected ')' after \"(temp > 3\"".
  static Result<FilterExpression> parse(std::string_view text);

  FilterExpression(FilterExpression&&) noexcept;
  FilterExpression& operator=(FilterExpression&&) noexcept;
  ~FilterExpression();

  enum class Outcome : uint8_t { kTrue, kFalse, kMalformed, kRegexLimit };
  // Evaluates against one record (a JSON object). kMalformed: the record is not a JSON
  // object this code can read; kRegexLimit: the regex engine gave up (backtracking limit).
  Outcome evaluate(std::string_view record);

  struct State;  // the parsed tree and its scratch (filter_expr.cpp)

 private:
  explicit FilterExpression(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace ferry
