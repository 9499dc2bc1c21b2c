#include "plugins/outputs/http/retry_after.h"

#include <doctest/doctest.h>

using namespace ferry;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {
// 1994-11-06 08:49:37 UTC, the example date of RFC 9110.
const system_clock::time_point kExample = system_clock::time_point(seconds(784111777));
}  // namespace

TEST_SUITE("output.http.retry_after") {
  TEST_CASE("delta-seconds") {
    CHECK(parseRetryAfter("120", kExample) == Duration(seconds(120)));
    CHECK(parseRetryAfter(" 0\t", kExample) == Duration::zero());
    CHECK(parseRetryAfter("99999999999999999999999", kExample) == kMaxRetryAfter);
  }

  TEST_CASE("the three HTTP-date forms name the same instant") {
    CHECK(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT") == kExample);
    CHECK(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT") == kExample);
    CHECK(parseHttpDate("Sun Nov  6 08:49:37 1994") == kExample);
    CHECK(parseHttpDate("Sun Nov 16 08:49:37 1994") == kExample + seconds(10 * 86400));
  }

  TEST_CASE("an HTTP-date is a wait from now; one in the past is zero") {
    CHECK(parseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", kExample) == Duration(seconds(30)));
    CHECK(parseRetryAfter("Sun, 06 Nov 1994 08:49:07 GMT", kExample) == Duration::zero());
    CHECK(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", kExample) == Duration::zero());
  }

  TEST_CASE("malformed values are ignored") {
    for (const char* bad : {"", "  ", "-5", "1.5", "12s", "soon", "Sun, 06 Nov 1994 08:49:37",
                            "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                            "Sun, 06 Foo 1994 08:49:37 GMT", "Sun,  6 Nov 1994 08:49:37 GMT",
                            "Sun, 06 Nov 1994 08:49:37 GMT extra"}) {
      INFO(bad);
      CHECK_FALSE(parseRetryAfter(bad, kExample).has_value());
    }
  }
}
