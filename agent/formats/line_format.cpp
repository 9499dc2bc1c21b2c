#include "agent/formats/line_format.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "ferry/json.h"

namespace ferry {
namespace {

static_assert(kLinePadding >= simdjson::SIMDJSON_PADDING, "kLinePadding below simdjson's");

// PCRE2's JIT stack: starts small, grows up to this for patterns that backtrack deeply.
constexpr size_t kJitStackStart = 32 << 10;
constexpr size_t kJitStackMax = 1 << 20;

LineOutcome skipped(std::string_view reason) { return {LineOutcome::Kind::kSkipped, reason}; }
LineOutcome refused(std::string_view reason) { return {LineOutcome::Kind::kRefused, reason}; }

// A problem with a spec: the key it concerns and what is wrong.
struct SpecError {
  std::string_view key;
  std::string message;
};

std::string_view stripLineEnd(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  return s;
}

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool isBlank(char c) { return c == ' ' || c == '\t'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool hasByte(std::string_view s, char c) { return std::memchr(s.data(), c, s.size()) != nullptr; }

enum class NumberKind { kNotNumber, kNumber, kOutOfRange };

// Whether `s` is a JSON number (RFC 8259 grammar) that a 64-bit integer (integers) or a
// double (the rest) holds: 1e400, 1e-400 and integers beyond 64 bits are kOutOfRange.
NumberKind classifyJsonNumber(std::string_view s) {
  const size_t n = s.size();
  size_t i = 0;
  if (i < n && s[i] == '-') ++i;
  if (i == n) return NumberKind::kNotNumber;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && isDigit(s[i])) ++i;
  } else {
    return NumberKind::kNotNumber;
  }
  const size_t int_end = i;
  bool integral = true;
  if (i < n && s[i] == '.') {
    ++i;
    const size_t d = i;
    while (i < n && isDigit(s[i])) ++i;
    if (i == d) return NumberKind::kNotNumber;
    integral = false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    const size_t d = i;
    while (i < n && isDigit(s[i])) ++i;
    if (i == d) return NumberKind::kNotNumber;
    integral = false;
  }
  if (i != n) return NumberKind::kNotNumber;
  const char* b = s.data();
  const char* e = s.data() + n;
  if (integral) {
    if (int_end <= 18) return NumberKind::kNumber;  // at most 18 digits (and a sign) always fit
    std::errc ec;
    if (s[0] == '-') {
      int64_t v = 0;
      ec = std::from_chars(b, e, v).ec;
    } else {
      uint64_t v = 0;
      ec = std::from_chars(b, e, v).ec;
    }
    return ec == std::errc() ? NumberKind::kNumber : NumberKind::kOutOfRange;
  }
  double v = 0;
  const auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && std::isfinite(v) ? NumberKind::kNumber : NumberKind::kOutOfRange;
}

// A bare (unquoted) logfmt/csv value: true/false → boolean, a JSON number that fits →
// number (its text as written), anything else → string.
void appendScalar(std::string& out, std::string_view v) {
  if (v == "true" || v == "false") {
    out.append(v);
    return;
  }
  if (!v.empty() && (isDigit(v[0]) || v[0] == '-') &&
      classifyJsonNumber(v) == NumberKind::kNumber) {
    out.append(v);
    return;
  }
  appendJsonString(out, v);
}

// simdjson says NUMBER_ERROR both for a malformed number and for one it cannot hold; tell
// them apart by looking at the numbers of the text (only on this error path).
std::string_view diagnoseNumberError(std::string_view text) {
  bool in_string = false;
  bool out_of_range = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !isDigit(c)) continue;
    size_t j = i + 1;
    while (j < text.size() && (isDigit(text[j]) || text[j] == '.' || text[j] == 'e' ||
                               text[j] == 'E' || text[j] == '+' || text[j] == '-')) {
      ++j;
    }
    const NumberKind k = classifyJsonNumber(text.substr(i, j - i));
    if (k == NumberKind::kNotNumber) return line_reason::kBadJson;
    if (k == NumberKind::kOutOfRange) out_of_range = true;
    i = j - 1;
  }
  return out_of_range ? line_reason::kNumberOutOfRange : line_reason::kBadJson;
}

