#include "plugins/processors/filter/filter_expr.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "ferry/record_fields.h"

namespace ferry {

namespace {

constexpr size_t kMaxText = 4096;
constexpr int kMaxDepth = 32;
// Backtracking budget of one regex match: far above what a sane pattern needs on a record's
// field, far below a pathological pattern's blow-up.
constexpr uint32_t kMatchLimit = 200000;

enum class Tok : uint8_t {
  kPath,
  kString,
  kNumber,
  kTrue,
  kFalse,
  kNull,
  kAnd,
  kOr,
  kNot,
  kExists,
  kLParen,
  kRParen,
  kComma,
  kOp,
  kEnd
};

enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kMatch, kNotMatch };

struct Token {
  Tok kind = Tok::kEnd;
  size_t begin = 0;
  size_t end = 0;
  FieldPath path;    // kPath
  std::string text;  // kString (unescaped)
  double number = 0;
  CmpOp op = CmpOp::kEq;
};

enum class ValKind : uint8_t { kNull, kBool, kNumber, kString, kOther };

struct Literal {
  ValKind kind = ValKind::kNull;
  bool b = false;
  double num = 0;
  std::string str;
};

struct Operand {
  bool is_field = false;
  FieldPath path;
  Literal lit;
};

// A value read for one comparison; `str` points into the record, the literal or a scratch.
struct Val {
  ValKind kind = ValKind::kNull;
  bool b = false;
  double num = 0;
  std::string_view str;
};

enum class NodeKind : uint8_t { kOr, kAnd, kNot, kCompare, kExists, kTruthy, kConst };

struct Node {
  NodeKind kind = NodeKind::kConst;
  std::vector<uint32_t> children;  // kOr, kAnd, kNot
  CmpOp op = CmpOp::kEq;
  Operand lhs;       // kCompare, kExists / kTruthy (field), kConst (literal)
  Operand rhs;       // kCompare
  size_t regex = 0;  // kCompare with =~ / !~
};

struct Regex {
  pcre2_code* code = nullptr;
  pcre2_match_data* data = nullptr;
  Regex() = default;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  Regex(Regex&& o) noexcept
      : code(std::exchange(o.code, nullptr)), data(std::exchange(o.data, nullptr)) {}
  ~Regex() {
    if (data != nullptr) pcre2_match_data_free(data);
    if (code != nullptr) pcre2_code_free(code);
  }
};

bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '`';
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isFieldChar(char c) { return isIdentStart(c) || isDigit(c) || c == '-'; }

std::string column(size_t pos) { return "column " + std::to_string(pos + 1) + ": "; }

// The expression text before `pos`, trimmed, for "after ..." in messages.
std::string before(std::string_view text, size_t pos) {
  std::string_view s = text.substr(0, pos);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  if (s.size() > 40) return "..." + std::string(s.substr(s.size() - 40));
  return std::string(s);
}

Status tokenize(std::string_view text, std::vector<Token>* out) {
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    Token t;
    t.begin = i;
    if (c == '(' || c == ')' || c == ',') {
      t.kind = c == '(' ? Tok::kLParen : c == ')' ? Tok::kRParen : Tok::kComma;
      t.end = ++i;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      const char n = i + 1 < text.size() ? text[i + 1] : '\0';
      t.kind = Tok::kOp;
      size_t len = 2;
      if (c == '=' && n == '=')
        t.op = CmpOp::kEq;
      else if (c == '=' && n == '~')
        t.op = CmpOp::kMatch;
      else if (c == '!' && n == '=')
        t.op = CmpOp::kNe;
      else if (c == '!' && n == '~')
        t.op = CmpOp::kNotMatch;
      else if (c == '<' && n == '=')
        t.op = CmpOp::kLe;
      else if (c == '>' && n == '=')
        t.op = CmpOp::kGe;
      else if (c == '<')
        t.op = CmpOp::kLt, len = 1;
      else if (c == '>')
        t.op = CmpOp::kGt, len = 1;
      else if (c == '=')
        return invalidArgument(column(i) + "unexpected '=' (equality is ==)");
      else
        return invalidArgument(column(i) + "unexpected '!' (use != or !~, or not for negation)");
      i += len;
      t.end = i;
    } else if (c == '"' || c == '\'') {
      // Collect the raw inside, turning \' into ' and a bare " into \" so that the JSON
      // unescaper reads both quote styles.
      std::string raw;
      size_t j = i + 1;
      bool closed = false;
      while (j < text.size()) {
        const char d = text[j];
        if (d == '\\') {
          if (j + 1 >= text.size()) break;
          if (text[j + 1] == '\'') {
            raw.push_back('\'');
          } else {
            raw.push_back('\\');
            raw.push_back(text[j + 1]);
          }
          j += 2;
          continue;
        }
        if (d == c) {
          closed = true;
          break;
        }
        if (d == '"')
          raw += "\\\"";
        else
          raw.push_back(d);
        ++j;
      }
      if (!closed) return invalidArgument(column(i) + "unterminated string");
      if (!unescapeJsonString(raw, t.text)) {
        return invalidArgument(column(i) +
                               "bad escape in string (use \\\" \\' \\\\ \\n \\t \\uXXXX)");
      }
      t.kind = Tok::kString;
      i = j + 1;
      t.end = i;
    } else if (isDigit(c) || (c == '-' && i + 1 < text.size() && isDigit(text[i + 1]))) {
      size_t j = i + 1;
      while (j < text.size() &&
             (isDigit(text[j]) || text[j] == '.' || text[j] == 'e' || text[j] == 'E' ||
              ((text[j] == '+' || text[j] == '-') && (text[j - 1] == 'e' || text[j - 1] == 'E')))) {
        ++j;
      }
      if (j < text.size() && isFieldChar(text[j])) {
        return invalidArgument(column(i) + "bad number \"" +
                               std::string(text.substr(i, j - i + 1)) +
                               "\" (a field name starting with a digit goes in backticks)");
      }
      auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + j, t.number);
      if (ec != std::errc() || ptr != text.data() + j) {
        return invalidArgument(column(i) + "bad number \"" + std::string(text.substr(i, j - i)) +
                               "\"");
      }
      t.kind = Tok::kNumber;
      i = j;
      t.end = i;
    } else if (isIdentStart(c)) {
      size_t used = 0;
      auto path = parseFieldPath(text.substr(i), &used);
      if (!path.isOk()) {
        // Re-base the path parser's column on the whole expression.
        std::string msg = path.status().message();
        size_t col = 0;
        if (msg.rfind("column ", 0) == 0) {
          col = std::stoul(msg.substr(7));
          msg = msg.substr(msg.find(": ") + 2);
        }
        return invalidArgument(column(i + (col > 0 ? col - 1 : 0)) + msg);
      }
      const std::string_view word = text.substr(i, used);
      t.kind = Tok::kPath;
      if (word == "and")
        t.kind = Tok::kAnd;
      else if (word == "or")
        t.kind = Tok::kOr;
      else if (word == "not")
        t.kind = Tok::kNot;
      else if (word == "true")
        t.kind = Tok::kTrue;
      else if (word == "false")
        t.kind = Tok::kFalse;
      else if (word == "null")
        t.kind = Tok::kNull;
      else if (word == "exists")
        t.kind = Tok::kExists;
      else
        t.path = std::move(path).value();
      i += used;
      t.end = i;
    } else {
      return invalidArgument(column(i) + "unexpected character '" + std::string(1, c) + "'");
    }
    out->push_back(std::move(t));
  }
  Token end;
  end.kind = Tok::kEnd;
  end.begin = end.end = text.size();
  out->push_back(std::move(end));
  return Status::ok();
}

}  // namespace

