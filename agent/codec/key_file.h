// At-rest key files: `ferry keygen --type aes256` writes them, the buffer reads them.
//
// Format: one line "ferry-aes256:<64 lowercase hex digits>\n". The key id is the first
// four bytes (big-endian) of SHA-256 of the 32 key bytes, so the same key always has the
// same id and a block names the key it needs without revealing it.
// Thread-safety: stateless functions.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "ferry/status.h"

namespace ferry {

struct KeyMaterial {
  uint32_t id = 0;
  std::array<uint8_t, 32> bytes{};
};

// Derives the id of `bytes` (see above).
uint32_t keyIdOf(const std::array<uint8_t, 32>& bytes);

// Reads a key file. Errors name the path: kNotFound (missing), kPermissionDenied
// (readable or writable by group/others: "chmod 600 <path>"), kInvalidArgument (format).
Result<KeyMaterial> loadKeyFile(const std::string& path);

// Writes a fresh random key (OpenSSL RAND_bytes) to `path`, created with O_EXCL and mode
// 0600; refuses to overwrite an existing file (kAlreadyExists).
Result<KeyMaterial> writeNewKeyFile(const std::string& path);

}  // namespace ferry
