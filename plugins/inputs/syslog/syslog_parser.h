// Syslog message parsing: one message (RFC 5424 or RFC 3164, already unframed) in, one
// JSON record out.
//
// The record is an object with these keys, always all present (null when the message
// does not carry the part):
//   format          "rfc5424" or "rfc3164"
//   facility        number 0..23, facility_name e.g. "daemon", "local0"
//   severity        number 0..7,  severity_name e.g. "err", "info"
//   timestamp       as written in the message (not converted)
//   host, app, procid, msgid (msgid: RFC 5424 only)
//   structured_data RFC 5424 only: {"<SD-ID>":{"<param>":"<value>",...},...} with the
//                   value escapes \" \\ \] resolved; null for "-" or unparseable SD
//   message         the free-form text (a leading UTF-8 BOM removed)
// RFC 5424 is recognised by "1 " right after <PRI>; anything else after a valid <PRI> is
// read as RFC 3164, tolerating missing parts (no timestamp, no host, no tag). Bytes that
// are not valid UTF-8 become U+FFFD; control characters are escaped.
//
// Thread-safety: stateless functions, any thread.
#pragma once

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// Appends the record for `message` to `out` (trailing "\n", "\r" and NUL bytes of the
// message are ignored). kInvalidArgument, with `out` unchanged, when the message does not
// start with a valid <PRI> (one to three digits, value 0..191).
Status appendSyslogRecord(std::string_view message, std::string& out);

// "kern" .. "local7" for 0..23; "" otherwise.
std::string_view syslogFacilityName(int facility);
// "emerg" .. "debug" for 0..7; "" otherwise.
std::string_view syslogSeverityName(int severity);

}  // namespace ferry
