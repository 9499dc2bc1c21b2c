#include "agent/codec/aes_gcm.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>
#include <string>

namespace ferry {

Status opensslError(std::string_view what) {
  std::string m(what);
  m += ": ";
  unsigned long err = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  if (err == 0) {
    m += "unknown OpenSSL error";
  } else {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    m += buf;
  }
  ERR_clear_error();
  return internalError(std::move(m));
}

AesGcm::~AesGcm() {
  // Freeing a context cleanses the key schedule it holds.
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
}

Status AesGcm::ensure(EVP_CIPHER_CTX** ctx, bool encrypt) {
  if (*ctx != nullptr) return Status::ok();
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (c == nullptr) return opensslError("EVP_CIPHER_CTX_new");
  // The cipher is bound once; later inits pass only key and nonce, which skips the
  // algorithm lookup on every block.
  if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1) {
    EVP_CIPHER_CTX_free(c);
    return opensslError("EVP_CipherInit_ex(aes-256-gcm)");
  }
  *ctx = c;
  return Status::ok();
}

Status AesGcm::seal(const uint8_t* key, const uint8_t* nonce, std::string_view aad,
                    const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag) {
  if (len > static_cast<size_t>(INT_MAX) || aad.size() > static_cast<size_t>(INT_MAX)) {
    return invalidArgument("AES-GCM input too large");
  }
  FERRY_RETURN_IF_ERROR(ensure(&enc_, true));
  int n = 0;
  if (EVP_EncryptInit_ex(enc_, nullptr, nullptr, key, nonce) != 1) {
    return opensslError("EVP_EncryptInit_ex");
  }
  if (!aad.empty() &&
      EVP_EncryptUpdate(enc_, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1) {
    return opensslError("EVP_EncryptUpdate(aad)");
  }
  int written = 0;
  if (len > 0) {
    if (EVP_EncryptUpdate(enc_, out, &written, in, static_cast<int>(len)) != 1) {
      return opensslError("EVP_EncryptUpdate");
    }
  }
  if (EVP_EncryptFinal_ex(enc_, out + written, &n) != 1) return opensslError("EVP_EncryptFinal_ex");
  if (EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagLen), tag) != 1) {
    return opensslError("EVP_CTRL_AEAD_GET_TAG");
  }
  return Status::ok();
}

Status AesGcm::open(const uint8_t* key, const uint8_t* nonce, std::string_view aad,
                    const uint8_t* in, size_t len, uint8_t* out, const uint8_t* tag) {
  if (len > static_cast<size_t>(INT_MAX) || aad.size() > static_cast<size_t>(INT_MAX)) {
    return corruption("AES-GCM input too large");
  }
  FERRY_RETURN_IF_ERROR(ensure(&dec_, false));
  int n = 0;
  if (EVP_DecryptInit_ex(dec_, nullptr, nullptr, key, nonce) != 1) {
    return opensslError("EVP_DecryptInit_ex");
  }
  if (!aad.empty() &&
      EVP_DecryptUpdate(dec_, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1) {
    return opensslError("EVP_DecryptUpdate(aad)");
  }
  int written = 0;
  if (len > 0) {
    if (EVP_DecryptUpdate(dec_, out, &written, in, static_cast<int>(len)) != 1) {
      return opensslError("EVP_DecryptUpdate");
    }
  }
  // OpenSSL only reads the tag; the const_cast is for its void* parameter.
  if (EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagLen),
                          const_cast<uint8_t*>(tag)) != 1) {
    return opensslError("EVP_CTRL_AEAD_SET_TAG");
  }
  if (EVP_DecryptFinal_ex(dec_, out + written, &n) != 1) {
    // A failed tag check is data damage (or tampering), not an OpenSSL malfunction.
    ERR_clear_error();
    return corruption("authentication tag mismatch");
  }
  return Status::ok();
}

}  // namespace ferry
