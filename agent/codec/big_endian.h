// Big-endian integers in byte strings: the stored block, the envelope and the buffer's
// keys and values all use them.
// Thread-safety: stateless inline functions.
#pragma once

#include <cstdint>
#include <string>

namespace ferry::be {

inline void put16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}
inline void put32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
inline void put64(char* p, uint64_t v) {
  put32(p, static_cast<uint32_t>(v >> 32));
  put32(p + 4, static_cast<uint32_t>(v));
}
inline void append16(std::string& s, uint16_t v) {
  char b[2];
  put16(b, v);
  s.append(b, 2);
}
inline void append32(std::string& s, uint32_t v) {
  char b[4];
  put32(b, v);
  s.append(b, 4);
}
inline void append64(std::string& s, uint64_t v) {
  char b[8];
  put64(b, v);
  s.append(b, 8);
}
inline uint16_t get16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((u[0] << 8) | u[1]);
}
inline uint32_t get32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}
inline uint64_t get64(const char* p) { return (uint64_t{get32(p)} << 32) | get32(p + 4); }

}  // namespace ferry::be
