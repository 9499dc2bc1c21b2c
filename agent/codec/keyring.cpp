#include "agent/codec/keyring.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>

#include "agent/codec/aes_gcm.h"

namespace ferry {
namespace {

constexpr std::string_view kDekAadPrefix = "ferry-dek";

void putU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

uint32_t getU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hexId(uint32_t id) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", id);
  return buf;
}

// The DEK id is the associated data: a wrapped key moved to another id's slot (or an id
// flipped on disk) fails the tag instead of handing out a key under the wrong id, which
// would then be paired with another DEK's nonces.
std::string dekAad(uint32_t dek_id) {
  std::string aad(kDekAadPrefix);
  uint8_t id[4];
  putU32(id, dek_id);
  aad.append(reinterpret_cast<const char*>(id), 4);
  return aad;
}

}  // namespace

Keyring::~Keyring() {
  for (KeyMaterial& k : masters_) OPENSSL_cleanse(k.bytes.data(), k.bytes.size());
  for (auto& [id, k] : data_keys_) OPENSSL_cleanse(k.bytes.data(), k.bytes.size());
}

void Keyring::addMaster(const KeyMaterial& master) {
  // The same key listed twice (e.g. as current and as previous) adds nothing.
  for (const KeyMaterial& m : masters_) {
    if (m.id == master.id) return;
  }
  masters_.push_back(master);
}

uint32_t Keyring::currentMasterId() const { return masters_.empty() ? 0 : masters_.front().id; }

Result<std::pair<uint32_t, std::string>> Keyring::newDataKey(const std::vector<uint32_t>& taken) {
  if (masters_.empty()) {
    return Status(StatusCode::kFailedPrecondition, "no master key loaded: cannot make a data key");
  }
  KeyMaterial dek;
  // A random id (not a hash of the key) so that it reveals nothing about the key; it is
  // also the fixed half of every nonce under this DEK.
  for (;;) {
    uint8_t raw[4];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return opensslError("RAND_bytes(data key id)");
    dek.id = getU32(raw);
    if (dek.id == 0) continue;  // 0 means "plaintext" in a block header
    if (std::find(taken.begin(), taken.end(), dek.id) != taken.end()) continue;
    {
      std::shared_lock lock(keys_mu_);
      if (data_keys_.count(dek.id) != 0) continue;
    }
    break;
  }
  if (RAND_bytes(dek.bytes.data(), static_cast<int>(dek.bytes.size())) != 1) {
    return opensslError("RAND_bytes(data key)");
  }

  const KeyMaterial& master = masters_.front();
  std::string wrapped(kWrappedLen, '\0');
  auto* w = reinterpret_cast<uint8_t*>(wrapped.data());
  putU32(w, master.id);
  // A random nonce is safe here: the master key wraps one DEK per buffer open, far below
  // GCM's 2^32 random-nonce bound.
  if (RAND_bytes(w + 4, AesGcm::kNonceLen) != 1) {
    OPENSSL_cleanse(dek.bytes.data(), dek.bytes.size());
    return opensslError("RAND_bytes(wrap nonce)");
  }
  AesGcm gcm;
  Status st =
      gcm.seal(master.bytes.data(), w + 4, dekAad(dek.id), dek.bytes.data(), dek.bytes.size(),
               w + 4 + AesGcm::kNonceLen, w + 4 + AesGcm::kNonceLen + dek.bytes.size());
  if (!st.isOk()) {
    OPENSSL_cleanse(dek.bytes.data(), dek.bytes.size());
    return st.withContext("wrap data key");
  }
  {
    std::unique_lock lock(keys_mu_);
    data_keys_[dek.id] = dek;
    current_dek_ = dek.id;
    counter_.store(0);
  }
  OPENSSL_cleanse(dek.bytes.data(), dek.bytes.size());
  return std::make_pair(dek.id, std::move(wrapped));
}

Status Keyring::addWrapped(uint32_t dek_id, std::string_view wrapped) {
  const std::string what = "data key " + hexId(dek_id);
  if (dek_id == 0) return corruption(what + ": id 0 is reserved for plaintext");
  if (wrapped.size() != kWrappedLen) {
    return corruption(what + ": wrapped form is " + std::to_string(wrapped.size()) +
                      " bytes, expected " + std::to_string(kWrappedLen));
  }
  const auto* w = reinterpret_cast<const uint8_t*>(wrapped.data());
  const uint32_t master_id = getU32(w);
  const KeyMaterial* master = nullptr;
  for (const KeyMaterial& m : masters_) {
    if (m.id == master_id) master = &m;
  }
  if (master == nullptr) {
    return notFound(what + " is wrapped by master key " + hexId(master_id) +
                    ", which is not loaded (list its key file under previous_key_files)");
  }
  KeyMaterial dek;
  dek.id = dek_id;
  AesGcm gcm;
  Status st =
      gcm.open(master->bytes.data(), w + 4, dekAad(dek_id), w + 4 + AesGcm::kNonceLen,
               dek.bytes.size(), dek.bytes.data(), w + 4 + AesGcm::kNonceLen + dek.bytes.size());
  if (!st.isOk()) {
    OPENSSL_cleanse(dek.bytes.data(), dek.bytes.size());
    return st.withContext(what + " (master key " + hexId(master_id) + ")");
  }
  {
    std::unique_lock lock(keys_mu_);
    data_keys_[dek_id] = dek;
  }
  OPENSSL_cleanse(dek.bytes.data(), dek.bytes.size());
  return Status::ok();
}

const KeyMaterial* Keyring::findDataKey(uint32_t id) const {
  std::shared_lock lock(keys_mu_);
  auto it = data_keys_.find(id);
  return it == data_keys_.end() ? nullptr : &it->second;
}

const KeyMaterial* Keyring::currentDataKey() const { return findDataKey(current_dek_); }

std::array<uint8_t, 12> Keyring::nextNonce() {
  // Increment first: the first nonce under a DEK has counter 1, so an all-zero counter
  // never appears and "counter 0" can mean "no block sealed yet".
  const uint64_t c = counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::array<uint8_t, 12> nonce{};
  putU32(nonce.data(), current_dek_.load());
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(c >> (56 - 8 * i));
  return nonce;
}

}  // namespace ferry
