#include "agent/buffer/drop_counter.h"

#include "ferry/log.h"

namespace ferry {

void DropCounter::drop(std::string_view reason, uint64_t records, std::string_view detail) {
  if (records == 0) return;
  metrics_.counter("ferry_dropped_records_total", {{"reason", std::string(reason)}},
                   "records dropped, by reason")
      .add(records);
  std::lock_guard lock(mu_);
  Pending* slot = nullptr;
  for (Pending& p : pending_) {
    if (p.reason == reason || p.reason.empty()) {
      slot = &p;
      break;
    }
  }
  if (slot == nullptr) slot = &pending_[3];  // more reasons than slots: share the last one
  if (slot->reason.empty()) slot->reason = reason;
  slot->since_last_log += records;
  const SteadyTime now = clock_.now();
  if (slot->logged && now - slot->last_log < std::chrono::minutes(1)) return;
  logWarn("buffer", "dropped ", slot->since_last_log, " records (reason ", reason, ") ",
          slot->logged ? "in the last minute" : "", slot->logged ? "; " : "", detail,
          "; see ferry_dropped_records_total");
  slot->logged = true;
  slot->last_log = now;
  slot->since_last_log = 0;
}

}  // namespace ferry
