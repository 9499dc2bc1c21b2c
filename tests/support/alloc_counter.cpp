#include "tests/support/alloc_counter.h"

#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define FERRY_COUNT_ALLOCATIONS 0
#else
#define FERRY_COUNT_ALLOCATIONS 1
#endif

namespace {
thread_local bool t_counting = false;  // constant-initialised: safe before main
thread_local uint64_t t_count = 0;
}  // namespace

#if FERRY_COUNT_ALLOCATIONS
// libstdc++'s array and nothrow forms call these, so every pair ends in malloc / free.
void* operator new(std::size_t n) {
  if (t_counting) ++t_count;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace ferry::test {

bool allocationCountingAvailable() { return FERRY_COUNT_ALLOCATIONS != 0; }

void startCountingAllocations() {
  t_count = 0;
  t_counting = true;
}

uint64_t stopCountingAllocations() {
  t_counting = false;
  return t_count;
}

}  // namespace ferry::test
