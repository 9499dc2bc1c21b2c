#include "agent/codec/envelope.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>

#include "agent/codec/aes_gcm.h"
#include "agent/codec/big_endian.h"
#include "agent/codec/block_codec.h"
#include "agent/codec/envelope_internal.h"

namespace ferry {
namespace {

// Layout (docs/envelope.md), all integers big-endian:
// magic 4 | version 1 | flags 1 | key_id 4 | nonce 24 | agent_len 2 | agent | stream_len 2
// | stream | first_seq 8 | count 4 | raw_len 4 | header_crc 4 || body || tag 16 or crc 4
constexpr char kMagic[4] = {'F', 'E', 'N', 'V'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagZstd = 1;
constexpr uint8_t kFlagAes = 2;
constexpr uint8_t kKnownFlags = kFlagZstd | kFlagAes;
constexpr size_t kNonceOffset = 10;
constexpr size_t kNonceLen = 24;
constexpr size_t kSaltLen = 12;
constexpr size_t kAgentLenOffset = kNonceOffset + kNonceLen;  // 34
// Everything in the header but the two names.
constexpr size_t kFixedHeaderLen = kAgentLenOffset + 2 + 2 + 8 + 4 + 4 + 4;  // 58
constexpr size_t kCrcLen = 4;
constexpr std::string_view kHkdfInfo = "ferry envelope v1";

static_assert(AesGcm::kNonceLen + kSaltLen == kNonceLen);

std::string hexId(uint32_t id) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", id);
  return buf;
}

// The per-envelope AES key: HKDF-SHA256(ikm = file key, salt = first 12 nonce bytes,
// info = "ferry envelope v1"). A fleet shares one key file for years; deriving a fresh
// subkey per envelope keeps each GCM key's nonce count at one (docs/envelope.md).
Status deriveSubkey(const KeyMaterial& key, const uint8_t* salt, uint8_t* out) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return opensslError("EVP_KDF_fetch(HKDF)");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return opensslError("EVP_KDF_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.bytes.data()),
                                        key.bytes.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt), kSaltLen),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(kHkdfInfo.data()),
                                        kHkdfInfo.size()),
      OSSL_PARAM_construct_end(),
  };
  int rc = EVP_KDF_derive(ctx, out, AesGcm::kKeyLen, params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return opensslError("HKDF-SHA256");
  return Status::ok();
}

// Wipes a derived key on every path out of the scope.
struct Subkey {
  uint8_t bytes[AesGcm::kKeyLen] = {};
  ~Subkey() { OPENSSL_cleanse(bytes, sizeof(bytes)); }
};

struct ParsedHeader {
  EnvelopeInfo info;
  size_t header_len = 0;  // up to and including the header CRC
  uint32_t raw_len = 0;
  const uint8_t* nonce = nullptr;
};

Result<ParsedHeader> parseHeader(std::string_view frame) {
  // The magic first, so that a short non-envelope is named as such rather than "truncated".
  const std::string_view magic(kMagic, sizeof(kMagic));
  if (frame.substr(0, magic.size()) != magic.substr(0, frame.size())) {
    return corruption("not an envelope (bad magic)");
  }
  if (frame.size() < kFixedHeaderLen) {
    return corruption("envelope truncated: " + std::to_string(frame.size()) +
                      " bytes, a header needs at least " + std::to_string(kFixedHeaderLen));
  }
  ParsedHeader h;
  h.info.version = static_cast<uint8_t>(frame[4]);
  h.info.flags = static_cast<uint8_t>(frame[5]);
  if (h.info.version != kVersion) {
    return corruption("unsupported envelope version " + std::to_string(h.info.version) +
                      " (this build reads version " + std::to_string(kVersion) + ")");
  }
  if ((h.info.flags & ~kKnownFlags) != 0) {
    return corruption("envelope has unknown flags " + std::to_string(h.info.flags));
  }
  h.info.key_id = be::get32(frame.data() + 6);
  h.nonce = reinterpret_cast<const uint8_t*>(frame.data() + kNonceOffset);
  size_t pos = kAgentLenOffset;
  const size_t agent_len = be::get16(frame.data() + pos);
  pos += 2;
  // Each name is followed by at least the rest of the fixed header.
  if (frame.size() < kFixedHeaderLen + agent_len) return corruption("envelope truncated in its header");
  h.info.agent.assign(frame.data() + pos, agent_len);
  pos += agent_len;
  const size_t stream_len = be::get16(frame.data() + pos);
  pos += 2;
  if (frame.size() < kFixedHeaderLen + agent_len + stream_len) {
    return corruption("envelope truncated in its header");
  }
  h.info.stream.assign(frame.data() + pos, stream_len);
  pos += stream_len;
  h.info.first_seq = be::get64(frame.data() + pos);
  pos += 8;
  h.info.count = be::get32(frame.data() + pos);
  pos += 4;
  h.raw_len = be::get32(frame.data() + pos);
  pos += 4;
  const uint32_t want_crc = be::get32(frame.data() + pos);
  if (crc32c(frame.substr(0, pos)) != want_crc) return corruption("envelope header checksum mismatch");
  h.header_len = pos + kCrcLen;
  if (h.info.encrypted() && h.info.key_id == 0) return corruption("encrypted envelope with key id 0");
  if (!h.info.encrypted() && h.info.key_id != 0) return corruption("plain envelope names a key id");
  return h;
}

