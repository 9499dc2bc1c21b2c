// AES-256-GCM over reused OpenSSL contexts, and OpenSSL errors as Status. Internal to
// agent/codec (the keyring wraps data keys with it, the block codec seals blocks).
//
// Nonces are always 12 bytes (the size GCM specifies without hashing the IV) and tags
// always 16 bytes (truncated tags weaken forgery resistance).
// Thread-safety: an AesGcm belongs to one thread at a time.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// kInternal "<what>: <ERR_error_string text>" from OpenSSL's thread-local error queue. The
// queue is drained so a stale entry is never blamed on a later, unrelated call.
Status opensslError(std::string_view what);

class AesGcm {
 public:
  static constexpr size_t kKeyLen = 32;
  static constexpr size_t kNonceLen = 12;
  static constexpr size_t kTagLen = 16;

  AesGcm() = default;
  ~AesGcm();
  AesGcm(const AesGcm&) = delete;
  AesGcm& operator=(const AesGcm&) = delete;

  // Encrypts `len` bytes from `in` to `out` (in == out is allowed) and writes the tag.
  Status seal(const uint8_t* key, const uint8_t* nonce, std::string_view aad, const uint8_t* in,
              size_t len, uint8_t* out, uint8_t* tag);

  // Decrypts `len` bytes from `in` to `out` (in == out is allowed) and checks the tag:
  // kCorruption "authentication tag mismatch" when it fails, and then `out` holds garbage
  // that the caller must not use.
  Status open(const uint8_t* key, const uint8_t* nonce, std::string_view aad, const uint8_t* in,
              size_t len, uint8_t* out, const uint8_t* tag);

 private:
  // The contexts are made on first use so that a constructor never has to fail, and a
  // plaintext-only codec never allocates them.
  Status ensure(EVP_CIPHER_CTX** ctx, bool encrypt);

  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
};

}  // namespace ferry
