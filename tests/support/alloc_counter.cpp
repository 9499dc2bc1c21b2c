#include "tests/support/alloc_counter.h"

#include <cstdlib>
#include <new>

namespace {
thread_local bool t_counting = false;  // constant-initialised: safe before main
thread_local uint64_t t_count = 0;
}  // namespace

void* operator new(std::size_t n) {
  if (t_counting) ++t_count;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace ferry::test {

void startCountingAllocations() {
  t_count = 0;
  t_counting = true;
}

uint64_t stopCountingAllocations() {
  t_counting = false;
  return t_count;
}

}  // namespace ferry::test