Status sealInto(ZSTD_CCtx* cctx, AesGcm* gcm, const std::optional<KeyMaterial>& key, int level,
                const Block& block, std::string_view agent, const envelope_internal::Nonce& nonce,
                std::string* out) {
  const std::string_view stream = block.lineage.stream;
  if (agent.size() > 0xffff || stream.size() > 0xffff) {
    return invalidArgument("envelope: agent or stream name longer than 65535 bytes");
  }
  if (block.records.size() > 0xffffffffu) return invalidArgument("envelope: too many records");
  std::string ndjson;
  block.records.appendNdjson(ndjson);
  if (ndjson.size() > 0xffffffffu) return invalidArgument("envelope: records larger than 4 GiB");

  out->clear();
  const size_t bound = ZSTD_compressBound(ndjson.size());
  out->reserve(kFixedHeaderLen + agent.size() + stream.size() + bound + AesGcm::kTagLen);
  out->append(kMagic, sizeof(kMagic));
  out->push_back(static_cast<char>(kVersion));
  out->push_back(static_cast<char>(kFlagZstd | (key ? kFlagAes : 0)));
  be::append32(*out, key ? key->id : 0);
  if (key) {
    out->append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
  } else {
    out->append(kNonceLen, '\0');
  }
  be::append16(*out, static_cast<uint16_t>(agent.size()));
  out->append(agent);
  be::append16(*out, static_cast<uint16_t>(stream.size()));
  out->append(stream);
  be::append64(*out, block.seq);
  be::append32(*out, static_cast<uint32_t>(block.records.size()));
  be::append32(*out, static_cast<uint32_t>(ndjson.size()));
  be::append32(*out, crc32c(*out));
  const size_t header_len = out->size();

  out->resize(header_len + bound);
  const size_t n = ZSTD_compressCCtx(cctx, out->data() + header_len, bound, ndjson.data(),
                                     ndjson.size(), level);
  if (ZSTD_isError(n)) return internalError(std::string("envelope: zstd: ") + ZSTD_getErrorName(n));
  out->resize(header_len + n);

  if (!key) {
    be::append32(*out, crc32c(*out));
    return Status::ok();
  }
  Subkey subkey;
  FERRY_RETURN_IF_ERROR(deriveSubkey(*key, nonce.data(), subkey.bytes));
  out->resize(header_len + n + AesGcm::kTagLen);
  auto* body = reinterpret_cast<uint8_t*>(out->data() + header_len);
  return gcm->seal(subkey.bytes, nonce.data() + kSaltLen,
                   std::string_view(out->data(), header_len), body, n, body, body + n);
}

}  // namespace

bool EnvelopeInfo::encrypted() const { return (flags & kFlagAes) != 0; }

struct EnvelopeSealer::Impl {
  std::optional<KeyMaterial> key;
  int level = 3;
  ZSTD_CCtx* cctx = nullptr;
  AesGcm gcm;
  ~Impl() {
    ZSTD_freeCCtx(cctx);
    if (key) OPENSSL_cleanse(key->bytes.data(), key->bytes.size());
  }
};

EnvelopeSealer::EnvelopeSealer(std::optional<KeyMaterial> key, int zstd_level)
    : impl_(std::make_unique<Impl>()) {
  impl_->key = std::move(key);
  impl_->level = zstd_level <= 0 ? 3 : (zstd_level > 19 ? 19 : zstd_level);
}

EnvelopeSealer::~EnvelopeSealer() = default;

Status EnvelopeSealer::seal(const Block& block, std::string_view agent, std::string* out) {
  if (impl_->cctx == nullptr) {
    impl_->cctx = ZSTD_createCCtx();
    if (impl_->cctx == nullptr) return internalError("envelope: cannot allocate a zstd context");
  }
  envelope_internal::Nonce nonce{};
  if (impl_->key && RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    return opensslError("RAND_bytes(envelope nonce)");
  }
  return sealInto(impl_->cctx, &impl_->gcm, impl_->key, impl_->level, block, agent, nonce, out);
}

