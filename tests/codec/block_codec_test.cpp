#include <doctest/doctest.h>

#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/codec/block_codec.h"
#include "agent/codec/keyring.h"

using namespace ferry;

namespace {

constexpr std::string_view kMarker = "SECRET-MARKER-7f3a";
constexpr size_t kFixedHeaderLen = 46;

KeyMaterial fixedKey(uint8_t fill) {
  KeyMaterial k;
  k.bytes.fill(fill);
  k.id = keyIdOf(k.bytes);
  return k;
}

Block makeBlock(uint64_t seq, size_t n, std::string_view extra = {}) {
  Block b;
  b.seq = seq;
  b.created_ms = 1'700'000'123'456;
  b.lineage = Lineage{"edge-01", "tail_app", "app.log", 42};
  for (size_t i = 0; i < n; ++i) {
    std::string r = R"({"ts":"2024-05-01T12:00:00.)" + std::to_string(100000 + i) +
                    R"(Z","level":"info","msg":"request served","n":)" + std::to_string(i);
    if (i == n / 2) r += std::string(",\"m\":\"") + std::string(extra) + "\"";
    r += "}";
    b.records.append(r);
  }
  return b;
}

void checkSameBlock(const Block& got, const Block& want) {
  CHECK(got.seq == want.seq);
  CHECK(got.created_ms == want.created_ms);
  CHECK(got.lineage == want.lineage);
  REQUIRE(got.records.size() == want.records.size());
  CHECK(got.records.data() == want.records.data());
  CHECK(got.records.ends() == want.records.ends());
}

std::string hexId(uint32_t id) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", id);
  return buf;
}

// A keyring with a fresh DEK under `master`; returns the DEK id and wrapped form.
std::pair<uint32_t, std::string> startKeyring(Keyring& ring, const KeyMaterial& master) {
  ring.addMaster(master);
  auto dek = ring.newDataKey({});
  REQUIRE(dek.isOk());
  return *dek;
}

uint32_t readU32(const std::string& s, size_t at) {
  return (uint32_t{static_cast<uint8_t>(s[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(s[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[at + 2])} << 8) |
         uint32_t{static_cast<uint8_t>(s[at + 3])};
}

void writeU32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (24 - 8 * i));
}

// Recomputes the CRC trailer of a plaintext block after a deliberate edit, so the checks
// behind the CRC can be reached.
void refreshCrc(std::string& s) {
  writeU32(s, s.size() - 4, crc32c(std::string_view(s).substr(0, s.size() - 4)));
}

bool isRejection(const Status& s) {
  return s.code() == StatusCode::kCorruption || s.code() == StatusCode::kNotFound;
}

}  // namespace

