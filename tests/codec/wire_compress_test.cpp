#include "agent/codec/wire_compress.h"

#include <doctest/doctest.h>
#include <zstd.h>

#include <string>

using namespace ferry;

namespace {

std::string sample() {
  std::string s;
  for (int i = 0; i < 2000; ++i) s += "{\"n\":" + std::to_string(i) + ",\"msg\":\"hello\"}\n";
  return s;
}

// What a streaming writer (e.g. the zstd command) makes: no content size, with a checksum.
std::string zstdStreamed(std::string_view in) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  std::string out(ZSTD_compressBound(in.size()) + 64, '\0');
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  size_t left = ZSTD_compressStream2(c, &output, &input, ZSTD_e_end);
  ZSTD_freeCCtx(c);
  REQUIRE(left == 0);
  out.resize(output.pos);
  return out;
}

}  // namespace

TEST_SUITE("codec.wire_compress") {
  TEST_CASE("every encoding round-trips") {
    const std::string in = sample();
    for (WireEncoding e : {WireEncoding::kIdentity, WireEncoding::kZstd, WireEncoding::kGzip}) {
      CAPTURE(wireEncodingName(e));
      WireCompressor comp(e, 0);
      std::string wire;
      REQUIRE(comp.compress(in, &wire).isOk());
      if (e != WireEncoding::kIdentity) CHECK(wire.size() < in.size() / 4);
      std::string back;
      Status st = decompressWire(e, wire, &back, in.size());
      REQUIRE_MESSAGE(st.isOk(), st.toString());
      CHECK(back == in);
      // One byte less room than needed is refused.
      CHECK(decompressWire(e, wire, &back, in.size() - 1).code() == StatusCode::kInvalidArgument);
    }
  }

  TEST_CASE("zstd: streamed frames with checksums and concatenated frames decode") {
    const std::string in = sample();
    std::string back;
    std::string one = zstdStreamed(in);
    REQUIRE(decompressWire(WireEncoding::kZstd, one, &back, 1 << 20).isOk());
    CHECK(back == in);
    REQUIRE(decompressWire(WireEncoding::kZstd, one + zstdStreamed("x\n"), &back, 1 << 20).isOk());
    CHECK(back == in + "x\n");
  }

  TEST_CASE("zstd: truncated, damaged, empty or trailing-garbage bodies are kCorruption") {
    const std::string wire = zstdStreamed(sample());
    std::string back;
    CHECK(decompressWire(WireEncoding::kZstd, wire.substr(0, wire.size() - 3), &back, 1 << 20).code() ==
          StatusCode::kCorruption);
    CHECK(decompressWire(WireEncoding::kZstd, "", &back, 1 << 20).code() == StatusCode::kCorruption);
    CHECK(decompressWire(WireEncoding::kZstd, wire + "garbage!", &back, 1 << 20).code() ==
          StatusCode::kCorruption);
    std::string bad = wire;
    bad[bad.size() - 2] ^= 0x40;  // inside the checksum
    CHECK(decompressWire(WireEncoding::kZstd, bad, &back, 1 << 20).code() == StatusCode::kCorruption);
  }

  TEST_CASE("gzip: truncated bodies are kCorruption") {
    WireCompressor comp(WireEncoding::kGzip, 0);
    std::string wire;
    REQUIRE(comp.compress(sample(), &wire).isOk());
    std::string back;
    CHECK(decompressWire(WireEncoding::kGzip, wire.substr(0, wire.size() / 2), &back, 1 << 20).code() ==
          StatusCode::kCorruption);
  }
}