namespace envelope_internal {

Status sealWithNonce(const std::optional<KeyMaterial>& key, int zstd_level, const Block& block,
                     std::string_view agent, const Nonce& nonce, std::string* out) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (cctx == nullptr) return internalError("envelope: cannot allocate a zstd context");
  AesGcm gcm;
  Status st = sealInto(cctx, &gcm, key, zstd_level <= 0 ? 3 : zstd_level, block, agent, nonce, out);
  ZSTD_freeCCtx(cctx);
  return st;
}

}  // namespace envelope_internal

Result<EnvelopeInfo> peekEnvelope(std::string_view frame) {
  auto h = parseHeader(frame);
  if (!h.isOk()) return h.status();
  return std::move(h->info);
}

Result<OpenedEnvelope> openEnvelope(std::string_view frame, std::span<const KeyMaterial> keys,
                                    bool require_encryption, size_t max_bytes) {
  auto parsed = parseHeader(frame);
  if (!parsed.isOk()) return parsed.status();
  ParsedHeader& h = *parsed;
  const size_t trailer = h.info.encrypted() ? AesGcm::kTagLen : kCrcLen;
  if (frame.size() < h.header_len + trailer) return corruption("envelope truncated: no body trailer");
  const size_t body_len = frame.size() - h.header_len - trailer;

  std::string compressed;
  std::string_view body = frame.substr(h.header_len, body_len);
  if (h.info.encrypted()) {
    const KeyMaterial* key = nullptr;
    for (const KeyMaterial& k : keys) {
      if (k.id == h.info.key_id) key = &k;
    }
    if (key == nullptr) {
      return notFound("envelope sealed with key " + hexId(h.info.key_id) +
                      (keys.empty() ? std::string(", and no key was given")
                                    : std::string(", which is not among the given keys")));
    }
    Subkey subkey;
    FERRY_RETURN_IF_ERROR(deriveSubkey(*key, h.nonce, subkey.bytes));
    compressed.resize(body_len);
    AesGcm gcm;
    auto* plain = reinterpret_cast<uint8_t*>(compressed.data());
    Status st = gcm.open(subkey.bytes, h.nonce + kSaltLen, frame.substr(0, h.header_len),
                         reinterpret_cast<const uint8_t*>(body.data()), body_len, plain,
                         reinterpret_cast<const uint8_t*>(frame.data() + h.header_len + body_len));
    if (!st.isOk()) {
      if (st.code() == StatusCode::kCorruption) {
        return corruption("envelope failed authentication (damaged, or sealed by another key "
                          "with the same id)");
      }
      return st;
    }
    body = compressed;
  } else {
    if (require_encryption) {
      return permissionDenied("envelope is not encrypted, and this receiver requires encryption");
    }
    const uint32_t want = be::get32(frame.data() + h.header_len + body_len);
    if (crc32c(frame.substr(0, h.header_len + body_len)) != want) {
      return corruption("envelope checksum mismatch");
    }
  }

  if (h.raw_len > max_bytes) {
    return invalidArgument("envelope holds " + std::to_string(h.raw_len) +
                           " bytes of records, more than the limit of " + std::to_string(max_bytes));
  }
  OpenedEnvelope opened;
  if ((h.info.flags & kFlagZstd) != 0) {
    opened.ndjson.resize(h.raw_len);
    // Decompressing into exactly raw_len bytes bounds memory by the checked header field;
    // a frame that wants more or yields less is damaged.
    const size_t n = ZSTD_decompress(opened.ndjson.data(), opened.ndjson.size(), body.data(), body.size());
    if (ZSTD_isError(n)) {
      return corruption(std::string("envelope body does not decompress: ") + ZSTD_getErrorName(n));
    }
    if (n != h.raw_len) return corruption("envelope body shorter than its header says");
  } else {
    if (body.size() != h.raw_len) return corruption("envelope body length differs from its header");
    opened.ndjson.assign(body);
  }
  size_t lines = 0;
  for (char c : opened.ndjson) lines += c == '\n' ? 1 : 0;
  if (lines != h.info.count || (!opened.ndjson.empty() && opened.ndjson.back() != '\n')) {
    return corruption("envelope header says " + std::to_string(h.info.count) + " records, body has " +
                      std::to_string(lines) + " lines");
  }
  opened.info = std::move(h.info);
  return opened;
}

}  // namespace ferry