// logfmt quoted values: \" \\ \n \t \r are unescaped; any other backslash is kept as is.
void unescapeLogfmt(std::string_view raw, std::string& out) {
  out.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 == raw.size()) {
      out.push_back(raw[i]);
      continue;
    }
    const char c = raw[++i];
    switch (c) {
      case '"':
      case '\\':
        out.push_back(c);
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      default:
        out.push_back('\\');
        out.push_back(c);
    }
  }
}

// Line protocol: a backslash before one of `specials` stands for that byte; any other
// backslash is a plain byte.
void unescapeInflux(std::string_view raw, std::string_view specials, std::string& out) {
  out.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size() &&
        specials.find(raw[i + 1]) != std::string_view::npos) {
      ++i;
    }
    out.push_back(raw[i]);
  }
}

// The end of a line-protocol name starting at `i`: the first unescaped ',' or ' ' (and '='
// when `stop_at_equals`), or the end of the line. `*escaped` tells whether it holds a '\'.
size_t scanInfluxName(std::string_view s, size_t i, bool stop_at_equals, bool* escaped) {
  *escaped = false;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\\') {
      *escaped = true;
      i += 2;
      continue;
    }
    if (c == ',' || c == ' ' || (stop_at_equals && c == '=')) break;
    ++i;
  }
  return std::min(i, s.size());
}

template <typename Int>
void appendInt(std::string& out, Int v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// A line-protocol field value that is not a string: integer (123i), unsigned (123u),
// boolean, or float. Returns the refusal reason, or empty when appended.
std::string_view appendInfluxValue(std::string& out, std::string_view t) {
  if (t.empty()) return line_reason::kBadInflux;
  if (t == "t" || t == "T" || t == "true" || t == "True" || t == "TRUE") {
    out.append("true");
    return {};
  }
  if (t == "f" || t == "F" || t == "false" || t == "False" || t == "FALSE") {
    out.append("false");
    return {};
  }
  const char* b = t.data();
  const char* e = t.data() + t.size();
  if (t.back() == 'i' || t.back() == 'u') {
    --e;
    if (b == e || (*b != '-' && !isDigit(*b)) || (t.back() == 'u' && *b == '-')) {
      return line_reason::kBadInflux;
    }
    std::from_chars_result r;
    if (t.back() == 'i') {
      int64_t v = 0;
      r = std::from_chars(b, e, v);
      if (r.ec == std::errc() && r.ptr == e) appendInt(out, v);
    } else {
      uint64_t v = 0;
      r = std::from_chars(b, e, v);
      if (r.ec == std::errc() && r.ptr == e) appendInt(out, v);
    }
    if (r.ec == std::errc::result_out_of_range) return line_reason::kNumberOutOfRange;
    if (r.ec != std::errc() || r.ptr != e) return line_reason::kBadInflux;
    return {};
  }
  for (const char c : t) {
    if (!isDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+') {
      return line_reason::kBadInflux;
    }
  }
  if (*b == '+') ++b;  // from_chars takes no '+'
  double v = 0;
  const auto r = std::from_chars(b, e, v);
  if (r.ec == std::errc::result_out_of_range) return line_reason::kNumberOutOfRange;
  if (r.ec != std::errc() || r.ptr != e || !std::isfinite(v)) return line_reason::kBadInflux;
  if (classifyJsonNumber(t) == NumberKind::kNumber) {
    out.append(t);  // as written
  } else {
    char buf[32];  // ".5", "1.", "+2": the shortest text of the same double
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  }
  return {};
}

struct PcreCodeFree {
  void operator()(pcre2_code* p) const { pcre2_code_free(p); }
};
struct PcreMatchDataFree {
  void operator()(pcre2_match_data* p) const { pcre2_match_data_free(p); }
};
struct PcreMatchContextFree {
  void operator()(pcre2_match_context* p) const { pcre2_match_context_free(p); }
};
struct PcreJitStackFree {
  void operator()(pcre2_jit_stack* p) const { pcre2_jit_stack_free(p); }
};

struct CsvField {
  std::string_view raw;  // quoted: between the quotes, "" not yet undone
  bool quoted = false;
  bool doubled = false;  // holds "" (an escaped quote)
};

struct RegexGroup {
  uint32_t number = 0;
  std::string key;  // "name": (JSON-escaped, with the colon)
};

}  // namespace

