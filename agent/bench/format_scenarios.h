// ferry-bench scenario `formats`: the line-format parsers alone; see the .cpp.
#pragma once

#include <cstdint>

namespace ferry::bench {

// Prints one JSON line per format; returns the process exit code. Runs on the calling thread.
int formatsScenario(uint64_t records);

}  // namespace ferry::bench
