// The envelope: the compact, end-to-end sealed form of one batch on the wire
// (`format: envelope` of the HTTP output, `payload: envelope` of the MQTT output), opened
// by `ferry decode` and `ferry receive`. The byte layout, the key and nonce argument and a
// test vector are in docs/envelope.md.
//
// An envelope carries: magic, version, flags, key id, nonce, agent, stream, first seq,
// record count, raw length and a header CRC32C, then the records as NDJSON compressed with
// zstd; when a key is given the body is sealed with AES-256-GCM under a per-envelope key
// (HKDF-SHA256 of the key file's key and a random salt from the nonce) with the whole header
// as associated data, else a CRC32C of header and body follows it.
//
// Keys are `ferry keygen --type aes256` files (agent/codec/key_file.h); the sender and the
// receiver share the file. Without a key the envelope is compressed and CRC-checked but
// not encrypted (flags say so; a receiver that was given a key refuses such envelopes).
//
// Thread-safety: an EnvelopeSealer holds a compression context: one per thread.
// openEnvelope() is stateless.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "agent/codec/key_file.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry {

struct EnvelopeInfo {
  uint8_t version = 0;
  uint8_t flags = 0;
  uint32_t key_id = 0;  // 0 when not encrypted
  std::string agent;
  std::string stream;
  uint64_t first_seq = 0;
  uint32_t count = 0;
  bool encrypted() const;
};

class EnvelopeSealer {
 public:
  // `key`: nullopt for an unencrypted envelope. `zstd_level` 1..19 (0: 3).
  EnvelopeSealer(std::optional<KeyMaterial> key, int zstd_level);
  ~EnvelopeSealer();
  EnvelopeSealer(const EnvelopeSealer&) = delete;
  EnvelopeSealer& operator=(const EnvelopeSealer&) = delete;

  // Replaces *out with the envelope of `block`'s records. `agent` names the sender (the
  // block's lineage may name another agent, e.g. for forwarded data); first seq = block.seq.
  Status seal(const Block& block, std::string_view agent, std::string* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct OpenedEnvelope {
  EnvelopeInfo info;
  std::string ndjson;  // every record followed by '\n'
};

// Reads only the header (no key needed; lengths checked). kCorruption if malformed.
Result<EnvelopeInfo> peekEnvelope(std::string_view frame);

// Opens an envelope with whichever of `keys` its key id names. kNotFound naming the key id
// when none matches; kCorruption for a bad frame, tag or CRC; kPermissionDenied for an
// unencrypted envelope when `require_encryption`. Refuses (kInvalidArgument) bodies that
// would decompress to more than `max_bytes`.
Result<OpenedEnvelope> openEnvelope(std::string_view frame, std::span<const KeyMaterial> keys,
                                    bool require_encryption, size_t max_bytes);

}  // namespace ferry