struct LineParser::State {
  LineFormatSpec spec;

  // json
  simdjson::dom::parser json;
  std::unique_ptr<char[]> padded;  // a copy of the line with simdjson's padding
  size_t padded_cap = 0;

  // logfmt, csv, influx, regex
  std::string scratch;

  // csv
  std::vector<std::string> column_keys;  // "name": per column
  std::vector<CsvField> fields;

  // regex
  std::unique_ptr<pcre2_code, PcreCodeFree> code;
  std::unique_ptr<pcre2_match_data, PcreMatchDataFree> match;
  std::unique_ptr<pcre2_match_context, PcreMatchContextFree> match_context;
  std::unique_ptr<pcre2_jit_stack, PcreJitStackFree> jit_stack;
  std::vector<RegexGroup> groups;  // by group number

  LineOutcome parse(std::string_view line, RecordBatch& out, std::string_view extra,
                    bool is_padded);
  LineOutcome parseJson(std::string_view line, RecordBatch& out, std::string_view extra,
                        bool is_padded);
  LineOutcome parseText(std::string_view line, std::string& d, std::string_view extra);
  LineOutcome parseLogfmt(std::string_view line, std::string& d, std::string_view extra);
  LineOutcome parseCsv(std::string_view line, std::string& d, std::string_view extra);
  LineOutcome parseInflux(std::string_view line, std::string& d, std::string_view extra);
  LineOutcome parseRegex(std::string_view line, std::string& d, std::string_view extra);
};

