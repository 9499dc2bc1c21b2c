#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "agent/codec/key_file.h"
#include "agent/codec/keyring.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using ferry::test::TempDir;
using ferry::test::writeFile;

namespace {

constexpr const char* kHex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

KeyMaterial fixedKey(uint8_t fill) {
  KeyMaterial k;
  k.bytes.fill(fill);
  k.id = keyIdOf(k.bytes);
  return k;
}

uint64_t nonceCounter(const std::array<uint8_t, 12>& n) {
  uint64_t c = 0;
  for (int i = 4; i < 12; ++i) c = (c << 8) | n[i];
  return c;
}

uint32_t nonceKeyId(const std::array<uint8_t, 12>& n) {
  return (uint32_t{n[0]} << 24) | (uint32_t{n[1]} << 16) | (uint32_t{n[2]} << 8) | n[3];
}

}  // namespace

TEST_SUITE("codec.keys") {
  TEST_CASE("key id is the first four bytes of SHA-256 of the key") {
    std::array<uint8_t, 32> zero{};
    // SHA-256 of 32 zero bytes = 66687aad f862bd77...
    CHECK(keyIdOf(zero) == 0x66687aadu);
    CHECK(keyIdOf(fixedKey(1).bytes) == keyIdOf(fixedKey(1).bytes));
    CHECK(keyIdOf(fixedKey(1).bytes) != keyIdOf(fixedKey(2).bytes));
  }

  TEST_CASE("a written key file loads back with the same key and id, mode 0600") {
    TempDir dir;
    const std::string path = dir.file("master.key");
    Result<KeyMaterial> written = writeNewKeyFile(path);
    REQUIRE(written.isOk());
    CHECK(written->id == keyIdOf(written->bytes));
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    const std::string text = test::readFile(path);
    CHECK(text.size() == 13 + 64 + 1);
    CHECK(text.rfind("ferry-aes256:", 0) == 0);
    CHECK(text.back() == '\n');
    CHECK(text.find_first_not_of("0123456789abcdef", 13) == text.size() - 1);

    Result<KeyMaterial> loaded = loadKeyFile(path);
    REQUIRE(loaded.isOk());
    CHECK(loaded->id == written->id);
    CHECK(loaded->bytes == written->bytes);

    // Two fresh keys differ.
    Result<KeyMaterial> other = writeNewKeyFile(dir.file("other.key"));
    REQUIRE(other.isOk());
    CHECK(other->bytes != written->bytes);
  }

  TEST_CASE("an existing file is not overwritten") {
    TempDir dir;
    const std::string path = dir.file("master.key");
    writeFile(path, "precious\n", 0600);
    Result<KeyMaterial> r = writeNewKeyFile(path);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == StatusCode::kAlreadyExists);
    CHECK(test::readFile(path) == "precious\n");
  }

  TEST_CASE("a key file readable by group or others is refused with a chmod hint") {
    TempDir dir;
    const std::string path = dir.file("master.key");
    for (int mode : {0644, 0640, 0604, 0620, 0602, 0660}) {
      CAPTURE(mode);
      writeFile(path, std::string("ferry-aes256:") + kHex64 + "\n", mode);
      Result<KeyMaterial> r = loadKeyFile(path);
      REQUIRE_FALSE(r.isOk());
      CHECK(r.status().code() == StatusCode::kPermissionDenied);
      CHECK(r.status().message().find("chmod 600 " + path) != std::string::npos);
    }
    writeFile(path, std::string("ferry-aes256:") + kHex64 + "\n", 0400);
    CHECK(loadKeyFile(path).isOk());
  }

  TEST_CASE("format: optional newline, hex either case; anything else is refused") {
    TempDir dir;
    const std::string path = dir.file("k");
    writeFile(path, std::string("ferry-aes256:") + kHex64, 0600);
    Result<KeyMaterial> plain = loadKeyFile(path);
    REQUIRE(plain.isOk());
    CHECK(plain->bytes[0] == 0x00);
    CHECK(plain->bytes[1] == 0x11);
    CHECK(plain->bytes[15] == 0xff);

    std::string upper = std::string("ferry-aes256:") + kHex64;
    for (char& c : upper) {
      if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
    }
    upper.replace(0, 13, "ferry-aes256:");
    writeFile(path, upper + "\n", 0600);
    Result<KeyMaterial> up = loadKeyFile(path);
    REQUIRE(up.isOk());
    CHECK(up->bytes == plain->bytes);

    const std::string hex(kHex64);
    for (const std::string& bad : std::vector<std::string>{
             "", "\n", hex + "\n", "ferry-aes128:" + hex + "\n",
             "ferry-aes256:" + hex.substr(0, 63) + "\n", "ferry-aes256:" + hex + "0\n",
             "ferry-aes256:" + hex.substr(0, 63) + "g\n", "ferry-aes256:" + hex + "\n\n",
             "ferry-aes256:" + hex + "\r\n", " ferry-aes256:" + hex + "\n",
             "ferry-aes256:" + hex + "\nsecond line\n"}) {
      CAPTURE(bad);
      writeFile(path, bad, 0600);
      Result<KeyMaterial> r = loadKeyFile(path);
      REQUIRE_FALSE(r.isOk());
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      CHECK(r.status().message().find(path) != std::string::npos);
      // The message never echoes key material.
      CHECK(r.status().message().find(hex.substr(0, 16)) == std::string::npos);
    }
  }

  TEST_CASE("missing file and non-regular file") {
    TempDir dir;
    Result<KeyMaterial> missing = loadKeyFile(dir.file("nope.key"));
    REQUIRE_FALSE(missing.isOk());
    CHECK(missing.status().code() == StatusCode::kNotFound);
    CHECK(missing.status().message().find(dir.file("nope.key")) != std::string::npos);

    ::chmod(dir.path().c_str(), 0700);
    Result<KeyMaterial> d = loadKeyFile(dir.path().string());
    REQUIRE_FALSE(d.isOk());
    CHECK(d.status().code() == StatusCode::kInvalidArgument);

    const std::string fifo = dir.file("fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    Result<KeyMaterial> f = loadKeyFile(fifo);  // must not block
    REQUIRE_FALSE(f.isOk());
    CHECK(f.status().code() == StatusCode::kInvalidArgument);
  }

  TEST_CASE("newDataKey needs a master key") {
    Keyring ring;
    CHECK_FALSE(ring.enabled());
    CHECK(ring.currentDataKey() == nullptr);
    auto r = ring.newDataKey({});
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  }

  TEST_CASE("nonces are the DEK id then a counter from 1, unique and incrementing") {
    Keyring ring;
    ring.addMaster(fixedKey(7));
    auto dek = ring.newDataKey({});
    REQUIRE(dek.isOk());
    const uint32_t id = dek->first;
    CHECK(id != 0);
    CHECK(dek->second.size() == Keyring::kWrappedLen);
    REQUIRE(ring.currentDataKey() != nullptr);
    CHECK(ring.currentDataKey()->id == id);
    std::set<std::array<uint8_t, 12>> seen;
    for (uint64_t i = 1; i <= 1000; ++i) {
      std::array<uint8_t, 12> n = ring.nextNonce();
      REQUIRE(nonceKeyId(n) == id);
      REQUIRE(nonceCounter(n) == i);
      seen.insert(n);
    }
    CHECK(seen.size() == 1000);

    // A new DEK restarts the counter under a new id, so no (key, nonce) pair repeats.
    auto dek2 = ring.newDataKey({id});
    REQUIRE(dek2.isOk());
    CHECK(dek2->first != id);
    std::array<uint8_t, 12> n = ring.nextNonce();
    CHECK(nonceKeyId(n) == dek2->first);
    CHECK(nonceCounter(n) == 1);
    // The old DEK stays available for opening old blocks.
    CHECK(ring.findDataKey(id) != nullptr);
  }

  TEST_CASE("each start gets a fresh DEK: two keyrings with one master differ") {
    Keyring a, b;
    a.addMaster(fixedKey(7));
    b.addMaster(fixedKey(7));
    auto da = a.newDataKey({});
    auto db = b.newDataKey({});
    REQUIRE(da.isOk());
    REQUIRE(db.isOk());
    CHECK(a.currentDataKey()->bytes != b.currentDataKey()->bytes);
    CHECK(da->second != db->second);
    CHECK(da->first != db->first);  // 2^-32 chance of a false failure
  }

  TEST_CASE("wrapped DEKs unwrap after a restart and after rotation") {
    const KeyMaterial master_a = fixedKey(0xA1);
    const KeyMaterial master_b = fixedKey(0xB2);
    Keyring first;
    first.addMaster(master_a);
    CHECK(first.currentMasterId() == master_a.id);
    auto dek = first.newDataKey({});
    REQUIRE(dek.isOk());
    const std::string& wrapped = dek->second;
    // The wrapped form names its master and does not contain the key.
    CHECK(static_cast<uint8_t>(wrapped[0]) == (master_a.id >> 24));
    const auto& bytes = first.currentDataKey()->bytes;
    CHECK(wrapped.find(std::string(bytes.begin(), bytes.end())) == std::string::npos);

    Keyring restarted;
    restarted.addMaster(master_a);
    REQUIRE(restarted.addWrapped(dek->first, wrapped).isOk());
    REQUIRE(restarted.findDataKey(dek->first) != nullptr);
    CHECK(restarted.findDataKey(dek->first)->bytes == bytes);

    Keyring rotated;
    rotated.addMaster(master_b);
    rotated.addMaster(master_a);
    rotated.addMaster(master_a);  // listed twice: harmless
    CHECK(rotated.currentMasterId() == master_b.id);
    REQUIRE(rotated.addWrapped(dek->first, wrapped).isOk());
    CHECK(rotated.findDataKey(dek->first)->bytes == bytes);
    auto fresh = rotated.newDataKey({dek->first});
    REQUIRE(fresh.isOk());
    CHECK(fresh->first != dek->first);
    CHECK(static_cast<uint8_t>(fresh->second[0]) == (master_b.id >> 24));

    Keyring only_b;
    only_b.addMaster(master_b);
    Status missing = only_b.addWrapped(dek->first, wrapped);
    CHECK(missing.code() == StatusCode::kNotFound);
    char id_hex[16];
    std::snprintf(id_hex, sizeof(id_hex), "0x%08x", master_a.id);
    CHECK(missing.message().find(id_hex) != std::string::npos);
    CHECK(only_b.findDataKey(dek->first) == nullptr);
  }

  TEST_CASE("a damaged or misplaced wrapped DEK is corruption") {
    const KeyMaterial master = fixedKey(0x33);
    Keyring ring;
    ring.addMaster(master);
    auto dek = ring.newDataKey({});
    REQUIRE(dek.isOk());
    const std::string wrapped = dek->second;
    for (size_t i = 4; i < wrapped.size(); ++i) {
      std::string bad = wrapped;
      bad[i] = static_cast<char>(bad[i] ^ 0x01);
      Keyring r;
      r.addMaster(master);
      Status s = r.addWrapped(dek->first, bad);
      REQUIRE(s.code() == StatusCode::kCorruption);
      REQUIRE(r.findDataKey(dek->first) == nullptr);
    }
    Keyring r;
    r.addMaster(master);
    CHECK(r.addWrapped(dek->first ^ 1, wrapped).code() == StatusCode::kCorruption);  // AAD
    CHECK(r.addWrapped(dek->first, wrapped.substr(1)).code() == StatusCode::kCorruption);
    CHECK(r.addWrapped(0, wrapped).code() == StatusCode::kCorruption);
    CHECK(r.addWrapped(dek->first, wrapped).isOk());
  }
}
