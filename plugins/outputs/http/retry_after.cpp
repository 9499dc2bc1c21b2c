#include "plugins/outputs/http/retry_after.h"

#include <array>
#include <cstdint>

namespace ferry {
namespace {

using std::chrono::system_clock;

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                   "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A small cursor over the text; every reader fails (returns false) without consuming on
// a mismatch.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool literal(std::string_view lit) {
    if (s_.substr(0, lit.size()) != lit) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  // Exactly `n` digits.
  bool digits(size_t n, int* out) {
    if (s_.size() < n) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (s_[i] < '0' || s_[i] > '9') return false;
      v = v * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(n);
    *out = v;
    return true;
  }
  template <size_t N>
  bool oneOf(const std::array<std::string_view, N>& names, int* index) {
    for (size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        *index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }
  // "HH:MM:SS"
  bool timeOfDay(int* h, int* m, int* sec) {
    return digits(2, h) && literal(":") && digits(2, m) && literal(":") && digits(2, sec);
  }
  bool done() const { return s_.empty(); }

 private:
  std::string_view s_;
};

std::optional<system_clock::time_point> toTime(int year, int month0, int day, int h, int m,
                                               int sec) {
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month0 + 1)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || h > 23 || m > 59 || sec > 60) return std::nullopt;  // 60: a leap second
  return system_clock::time_point(sys_days(ymd)) + hours(h) + minutes(m) + seconds(sec);
}

}  // namespace

std::optional<system_clock::time_point> parseHttpDate(std::string_view text) {
  text = trimmed(text);
  int wday = 0, day = 0, month = 0, year = 0, h = 0, m = 0, sec = 0;
  {  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    Reader r(text);
    if (r.oneOf(kDays, &wday) && r.literal(", ") && r.digits(2, &day) && r.literal(" ") &&
        r.oneOf(kMonths, &month) && r.literal(" ") && r.digits(4, &year) && r.literal(" ") &&
        r.timeOfDay(&h, &m, &sec) && r.literal(" GMT") && r.done()) {
      return toTime(year, month, day, h, m, sec);
    }
  }
  {  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years in
     // the future means the past century (RFC 9110, 5.6.7): read 70..99 as 19xx.
    Reader r(text);
    if (r.oneOf(kLongDays, &wday) && r.literal(", ") && r.digits(2, &day) && r.literal("-") &&
        r.oneOf(kMonths, &month) && r.literal("-") && r.digits(2, &year) && r.literal(" ") &&
        r.timeOfDay(&h, &m, &sec) && r.literal(" GMT") && r.done()) {
      return toTime(year < 70 ? 2000 + year : 1900 + year, month, day, h, m, sec);
    }
  }
  {  // asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space)
    Reader r(text);
    if (r.oneOf(kDays, &wday) && r.literal(" ") && r.oneOf(kMonths, &month) && r.literal(" ") &&
        ((r.literal(" ") && r.digits(1, &day)) || r.digits(2, &day)) && r.literal(" ") &&
        r.timeOfDay(&h, &m, &sec) && r.literal(" ") && r.digits(4, &year) && r.done()) {
      return toTime(year, month, day, h, m, sec);
    }
  }
  return std::nullopt;
}

std::optional<Duration> parseRetryAfter(std::string_view value, system_clock::time_point now) {
  value = trimmed(value);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    const int64_t cap = std::chrono::duration_cast<std::chrono::seconds>(kMaxRetryAfter).count();
    int64_t secs = 0;
    for (char c : value) {
      secs = secs * 10 + (c - '0');
      if (secs >= cap) return kMaxRetryAfter;
    }
    return std::chrono::seconds(secs);
  }
  const std::optional<system_clock::time_point> at = parseHttpDate(value);
  if (!at) return std::nullopt;
  if (*at <= now) return Duration::zero();
  const Duration wait = std::chrono::duration_cast<Duration>(*at - now);
  return wait > kMaxRetryAfter ? kMaxRetryAfter : wait;
}

}  // namespace ferry
