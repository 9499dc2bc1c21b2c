#include "ferry/options.h"

#include <cassert>
#include <cctype>
#include <cstdlib>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace ferry {

std::string_view optionTypeName(OptionType type) {
  switch (type) {
    case OptionType::kString: return "string";
    case OptionType::kInt: return "integer";
    case OptionType::kBool: return "boolean";
    case OptionType::kDouble: return "number";
    case OptionType::kDuration: return "duration";
    case OptionType::kSize: return "size";
    case OptionType::kEnum: return "enum";
    case OptionType::kStringList: return "list of strings";
    case OptionType::kStringMap: return "mapping of strings";
    case OptionType::kObject: return "object";
    case OptionType::kObjectList: return "list of objects";
  }
  return "?";
}

std::string SourceLocation::describe() const {
  std::string s;
  if (!file.empty()) {
    s += file;
    if (line > 0) {
      s += ':';
      s += std::to_string(line);
    }
  }
  if (!path.empty()) {
    if (!s.empty()) s += ": ";
    s += path;
  }
  return s;
}

void Options::set(std::string key, OptionValue value, SourceLocation where) {
  where_[key] = std::move(where);
  values_[std::move(key)] = std::move(value);
}

const OptionValue* Options::find(std::string_view key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

bool Options::has(std::string_view key) const {
  const OptionValue* v = find(key);
  return v != nullptr && !std::holds_alternative<std::monostate>(*v);
}

namespace {
template <typename T>
const T& getOr(const OptionValue* v) {
  static const T kEmpty{};
  if (v == nullptr) return kEmpty;
  const T* p = std::get_if<T>(v);
  assert((p != nullptr || std::holds_alternative<std::monostate>(*v)) && "option read with wrong type");
  return p ? *p : kEmpty;
}
}  // namespace

const std::string& Options::getString(std::string_view key) const { return getOr<std::string>(find(key)); }
int64_t Options::getInt(std::string_view key) const { return getOr<int64_t>(find(key)); }
bool Options::getBool(std::string_view key) const { return getOr<bool>(find(key)); }
double Options::getDouble(std::string_view key) const { return getOr<double>(find(key)); }
Duration Options::getDuration(std::string_view key) const { return getOr<Duration>(find(key)); }
uint64_t Options::getSize(std::string_view key) const { return getOr<uint64_t>(find(key)); }
const std::vector<std::string>& Options::getStringList(std::string_view key) const {
  return getOr<std::vector<std::string>>(find(key));
}

const std::vector<std::pair<std::string, std::string>>& Options::getStringMap(std::string_view key) const {
  return getOr<std::vector<std::pair<std::string, std::string>>>(find(key));
}

size_t Options::listSize(std::string_view key) const {
  const int64_t n = getOr<int64_t>(find(key));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::string Options::itemKey(std::string_view list, size_t index, std::string_view field) {
  std::string k(list);
  k += '[';
  k += std::to_string(index);
  k += "].";
  k += field;
  return k;
}

std::string Options::locate(std::string_view key, int index) const {
  SourceLocation loc = where(key);
  if (loc.path.empty()) loc.path = std::string(key);
  if (index >= 0) loc.path += "[" + std::to_string(index) + "]";
  return loc.describe();
}

SourceLocation Options::where(std::string_view key) const {
  if (key.empty()) return self_;
  auto it = where_.find(key);
  if (it != where_.end()) return it->second;
  SourceLocation loc = self_;
  if (!loc.path.empty()) loc.path += '.';
  loc.path += key;
  return loc;
}

namespace {
// Splits "12.5ms" into 12.5 and "ms". Returns false when there is no leading number.
bool splitNumber(std::string_view text, double* number, std::string_view* unit) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  std::string num(text.substr(0, i));
  char* end = nullptr;
  *number = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size()) return false;
  *unit = text.substr(i);
  while (!unit->empty() && unit->front() == ' ') unit->remove_prefix(1);
  return true;
}
}  // namespace

bool parseDuration(std::string_view text, Duration* out) {
  double n = 0;
  std::string_view unit;
  if (!splitNumber(text, &n, &unit)) return false;
  double ns_per_unit = 0;
  if (unit == "ns") ns_per_unit = 1;
  else if (unit == "us") ns_per_unit = 1e3;
  else if (unit == "ms") ns_per_unit = 1e6;
  else if (unit == "s") ns_per_unit = 1e9;
  else if (unit == "m") ns_per_unit = 60e9;
  else if (unit == "h") ns_per_unit = 3600e9;
  else if (unit == "d") ns_per_unit = 86400e9;
  else return false;
  double ns = n * ns_per_unit;
  if (!std::isfinite(ns) || ns > 9.2e18) return false;
  *out = Duration(static_cast<int64_t>(ns));
  return true;
}

bool parseSize(std::string_view text, uint64_t* out) {
  double n = 0;
  std::string_view unit;
  if (!splitNumber(text, &n, &unit)) return false;
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KB" || unit == "kB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else if (unit == "TB") mult = 1e12;
  else if (unit == "KiB") mult = 1024.0;
  else if (unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else return false;
  double bytes = n * mult;
  if (!std::isfinite(bytes) || bytes > 1.8e19 || bytes != std::floor(bytes)) return false;
  *out = static_cast<uint64_t>(bytes);
  return true;
}

std::string formatDuration(Duration d) {
  using namespace std::chrono;
  int64_t ns = d.count();
  struct U { int64_t ns; const char* name; };
  static const U kUnits[] = {{86400'000'000'000, "d"}, {3600'000'000'000, "h"}, {60'000'000'000, "m"},
                             {1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}};
  for (const U& u : kUnits) {
    if (ns != 0 && ns % u.ns == 0) return std::to_string(ns / u.ns) + u.name;
  }
  return std::to_string(ns) + "ns";
}

std::string formatSize(uint64_t bytes) {
  static const char* kUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  static const uint64_t kMult[] = {1ull << 40, 1ull << 30, 1ull << 20, 1ull << 10};
  for (int i = 0; i < 4; ++i) {
    if (bytes != 0 && bytes % kMult[i] == 0) return std::to_string(bytes / kMult[i]) + kUnits[i];
  }
  return std::to_string(bytes);
}

}  // namespace ferry
