#include "plugins/outputs/http/influx.h"

#include <simdjson.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>

namespace ferry {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Appends `s` escaped for a measurement (`equals` false) or a tag key/value or field key
// (`equals` true).
void appendEscaped(std::string& out, std::string_view s, bool equals) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    if (c == ',' || c == ' ' || (equals && c == '=')) out.push_back('\\');
    out.push_back(c);
  }
  // A trailing backslash would escape the separator after it.
  if (!s.empty() && s.back() == '\\') out.push_back('\\');
}

template <typename T>
void appendNumber(std::string& out, T v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// Nanoseconds of a numeric timestamp, its unit told by magnitude.
std::optional<int64_t> numericTimestampNanos(double v) {
  if (!std::isfinite(v) || v < 0) return std::nullopt;
  double ns;
  if (v < 1e11) {
    ns = v * 1e9;
  } else if (v < 1e14) {
    ns = v * 1e6;
  } else if (v < 1e17) {
    ns = v * 1e3;
  } else {
    ns = v;
  }
  if (ns >= 9.2e18) return std::nullopt;
  return static_cast<int64_t>(ns);
}

std::optional<int64_t> integerTimestampNanos(int64_t v) {
  if (v < 0) return std::nullopt;
  if (v < 100'000'000'000LL) return v * 1'000'000'000LL;
  if (v < 100'000'000'000'000LL) return v * 1'000'000LL;
  if (v < 100'000'000'000'000'000LL) return v * 1'000LL;
  return v;
}

bool digitsAt(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<int64_t> parseRfc3339Nanos(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!digitsAt(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !digitsAt(s, 5, 2, &mo) ||
      s[7] != '-' || !digitsAt(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digitsAt(s, 11, 2, &h) || s[13] != ':' || !digitsAt(s, 14, 2, &mi) || s[16] != ':' ||
      !digitsAt(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digitsAt(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digitsAt(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  const int64_t secs = duration_cast<seconds>(sys_days(ymd).time_since_epoch()).count() +
                       h * 3600 + mi * 60 + sec - offset_s;
  if (secs < 0 || secs > 9'000'000'000LL) return std::nullopt;
  return secs * 1'000'000'000LL + frac_ns;
}

struct InfluxEncoder::Impl {
  simdjson::dom::parser parser;
  std::string padded;  // the record, with simdjson's padding after it
  std::string tags;    // ",k=v..." of the current record
  std::string fields;  // "k=v,..." of the current record
  std::string path;    // key path of the value being visited ("a.b.")

  // Visits every member of `obj` under the current path.
  void visit(simdjson::dom::object obj) {
    for (const auto field : obj) {
      const size_t mark = path.size();
      path.append(field.key.data(), field.key.size());
      visitValue(field.value);
      path.resize(mark);
    }
  }

  void visitValue(element v) {
    switch (v.type()) {
      case element_type::OBJECT: {
        path.push_back('.');
        visit(v.get_object().value_unsafe());
        break;
      }
      case element_type::STRING: {
        const std::string_view s = v.get_string().value_unsafe();
        if (s.empty()) break;
        tags.push_back(',');
        appendEscaped(tags, path, true);
        tags.push_back('=');
        appendEscaped(tags, s, true);
        break;
      }
      case element_type::INT64:
        startField();
        appendNumber(fields, v.get_int64().value_unsafe());
        fields.push_back('i');
        break;
      case element_type::UINT64:  // beyond int64: as a float, like any other big number
        startField();
        appendNumber(fields, static_cast<double>(v.get_uint64().value_unsafe()));
        break;
      case element_type::DOUBLE:
        startField();
        appendNumber(fields, v.get_double().value_unsafe());
        break;
      case element_type::BOOL:
        startField();
        fields.append(v.get_bool().value_unsafe() ? "true" : "false");
        break;
      case element_type::ARRAY:
      case element_type::NULL_VALUE:
        break;
    }
  }

  void startField() {
    if (!fields.empty()) fields.push_back(',');
    appendEscaped(fields, path, true);
    fields.push_back('=');
  }

  static std::optional<int64_t> timestampOf(element v) {
    switch (v.type()) {
      case element_type::INT64: return integerTimestampNanos(v.get_int64().value_unsafe());
      case element_type::UINT64: return numericTimestampNanos(static_cast<double>(v.get_uint64().value_unsafe()));
      case element_type::DOUBLE: return numericTimestampNanos(v.get_double().value_unsafe());
      case element_type::STRING: return parseRfc3339Nanos(v.get_string().value_unsafe());
      default: return std::nullopt;
    }
  }
};

InfluxEncoder::InfluxEncoder() : impl_(std::make_unique<Impl>()) {}
InfluxEncoder::~InfluxEncoder() = default;

InfluxEncoder::Stats InfluxEncoder::encode(const Block& block, std::string* out) {
  Stats stats;
  out->clear();
  Impl& im = *impl_;
  const std::string_view measurement =
      block.lineage.stream.empty() ? std::string_view("ferry") : std::string_view(block.lineage.stream);
  for (size_t i = 0; i < block.records.size(); ++i) {
    const std::string_view rec = block.records[i];
    im.padded.assign(rec);
    im.padded.append(simdjson::SIMDJSON_PADDING, '\0');
    element doc;
    simdjson::dom::object obj;
    if (im.parser.parse(im.padded.data(), rec.size(), false).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(obj) != simdjson::SUCCESS) {
      ++stats.not_object;
      continue;
    }
    im.tags.clear();
    im.fields.clear();
    std::optional<int64_t> ts;
    for (const auto field : obj) {
      if (!ts && (field.key == "ts" || field.key == "time")) {
        ts = Impl::timestampOf(field.value);
        if (ts) continue;
      }
      im.path.assign(field.key.data(), field.key.size());
      im.visitValue(field.value);
    }
    if (im.fields.empty()) {
      ++stats.no_fields;
      continue;
    }
    appendEscaped(*out, measurement, false);
    out->append(im.tags);
    out->push_back(' ');
    out->append(im.fields);
    if (ts) {
      out->push_back(' ');
      appendNumber(*out, *ts);
    }
    out->push_back('\n');
    ++stats.lines;
  }
  return stats;
}

}  // namespace ferry
