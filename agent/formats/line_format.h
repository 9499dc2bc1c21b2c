// Line formats: turning one line (a file line, an MQTT payload, a field's text) into one
// JSON record. Shared by the `tail` and `mqtt` inputs and the `parse` processor, so every
// plugin accepts the same formats with the same options, record shapes and drop reasons.
// docs/formats.md is the user reference (record shape of each format, options, reasons).
//
// Formats: json | text | logfmt | csv | influx | regex.
//   json    the line must be one JSON object (validated by simdjson, UTF-8 included); the
//           record is the line, trimmed (JSON whitespace '\r' / '\n' inside it become ' ').
//   text    {"message":"<line>"}
//   logfmt  key=value key2="quoted value" flag → {"key":..,"key2":"quoted value","flag":true};
//           bare values that are JSON numbers a double / 64-bit integer can hold become
//           numbers, bare true/false booleans, everything else (and every quoted value) a string.
//   csv     RFC 4180 fields named by `columns` (same conversions as logfmt for unquoted
//           fields); a row with another number of fields is refused; a row equal to the
//           column names (a header) is skipped.
//   influx  InfluxDB line protocol → {"measurement":..,"tags":{..},"fields":{..},"time":<ns>}
//           ("time" only when the line has a timestamp).
//   regex   a PCRE2 pattern (JIT-compiled); named groups become string fields.
// A caller can add members to every record (tail adds "path", mqtt "topic"): `extra` is a
// pre-serialised member list ("k":"v",...; build it with appendExtraMember) placed last in
// the object. A member of the line with the same key is not removed.
//
// Outcome of one line (LineOutcome): a record appended to the batch, a line skipped (empty,
// an influx comment, a csv header: nothing to count), or a line refused with a reason from
// line_reason:: that the caller passes to Emitter::countDropped / ProcessResult::drop.
// Invalid UTF-8 in the non-JSON formats is refused (`invalid_utf8: drop`, the default) or
// written as U+FFFD (`replace`); NUL bytes are refused in every format.
//
// Declaring the options (one source for docs and validation): a plugin builds its table as
//     constexpr OptionSpec kOwn[] = {...};
//     constexpr auto kOptions = withLineFormatOptions(kOwn);   // kOwn + kLineFormatOptions
// and reads them with lineFormatSpecFromOptions(opts). A plugin that nests them (the parse
// processor: `parse: {format: csv, columns: [...]}`) declares an OptionType::kObject key whose
// `fields` are kLineFormatOptions and passes prefix "parse." (Options flattens nested keys).
//
// Threading: a LineParser is used by one thread at a time (build one per thread; make() is
// cheap except for compiling a regex). Everything else here is stateless or constant.
// Ownership: the parser owns its scratch buffers, simdjson parser and PCRE2 objects; it
// appends to the caller's RecordBatch and keeps no reference to it or to the line.
// Hot path: no heap allocation per line once the scratch buffers and the batch's arena have
// reached their working size; every format is linear in the line's length.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/options.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

enum class LineFormat : uint8_t { kJson, kText, kLogfmt, kCsv, kInflux, kRegex };
enum class InvalidUtf8 : uint8_t { kDrop, kReplace };

inline constexpr std::string_view kLineFormatChoices[] = {"json", "text",   "logfmt",
                                                          "csv",  "influx", "regex"};
inline constexpr std::string_view kInvalidUtf8Choices[] = {"drop", "replace"};

std::string_view lineFormatName(LineFormat format);
// False when `name` is not one of kLineFormatChoices.
bool parseLineFormat(std::string_view name, LineFormat* out);

// Validated settings of one parser. Build it with lineFormatSpecFromOptions (config) or by
// hand (tests, code); LineParser::make checks it again.
struct LineFormatSpec {
  LineFormat format = LineFormat::kJson;
  std::string pattern;                            // regex: required, at least one named group
  std::vector<std::string> columns;               // csv: required, non-empty and unique names
  char delimiter = ',';                           // csv: not '"', '\r' or '\n'
  InvalidUtf8 invalid_utf8 = InvalidUtf8::kDrop;  // every format but json (always refused)
};

// The option keys every line-format user declares (see the top of this file).
inline constexpr OptionSpec kLineFormatOptions[] = {
    {.key = "format",
     .type = OptionType::kEnum,
     .default_value = "json",
     .help = "how a line becomes a record: json (one JSON object per line) | text "
             "({\"message\":..}) | logfmt | csv (needs columns) | influx (line protocol) | "
             "regex (needs pattern); shapes in docs/formats.md",
     .choices = kLineFormatChoices},
    {.key = "pattern",
     .type = OptionType::kString,
     .help = "format regex: a PCRE2 pattern with named groups (?<name>...), which become "
             "string fields; a line it does not match is dropped (regex_no_match)"},
    {.key = "columns",
     .type = OptionType::kStringList,
     .help = "format csv: the field names in order; a row with another number of fields "
             "is dropped (csv_bad_row)"},
    {.key = "delimiter",
     .type = OptionType::kString,
     .default_value = ",",
     .help = "format csv: the field separator, one byte (e.g. \";\" or \"\\t\")"},
    {.key = "invalid_utf8",
     .type = OptionType::kEnum,
     .default_value = "drop",
     .help = "formats other than json: a line with invalid UTF-8 is dropped (invalid_utf8) or "
             "kept with each bad byte replaced by U+FFFD (replace)",
     .choices = kInvalidUtf8Choices},
};