TEST_SUITE("codec.block") {
  TEST_CASE("round trip: plaintext, compressed, encrypted, encrypted+compressed") {
    Keyring ring;
    const auto dek = startKeyring(ring, fixedKey(0x11));
    struct Mode {
      const char* name;
      bool compress;
      bool encrypt;
    };
    for (Mode m : {Mode{"plain", false, false}, Mode{"zstd", true, false}, Mode{"aes", false, true},
                   Mode{"zstd+aes", true, true}}) {
      CAPTURE(m.name);
      BlockCodec codec(CodecOptions{m.compress, 3, m.encrypt ? &ring : nullptr});
      for (size_t n : {size_t{0}, size_t{1}, size_t{17}, size_t{2700}}) {
        CAPTURE(n);
        Block b = makeBlock(1000 + n, n);
        std::string sealed;
        REQUIRE(codec.seal(b, &sealed).isOk());
        Result<BlockHeader> h = BlockCodec::peekHeader(sealed);
        REQUIRE(h.isOk());
        CHECK(h->compressed() == m.compress);
        CHECK(h->encrypted() == m.encrypt);
        CHECK(h->key_id == (m.encrypt ? dek.first : 0u));
        CHECK(h->seq == b.seq);
        CHECK(h->record_count == n);
        CHECK(h->raw_len == n * 4 + b.records.bytes());
        Result<Block> opened = codec.open(sealed, b.seq);
        REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
        checkSameBlock(*opened, b);
        CHECK(opened->checkpoints.empty());
      }
    }
  }

  TEST_CASE("a routed block keeps its route, authenticated like the rest of the header") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x12));
    for (bool encrypt : {false, true}) {
      CAPTURE(encrypt);
      BlockCodec codec(CodecOptions{true, 3, encrypt ? &ring : nullptr});
      Block b = makeBlock(77, 5);
      b.lineage.route = "archive";
      std::string sealed;
      REQUIRE(codec.seal(b, &sealed).isOk());
      Result<BlockHeader> h = BlockCodec::peekHeader(sealed);
      REQUIRE(h.isOk());
      CHECK(h->route == "archive");
      Result<Block> opened = codec.open(sealed, 77);
      REQUIRE(opened.isOk());
      CHECK(opened->lineage.route == "archive");
      checkSameBlock(*opened, b);
      // Change one byte of the route: the tag or CRC refuses it.
      std::string bad = sealed;
      bad[bad.find("archive")] ^= 0x01;
      CHECK(codec.open(bad, 77).status().code() == StatusCode::kCorruption);
      // An unrouted block has no route bytes at all.
      Block plain = makeBlock(78, 5);
      std::string sealed_plain;
      REQUIRE(codec.seal(plain, &sealed_plain).isOk());
      CHECK(BlockCodec::peekHeader(sealed_plain)->route.empty());
    }
  }

  TEST_CASE("records with empty and binary content survive; one codec serves many blocks") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x12));
    BlockCodec writer(CodecOptions{true, 3, &ring});
    BlockCodec reader(CodecOptions{true, 3, &ring});
    std::mt19937 rng(7);
    for (uint64_t seq = 1; seq <= 40; ++seq) {
      Block b;
      b.seq = seq;
      b.created_ms = -5;  // before 1970 still round-trips
      b.lineage = Lineage{"", "", "s", UINT64_MAX};
      const size_t n = rng() % 300;
      for (size_t i = 0; i < n; ++i) {
        std::string r(rng() % 200, '\0');
        for (char& c : r) c = static_cast<char>(rng() % 4 == 0 ? rng() : 'a' + rng() % 3);
        b.records.append(r);
      }
      std::string sealed;
      REQUIRE(writer.seal(b, &sealed).isOk());
      Result<Block> opened = reader.open(sealed, seq);
      REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
      checkSameBlock(*opened, b);
    }
  }

  TEST_CASE("uncommitted bytes in the arena are not sealed") {
    Block b = makeBlock(3, 2);
    b.records.mutableData() += "half-written";
    BlockCodec codec(CodecOptions{false, 3, nullptr});
    std::string sealed;
    REQUIRE(codec.seal(b, &sealed).isOk());
    Result<Block> opened = codec.open(sealed, 3);
    REQUIRE(opened.isOk());
    CHECK(opened->records.size() == 2);
    CHECK(opened->records.data() == b.records.data().substr(0, b.records.ends().back()));
  }

  TEST_CASE("sealing refuses what it could not open") {
    BlockCodec codec(CodecOptions{});
    Block b = makeBlock(1, 3);
    b.lineage.stream = std::string(70000, 's');
    std::string sealed;
    CHECK(codec.seal(b, &sealed).code() == StatusCode::kInvalidArgument);

    Keyring no_dek;
    no_dek.addMaster(fixedKey(1));
    BlockCodec enc(CodecOptions{true, 3, &no_dek});
    CHECK(enc.seal(makeBlock(1, 3), &sealed).code() == StatusCode::kFailedPrecondition);
  }

  TEST_CASE("each seal uses the next nonce; equal blocks give different ciphertexts") {
    Keyring ring;
    const auto dek = startKeyring(ring, fixedKey(0x13));
    BlockCodec codec(CodecOptions{true, 3, &ring});
    Block b = makeBlock(9, 10);
    const size_t nonce_at =
        kFixedHeaderLen + b.lineage.agent.size() + b.lineage.input.size() + b.lineage.stream.size();
    std::set<std::string> nonces, bodies;
    for (uint64_t i = 1; i <= 5; ++i) {
      std::string sealed;
      REQUIRE(codec.seal(b, &sealed).isOk());
      const std::string nonce = sealed.substr(nonce_at, 12);
      CHECK(readU32(nonce, 0) == dek.first);
      CHECK(readU32(nonce, 4) == 0);
      CHECK(readU32(nonce, 8) == i);
      nonces.insert(nonce);
      bodies.insert(sealed.substr(nonce_at + 12));
      CHECK(codec.open(sealed, 9).isOk());
    }
    CHECK(nonces.size() == 5);
    CHECK(bodies.size() == 5);
  }

  TEST_CASE("no plaintext in an encrypted block; plaintext mode keeps it readable") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x14));
    Block b = makeBlock(5, 20, kMarker);
    std::string sealed;
    BlockCodec plain(CodecOptions{false, 3, nullptr});
    REQUIRE(plain.seal(b, &sealed).isOk());
    CHECK(sealed.find(kMarker) != std::string::npos);
    for (bool compress : {false, true}) {
      CAPTURE(compress);
      BlockCodec enc(CodecOptions{compress, 3, &ring});
      REQUIRE(enc.seal(b, &sealed).isOk());
      CHECK(sealed.find(kMarker) == std::string::npos);
      CHECK(sealed.find("request served") == std::string::npos);
      // Lineage is in the clear (authenticated) so that stats work without keys.
      CHECK(sealed.find("tail_app") != std::string::npos);
    }
  }

  TEST_CASE("peekHeader reads an encrypted block without keys") {
    Keyring ring;
    const auto dek = startKeyring(ring, fixedKey(0x15));
    BlockCodec enc(CodecOptions{true, 3, &ring});
    Block b = makeBlock(77, 33);
    std::string sealed;
    REQUIRE(enc.seal(b, &sealed).isOk());
    Result<BlockHeader> h = BlockCodec::peekHeader(sealed);
    REQUIRE(h.isOk());
    CHECK(h->encrypted());
    CHECK(h->compressed());
    CHECK(h->key_id == dek.first);
    CHECK(h->seq == 77);
    CHECK(h->created_ms == b.created_ms);
    CHECK(h->config_version == 42);
    CHECK(h->record_count == 33);
    CHECK(h->agent == "edge-01");
    CHECK(h->input == "tail_app");
    CHECK(h->stream == "app.log");
  }

  TEST_CASE("a block opens after a restart and after master key rotation") {
    const KeyMaterial master_a = fixedKey(0xA1);
    const KeyMaterial master_b = fixedKey(0xB2);
    Block b = makeBlock(12, 50);
    std::string sealed;
    std::pair<uint32_t, std::string> persisted;
    {
      Keyring ring;
      persisted = startKeyring(ring, master_a);
      BlockCodec codec(CodecOptions{true, 3, &ring});
      REQUIRE(codec.seal(b, &sealed).isOk());
    }
    SUBCASE("restart with the same master") {
      Keyring ring;
      ring.addMaster(master_a);
      REQUIRE(ring.addWrapped(persisted.first, persisted.second).isOk());
      REQUIRE(ring.newDataKey({persisted.first}).isOk());  // this run's own DEK
      BlockCodec codec(CodecOptions{true, 3, &ring});
      Result<Block> opened = codec.open(sealed, 12);
      REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
      checkSameBlock(*opened, b);
    }
    SUBCASE("rotation: B current, A previous") {
      Keyring ring;
      ring.addMaster(master_b);
      ring.addMaster(master_a);
      REQUIRE(ring.addWrapped(persisted.first, persisted.second).isOk());
      auto fresh = ring.newDataKey({persisted.first});
      REQUIRE(fresh.isOk());
      BlockCodec codec(CodecOptions{true, 3, &ring});
      Result<Block> opened = codec.open(sealed, 12);
      REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
      checkSameBlock(*opened, b);
      // New blocks use the new DEK and still open.
      std::string sealed2;
      REQUIRE(codec.seal(makeBlock(13, 5), &sealed2).isOk());
      CHECK(BlockCodec::peekHeader(sealed2)->key_id == fresh->first);
      CHECK(codec.open(sealed2, 13).isOk());
    }
  }

  TEST_CASE("unknown data key id is kNotFound naming the id, with or without a keyring") {
    Keyring writer_ring;
    const auto dek = startKeyring(writer_ring, fixedKey(0x21));
    BlockCodec writer(CodecOptions{true, 3, &writer_ring});
    std::string sealed;
    REQUIRE(writer.seal(makeBlock(4, 10), &sealed).isOk());

    Keyring other;
    startKeyring(other, fixedKey(0x22));
    for (Keyring* ring : {&other, static_cast<Keyring*>(nullptr)}) {
      BlockCodec reader(CodecOptions{true, 3, ring});
      Result<Block> r = reader.open(sealed, 4);
      REQUIRE_FALSE(r.isOk());
      CHECK(r.status().code() == StatusCode::kNotFound);
      CHECK(r.status().message().find("block 4: sealed with unknown data key id " +
                                      hexId(dek.first)) != std::string::npos);
    }
    Keyring empty;
    BlockCodec reader(CodecOptions{true, 3, &empty});
    CHECK(reader.open(sealed, 4).status().code() == StatusCode::kNotFound);
  }

  TEST_CASE("wrong expected seq is corruption") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x23));
    for (Keyring* k : {static_cast<Keyring*>(nullptr), &ring}) {
      BlockCodec codec(CodecOptions{true, 3, k});
      std::string sealed;
      REQUIRE(codec.seal(makeBlock(100, 10), &sealed).isOk());
      Result<Block> r = codec.open(sealed, 101);
      REQUIRE_FALSE(r.isOk());
      CHECK(r.status().code() == StatusCode::kCorruption);
      CHECK(codec.open(sealed, 100).isOk());
    }
  }

  TEST_CASE("every single-byte flip is detected, never a crash") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x31));
    struct Mode {
      const char* name;
      bool compress;
      Keyring* ring;
    };
    for (Mode m : {Mode{"plain", false, nullptr}, Mode{"zstd", true, nullptr},
                   Mode{"aes", false, &ring}, Mode{"zstd+aes", true, &ring}}) {
      CAPTURE(m.name);
      BlockCodec codec(CodecOptions{m.compress, 3, m.ring});
      std::string sealed;
      REQUIRE(codec.seal(makeBlock(55, 6), &sealed).isOk());
      REQUIRE(codec.open(sealed, 55).isOk());
      for (size_t i = 0; i < sealed.size(); ++i) {
        for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
          CAPTURE(i);
          CAPTURE(int{mask});
          std::string bad = sealed;
          bad[i] = static_cast<char>(bad[i] ^ mask);
          Result<Block> r = codec.open(bad, 55);
          REQUIRE_FALSE(r.isOk());
          REQUIRE(isRejection(r.status()));
          // Only a flip inside the key id may look like an unknown key.
          if (r.status().code() == StatusCode::kNotFound && m.ring != nullptr) {
            REQUIRE((i >= 4 && i < 8));
          }
        }
      }
    }
  }

  TEST_CASE("truncated or extended inputs are rejected, never a crash") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x32));
    for (bool compress : {false, true}) {
      for (Keyring* k : {static_cast<Keyring*>(nullptr), &ring}) {
        BlockCodec codec(CodecOptions{compress, 3, k});
        std::string sealed;
        REQUIRE(codec.seal(makeBlock(8, 12), &sealed).isOk());
        for (size_t len = 0; len < sealed.size(); ++len) {
          CAPTURE(len);
          // A fresh copy: the codec must not read past the view it is given.
          const std::string cut = sealed.substr(0, len);
          Result<Block> r = codec.open(cut, 8);
          REQUIRE_FALSE(r.isOk());
          REQUIRE(r.status().code() == StatusCode::kCorruption);
          if (len < kFixedHeaderLen) REQUIRE_FALSE(BlockCodec::peekHeader(cut).isOk());
        }
        CHECK_FALSE(codec.open(sealed + '\0', 8).isOk());
      }
    }
  }

  TEST_CASE("a payload that passes the CRC but does not decode is corruption") {
    BlockCodec codec(CodecOptions{false, 3, nullptr});
    Block b = makeBlock(6, 4);
    std::string sealed;
    REQUIRE(codec.seal(b, &sealed).isOk());
    const size_t header_len = kFixedHeaderLen + 7 + 8 + 7;
    const size_t data_len = b.records.bytes();

    SUBCASE("decreasing ends") {
      std::string bad = sealed;
      writeU32(bad, header_len + 4, readU32(bad, header_len) - 1);
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
    }
    SUBCASE("an end beyond the payload") {
      std::string bad = sealed;
      writeU32(bad, header_len + 8, static_cast<uint32_t>(data_len + 1));
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
    }
    SUBCASE("last end short of the payload") {
      std::string bad = sealed;
      writeU32(bad, header_len + 12, static_cast<uint32_t>(data_len - 1));
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
    }
    SUBCASE("record count too large for the payload") {
      std::string bad = sealed;
      writeU32(bad, 32, 0xFFFFFFFFu);
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
      CHECK_FALSE(BlockCodec::peekHeader(bad).isOk());
    }
    SUBCASE("raw_len above 64 MiB") {
      std::string bad = sealed;
      writeU32(bad, 36, 0x7FFFFFFFu);
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
    }
    SUBCASE("lineage lengths pointing past the end") {
      std::string bad = sealed;
      bad[40] = '\xFF';
      bad[41] = '\xFF';
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
      CHECK_FALSE(BlockCodec::peekHeader(bad).isOk());
    }
    SUBCASE("unknown version and flags") {
      std::string bad = sealed;
      bad[2] = 2;
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
      bad = sealed;
      bad[3] = 4;
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
    }
  }

  TEST_CASE("a zstd body that decodes to the wrong size is corruption") {
    BlockCodec codec(CodecOptions{true, 3, nullptr});
    Block b = makeBlock(6, 40);
    std::string sealed;
    REQUIRE(codec.seal(b, &sealed).isOk());
    for (int64_t delta : {-1, 1, -100}) {
      CAPTURE(delta);
      std::string bad = sealed;
      writeU32(bad, 36, static_cast<uint32_t>(readU32(bad, 36) + delta));
      refreshCrc(bad);
      CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
    }
    // Garbage in place of the zstd frame.
    std::string bad = sealed;
    const size_t header_len = kFixedHeaderLen + 7 + 8 + 7;
    for (size_t i = header_len; i < bad.size() - 4; ++i) bad[i] = static_cast<char>(i * 31);
    refreshCrc(bad);
    CHECK(codec.open(bad, 6).status().code() == StatusCode::kCorruption);
  }

  TEST_CASE("random garbage and random damage never crash") {
    Keyring ring;
    startKeyring(ring, fixedKey(0x41));
    BlockCodec codec(CodecOptions{true, 3, &ring});
    std::mt19937 rng(1234);
    std::string sealed;
    REQUIRE(codec.seal(makeBlock(1, 30), &sealed).isOk());
    for (int iter = 0; iter < 3000; ++iter) {
      std::string bad;
      if (iter % 3 == 0) {
        bad.resize(rng() % 400);
        for (char& c : bad) c = static_cast<char>(rng());
        if (bad.size() >= 3 && iter % 2 == 0) bad.replace(0, 3, "FB\x01");
      } else {
        bad = sealed;
        const int hits = 1 + static_cast<int>(rng() % 8);
        for (int h = 0; h < hits; ++h) bad[rng() % bad.size()] = static_cast<char>(rng());
      }
      Result<Block> r = codec.open(bad, 1);
      if (r.isOk()) {
        // Only possible when the damage left the block intact.
        REQUIRE(bad == sealed);
      }
      (void)BlockCodec::peekHeader(bad);
    }
  }
}