namespace {

void closeObject(std::string& d, std::string_view extra, bool has_members) {
  if (!extra.empty()) {
    if (has_members) d.push_back(',');
    d.append(extra);
  }
  d.push_back('}');
}

// Checks `spec` and builds the parser's state; nullptr and `*err` when the spec is wrong.
std::unique_ptr<LineParser::State> buildState(const LineFormatSpec& spec, SpecError* err) {
  auto st = std::make_unique<LineParser::State>();
  st->spec = spec;
  if (spec.format == LineFormat::kCsv) {
    if (spec.columns.empty()) {
      *err = {"columns", "format csv needs the column names (columns: [a, b, ...])"};
      return nullptr;
    }
    for (size_t i = 0; i < spec.columns.size(); ++i) {
      const std::string& c = spec.columns[i];
      if (c.empty()) {
        *err = {"columns", "column " + std::to_string(i + 1) + " has an empty name"};
        return nullptr;
      }
      if (std::find(spec.columns.begin(), spec.columns.begin() + static_cast<ptrdiff_t>(i), c) !=
          spec.columns.begin() + static_cast<ptrdiff_t>(i)) {
        *err = {"columns", "column \"" + c + "\" is named twice"};
        return nullptr;
      }
      std::string key;
      appendJsonString(key, c);
      key.push_back(':');
      st->column_keys.push_back(std::move(key));
    }
    if (spec.delimiter == '"' || spec.delimiter == '\r' || spec.delimiter == '\n' ||
        spec.delimiter == '\0') {
      *err = {"delimiter", "the delimiter cannot be a quote, a line break or NUL"};
      return nullptr;
    }
    st->fields.reserve(spec.columns.size() + 1);
  }
  if (spec.format == LineFormat::kRegex) {
    if (spec.pattern.empty()) {
      *err = {"pattern", "format regex needs a pattern with named groups (?<name>...)"};
      return nullptr;
    }
    int code = 0;
    PCRE2_SIZE offset = 0;
    st->code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(spec.pattern.data()),
                                 spec.pattern.size(), PCRE2_UTF, &code, &offset, nullptr));
    if (!st->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(code, msg, sizeof msg);
      *err = {"pattern", "does not compile at offset " + std::to_string(offset) + ": " +
                             reinterpret_cast<const char*>(msg)};
      return nullptr;
    }
    uint32_t count = 0;
    uint32_t entry_size = 0;
    PCRE2_SPTR table = nullptr;
    pcre2_pattern_info(st->code.get(), PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(st->code.get(), PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
    pcre2_pattern_info(st->code.get(), PCRE2_INFO_NAMETABLE, &table);
    if (count == 0) {
      *err = {"pattern", "has no named group: name the parts to keep with (?<name>...)"};
      return nullptr;
    }
    for (uint32_t k = 0; k < count; ++k) {
      const PCRE2_SPTR entry = table + static_cast<size_t>(k) * entry_size;
      RegexGroup g;
      g.number = (static_cast<uint32_t>(entry[0]) << 8) | entry[1];
      appendJsonString(g.key, reinterpret_cast<const char*>(entry + 2));
      g.key.push_back(':');
      st->groups.push_back(std::move(g));
    }
    std::sort(st->groups.begin(), st->groups.end(),
              [](const RegexGroup& a, const RegexGroup& b) { return a.number < b.number; });
    // Without JIT support (some architectures) pcre2_match interprets: slower, same result.
    (void)pcre2_jit_compile(st->code.get(), PCRE2_JIT_COMPLETE);
    st->match.reset(pcre2_match_data_create_from_pattern(st->code.get(), nullptr));
    st->match_context.reset(pcre2_match_context_create(nullptr));
    st->jit_stack.reset(pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr));
    if (!st->match || !st->match_context || !st->jit_stack) {
      *err = {"pattern", "out of memory preparing the pattern"};
      return nullptr;
    }
    pcre2_jit_stack_assign(st->match_context.get(), nullptr, st->jit_stack.get());
  }
  return st;
}

}  // namespace

LineOutcome LineParser::State::parse(std::string_view line, RecordBatch& out,
                                     std::string_view extra, bool is_padded) {
  if (spec.format == LineFormat::kJson) return parseJson(line, out, extra, is_padded);
  line = stripLineEnd(line);
  if (line.empty()) return skipped(line_reason::kEmptyLine);
  if (hasByte(line, '\0')) return refused(line_reason::kNulByte);
  if (spec.invalid_utf8 == InvalidUtf8::kDrop &&
      !simdjson::validate_utf8(line.data(), line.size())) {
    return refused(line_reason::kInvalidUtf8);
  }
  // (With `replace`, appendJsonString writes U+FFFD for every invalid byte; regex cleans
  // its subject first.)
  std::string& d = out.mutableData();
  const size_t mark = d.size();
  LineOutcome r;
  switch (spec.format) {
    case LineFormat::kText:
      r = parseText(line, d, extra);
      break;
    case LineFormat::kLogfmt:
      r = parseLogfmt(line, d, extra);
      break;
    case LineFormat::kCsv:
      r = parseCsv(line, d, extra);
      break;
    case LineFormat::kInflux:
      r = parseInflux(line, d, extra);
      break;
    case LineFormat::kRegex:
      r = parseRegex(line, d, extra);
      break;
    case LineFormat::kJson:
      break;
  }
  if (r.appended()) {
    out.commitRecord();
  } else {
    d.resize(mark);
  }
  return r;
}

