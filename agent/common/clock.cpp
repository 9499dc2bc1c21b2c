#include "ferry/clock.h"

namespace ferry {
namespace {
class SystemClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  int64_t wallMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};
}  // namespace

const Clock& systemClock() {
  static const SystemClock kClock;
  return kClock;
}

}  // namespace ferry
