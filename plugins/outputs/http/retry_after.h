// Parsing of the HTTP Retry-After header (RFC 9110, section 10.2.3) for the http output.
//
// The value is either delta-seconds ("120") or an HTTP-date. All three date forms a
// recipient must accept are read: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the
// obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6
// 08:49:37 1994"). A date is turned into the wait from `now`; a date in the past means
// "now" (zero). Delta-seconds are capped at kMaxRetryAfter so that a hostile or broken
// value cannot overflow; the sender caps the wait further with its retry.max.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "ferry/clock.h"

namespace ferry {

inline constexpr Duration kMaxRetryAfter = std::chrono::hours(24 * 365);

// The wait a Retry-After value asks for, or nullopt when it is neither form (the header
// is then ignored). Surrounding spaces and tabs are ignored.
std::optional<Duration> parseRetryAfter(std::string_view value,
                                        std::chrono::system_clock::time_point now);

// The instant an HTTP-date names (one of the three forms above), or nullopt.
std::optional<std::chrono::system_clock::time_point> parseHttpDate(std::string_view text);

}  // namespace ferry