LineOutcome LineParser::State::parseJson(std::string_view line, RecordBatch& out,
                                         std::string_view extra, bool is_padded) {
  const char* b = line.data();
  const char* e = line.data() + line.size();
  while (b < e && isJsonSpace(*b)) ++b;
  while (e > b && isJsonSpace(e[-1])) --e;
  if (b == e) return skipped(line_reason::kEmptyLine);
  const auto n = static_cast<size_t>(e - b);
  const std::string_view text(b, n);
  if (hasByte(text, '\0')) return refused(line_reason::kNulByte);
  const char* buf = b;
  if (!is_padded) {
    if (padded_cap < n) {
      padded_cap = std::max({n, padded_cap * 2, size_t{4096}});
      padded = std::make_unique<char[]>(padded_cap + simdjson::SIMDJSON_PADDING);
    }
    std::memcpy(padded.get(), b, n);
    buf = padded.get();
  }
  simdjson::dom::element doc;
  const simdjson::error_code err = json.parse(buf, n, false).get(doc);
  if (err != simdjson::SUCCESS) {
    switch (err) {
      case simdjson::UTF8_ERROR:
        return refused(line_reason::kInvalidUtf8);
      case simdjson::NUMBER_ERROR:
      case simdjson::NUMBER_OUT_OF_RANGE:
        return refused(diagnoseNumberError(text));
      default:
        return refused(line_reason::kBadJson);
    }
  }
  if (doc.type() != simdjson::dom::element_type::OBJECT) {
    return refused(line_reason::kNotAnObject);
  }
  std::string& d = out.mutableData();
  const size_t mark = d.size();
  if (extra.empty()) {
    d.append(text);
  } else {
    // Valid object: the text ends with '}'; it is empty when '{' is the byte before it
    // (JSON whitespace aside).
    size_t k = n - 1;
    while (k > 0 && isJsonSpace(text[k - 1])) --k;
    d.append(b, n - 1);
    closeObject(d, extra, text[k - 1] != '{');
  }
  // Outside strings '\r' and '\n' can only be whitespace (inside they must be escaped), so
  // a line-spanning document (an MQTT payload) becomes one line without changing meaning.
  if (hasByte(text, '\n') || hasByte(text, '\r')) {
    std::replace_if(
        d.begin() + static_cast<ptrdiff_t>(mark), d.end(),
        [](char c) { return c == '\n' || c == '\r'; }, ' ');
  }
  out.commitRecord();
  return {};
}

LineOutcome LineParser::State::parseText(std::string_view line, std::string& d,
                                         std::string_view extra) {
  d.append("{\"message\":");
  appendJsonString(d, line);
  closeObject(d, extra, true);
  return {};
}

LineOutcome LineParser::State::parseLogfmt(std::string_view line, std::string& d,
                                           std::string_view extra) {
  const size_t n = line.size();
  size_t i = 0;
  bool any = false;
  d.push_back('{');
  for (;;) {
    while (i < n && isBlank(line[i])) ++i;
    if (i == n) break;
    const size_t ks = i;
    while (i < n && !isBlank(line[i]) && line[i] != '=' && line[i] != '"') ++i;
    if (i == ks || (i < n && line[i] == '"')) return refused(line_reason::kBadLogfmt);
    if (any) d.push_back(',');
    any = true;
    appendJsonString(d, line.substr(ks, i - ks));
    d.push_back(':');
    if (i == n || isBlank(line[i])) {  // a bare key: a flag
      d.append("true");
      continue;
    }
    ++i;  // '='
    if (i < n && line[i] == '"') {
      const size_t vs = ++i;
      bool escaped = false;
      while (i < n && line[i] != '"') {
        if (line[i] == '\\') {
          escaped = true;
          ++i;
        }
        ++i;
      }
      if (i >= n) return refused(line_reason::kBadLogfmt);  // no closing quote
      const std::string_view raw = line.substr(vs, i - vs);
      ++i;
      if (i < n && !isBlank(line[i])) return refused(line_reason::kBadLogfmt);
      if (escaped) {
        unescapeLogfmt(raw, scratch);
        appendJsonString(d, scratch);
      } else {
        appendJsonString(d, raw);
      }
      continue;
    }
    const size_t vs = i;
    while (i < n && !isBlank(line[i])) {
      if (line[i] == '"') return refused(line_reason::kBadLogfmt);
      ++i;
    }
    appendScalar(d, line.substr(vs, i - vs));
  }
  if (!any) return skipped(line_reason::kEmptyLine);
  closeObject(d, extra, true);
  return {};
}

