// Helpers the processor plugins share for reading their options and naming keys in errors.
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

#include "ferry/options.h"
#include "ferry/record_fields.h"
#include "ferry/status.h"

namespace ferry {

// "file:line: processors[2].fields" for `key` ("" names the processor's entry), falling back
// to the bare key (or "options") so that a message always names something.
inline std::string locateOption(const Options& opts, std::string_view key) {
  SourceLocation loc = opts.where(key);
  if (loc.path.empty()) loc.path = key.empty() ? std::string("options") : std::string(key);
  return loc.describe();
}

// Parses a field path given in option `key` (`what` is shown: "field", "fields.x"), with an
// error naming the key's location.
inline Result<FieldPath> fieldPathOption(const Options& opts, std::string_view key,
                                         std::string_view text) {
  auto path = parseFieldPath(text);
  if (!path.isOk()) {
    return invalidArgument(locateOption(opts, key) + ": field path \"" + std::string(text) +
                           "\": " + path.status().message());
  }
  return path;
}

// Reason for records a processor cannot read as a JSON object (counted in
// ferry_dropped_records_total{reason}).
inline constexpr std::string_view kReasonBadJson = "bad_json";

}  // namespace ferry
