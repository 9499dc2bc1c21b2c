// ferry-bench scenario `processors`: the cost per record of each built-in processor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ferry/record.h"

namespace ferry::bench {

// Runs every case of the processor table (or only those whose processor or case name is
// `only`, when not empty) over `records` records made by `gen`, in batches of 1000, and prints
// one JSON line per case. Returns the process exit code.
int processorScenario(uint64_t records, const std::function<void(RecordBatch&, uint64_t)>& gen,
                      const std::string& only);

}  // namespace ferry::bench