LineOutcome LineParser::State::parseCsv(std::string_view line, std::string& d,
                                        std::string_view extra) {
  const size_t n = line.size();
  const char delim = spec.delimiter;
  const size_t want = column_keys.size();
  fields.clear();
  size_t i = 0;
  for (;;) {
    if (fields.size() == want) return refused(line_reason::kCsvBadRow);  // too many
    CsvField f;
    if (i < n && line[i] == '"') {
      f.quoted = true;
      const size_t vs = ++i;
      for (;;) {
        const void* q = std::memchr(line.data() + i, '"', n - i);
        if (q == nullptr) return refused(line_reason::kCsvBadRow);  // no closing quote
        i = static_cast<size_t>(static_cast<const char*>(q) - line.data());
        if (i + 1 < n && line[i + 1] == '"') {
          f.doubled = true;
          i += 2;
          continue;
        }
        break;
      }
      f.raw = line.substr(vs, i - vs);
      ++i;
      fields.push_back(f);
      if (i == n) break;
      if (line[i] != delim) return refused(line_reason::kCsvBadRow);
      ++i;
      continue;
    }
    const void* p = std::memchr(line.data() + i, delim, n - i);
    const size_t end =
        p == nullptr ? n : static_cast<size_t>(static_cast<const char*>(p) - line.data());
    f.raw = line.substr(i, end - i);
    fields.push_back(f);
    if (end == n) break;
    i = end + 1;
  }
  if (fields.size() != want) return refused(line_reason::kCsvBadRow);
  bool header = true;
  for (size_t k = 0; k < want && header; ++k) {
    header = !fields[k].doubled && fields[k].raw == spec.columns[k];
  }
  if (header) return skipped(line_reason::kCsvHeader);
  d.push_back('{');
  for (size_t k = 0; k < want; ++k) {
    if (k > 0) d.push_back(',');
    d.append(column_keys[k]);
    const CsvField& f = fields[k];
    if (!f.quoted) {
      appendScalar(d, f.raw);
    } else if (!f.doubled) {
      appendJsonString(d, f.raw);
    } else {
      scratch.clear();
      for (size_t j = 0; j < f.raw.size(); ++j) {
        scratch.push_back(f.raw[j]);
        if (f.raw[j] == '"') ++j;  // "" → "
      }
      appendJsonString(d, scratch);
    }
  }
  closeObject(d, extra, true);
  return {};
}

