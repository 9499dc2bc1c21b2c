// Shared by the ferry-bench scenarios: the sensor data they feed in (as records or as a
// file of lines), and measurements (peak RSS, bytes this process wrote).
// Thread-safety: stateless functions.
#pragma once

#include <sys/resource.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>

#include "ferry/record.h"

namespace ferry::bench {

inline double peakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// CPU time (user + system) of every thread of this process so far, in seconds.
inline double processCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
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

// One sensor reading, distinct per i: sensor and value from a hash of i (splitmix64), so
// zstd sees realistic entropy instead of a counting pattern; timestamps advance ~1 ms per i.
struct SensorReading {
  uint64_t ts_ms = 0;
  unsigned sensor = 0;  // 0..499: "temp-042"
  unsigned centi = 0;   // value * 100: 15.00 .. 34.99
};

inline SensorReading sensorReading(uint64_t i) {
  uint64_t h = i + 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return {1764000000000ull + i + (h & 3), static_cast<unsigned>((h >> 8) % 500),
          1500 + static_cast<unsigned>((h >> 20) % 2000)};
}

// Builds one line of sensor data in a fixed buffer (no allocation; at most 192 bytes).
class LineWriter {
 public:
  LineWriter& put(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
    return *this;
  }
  LineWriter& num(uint64_t v) {
    p_ = std::to_chars(p_, buf_ + sizeof buf_, v).ptr;
    return *this;
  }
  // "temp-042"
  LineWriter& sensor(unsigned sensor) {
    put("temp-");
    *p_++ = static_cast<char>('0' + sensor / 100);
    *p_++ = static_cast<char>('0' + sensor / 10 % 10);
    *p_++ = static_cast<char>('0' + sensor % 10);
    return *this;
  }
  // 2745 → "27.45"
  LineWriter& centi(unsigned centi) {
    num(centi / 100);
    *p_++ = '.';
    *p_++ = static_cast<char>('0' + centi / 10 % 10);
    *p_++ = static_cast<char>('0' + centi % 10);
    return *this;
  }
  std::string_view text() const { return {buf_, static_cast<size_t>(p_ - buf_)}; }

 private:
  char buf_[192];
  char* p_ = buf_;
};

// ~92 bytes of sensor JSON (reading i), appended to `batch` as one record. Written with
// to_chars: the generator is the benchmark's input, not the agent's work, so it must not
// dominate the profile.
inline void sensorRecord(RecordBatch& batch, uint64_t i) {
  const SensorReading r = sensorReading(i);
  LineWriter w;
  w.put("{\"ts\":").num(r.ts_ms).put(",\"sensor\":\"").sensor(r.sensor);
  w.put("\",\"site\":\"plant-7\",\"value\":").centi(r.centi).put(",\"unit\":\"C\",\"ok\":true}");
  batch.mutableData().append(w.text());
  batch.commitRecord();
}

// Writes `records` records made by `gen`, one per line (NDJSON), to `path`; returns the
// records' bytes (without the newlines).
inline uint64_t writeRecordsFile(const std::string& path, uint64_t records,
                                 const std::function<void(RecordBatch&, uint64_t)>& gen) {
  std::ofstream f(path, std::ios::binary);
  RecordBatch batch;
  std::string nd;
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < records;) {
    batch.clear();
    for (int k = 0; k < 10000 && i < records; ++k, ++i) gen(batch, i);
    nd.clear();
    batch.appendNdjson(nd);
    f.write(nd.data(), static_cast<std::streamsize>(nd.size()));
    bytes += batch.bytes();
  }
  return bytes;
}

}  // namespace ferry::bench
