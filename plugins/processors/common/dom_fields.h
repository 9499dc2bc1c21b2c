// Reading fields of JSON records, shared by the processors that keep state per series
// (deadband, aggregate): dotted field paths, series keys, numbers, compact JSON text and
// option checks that name the key's location.
//
// Everything here works without heap allocation once the caller's buffers have grown:
// lookups walk simdjson's DOM, and text is appended to caller-owned strings.
//
// Thread-safety: DomField and SeriesKey are immutable after construction and may be shared;
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

#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/processor.h"
#include "ferry/record_fields.h"
#include "ferry/status.h"
#include "plugins/processors/common/processor_options.h"

namespace ferry::processors {

// A field of a parsed record, named by a field path in the syntax of ferry/record_fields.h
// (members joined by dots, `backticks` around a segment with other characters).
class DomField {
 public:
  DomField() = default;
  explicit DomField(FieldPath path);

  // Parses `text` (parseFieldPath's errors).
  static Result<DomField> parse(std::string_view text);

  // The path in canonical syntax (formatFieldPath): how window records name the field.
  const std::string& name() const { return name_; }

  // The value at the path inside `root`; false when a segment is missing or a step on the
  // way is not an object.
  bool find(simdjson::dom::element root, simdjson::dom::element* out) const;

 private:
  std::string name_;
  FieldPath segments_;
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
  explicit SeriesKey(std::vector<DomField> fields) : fields_(std::move(fields)) {}

  const std::vector<DomField>& fields() const { return fields_; }

  // Writes the key of a record of `stream` into `out` (cleared first): the stream, then per
  // key field a 0x1f separator and the field's compact JSON text (nothing for a missing
  // field, so "missing" and null are different series). 0x1f never occurs in JSON text
  // unescaped, so two different records' keys cannot run together.
  void build(std::string_view stream, simdjson::dom::element root, std::string& out) const;

  // Appends `,"<field>":<value>` for each key field present in `key` (a string built by
  // build()), for records that name their series.
  void appendFields(std::string_view key, std::string& out) const;

 private:
  std::vector<DomField> fields_;
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

// The counter ferry_processor_passed_records_total{processor=<instance>,reason=<reason>}:
// records a processor let through unchanged because it could not judge them. Null when
// `metrics` is null.
Counter* passedRecordsCounter(MetricsRegistry* metrics, const std::string& instance,
                              std::string_view reason);

// locateOption() of an item of the list option `key`: "file:line: processors[0].key[1]".
std::string optionItemLocation(const Options& opts, std::string_view key, size_t index);

// Reads the list option `key` as field paths; errors name the key and the item.
Result<std::vector<DomField>> fieldListOption(const Options& opts, std::string_view key);

// Reads `max_keys`: between 1 and 10,000,000.
Result<size_t> maxKeysOption(const Options& opts);

}  // namespace ferry::processors
