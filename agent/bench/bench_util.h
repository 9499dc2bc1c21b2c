// Measurements shared by the ferry-bench scenarios: peak RSS and bytes this process wrote.
// Thread-safety: stateless functions.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <string_view>

namespace ferry::bench {

inline double peakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// write_bytes of /proc/self/io: what this process made the kernel write to storage.
inline uint64_t processWriteBytes() {
  FILE* f = std::fopen("/proc/self/io", "r");
  if (f == nullptr) return 0;
  char key[64];
  unsigned long long v = 0;
  uint64_t out = 0;
  while (std::fscanf(f, "%63s %llu", key, &v) == 2) {
    if (std::string_view(key) == "write_bytes:") out = v;
  }
  std::fclose(f);
  return out;
}

}  // namespace ferry::bench
