#include "agent/codec/envelope.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "agent/codec/envelope_internal.h"

using namespace ferry;

namespace {

KeyMaterial fixedKey(uint8_t first) {
  KeyMaterial k;
  for (size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<uint8_t>(first + i);
  k.id = keyIdOf(k.bytes);
  return k;
}

Block makeBlock(uint64_t seq, size_t n) {
  Block b;
  b.seq = seq;
  b.lineage = Lineage{"edge-01", "tail_app", "app.log", 3};
  for (size_t i = 0; i < n; ++i) {
    b.records.append(R"({"level":"info","msg":"request served","n":)" + std::to_string(i) + "}");
  }
  return b;
}

std::string expectedNdjson(const Block& b) {
  std::string s;
  b.records.appendNdjson(s);
  return s;
}

std::string toHex(std::string_view bytes) {
  std::string out;
  char buf[3];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    out += buf;
  }
  return out;
}

constexpr size_t kLimit = 64u << 20;

}  // namespace

TEST_SUITE("codec.envelope") {
  TEST_CASE("a plain envelope round-trips and its header is readable without a key") {
    EnvelopeSealer sealer(std::nullopt, 3);
    Block b = makeBlock(41, 50);
    std::string frame;
    REQUIRE(sealer.seal(b, "gw-07", &frame).isOk());

    auto info = peekEnvelope(frame);
    REQUIRE(info.isOk());
    CHECK(info->version == 1);
    CHECK_FALSE(info->encrypted());
    CHECK(info->key_id == 0);
    CHECK(info->agent == "gw-07");
    CHECK(info->stream == "app.log");
    CHECK(info->first_seq == 41);
    CHECK(info->count == 50);

    auto opened = openEnvelope(frame, {}, false, kLimit);
    REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
    CHECK(opened->ndjson == expectedNdjson(b));
    CHECK(opened->info.count == 50);
    // Compressed: repetitive records take far less room than their NDJSON.
    CHECK(frame.size() < opened->ndjson.size() / 2);
  }

  TEST_CASE("an encrypted envelope round-trips with its key among several") {
    KeyMaterial key = fixedKey(1);
    EnvelopeSealer sealer(key, 0);
    Block b = makeBlock(7, 20);
    std::string frame;
    REQUIRE(sealer.seal(b, "gw-07", &frame).isOk());
    // The records never appear in the clear.
    CHECK(frame.find("request served") == std::string::npos);

    std::vector<KeyMaterial> keys = {fixedKey(100), key};
    auto opened = openEnvelope(frame, keys, true, kLimit);
    REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
    CHECK(opened->ndjson == expectedNdjson(b));
    CHECK(opened->info.encrypted());
    CHECK(opened->info.key_id == key.id);
    CHECK(opened->info.first_seq == 7);

    // A fresh random nonce per envelope: the same block never seals to the same bytes.
    std::string again;
    REQUIRE(sealer.seal(b, "gw-07", &again).isOk());
    CHECK(again != frame);
    CHECK(openEnvelope(again, keys, true, kLimit).isOk());
  }

  TEST_CASE("an empty block round-trips") {
    KeyMaterial key = fixedKey(1);
    EnvelopeSealer sealer(key, 3);
    std::string frame;
    REQUIRE(sealer.seal(makeBlock(1, 0), "a", &frame).isOk());
    auto opened = openEnvelope(frame, std::span<const KeyMaterial>(&key, 1), true, kLimit);
    REQUIRE(opened.isOk());
    CHECK(opened->ndjson.empty());
    CHECK(opened->info.count == 0);
  }

  TEST_CASE("a missing key is kNotFound naming the key id") {
    KeyMaterial key = fixedKey(1);
    EnvelopeSealer sealer(key, 3);
    std::string frame;
    REQUIRE(sealer.seal(makeBlock(1, 3), "gw", &frame).isOk());
    char id[16];
    std::snprintf(id, sizeof(id), "0x%08x", key.id);

    KeyMaterial other = fixedKey(50);
    auto wrong = openEnvelope(frame, std::span<const KeyMaterial>(&other, 1), false, kLimit);
    REQUIRE_FALSE(wrong.isOk());
    CHECK(wrong.status().code() == StatusCode::kNotFound);
    CHECK(wrong.status().message().find(id) != std::string::npos);

    auto none = openEnvelope(frame, {}, false, kLimit);
    REQUIRE_FALSE(none.isOk());
    CHECK(none.status().code() == StatusCode::kNotFound);
    CHECK(none.status().message().find(id) != std::string::npos);
  }

  TEST_CASE("a different key that claims the same id fails authentication") {
    KeyMaterial key = fixedKey(1);
    EnvelopeSealer sealer(key, 3);
    std::string frame;
    REQUIRE(sealer.seal(makeBlock(1, 3), "gw", &frame).isOk());
    KeyMaterial impostor = fixedKey(9);
    impostor.id = key.id;
    auto r = openEnvelope(frame, std::span<const KeyMaterial>(&impostor, 1), false, kLimit);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == StatusCode::kCorruption);
  }

  TEST_CASE("every flipped byte of header or body is kCorruption") {
    KeyMaterial key = fixedKey(1);
    for (bool encrypted : {false, true}) {
      CAPTURE(encrypted);
      EnvelopeSealer sealer(encrypted ? std::optional<KeyMaterial>(key) : std::nullopt, 3);
      std::string frame;
      REQUIRE(sealer.seal(makeBlock(99, 5), "gw-07", &frame).isOk());
      for (size_t i = 0; i < frame.size(); ++i) {
        for (unsigned char mask : {0x01, 0x80}) {
          std::string bad = frame;
          bad[i] = static_cast<char>(bad[i] ^ mask);
          auto r = openEnvelope(bad, std::span<const KeyMaterial>(&key, 1), false, kLimit);
          CAPTURE(i);
          CAPTURE(static_cast<int>(mask));
          REQUIRE_FALSE(r.isOk());
          CHECK(r.status().code() == StatusCode::kCorruption);
        }
      }
    }
  }

  TEST_CASE("every truncation, and trailing bytes, are kCorruption") {
    KeyMaterial key = fixedKey(1);
    for (bool encrypted : {false, true}) {
      CAPTURE(encrypted);
      EnvelopeSealer sealer(encrypted ? std::optional<KeyMaterial>(key) : std::nullopt, 3);
      std::string frame;
      REQUIRE(sealer.seal(makeBlock(99, 5), "gw-07", &frame).isOk());
      for (size_t len = 0; len < frame.size(); ++len) {
        CAPTURE(len);
        auto r = openEnvelope(std::string_view(frame).substr(0, len),
                              std::span<const KeyMaterial>(&key, 1), false, kLimit);
        REQUIRE_FALSE(r.isOk());
        CHECK(r.status().code() == StatusCode::kCorruption);
      }
      auto longer = openEnvelope(frame + "x", std::span<const KeyMaterial>(&key, 1), false, kLimit);
      REQUIRE_FALSE(longer.isOk());
      CHECK(longer.status().code() == StatusCode::kCorruption);
    }
    CHECK(peekEnvelope("FENV").status().code() == StatusCode::kCorruption);
    CHECK(peekEnvelope("{\"not\":\"an envelope\"}\n").status().code() == StatusCode::kCorruption);
  }

  TEST_CASE("require_encryption refuses a plain envelope") {
    EnvelopeSealer sealer(std::nullopt, 3);
    std::string frame;
    REQUIRE(sealer.seal(makeBlock(1, 2), "gw", &frame).isOk());
    KeyMaterial key = fixedKey(1);
    auto r = openEnvelope(frame, std::span<const KeyMaterial>(&key, 1), true, kLimit);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == StatusCode::kPermissionDenied);
    CHECK(openEnvelope(frame, std::span<const KeyMaterial>(&key, 1), false, kLimit).isOk());
  }

  TEST_CASE("a body larger than max_bytes is refused before it is decompressed") {
    KeyMaterial key = fixedKey(1);
    EnvelopeSealer sealer(key, 3);
    Block b = makeBlock(1, 1000);
    std::string frame;
    REQUIRE(sealer.seal(b, "gw", &frame).isOk());
    const size_t raw = expectedNdjson(b).size();
    auto r = openEnvelope(frame, std::span<const KeyMaterial>(&key, 1), true, raw - 1);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(openEnvelope(frame, std::span<const KeyMaterial>(&key, 1), true, raw).isOk());
  }

  TEST_CASE("names longer than 65535 bytes are refused when sealing") {
    EnvelopeSealer sealer(std::nullopt, 3);
    std::string frame;
    Status st = sealer.seal(makeBlock(1, 1), std::string(70000, 'a'), &frame);
    CHECK(st.code() == StatusCode::kInvalidArgument);
  }

  // The test vector printed in docs/envelope.md. zstd output is fixed for a given libzstd
  // version and level; if a libzstd upgrade changes it, the opening half still checks the
  // format and the document's frame must be regenerated from this test's failure message.
  TEST_CASE("test vector") {
    KeyMaterial key;
    for (size_t i = 0; i < key.bytes.size(); ++i) key.bytes[i] = static_cast<uint8_t>(i);
    key.id = keyIdOf(key.bytes);
    envelope_internal::Nonce nonce;
    for (size_t i = 0; i < nonce.size(); ++i) nonce[i] = static_cast<uint8_t>(0xa0 + i);
    Block b;
    b.seq = 1000;
    b.lineage.stream = "sensors";
    b.records.append(R"({"t":1,"v":20.5})");
    b.records.append(R"({"t":2,"v":21})");

    std::string frame;
    REQUIRE(envelope_internal::sealWithNonce(key, 3, b, "gw-01", nonce, &frame).isOk());
    const std::string kExpected =
        "46454e560103630dcd29a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5"
        "b6b7000567772d3031000773656e736f727300000000000003e8000000020000"
        "0020094248df28d8659ac40ba585053f6b9f31b2b9792f819e3c55cbd027efbf"
        "2748a1bd3c37c2fcafded76374c7bcf7979cc83f4cab8a32debc6816";
    CHECK_MESSAGE(toHex(frame) == kExpected, "frame: " << toHex(frame));

    auto opened = openEnvelope(frame, std::span<const KeyMaterial>(&key, 1), true, kLimit);
    REQUIRE(opened.isOk());
    CHECK(opened->ndjson == "{\"t\":1,\"v\":20.5}\n{\"t\":2,\"v\":21}\n");
    CHECK(opened->info.agent == "gw-01");
    CHECK(opened->info.stream == "sensors");
    CHECK(opened->info.first_seq == 1000);
    CHECK(opened->info.count == 2);
    CHECK(opened->info.key_id == key.id);
  }
}
