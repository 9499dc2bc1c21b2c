#include "agent/core/dead_letter.h"

#include "ferry/json.h"

namespace ferry {

void appendDeadLetterRecord(std::string& out, const DeadLetterOrigin& origin, std::string_view record) {
  out += "{\"dead_letter\":{\"output\":";
  appendJsonString(out, origin.output);
  out += ",\"reason\":";
  appendJsonString(out, origin.reason);
  out += ",\"stream\":";
  appendJsonString(out, origin.stream);
  out += ",\"seq\":";
  out += std::to_string(origin.seq);
  out += ",\"at_ms\":";
  out += std::to_string(origin.at_ms);
  out += "},\"record\":";
  // Records are JSON objects (record.h); anything else is carried as a string so the
  // wrapper stays valid JSON.
  if (!record.empty() && record.front() == '{' && record.back() == '}') {
    out += record;
  } else {
    appendJsonString(out, record);
  }
  out += '}';
}

void wrapDeadLetters(const DeadLetterOrigin& origin, const RecordBatch& records, RecordBatch* out) {
  for (size_t i = 0; i < records.size(); ++i) {
    appendDeadLetterRecord(out->mutableData(), origin, records[i]);
    out->commitRecord();
  }
}

}  // namespace ferry