LineOutcome LineParser::State::parseInflux(std::string_view line, std::string& d,
                                           std::string_view extra) {
  size_t i = 0;
  const size_t n = line.size();
  while (i < n && isBlank(line[i])) ++i;
  if (i == n) return skipped(line_reason::kEmptyLine);
  if (line[i] == '#') return skipped(line_reason::kComment);
  const auto bad = refused(line_reason::kBadInflux);
  auto appendName = [&](std::string_view raw, bool escaped, std::string_view specials) {
    if (escaped) {
      unescapeInflux(raw, specials, scratch);
      appendJsonString(d, scratch);
    } else {
      appendJsonString(d, raw);
    }
  };
  bool escaped = false;
  size_t end = scanInfluxName(line, i, false, &escaped);
  if (end == i) return bad;
  d.append("{\"measurement\":");
  appendName(line.substr(i, end - i), escaped, ", ");
  d.append(",\"tags\":{");
  i = end;
  bool first = true;
  while (i < n && line[i] == ',') {
    ++i;
    end = scanInfluxName(line, i, true, &escaped);
    if (end == i || end == n || line[end] != '=') return bad;
    if (!first) d.push_back(',');
    first = false;
    appendName(line.substr(i, end - i), escaped, ",= ");
    d.push_back(':');
    i = end + 1;
    end = scanInfluxName(line, i, true, &escaped);
    if (end == i || (end < n && line[end] == '=')) return bad;
    appendName(line.substr(i, end - i), escaped, ",= ");
    i = end;
  }
  if (i == n || line[i] != ' ') return bad;
  while (i < n && line[i] == ' ') ++i;
  d.append("},\"fields\":{");
  first = true;
  for (;;) {
    end = scanInfluxName(line, i, true, &escaped);
    if (end == i || end == n || line[end] != '=') return bad;
    if (!first) d.push_back(',');
    first = false;
    appendName(line.substr(i, end - i), escaped, ",= ");
    d.push_back(':');
    i = end + 1;
    if (i < n && line[i] == '"') {
      const size_t vs = ++i;
      bool str_escaped = false;
      while (i < n && line[i] != '"') {
        if (line[i] == '\\') {
          str_escaped = true;
          ++i;
        }
        ++i;
      }
      if (i >= n) return bad;  // no closing quote
      appendName(line.substr(vs, i - vs), str_escaped, "\"\\");
      ++i;
    } else {
      const size_t vs = i;
      while (i < n && line[i] != ',' && line[i] != ' ') ++i;
      const std::string_view why = appendInfluxValue(d, line.substr(vs, i - vs));
      if (!why.empty()) return refused(why);
    }
    if (i < n && line[i] == ',') {
      ++i;
      continue;
    }
    break;
  }
  d.push_back('}');
  if (i < n && line[i] != ' ') return bad;
  while (i < n && line[i] == ' ') ++i;
  if (i < n) {
    const size_t ts = i;
    while (i < n && line[i] != ' ') ++i;
    int64_t t = 0;
    const auto r = std::from_chars(line.data() + ts, line.data() + i, t);
    if (r.ec == std::errc::result_out_of_range) return refused(line_reason::kNumberOutOfRange);
    if (r.ec != std::errc() || r.ptr != line.data() + i) return bad;
    d.append(",\"time\":");
    appendInt(d, t);
    while (i < n && line[i] == ' ') ++i;
    if (i < n) return bad;
  }
  closeObject(d, extra, true);
  return {};
}

LineOutcome LineParser::State::parseRegex(std::string_view line, std::string& d,
                                          std::string_view extra) {
  std::string_view subject = line;
  if (spec.invalid_utf8 == InvalidUtf8::kReplace &&
      !simdjson::validate_utf8(line.data(), line.size())) {
    scratch.clear();
    appendUtf8Replacing(scratch, line);
    subject = scratch;
  }
  const int rc =
      pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                  PCRE2_NO_UTF_CHECK, match.get(), match_context.get());
  if (rc == PCRE2_ERROR_NOMATCH) return refused(line_reason::kRegexNoMatch);
  if (rc < 0) return refused(line_reason::kRegexLimit);
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
  d.push_back('{');
  bool any = false;
  for (const RegexGroup& g : groups) {
    const PCRE2_SIZE s = ov[2 * g.number];
    if (s == PCRE2_UNSET) continue;  // an optional group that took no part
    if (any) d.push_back(',');
    any = true;
    d.append(g.key);
    appendJsonString(d, subject.substr(s, ov[2 * g.number + 1] - s));
  }
  closeObject(d, extra, any);
  return {};
}

std::string_view lineFormatName(LineFormat format) {
  return kLineFormatChoices[static_cast<size_t>(format)];
}

