// Typed option tables and the validated values built from them.
//
// Every configurable thing (a core section, a plugin) declares its keys as a table of
// OptionSpec: type, default, help, required. The config loader checks a document
// against the table (unknown keys, wrong types, bad durations/sizes, missing required
// keys are errors naming file, line and key path) and produces an Options value from
// which factories read typed values without further checking. `ferry plugins` prints
// the same tables, so the docs and the validation never disagree.
//
// Thread-safety: specs are immutable constants; Options is a value type.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ferry/clock.h"

namespace ferry {

enum class OptionType {
  kString,
  kInt,         // signed 64-bit
  kBool,
  kDouble,
  kDuration,    // "250ms", "30s", "5m", "2h", "7d"
  kSize,        // "512", "64KiB", "1GiB", "10MB"
  kEnum,        // one of `choices`
  kStringList,  // list of strings
  kObject,      // nested table described by `fields`
  kStringMap,   // mapping of string keys to string values (e.g. HTTP headers), in document order
  kObjectList,  // list of objects, each described by `fields`; the list's length is stored as
                // an int under the key, item i's values under "key[i].field" (listSize())
};

std::string_view optionTypeName(OptionType type);

struct OptionSpec {
  std::string_view key;
  OptionType type = OptionType::kString;
  std::string_view default_value;  // in config syntax; empty: no default
  std::string_view help;
  bool required = false;
  bool secret = false;  // never logged or printed; registered with the log scrubber
  std::span<const std::string_view> choices = {};  // kEnum; kStringList: allowed items
  std::span<const OptionSpec> fields = {};         // kObject, kObjectList (each item)
};

// Where a value came from, for error messages raised after validation.
struct SourceLocation {
  std::string file;
  int line = 0;         // 1-based; 0 when unknown (e.g. a default)
  std::string path;     // key path, e.g. "inputs[1].paths"

  // "file:line: path" (parts that are unknown are left out).
  std::string describe() const;
};

using OptionValue = std::variant<std::monostate, std::string, int64_t, bool, double, Duration,
                                 uint64_t /* size in bytes */, std::vector<std::string>,
                                 std::vector<std::pair<std::string, std::string>>>;

// Validated values of one table. Nested objects are flattened to dotted keys
// ("compression.level"). The loader stores every key given in the document and every
// declared default, so a factory reads plain values. A key with neither reads as the
// type's empty value; has() tells "unset" from "set to 0/empty". Reading a key with the
// wrong type is a programming error (asserts in debug, empty value in release).
class Options {
 public:
  void set(std::string key, OptionValue value, SourceLocation where);

  bool has(std::string_view key) const;  // set explicitly or by a default
  const std::string& getString(std::string_view key) const;
  int64_t getInt(std::string_view key) const;
  bool getBool(std::string_view key) const;
  double getDouble(std::string_view key) const;
  Duration getDuration(std::string_view key) const;
  uint64_t getSize(std::string_view key) const;
  const std::vector<std::string>& getStringList(std::string_view key) const;
  const std::vector<std::pair<std::string, std::string>>& getStringMap(std::string_view key) const;
  // kObjectList: the number of items (0 when unset); item i's keys are "<key>[i].<field>".
  size_t listSize(std::string_view key) const;
  static std::string itemKey(std::string_view list, size_t index, std::string_view field);

  // Location of a key (or of the table itself for ""), for factory errors.
  SourceLocation where(std::string_view key) const;
  // "file:line: path" of `key` (item `index` of a list when >= 0) for an error message; the
  // bare key when its location is unknown, so a message always names it.
  std::string locate(std::string_view key, int index = -1) const;
  void setLocation(SourceLocation where) { self_ = std::move(where); }

  const std::map<std::string, OptionValue, std::less<>>& values() const { return values_; }

 private:
  const OptionValue* find(std::string_view key) const;
  std::map<std::string, OptionValue, std::less<>> values_;
  std::map<std::string, SourceLocation, std::less<>> where_;
  SourceLocation self_;
};

// Parsers shared by the loader, the CLI and tests. They accept the config syntax.
bool parseDuration(std::string_view text, Duration* out);
bool parseSize(std::string_view text, uint64_t* out);
std::string formatDuration(Duration d);
std::string formatSize(uint64_t bytes);

}  // namespace ferry
