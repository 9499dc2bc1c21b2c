// ferry-bench scenarios with a real HTTP upstream (tail-http, replay-drain); see the .cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ferry/record.h"

namespace ferry::bench {

// Runs `name` ("tail-http" or "replay-drain") with `records` records made by `gen`, prints
// the scenario's JSON line; returns the process exit code.
int upstreamScenario(const std::string& name, uint64_t records, const std::function<void(RecordBatch&, uint64_t)>& gen);

}  // namespace ferry::bench
