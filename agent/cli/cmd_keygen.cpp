// `ferry keygen --type aes256 --out FILE`: a new at-rest key, mode 0600, never overwriting.
#include <cstdio>

#include "agent/cli/commands.h"
#include "agent/codec/key_file.h"

namespace ferry::cli {

int keygen(const std::string& type, const std::string& out) {
  if (type != "aes256") {
    std::fprintf(stderr,
                 "ferry keygen: --type %s is not available in this version (aes256 is; ed25519 "
                 "config-signing keys come with remote management)\n",
                 type.c_str());
    return 2;
  }
  auto key = writeNewKeyFile(out);
  if (!key.isOk()) {
    std::fprintf(stderr, "ferry keygen: %s\n", key.status().toString().c_str());
    return 1;
  }
  std::printf("wrote AES-256 key %08x to %s (mode 0600)\n", key->id, out.c_str());
  return 0;
}

}  // namespace ferry::cli
