// Master keys and data keys for sealing blocks.
//
// A master key (KEK) comes from a key file. Each time a buffer opens, it generates a fresh
// random data key (DEK) with a fresh random id, wraps it with the current master key
// (AES-256-GCM, the DEK id as associated data) and persists the wrapped form before
// sealing anything with it. Blocks are sealed with the DEK under nonces
// dek_id(4, BE) || counter(8, BE) with the counter starting at 1 for each DEK. A DEK is
// never reused after a restart, so a (key, nonce) pair can never repeat, even when a
// crash makes the buffer hand out a sequence number again. Old blocks stay readable as
// long as the master key that wrapped their DEK is loaded (key rotation: list the old
// key file under previous_key_files).
//
// Thread-safety: masters are added on the control thread at open; afterwards
// findDataKey()/addWrapped() may be called from any thread, newDataKey() and nextNonce()
// from the writer thread.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/codec/key_file.h"
#include "ferry/status.h"

namespace ferry {

class Keyring {
 public:
  // Length of a wrapped DEK: master_id u32 BE | nonce (12) | ciphertext (32) | tag (16).
  static constexpr size_t kWrappedLen = 4 + 12 + 32 + 16;

  Keyring() = default;
  // Cleanses the key bytes so they do not linger in freed memory.
  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  // The first master added is the current one (it wraps new DEKs); later ones only unwrap.
  void addMaster(const KeyMaterial& master);
  bool enabled() const { return !masters_.empty(); }
  uint32_t currentMasterId() const;

  // Generates the DEK for this run, makes it current, and returns its id and the wrapped
  // bytes to persist. `taken` are DEK ids already in use (a new id avoids them).
  Result<std::pair<uint32_t, std::string>> newDataKey(const std::vector<uint32_t>& taken);

  // Registers a DEK from its persisted wrapped form. kNotFound (naming the master key id)
  // when the master key that wrapped it is not loaded; kCorruption when the tag fails.
  Status addWrapped(uint32_t dek_id, std::string_view wrapped);

  // The DEK with `id`, or nullptr.
  const KeyMaterial* findDataKey(uint32_t id) const;
  // The current DEK (after newDataKey), or nullptr.
  const KeyMaterial* currentDataKey() const;
  // The next nonce under the current DEK.
  std::array<uint8_t, 12> nextNonce();
  // Blocks sealed under the current DEK so far (the owner rotates with newDataKey()
  // long before the 2^32 bound).
  uint64_t sealedUnderCurrent() const { return counter_.load(std::memory_order_relaxed); }

 private:
  std::vector<KeyMaterial> masters_;
  // Readers look data keys up while the writer may add a new one (rotation): guarded.
  // Map nodes never move or go away, so returned pointers stay valid.
  mutable std::shared_mutex keys_mu_;
  std::map<uint32_t, KeyMaterial> data_keys_;
  std::atomic<uint32_t> current_dek_{0};
  std::atomic<uint64_t> counter_{0};
};

}  // namespace ferry
