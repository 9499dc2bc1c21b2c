// add_field: an example processor plugin in C++, using only ferry/plugin_abi.h.
//
// Adds "<field>":"<value>" to every record that does not have a top-level key <field>;
// records that have it pass unchanged (counted as kept). The host hands over whole
// batches as NDJSON and guarantees every line is one JSON object, so a small scanner of
// the top level is enough. Exceptions must not cross the C ABI: every function the
// descriptor exports catches them and returns an error code.
#include <ferry/plugin_abi.h>

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <string_view>

namespace {

struct AddField {
  std::string key_json;  // "field" with its quotes, as it appears in a record
  std::string member;    // "field":"value"
  std::string out;       // the processed batch, reused between calls
};

const ferry_option kOptions[] = {
    {"field", FERRY_OPTION_STRING, 1, nullptr,
     "name of the top-level field to add (a-z, A-Z, 0-9, _)"},
    {"value", FERRY_OPTION_STRING, 1, nullptr, "its value, a string"},
};

void setError(char* error, size_t size, const char* message) {
  if (error != nullptr && size > 0) std::snprintf(error, size, "%s", message);
}

void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

// True when `record` (one JSON object) has the top-level key `key_json` (quoted).
bool hasTopLevelKey(std::string_view record, std::string_view key_json) {
  int depth = 0;
  bool expect_key = false;
  for (size_t i = 0; i < record.size(); ++i) {
    const char c = record[i];
    if (c == '"') {
      size_t end = i + 1;
      while (end < record.size() && record[end] != '"') end += record[end] == '\\' ? 2 : 1;
      if (depth == 1 && expect_key && record.substr(i, end + 1 - i) == key_json) return true;
      expect_key = false;
      i = end;
    } else if (c == '{' || c == '[') {
      ++depth;
      expect_key = c == '{' && depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  return false;
}

bool validField(std::string_view f) {
  if (f.empty() || f.size() > 128) return false;
  for (char c : f) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

int create(const ferry_config* config, const ferry_host_api* /*host*/, void** instance, char* error,
           size_t error_size) {
  try {
    std::string_view field;
    std::string_view value;
    for (size_t i = 0; i < config->value_count; ++i) {
      const ferry_config_value& v = config->values[i];
      if (std::string_view(v.key) == "field") field = v.string;
      if (std::string_view(v.key) == "value") value = v.string;
    }
    if (!validField(field)) {
      setError(error, error_size, "field must be 1-128 characters of a-z, A-Z, 0-9 and _");
      return FERRY_ERR_INVALID;
    }
    auto* p = new AddField;
    appendJsonString(p->key_json, field);
    p->member = p->key_json + ":";
    appendJsonString(p->member, value);
    *instance = p;
    return FERRY_OK;
  } catch (const std::exception& e) {
    setError(error, error_size, e.what());
    return FERRY_ERR_INTERNAL;
  }
}

void destroy(void* instance) { delete static_cast<AddField*>(instance); }

int process(void* instance, const char* /*stream*/, const char* records, size_t size,
            const ferry_process_out* out, char* error, size_t error_size) {
  try {
    auto* p = static_cast<AddField*>(instance);
    p->out.clear();
    p->out.reserve(size + size / 8 + p->member.size() * 16);
    std::string_view rest(records, size);
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      std::string_view rec = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (rec.empty()) continue;
      if (hasTopLevelKey(rec, p->key_json)) {
        p->out.append(rec);
      } else {
        const size_t close = rec.rfind('}');
        const bool empty_object = rec.find_first_not_of(" \t", 1) == close;
        p->out.append(rec.substr(0, close));
        if (!empty_object) p->out += ',';
        p->out += p->member;
        p->out.append(rec.substr(close));
      }
      p->out += '\n';
    }
    out->append(out->ctx, p->out.data(), p->out.size());  // the whole batch in one call
    return FERRY_OK;
  } catch (const std::exception& e) {
    setError(error, error_size, e.what());
    return FERRY_ERR_INTERNAL;
  }
}

const ferry_plugin_descriptor kDescriptor = {
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ferry_plugin_descriptor),
    .kind = FERRY_PLUGIN_PROCESSOR,
    .name = "add_field",
    .summary = "example C++ plugin: adds a string field to every record that lacks it",
    .options = kOptions,
    .option_count = sizeof kOptions / sizeof kOptions[0],
    .create = create,
    .destroy = destroy,
    .interval_ns = nullptr,
    .collect = nullptr,
    .start = nullptr,
    .stop = nullptr,
    .process = process,
    .tick_interval_ns = nullptr,
    .tick = nullptr,
};

}  // namespace

extern "C" FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void) {
  return &kDescriptor;
}
