// Reading fields of JSON records, shared by the processors that keep state per series
// (deadband, aggregate): dotted field paths, series keys, numbers, compact JSON text and
// option checks that name the key's location.
//
// Everything here works without heap allocation once the caller's buffers have grown:
// lookups walk simdjson's DOM, and text is appended to caller-owned strings.
//
// Thread-safety: FieldPath and SeriesKey are immutable after construction and may be shared;
// RecordParser is used by one thread at a time (it owns simdjson's reusable parser).
// Ownership: elements returned by RecordParser::parse() point into its parser and stay valid
// until the next parse() on the same RecordParser.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/processor.h"
#include "ferry/status.h"

namespace ferry::processors {

// A field named by a dotted path ("value", "reading.temp"): each segment is an object key.
class FieldPath {
 public:
  // Splits `dotted`; an empty path or an empty segment ("a..b", ".a") is an error.
  static Result<FieldPath> parse(std::string_view dotted);

  const std::string& name() const { return name_; }  // the dotted path as written

  // The value at the path inside `root`; false when a segment is missing or a step on the
  // way is not an object.
  bool find(simdjson::dom::element root, simdjson::dom::element* out) const;

 private:
  std::string name_;
  std::vector<std::string> segments_;
};

// The number held by `e` (an integer or a floating-point JSON number) as a double; false for
// every other type (strings such as "21.5" included). Integers beyond 2^53 lose precision.
bool numberOf(simdjson::dom::element e, double* out);

// Appends `e` as compact JSON text (objects and arrays recursively; strings re-escaped).
void appendJsonValue(std::string& out, simdjson::dom::element e);

// Appends `v` in the shortest form that reads back as the same double ("21.5", "3",
// "1e+300"); a value that is not finite (an overflowing sum) is written as null.
void appendNumber(std::string& out, double v);
// Appends an integer in decimal.
void appendInteger(std::string& out, int64_t v);
void appendInteger(std::string& out, uint64_t v);

// The identity of a series: the record's stream and the JSON text of each key field.
class SeriesKey {
 public:
  SeriesKey() = default;
  explicit SeriesKey(std::vector<FieldPath> fields) : fields_(std::move(fields)) {}

  const std::vector<FieldPath>& fields() const { return fields_; }

  // Writes the key of a record of `stream` into `out` (cleared first): the stream, then per
  // key field a 0x1f separator and the field's compact JSON text (nothing for a missing
  // field, so "missing" and null are different series). 0x1f never occurs in JSON text
  // unescaped, so two different records' keys cannot run together.
  void build(std::string_view stream, simdjson::dom::element root, std::string& out) const;

  // Appends `,"<field>":<value>` for each key field present in `key` (a string built by
  // build()), for records that name their series.
  void appendFields(std::string_view key, std::string& out) const;

 private:
  std::vector<FieldPath> fields_;
};

// One simdjson parser, reused for every record of an instance.
class RecordParser {
 public:
  // Parses one record; false when it is not valid JSON or not an object. simdjson copies the
  // text into its own padded buffer, which only grows.
  bool parse(std::string_view record, simdjson::dom::element* root);

 private:
  simdjson::dom::parser parser_;
};

// Hash maps keyed by std::string that can be searched with a std::string_view (no
// temporary string per lookup).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// The `key` option shared by the processors that keep state per series.
inline constexpr OptionSpec kSeriesKeyOption{
    .key = "key",
    .type = OptionType::kStringList,
    .help = "fields that tell series apart (dotted paths); default: one series per stream"};

// The factory of a processor built from its settings: Settings::fromOptions(opts), then
// P(settings, instance name, clock, metrics). Errors: the settings' own, or a missing clock.
template <typename Settings, typename P>
Result<std::unique_ptr<Processor>> makeProcessor(const PluginContext& ctx, const Options& opts) {
  Result<Settings> s = Settings::fromOptions(opts);
  if (!s.isOk()) return s.status();
  if (ctx.clock == nullptr) {
    return invalidArgument("processor " + ctx.name + ": no clock in the plugin context");
  }
  return std::unique_ptr<Processor>(
      std::make_unique<P>(std::move(s).value(), ctx.name, *ctx.clock, ctx.metrics));
}

// "file:line: path" of an option key for factory errors (the bare key when the options
// carry no location), with "[index]" appended for an item of a list.
std::string optionLocation(const Options& opts, std::string_view key, int index = -1);

// Reads the list option `key` as field paths; an error names the item ("key[1]").
Result<std::vector<FieldPath>> fieldPathsOption(const Options& opts, std::string_view key);

// Reads `max_keys`: between 1 and 10,000,000.
Result<size_t> maxKeysOption(const Options& opts);

}  // namespace ferry::processors
