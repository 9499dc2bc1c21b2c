// The stored form of a block: sealed once by the writer, opened by readers and tools.
//
// Layout (all integers big-endian), version 1:
//   header  magic "FB" | version u8 = 1 | flags u8 (bit0 zstd, bit1 aes-256-gcm,
//           bit2 routed)
//           | key_id u32 (DEK id; 0 when plaintext) | seq u64 | created_ms i64
//           | config_version u64 | record_count u32 | raw_len u32 (payload length before
//           compression) | agent_len u16 | input_len u16 | stream_len u16
//           | agent | input | stream | [route_len u16 | route, only when bit2]
//           | nonce (12 bytes, only when encrypted)
//   body    payload = record end offsets (u32 each) followed by the record bytes;
//           zstd-compressed when bit0, then AES-256-GCM sealed when bit1 (ciphertext
//           followed by the 16-byte tag; the whole header is the associated data, so seq,
//           lineage and counts are authenticated too)
//   trailer when not encrypted: CRC32C (u32) of header and body
// The header stays readable without keys, so stats and checks can count records.
//
// Thread-safety: a BlockCodec holds compression/cipher contexts and scratch buffers:
// one instance per thread. The Keyring is shared (see keyring.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "agent/codec/keyring.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

struct BlockHeader {
  uint8_t flags = 0;
  uint32_t key_id = 0;
  uint64_t seq = 0;
  int64_t created_ms = 0;
  uint64_t config_version = 0;
  uint32_t record_count = 0;
  uint32_t raw_len = 0;
  std::string agent;
  std::string input;
  std::string stream;
  std::string route;  // only when flags bit2
  bool compressed() const { return (flags & 1) != 0; }
  bool encrypted() const { return (flags & 2) != 0; }
};

struct CodecOptions {
  bool compress = true;
  int zstd_level = 3;
  Keyring* keyring = nullptr;  // nullptr or !enabled(): plaintext with CRC32C
};

class BlockCodec {
 public:
  explicit BlockCodec(CodecOptions options);
  ~BlockCodec();
  BlockCodec(const BlockCodec&) = delete;
  BlockCodec& operator=(const BlockCodec&) = delete;

  // Seals `block` (its seq must be set) into `out` (replaced). Encrypts with the
  // keyring's current DEK and its next nonce when encryption is enabled. kInvalidArgument
  // for a block open() would refuse (a lineage name over 65535 bytes, over 64 MiB of
  // records); kFailedPrecondition when encrypting without a current DEK or past the DEK's
  // bound of 2^32 blocks (a fresh DEK is then needed: Keyring::newDataKey).
  Status seal(const Block& block, std::string* out);

  // Opens a stored block. `expected_seq` is the seq from the storage key; a header that
  // says otherwise is kCorruption. kCorruption also for a bad magic/version/length, a
  // CRC or tag mismatch, or a payload that does not decode. kNotFound when the block's
  // key id is not in the keyring (the message names the id): such a block is kept, not
  // dropped. Checkpoints are not part of the stored form.
  Result<Block> open(std::string_view stored, uint64_t expected_seq);

  // Parses and length-checks the header only (no CRC/tag check, no keys needed).
  static Result<BlockHeader> peekHeader(std::string_view stored);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CRC32C (Castagnoli), software table implementation.
uint32_t crc32c(std::string_view data, uint32_t seed = 0);

}  // namespace ferry
