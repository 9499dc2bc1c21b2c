// Conversion of records (JSON objects) to InfluxDB line protocol, for `format: influx` of
// the http output (InfluxDB's /write and /api/v2/write).
//
// One line per record: measurement = the block's stream; every string value becomes a
// tag, every number and bool a field (integers with the `i` suffix, other numbers as
// floats, integers beyond int64 as floats); nested objects are flattened with '.'
// ("a":{"b":1} → field a.b); arrays and nulls are left out. A top-level "ts" or "time"
// (the first present) that is a number (unix seconds, milliseconds, microseconds or
// nanoseconds, told apart by magnitude: < 1e11 s, < 1e14 ms, < 1e17 µs, else ns; seconds
// may have a fraction) or an RFC 3339 string becomes the line's timestamp in nanoseconds;
// a record without one is written without a timestamp (the server's time). Measurement,
// tag keys, tag values and field keys are escaped per line protocol (',', '=' and ' ' with a
// backslash); line breaks and other control characters in them become spaces; empty tag
// values are left out (line protocol cannot carry them).
//
// A record with no number or bool field cannot be a line (a line needs a field): it is
// skipped and counted in Stats::no_fields; a line that is not a JSON object in
// Stats::not_object. The caller counts both as dropped.
//
// Thread-safety: an InfluxEncoder keeps a parser and scratch buffers: one per thread.
// No per-record allocation once the buffers have grown to the largest record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ferry/record.h"

namespace ferry {

class InfluxEncoder {
 public:
  struct Stats {
    size_t lines = 0;       // records written
    size_t no_fields = 0;   // skipped: no number or bool field
    size_t not_object = 0;  // skipped: not a JSON object
  };

  InfluxEncoder();
  ~InfluxEncoder();
  InfluxEncoder(const InfluxEncoder&) = delete;
  InfluxEncoder& operator=(const InfluxEncoder&) = delete;

  // Replaces *out with the lines of `block`'s records.
  Stats encode(const Block& block, std::string* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Unix nanoseconds of an RFC 3339 timestamp ("2024-05-01T12:00:00Z",
// "2024-05-01T12:00:00.25+02:00"); nullopt when it is not one.
std::optional<int64_t> parseRfc3339Nanos(std::string_view text);

}  // namespace ferry