struct FilterExpression::State {
  std::vector<Node> nodes;
  uint32_t root = 0;
  std::vector<Regex> regexes;
  pcre2_match_context* match_context = nullptr;
  std::string key_scratch;
  std::string str_scratch[2];

  ~State() {
    if (match_context != nullptr) pcre2_match_context_free(match_context);
  }

  // ---- evaluation ----
  // Reads an operand; false when the record is malformed.
  bool read(const Operand& o, std::string_view record, int slot, Val* v) {
    if (!o.is_field) {
      v->kind = o.lit.kind;
      v->b = o.lit.b;
      v->num = o.lit.num;
      v->str = o.lit.str;
      return true;
    }
    std::string_view raw;
    switch (findField(record, o.path, &raw, key_scratch)) {
      case FindResult::kMalformed:
        return false;
      case FindResult::kMissing:
        v->kind = ValKind::kNull;
        return true;
      case FindResult::kFound:
        break;
    }
    switch (jsonKindOf(raw)) {
      case JsonKind::kString: {
        std::string_view inner = raw.substr(1, raw.size() - 2);
        if (inner.find('\\') != std::string_view::npos) {
          if (!unescapeJsonString(inner, str_scratch[slot])) return false;
          inner = str_scratch[slot];
        }
        v->kind = ValKind::kString;
        v->str = inner;
        return true;
      }
      case JsonKind::kNumber: {
        auto [ptr, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v->num);
        if (ec == std::errc::result_out_of_range) {
          // Beyond double's range: the sign decides (±huge compares as ±infinity).
          v->num = raw[0] == '-' ? -HUGE_VAL : HUGE_VAL;
        } else if (ec != std::errc() || ptr != raw.data() + raw.size()) {
          return false;
        }
        v->kind = ValKind::kNumber;
        return true;
      }
      case JsonKind::kBool:
        if (raw != "true" && raw != "false") return false;
        v->kind = ValKind::kBool;
        v->b = raw == "true";
        return true;
      case JsonKind::kNull:
        if (raw != "null") return false;
        v->kind = ValKind::kNull;
        return true;
      case JsonKind::kObject:
      case JsonKind::kArray:
        v->kind = ValKind::kOther;
        return true;
      case JsonKind::kInvalid:
        return false;
    }
    return false;
  }