bool parseLineFormat(std::string_view name, LineFormat* out) {
  for (size_t i = 0; i < std::size(kLineFormatChoices); ++i) {
    if (kLineFormatChoices[i] == name) {
      *out = static_cast<LineFormat>(i);
      return true;
    }
  }
  return false;
}

void appendExtraMember(std::string& extra, std::string_view key, std::string_view value) {
  if (!extra.empty()) extra.push_back(',');
  appendJsonString(extra, key);
  extra.push_back(':');
  appendJsonString(extra, value);
}

Result<LineFormatSpec> lineFormatSpecFromOptions(const Options& opts, std::string_view prefix) {
  auto full = [&](std::string_view key) { return std::string(prefix) + std::string(key); };
  auto fail = [&](std::string_view key, const std::string& message) {
    SourceLocation loc = opts.where(full(key));
    if (loc.path.empty()) loc.path = full(key);
    return invalidArgument(loc.describe() + ": " + message);
  };
  LineFormatSpec spec;
  if (opts.has(full("format"))) {
    const std::string& f = opts.getString(full("format"));
    if (!parseLineFormat(f, &spec.format)) {
      return fail("format", "expected json, text, logfmt, csv, influx or regex, got \"" + f + "\"");
    }
  }
  const std::string name(lineFormatName(spec.format));
  if (opts.has(full("pattern"))) {
    if (spec.format != LineFormat::kRegex) {
      return fail("pattern", "pattern applies only to format regex (format is " + name + ")");
    }
    spec.pattern = opts.getString(full("pattern"));
  } else if (spec.format == LineFormat::kRegex) {
    return fail("format", "format regex needs `pattern` (a PCRE2 pattern with named groups)");
  }
  if (opts.has(full("columns"))) {
    if (spec.format != LineFormat::kCsv) {
      return fail("columns", "columns applies only to format csv (format is " + name + ")");
    }
    spec.columns = opts.getStringList(full("columns"));
  } else if (spec.format == LineFormat::kCsv) {
    return fail("format", "format csv needs `columns` (the field names in order)");
  }
  if (opts.has(full("delimiter"))) {
    const std::string& delim = opts.getString(full("delimiter"));
    if (delim.size() != 1) {
      return fail("delimiter", "the delimiter must be one byte, got \"" + delim + "\"");
    }
    spec.delimiter = delim[0];
  }
  if (opts.has(full("invalid_utf8"))) {
    const std::string& v = opts.getString(full("invalid_utf8"));
    if (v == "replace") {
      if (spec.format == LineFormat::kJson) {
        return fail("invalid_utf8",
                    "replace does not apply to format json (a JSON line with invalid UTF-8 is "
                    "always dropped); use drop or another format");
      }
      spec.invalid_utf8 = InvalidUtf8::kReplace;
    } else if (v != "drop") {
      return fail("invalid_utf8", "expected drop or replace, got \"" + v + "\"");
    }
  }
  SpecError err;
  if (!buildState(spec, &err)) return fail(err.key, err.message);
  return spec;
}

Result<LineParser> LineParser::make(const LineFormatSpec& spec) {
  SpecError err;
  std::unique_ptr<State> st = buildState(spec, &err);
  if (!st) return invalidArgument(std::string(err.key) + ": " + err.message);
  return LineParser(std::move(st));
}

LineParser::LineParser(std::unique_ptr<State> state) : state_(std::move(state)) {}
LineParser::LineParser(LineParser&&) noexcept = default;
LineParser& LineParser::operator=(LineParser&&) noexcept = default;
LineParser::~LineParser() = default;

LineOutcome LineParser::parse(std::string_view line, RecordBatch& out, std::string_view extra) {
  return state_->parse(line, out, extra, false);
}

LineOutcome LineParser::parsePadded(std::string_view line, RecordBatch& out,
                                    std::string_view extra) {
  return state_->parse(line, out, extra, true);
}

LineFormat LineParser::format() const { return state_->spec.format; }

}  // namespace ferry
