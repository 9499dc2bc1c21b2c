#include "plugins/processors/common/dom_fields.h"

#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "ferry/json.h"

namespace ferry::processors {
namespace {

constexpr char kKeySeparator = '\x1f';
constexpr int64_t kMaxKeysLimit = 10'000'000;

template <typename T>
void appendChars(std::string& out, T v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec == std::errc()) out.append(buf, static_cast<size_t>(end - buf));
}

}  // namespace

DomField::DomField(FieldPath path) : name_(formatFieldPath(path)), segments_(std::move(path)) {}

Result<DomField> DomField::parse(std::string_view text) {
  Result<FieldPath> path = parseFieldPath(text);
  if (!path.isOk()) return path.status();
  return DomField(std::move(path).value());
}

bool DomField::find(simdjson::dom::element root, simdjson::dom::element* out) const {
  simdjson::dom::element cur = root;
  for (const std::string& seg : segments_) {
    simdjson::dom::object obj;
    if (cur.get_object().get(obj) != simdjson::SUCCESS) return false;
    if (obj.at_key(seg).get(cur) != simdjson::SUCCESS) return false;
  }
  *out = cur;
  return true;
}

bool numberOf(simdjson::dom::element e, double* out) {
  switch (e.type()) {
    case simdjson::dom::element_type::INT64: {
      int64_t v = 0;
      if (e.get_int64().get(v) != simdjson::SUCCESS) return false;
      *out = static_cast<double>(v);
      return true;
    }
    case simdjson::dom::element_type::UINT64: {
      uint64_t v = 0;
      if (e.get_uint64().get(v) != simdjson::SUCCESS) return false;
      *out = static_cast<double>(v);
      return true;
    }
    case simdjson::dom::element_type::DOUBLE:
      return e.get_double().get(*out) == simdjson::SUCCESS;
    default:
      return false;
  }
}

void appendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  appendChars(out, v);
}

void appendInteger(std::string& out, int64_t v) { appendChars(out, v); }
void appendInteger(std::string& out, uint64_t v) { appendChars(out, v); }

void appendJsonValue(std::string& out, simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      out += '{';
      bool first = true;
      for (simdjson::dom::key_value_pair kv : simdjson::dom::object(e)) {
        if (!first) out += ',';
        first = false;
        appendJsonString(out, kv.key);
        out += ':';
        appendJsonValue(out, kv.value);
      }
      out += '}';
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      out += '[';
      bool first = true;
      for (simdjson::dom::element item : simdjson::dom::array(e)) {
        if (!first) out += ',';
        first = false;
        appendJsonValue(out, item);
      }
      out += ']';
      return;
    }
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (e.get_string().get(s) == simdjson::SUCCESS) appendJsonString(out, s);
      return;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t v = 0;
      if (e.get_int64().get(v) == simdjson::SUCCESS) appendChars(out, v);
      return;
    }
    case simdjson::dom::element_type::UINT64: {
      uint64_t v = 0;
      if (e.get_uint64().get(v) == simdjson::SUCCESS) appendChars(out, v);
      return;
    }
    case simdjson::dom::element_type::DOUBLE: {
      double v = 0;
      if (e.get_double().get(v) == simdjson::SUCCESS) appendNumber(out, v);
      return;
    }
    case simdjson::dom::element_type::BOOL: {
      bool v = false;
      if (e.get_bool().get(v) == simdjson::SUCCESS) out += v ? "true" : "false";
      return;
    }
    case simdjson::dom::element_type::NULL_VALUE:
      out += "null";
      return;
  }
}

void SeriesKey::build(std::string_view stream, simdjson::dom::element root,
                      std::string& out) const {
  out.clear();
  out.append(stream);
  for (const DomField& f : fields_) {
    out += kKeySeparator;
    simdjson::dom::element v;
    if (f.find(root, &v)) appendJsonValue(out, v);
  }
}

void SeriesKey::appendFields(std::string_view key, std::string& out) const {
  size_t pos = key.find(kKeySeparator);
  for (const DomField& f : fields_) {
    if (pos == std::string_view::npos) return;
    const size_t next = key.find(kKeySeparator, pos + 1);
    const std::string_view value = key.substr(
        pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
    if (!value.empty()) {
      out += ',';
      appendJsonString(out, f.name());
      out += ':';
      out.append(value);
    }
    pos = next;
  }
}

bool RecordParser::parse(std::string_view record, simdjson::dom::element* root) {
  simdjson::dom::element doc;
  if (parser_.parse(record.data(), record.size(), true).get(doc) != simdjson::SUCCESS) {
    return false;
  }
  if (doc.type() != simdjson::dom::element_type::OBJECT) return false;
  *root = doc;
  return true;
}

Counter* passedRecordsCounter(MetricsRegistry* metrics, const std::string& instance,
                              std::string_view reason) {
  if (metrics == nullptr) return nullptr;
  return &metrics->counter("ferry_processor_passed_records_total",
                           {{"processor", instance}, {"reason", std::string(reason)}},
                           "Records a processor let through unchanged because it could not "
                           "judge them");
}

std::string optionItemLocation(const Options& opts, std::string_view key, size_t index) {
  return locateOption(opts, key) + "[" + std::to_string(index) + "]";
}

Result<std::vector<DomField>> fieldListOption(const Options& opts, std::string_view key) {
  std::vector<DomField> fields;
  const std::vector<std::string>& items = opts.getStringList(key);
  for (size_t i = 0; i < items.size(); ++i) {
    Result<FieldPath> path = fieldPathOption(opts, key, items[i]);
    if (!path.isOk()) return path.status();
    DomField field(std::move(path).value());
    for (const DomField& seen : fields) {
      if (seen.name() == field.name()) {
        return invalidArgument(optionItemLocation(opts, key, i) + ": \"" + field.name() +
                               "\" is listed twice");
      }
    }
    fields.push_back(std::move(field));
  }
  return fields;
}

Result<size_t> maxKeysOption(const Options& opts) {
  const int64_t n = opts.getInt("max_keys");
  if (n < 1 || n > kMaxKeysLimit) {
    return invalidArgument(locateOption(opts, "max_keys") + ": must be between 1 and " +
                           std::to_string(kMaxKeysLimit) + ", got " + std::to_string(n));
  }
  return static_cast<size_t>(n);
}

}  // namespace ferry::processors