  static bool equal(const Val& a, const Val& b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
      case ValKind::kNull:
        return true;
      case ValKind::kBool:
        return a.b == b.b;
      case ValKind::kNumber:
        return a.num == b.num;
      case ValKind::kString:
        return a.str == b.str;
      case ValKind::kOther:
        return false;
    }
    return false;
  }

  // -1 / 0 / 1, or 2 when the two are not ordered (different or unordered types, NaN).
  static int order(const Val& a, const Val& b) {
    if (a.kind == ValKind::kNumber && b.kind == ValKind::kNumber) {
      if (a.num < b.num) return -1;
      if (a.num > b.num) return 1;
      return a.num == b.num ? 0 : 2;
    }
    if (a.kind == ValKind::kString && b.kind == ValKind::kString) {
      int c = a.str.compare(b.str);
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    return 2;
  }

  Outcome eval(uint32_t index, std::string_view record) {
    const Node& n = nodes[index];
    switch (n.kind) {
      case NodeKind::kConst:
        return n.lhs.lit.b ? Outcome::kTrue : Outcome::kFalse;
      case NodeKind::kOr:
      case NodeKind::kAnd: {
        const Outcome stop = n.kind == NodeKind::kOr ? Outcome::kTrue : Outcome::kFalse;
        for (uint32_t c : n.children) {
          Outcome o = eval(c, record);
          if (o == stop || o == Outcome::kMalformed || o == Outcome::kRegexLimit) return o;
        }
        return n.kind == NodeKind::kOr ? Outcome::kFalse : Outcome::kTrue;
      }
      case NodeKind::kNot: {
        Outcome o = eval(n.children[0], record);
        if (o == Outcome::kTrue) return Outcome::kFalse;
        if (o == Outcome::kFalse) return Outcome::kTrue;
        return o;
      }
      case NodeKind::kExists: {
        std::string_view raw;
        switch (findField(record, n.lhs.path, &raw, key_scratch)) {
          case FindResult::kFound:
            return Outcome::kTrue;
          case FindResult::kMissing:
            return Outcome::kFalse;
          case FindResult::kMalformed:
            return Outcome::kMalformed;
        }
        return Outcome::kMalformed;
      }
      case NodeKind::kTruthy: {
        Val v;
        if (!read(n.lhs, record, 0, &v)) return Outcome::kMalformed;
        return v.kind == ValKind::kBool && v.b ? Outcome::kTrue : Outcome::kFalse;
      }
      case NodeKind::kCompare: {
        Val a, b;
        if (!read(n.lhs, record, 0, &a)) return Outcome::kMalformed;
        bool r = false;
        if (n.op == CmpOp::kMatch || n.op == CmpOp::kNotMatch) {
          if (a.kind == ValKind::kString) {
            const Regex& re = regexes[n.regex];
            int rc = pcre2_match(re.code, reinterpret_cast<PCRE2_SPTR>(a.str.data()), a.str.size(),
                                 0, 0, re.data, match_context);
            if (rc >= 0) {
              r = true;
            } else if (rc != PCRE2_ERROR_NOMATCH) {
              return Outcome::kRegexLimit;
            }
          }
          if (n.op == CmpOp::kNotMatch) r = !r;
          return r ? Outcome::kTrue : Outcome::kFalse;
        }
        if (!read(n.rhs, record, 1, &b)) return Outcome::kMalformed;
        switch (n.op) {
          case CmpOp::kEq:
            r = equal(a, b);
            break;
          case CmpOp::kNe:
            r = !equal(a, b);
            break;
          case CmpOp::kLt:
            r = order(a, b) == -1;
            break;
          case CmpOp::kLe: {
            int o = order(a, b);
            r = o == -1 || o == 0;
            break;
          }
          case CmpOp::kGt:
            r = order(a, b) == 1;
            break;
          case CmpOp::kGe: {
            int o = order(a, b);
            r = o == 1 || o == 0;
            break;
          }
          default:
            break;
        }
        return r ? Outcome::kTrue : Outcome::kFalse;
      }
    }
    return Outcome::kFalse;
  }
};

