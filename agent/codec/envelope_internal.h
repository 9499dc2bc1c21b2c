// Internal seam of the envelope codec, for tests only: sealing with a caller-chosen nonce so
// that a fixed key, nonce and block give fixed bytes (the test vector in docs/envelope.md).
// Production code seals through EnvelopeSealer, which draws the nonce from RAND_bytes; a
// caller that reuses a nonce with the same key breaks AES-GCM, so nothing else may call this.
//
// Thread-safety: stateless (each call makes its own contexts).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/codec/key_file.h"
#include "ferry/record.h"
#include "ferry/status.h"

namespace ferry::envelope_internal {

// 12 bytes of HKDF salt followed by the 12-byte AES-GCM nonce (zero when not encrypted).
using Nonce = std::array<uint8_t, 24>;

Status sealWithNonce(const std::optional<KeyMaterial>& key, int zstd_level, const Block& block,
                     std::string_view agent, const Nonce& nonce, std::string* out);

}  // namespace ferry::envelope_internal