// `own` followed by kLineFormatOptions, as one constexpr table.
template <size_t N>
constexpr std::array<OptionSpec, N + std::size(kLineFormatOptions)> withLineFormatOptions(
    const OptionSpec (&own)[N]) {
  std::array<OptionSpec, N + std::size(kLineFormatOptions)> all{};
  for (size_t i = 0; i < N; ++i) all[i] = own[i];
  for (size_t i = 0; i < std::size(kLineFormatOptions); ++i) all[N + i] = kLineFormatOptions[i];
  return all;
}

// Reads the keys of kLineFormatOptions (each prefixed by `prefix`) and checks them, including
// compiling the regex. Errors are kInvalidArgument naming the key's location
// ("file:line: inputs[0].pattern: ...").
Result<LineFormatSpec> lineFormatSpecFromOptions(const Options& opts, std::string_view prefix = {});

// Drop reasons (ferry_dropped_records_total{reason}). Static strings: callers may keep views.
namespace line_reason {
inline constexpr std::string_view kBadJson = "bad_json";
inline constexpr std::string_view kNotAnObject = "not_an_object";
inline constexpr std::string_view kInvalidUtf8 = "invalid_utf8";
inline constexpr std::string_view kNulByte = "nul_byte";
inline constexpr std::string_view kNumberOutOfRange = "number_out_of_range";
inline constexpr std::string_view kBadLogfmt = "bad_logfmt";
inline constexpr std::string_view kCsvBadRow = "csv_bad_row";
inline constexpr std::string_view kBadInflux = "bad_influx";
inline constexpr std::string_view kRegexNoMatch = "regex_no_match";
// The regex engine gave up on a line (backtracking or JIT stack limit): refused.
inline constexpr std::string_view kRegexLimit = "regex_limit";
// Skips (not drops): nothing to count.
inline constexpr std::string_view kEmptyLine = "empty_line";
inline constexpr std::string_view kComment = "comment";       // influx: a line starting '#'
inline constexpr std::string_view kCsvHeader = "csv_header";  // csv: a row equal to `columns`
}  // namespace line_reason

struct LineOutcome {
  enum class Kind : uint8_t { kRecord, kSkipped, kRefused };
  Kind kind = Kind::kRecord;
  std::string_view reason;  // kSkipped / kRefused: a line_reason constant

  bool appended() const { return kind == Kind::kRecord; }
  bool refused() const { return kind == Kind::kRefused; }
};

// Refused lines per reason, for a caller that counts them once per batch
// (Emitter::countDropped). Reasons must have static storage (line_reason constants). A fixed
// table: no allocation; reasons beyond its size share the last slot's count under "other".
class LineDropTally {
 public:
  void add(std::string_view reason, uint64_t n = 1) {
    for (auto& [r, c] : slots_) {
      if (r == reason || r.empty()) {
        r = reason;
        c += n;
        return;
      }
    }
    slots_.back().first = "other";
    slots_.back().second += n;
  }
  // Calls fn(reason, count) for every reason seen since the last drain, then forgets them.
  template <class Fn>
  void drain(Fn&& fn) {
    for (auto& [r, c] : slots_) {
      if (r.empty()) break;
      if (c > 0) fn(r, c);
      r = {};
      c = 0;
    }
  }

 private:
  std::array<std::pair<std::string_view, uint64_t>, 16> slots_{};
};

// Appends one pre-serialised member `"key":"value"` (JSON-escaped) to `extra`, with a comma
// when `extra` already holds one.
void appendExtraMember(std::string& extra, std::string_view key, std::string_view value);

// Bytes a caller of parsePadded() guarantees readable (any content) after the line.
inline constexpr size_t kLinePadding = 64;

class LineParser {
 public:
  // Checks `spec` (errors name the key: "pattern: ...", "columns: ...") and builds a parser.
  static Result<LineParser> make(const LineFormatSpec& spec);

  LineParser(LineParser&&) noexcept;
  LineParser& operator=(LineParser&&) noexcept;
  ~LineParser();

  // Parses one line (a trailing "\n", "\r\n" or "\r" is ignored) and appends its record,
  // followed by `extra` members, to `out`. `out` is unchanged unless a record is appended.
  LineOutcome parse(std::string_view line, RecordBatch& out, std::string_view extra = {});
  // The same, for a caller whose buffer has kLinePadding readable bytes after `line` (json
  // then parses in place instead of copying the line).
  LineOutcome parsePadded(std::string_view line, RecordBatch& out, std::string_view extra = {});

  LineFormat format() const;

  struct State;  // opaque: defined in line_format.cpp

 private:
  explicit LineParser(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace ferry