namespace {

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens, FilterExpression::State& st)
      : text_(text), toks_(std::move(tokens)), st_(st) {}

  Result<uint32_t> parseAll() {
    auto root = parseOr(0);
    if (!root.isOk()) return root;
    if (peek().kind != Tok::kEnd) {
      return invalidArgument(column(peek().begin) + "unexpected " + describe(peek()) + " after \"" +
                             before(text_, peek().begin) + "\" (expected and, or, or the end)");
    }
    return root;
  }

 private:
  const Token& peek() const { return toks_[pos_]; }
  const Token& take() { return toks_[pos_ == toks_.size() - 1 ? pos_ : pos_++]; }

  std::string describe(const Token& t) const {
    if (t.kind == Tok::kEnd) return "end of expression";
    return "\"" + std::string(text_.substr(t.begin, t.end - t.begin)) + "\"";
  }

  Status expected(std::string_view what) const {
    const Token& t = peek();
    std::string ctx = before(text_, t.begin);
    std::string where = ctx.empty() ? std::string(" at the start") : " after \"" + ctx + "\"";
    if (t.kind == Tok::kEnd)
      return invalidArgument(column(t.begin) + "expected " + std::string(what) + where);
    return invalidArgument(column(t.begin) + "expected " + std::string(what) + where + ", got " +
                           describe(t));
  }

  uint32_t add(Node n) {
    st_.nodes.push_back(std::move(n));
    return static_cast<uint32_t>(st_.nodes.size() - 1);
  }

  Result<uint32_t> parseOr(int depth) { return parseChain(depth, Tok::kOr, NodeKind::kOr); }

  Result<uint32_t> parseChain(int depth, Tok sep, NodeKind kind) {
    auto first = sep == Tok::kOr ? parseChain(depth, Tok::kAnd, NodeKind::kAnd) : parseUnary(depth);
    if (!first.isOk() || peek().kind != sep) return first;
    Node n;
    n.kind = kind;
    n.children.push_back(*first);
    while (peek().kind == sep) {
      take();
      auto next =
          sep == Tok::kOr ? parseChain(depth, Tok::kAnd, NodeKind::kAnd) : parseUnary(depth);
      if (!next.isOk()) return next;
      n.children.push_back(*next);
    }
    return add(std::move(n));
  }

  Result<uint32_t> parseUnary(int depth) {
    if (peek().kind == Tok::kNot) {
      if (depth >= kMaxDepth)
        return invalidArgument(column(peek().begin) + "nested more than 32 levels deep");
      take();
      auto inner = parseUnary(depth + 1);
      if (!inner.isOk()) return inner;
      Node n;
      n.kind = NodeKind::kNot;
      n.children.push_back(*inner);
      return add(std::move(n));
    }
    return parsePrimary(depth);
  }

  Result<uint32_t> parsePrimary(int depth) {
    const Token& t = peek();
    if (t.kind == Tok::kLParen) {
      if (depth >= kMaxDepth)
        return invalidArgument(column(t.begin) + "nested more than 32 levels deep");
      take();
      auto inner = parseOr(depth + 1);
      if (!inner.isOk()) return inner;
      if (peek().kind != Tok::kRParen) return expected("')'");
      take();
      return inner;
    }
    if (t.kind == Tok::kExists) {
      take();
      if (peek().kind != Tok::kLParen) return expected("'(' after exists");
      take();
      if (peek().kind != Tok::kPath) return expected("a field path in exists()");
      Node n;
      n.kind = NodeKind::kExists;
      n.lhs.is_field = true;
      n.lhs.path = take().path;
      if (peek().kind != Tok::kRParen) return expected("')' (exists takes one field path)");
      take();
      return add(std::move(n));
    }
    Operand lhs;
    if (!operand(&lhs)) return expected("a field, a value, not or '('");
    if (peek().kind != Tok::kOp) {
      // A lone operand: a boolean field or literal.
      Node n;
      if (lhs.is_field) {
        n.kind = NodeKind::kTruthy;
      } else if (lhs.lit.kind == ValKind::kBool) {
        n.kind = NodeKind::kConst;
      } else {
        return invalidArgument(column(t.begin) +
                               "a value alone is not a condition: compare it (==, <, =~, ...)");
      }
      n.lhs = std::move(lhs);
      return add(std::move(n));
    }
    const Token& op = take();
    Node n;
    n.kind = NodeKind::kCompare;
    n.op = op.op;
    n.lhs = std::move(lhs);
    if (n.op == CmpOp::kMatch || n.op == CmpOp::kNotMatch) {
      if (peek().kind != Tok::kString)
        return expected("a string literal (the regular expression) after " + describe(op));
      const Token& pat = take();
      auto compiled = compile(pat);
      if (!compiled.isOk()) return compiled.status();
      n.regex = *compiled;
      return add(std::move(n));
    }
    if (!operand(&n.rhs)) return expected("a field or a value after " + describe(op));
    if (peek().kind == Tok::kOp) {
      return invalidArgument(column(peek().begin) +
                             "comparisons do not chain: use and (a < b and b < c)");
    }
    return add(std::move(n));
  }

  bool operand(Operand* o) {
    const Token& t = peek();
    switch (t.kind) {
      case Tok::kPath:
        o->is_field = true;
        o->path = t.path;
        break;
      case Tok::kString:
        o->lit.kind = ValKind::kString;
        o->lit.str = t.text;
        break;
      case Tok::kNumber:
        o->lit.kind = ValKind::kNumber;
        o->lit.num = t.number;
        break;
      case Tok::kTrue:
      case Tok::kFalse:
        o->lit.kind = ValKind::kBool;
        o->lit.b = t.kind == Tok::kTrue;
        break;
      case Tok::kNull:
        o->lit.kind = ValKind::kNull;
        break;
      default:
        return false;
    }
    take();
    return true;
  }

  Result<size_t> compile(const Token& pat) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    Regex re;
    re.code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.text.data()), pat.text.size(),
                            PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
    if (re.code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      return invalidArgument(column(pat.begin) +
                             "bad regular expression: " + reinterpret_cast<const char*>(msg) +
                             " (at pattern offset " + std::to_string(offset) + ")");
    }
    pcre2_jit_compile(re.code, PCRE2_JIT_COMPLETE);  // interpreted when JIT is unavailable
    re.data = pcre2_match_data_create_from_pattern(re.code, nullptr);
    if (re.data == nullptr) return internalError("out of memory for regex match data");
    st_.regexes.push_back(std::move(re));
    return st_.regexes.size() - 1;
  }

  std::string_view text_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  FilterExpression::State& st_;
};

}  // namespace

Result<FilterExpression> FilterExpression::parse(std::string_view text) {
  if (text.size() > kMaxText) return invalidArgument("expression longer than 4096 bytes");
  std::vector<Token> tokens;
  FERRY_RETURN_IF_ERROR(tokenize(text, &tokens));
  if (tokens.size() == 1) return invalidArgument("column 1: the expression is empty");
  auto st = std::make_unique<State>();
  Parser p(text, std::move(tokens), *st);
  auto root = p.parseAll();
  if (!root.isOk()) return root.status();
  st->root = *root;
  st->match_context = pcre2_match_context_create(nullptr);
  if (st->match_context == nullptr) return internalError("out of memory for a regex match context");
  pcre2_set_match_limit(st->match_context, kMatchLimit);
  return FilterExpression(std::move(st));
}

FilterExpression::FilterExpression(std::unique_ptr<State> state) : state_(std::move(state)) {}
FilterExpression::FilterExpression(FilterExpression&&) noexcept = default;
FilterExpression& FilterExpression::operator=(FilterExpression&&) noexcept = default;
FilterExpression::~FilterExpression() = default;

FilterExpression::Outcome FilterExpression::evaluate(std::string_view record) {
  return state_->eval(state_->root, record);
}

}  // namespace ferry
