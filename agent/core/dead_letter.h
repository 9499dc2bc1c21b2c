// The record form of a dead letter, shared by `ferry buffer export --dead-letters` and
// by forwarding to a `dead_letter.output`:
//   {"dead_letter":{"output":"<refused by>","reason":"<why>","stream":"<stream>",
//    "seq":<block seq>,"at_ms":<when refused>},"record":<the original record>}
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/record.h"

namespace ferry {

struct DeadLetterOrigin {
  std::string_view output;
  std::string_view reason;
  std::string_view stream;
  uint64_t seq = 0;
  int64_t at_ms = 0;
};

// Appends one wrapped record (no newline) to `out`.
void appendDeadLetterRecord(std::string& out, const DeadLetterOrigin& origin, std::string_view record);

// Wraps every record of `records` into `out` (appended, one record each).
void wrapDeadLetters(const DeadLetterOrigin& origin, const RecordBatch& records, RecordBatch* out);

}  // namespace ferry
