#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>

#include "agent/codec/block_codec.h"

using namespace ferry;

namespace {

// Bit-at-a-time reference: slow, but obviously the definition.
uint32_t bitwiseCrc32c(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

}  // namespace

TEST_SUITE("codec.crc32c") {
  TEST_CASE("standard check value and iSCSI vectors") {
    CHECK(crc32c("123456789") == 0xE3069283u);
    CHECK(crc32c("") == 0u);
    // RFC 3720 appendix B.4.
    CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
    CHECK(crc32c(std::string(32, '\xFF')) == 0x62A8AB43u);
    std::string inc;
    for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
    CHECK(crc32c(inc) == 0x46DD794Eu);
  }

  TEST_CASE("the seed continues a running CRC") {
    const std::string a = "hello, ", b = "sliced world";
    CHECK(crc32c(b, crc32c(a)) == crc32c(a + b));
    CHECK(crc32c("", 0x12345678u) == 0x12345678u);
  }

  TEST_CASE("slicing-by-8 matches the bitwise definition at every offset and length") {
    std::mt19937 rng(42);
    std::string buf(300, '\0');
    for (char& c : buf) c = static_cast<char>(rng());
    for (size_t off = 0; off < 9; ++off) {
      for (size_t len = 0; len + off <= buf.size(); len += (len < 40 ? 1 : 37)) {
        std::string_view v = std::string_view(buf).substr(off, len);
        REQUIRE(crc32c(v) == bitwiseCrc32c(v));
      }
    }
  }
}
