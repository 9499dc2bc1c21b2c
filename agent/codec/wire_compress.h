// Compression of request bodies on the wire (HTTP Content-Encoding, MQTT payloads) and
// its inverse for receivers and tests.
//
// Thread-safety: a WireCompressor keeps its compression context between calls: one
// instance per thread. decompressWire() is stateless.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

enum class WireEncoding { kIdentity, kZstd, kGzip };

// "zstd" | "gzip" | "none"/"identity" → encoding; false for anything else.
bool parseWireEncoding(std::string_view text, WireEncoding* out);
// The Content-Encoding token: "zstd", "gzip", "identity".
std::string_view wireEncodingName(WireEncoding encoding);

class WireCompressor {
 public:
  // `level`: zstd 1..19 (0: 3), gzip 1..9 (0: 6); ignored for identity.
  WireCompressor(WireEncoding encoding, int level);
  ~WireCompressor();
  WireCompressor(const WireCompressor&) = delete;
  WireCompressor& operator=(const WireCompressor&) = delete;

  WireEncoding encoding() const { return encoding_; }
  // Replaces *out with the encoded form of `in` (a copy for identity).
  Status compress(std::string_view in, std::string* out);

 private:
  struct Impl;
  WireEncoding encoding_;
  int level_;
  std::unique_ptr<Impl> impl_;
};

// Replaces *out with the decoded form of `in`. Refuses (kInvalidArgument) output larger
// than `max_out` bytes, so a small hostile body cannot exhaust memory; kCorruption for a
// body that does not decode.
Status decompressWire(WireEncoding encoding, std::string_view in, std::string* out, size_t max_out);

}  // namespace ferry
