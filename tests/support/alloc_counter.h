// Counting heap allocations, for tests of "no allocation per record" hot paths.
//
// The test binaries replace the global operator new (tests/support/alloc_counter.cpp) with
// one that counts its calls on the calling thread between startCountingAllocations() and
// stopCountingAllocations(); everything else allocates as usual (malloc / free). Memory that
// C libraries take with malloc directly (PCRE2, zstd, RocksDB) is not counted. Under
// AddressSanitizer (which has its own operator new and checks new/delete pairs) nothing is
// replaced and available() is false: tests then skip their allocation checks.
//
// Thread-safety: the count is per thread; each function acts on the calling thread only.
#pragma once

#include <cstdint>

namespace ferry::test {

// False when the build cannot count (AddressSanitizer).
bool allocationCountingAvailable();
void startCountingAllocations();
// Stops counting; returns the operator new calls of this thread since the start.
uint64_t stopCountingAllocations();

}  // namespace ferry::test
