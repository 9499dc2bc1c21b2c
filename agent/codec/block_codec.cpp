#include "agent/codec/block_codec.h"

#include <zstd.h>

#include <cstdio>
#include <cstring>

#include "agent/codec/aes_gcm.h"
#include "agent/codec/big_endian.h"

namespace ferry {
namespace {

constexpr char kMagic[2] = {'F', 'B'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagZstd = 1;
constexpr uint8_t kFlagAes = 2;
constexpr uint8_t kFlagRouted = 4;  // a route (u16 length + bytes) follows the stream name
constexpr uint8_t kKnownFlags = kFlagZstd | kFlagAes | kFlagRouted;
// magic 2 | version 1 | flags 1 | key_id 4 | seq 8 | created_ms 8 | config_version 8
// | record_count 4 | raw_len 4 | agent_len 2 | input_len 2 | stream_len 2
constexpr size_t kFixedHeaderLen = 46;
constexpr size_t kCrcLen = 4;
// A stored block is at most a few MiB; a larger raw_len is a damaged header, and refusing
// it bounds what a corrupt block can make open() allocate.
constexpr uint32_t kMaxRawLen = 64u << 20;
// Scratch buffers above this are released after use so that one huge block does not pin
// its memory for the life of the thread (small devices).
constexpr size_t kMaxKeptScratch = 8u << 20;
// Conservative per-DEK bound on GCM invocations (NIST SP 800-38D's 2^32).
constexpr uint64_t kMaxNoncesPerKey = uint64_t{1} << 32;

std::string hexId(uint32_t id) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", id);
  return buf;
}

std::string blockName(uint64_t seq) { return "block " + std::to_string(seq); }

// Where the parts of a stored block are, once its lengths have been checked.
struct Layout {
  BlockHeader header;
  size_t header_len = 0;  // including the nonce when encrypted
  size_t body_len = 0;    // compressed/encrypted payload, without tag or CRC
};

// Parses the header and checks every length against `stored` before anything is read
// through it, so a damaged block can never cause an over-read or a huge allocation.
Status parseLayout(std::string_view stored, Layout* out) {
  const char* p = stored.data();
  const size_t size = stored.size();
  if (size < kFixedHeaderLen) {
    return corruption("truncated: " + std::to_string(size) + " bytes is shorter than a header");
  }
  if (p[0] != kMagic[0] || p[1] != kMagic[1]) return corruption("bad magic (not a stored block)");
  const auto version = static_cast<uint8_t>(p[2]);
  if (version != kVersion) {
    return corruption("unsupported block format version " + std::to_string(version));
  }
  BlockHeader& h = out->header;
  h.flags = static_cast<uint8_t>(p[3]);
  if ((h.flags & ~kKnownFlags) != 0) return corruption("unknown flags " + std::to_string(h.flags));
  h.key_id = be::get32(p + 4);
  h.seq = be::get64(p + 8);
  h.created_ms = static_cast<int64_t>(be::get64(p + 16));
  h.config_version = be::get64(p + 24);
  h.record_count = be::get32(p + 32);
  h.raw_len = be::get32(p + 36);
  const size_t agent_len = be::get16(p + 40);
  const size_t input_len = be::get16(p + 42);
  const size_t stream_len = be::get16(p + 44);

  if (h.encrypted() == (h.key_id == 0)) {
    return corruption(h.encrypted() ? "encrypted block with key id 0"
                                    : "plaintext block with key id " + hexId(h.key_id));
  }
  if (h.raw_len > kMaxRawLen) {
    return corruption("payload length " + std::to_string(h.raw_len) + " exceeds the 64 MiB limit");
  }
  if (uint64_t{h.record_count} * 4 > h.raw_len) {
    return corruption(std::to_string(h.record_count) + " records cannot fit in a payload of " +
                      std::to_string(h.raw_len) + " bytes");
  }
  const size_t names_len = agent_len + input_len + stream_len;
  size_t route_len = 0;
  size_t route_field = 0;  // the route's length field and bytes
  if ((h.flags & kFlagRouted) != 0) {
    if (size < kFixedHeaderLen + names_len + 2) return corruption("truncated: route length missing");
    route_len = be::get16(p + kFixedHeaderLen + names_len);
    route_field = 2 + route_len;
  }
  const size_t header_len = kFixedHeaderLen + names_len + route_field +
                            (h.encrypted() ? AesGcm::kNonceLen : 0);
  const size_t trailer_len = h.encrypted() ? AesGcm::kTagLen : kCrcLen;
  if (size < header_len + trailer_len) {
    return corruption("truncated: " + std::to_string(size) + " bytes, header and trailer need " +
                      std::to_string(header_len + trailer_len));
  }
  const size_t body_len = size - header_len - trailer_len;
  if (!h.compressed() && body_len != h.raw_len) {
    return corruption("body is " + std::to_string(body_len) + " bytes, header says " +
                      std::to_string(h.raw_len));
  }
  const char* s = p + kFixedHeaderLen;
  h.agent.assign(s, agent_len);
  h.input.assign(s + agent_len, input_len);
  h.stream.assign(s + agent_len + input_len, stream_len);
  if (route_field != 0) h.route.assign(s + names_len + 2, route_len);
  out->header_len = header_len;
  out->body_len = body_len;
  return Status::ok();
}

void releaseIfHuge(std::string& s) {
  if (s.capacity() > kMaxKeptScratch) std::string().swap(s);
}

}  // namespace

struct BlockCodec::Impl {
  CodecOptions options;
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  AesGcm gcm;
  std::string payload;  // seal: ends + records, before compression
  std::string plain;    // open: decrypted body
  std::string raw;      // open: decompressed payload

  ~Impl() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

BlockCodec::BlockCodec(CodecOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}

BlockCodec::~BlockCodec() = default;

Status BlockCodec::seal(const Block& block, std::string* out) {
  Impl& im = *impl_;
  const RecordBatch& records = block.records;
  const std::vector<uint32_t>& ends = records.ends();
  const Lineage& lin = block.lineage;
  const std::string what = blockName(block.seq);
  for (const std::string* s : {&lin.agent, &lin.input, &lin.stream, &lin.route}) {
    if (s->size() > 0xFFFF) {
      return invalidArgument(what + ": lineage name of " + std::to_string(s->size()) +
                             " bytes is longer than 65535");
    }
  }
  // The last end, not data().size(): bytes written through mutableData() but never
  // committed are not a record.
  const size_t data_len = ends.empty() ? 0 : ends.back();
  const uint64_t raw_len64 = uint64_t{ends.size()} * 4 + data_len;
  if (raw_len64 > kMaxRawLen) {
    return invalidArgument(what + ": " + std::to_string(raw_len64) +
                           " bytes of records exceed the 64 MiB block limit");
  }
  const auto raw_len = static_cast<uint32_t>(raw_len64);

  Keyring* keyring = im.options.keyring;
  const bool encrypt = keyring != nullptr && keyring->enabled();
  const KeyMaterial* dek = nullptr;
  if (encrypt) {
    dek = keyring->currentDataKey();
    if (dek == nullptr) {
      return Status(StatusCode::kFailedPrecondition,
                    what + ": encryption is on but no data key was made (Keyring::newDataKey)");
    }
  }
  const bool compress = im.options.compress;
  const bool routed = !lin.route.empty();
  const size_t header_len = kFixedHeaderLen + lin.agent.size() + lin.input.size() +
                            lin.stream.size() + (routed ? 2 + lin.route.size() : 0) +
                            (encrypt ? AesGcm::kNonceLen : 0);
  const size_t trailer_len = encrypt ? AesGcm::kTagLen : kCrcLen;

  // Writes the payload (ends then record bytes) at `dst`, which has raw_len bytes.
  auto writePayload = [&](char* dst) {
    for (uint32_t e : ends) {
      be::put32(dst, e);
      dst += 4;
    }
    if (data_len > 0) std::memcpy(dst, records.data().data(), data_len);
  };

  size_t body_len = 0;
  if (!compress) {
    // Straight into the output: one copy of the record bytes.
    out->resize(header_len + raw_len + trailer_len);
    writePayload(out->data() + header_len);
    body_len = raw_len;
  } else {
    if (im.cctx == nullptr) {
      im.cctx = ZSTD_createCCtx();
      if (im.cctx == nullptr) return resourceExhausted(what + ": cannot allocate a zstd context");
    }
    im.payload.resize(raw_len);
    writePayload(im.payload.data());
    const size_t bound = ZSTD_compressBound(raw_len);
    out->resize(header_len + bound + trailer_len);
    const size_t n = ZSTD_compressCCtx(im.cctx, out->data() + header_len, bound, im.payload.data(),
                                       raw_len, im.options.zstd_level);
    releaseIfHuge(im.payload);
    if (ZSTD_isError(n)) {
      return internalError(what + ": zstd compression failed: " + ZSTD_getErrorName(n));
    }
    body_len = n;
    out->resize(header_len + body_len + trailer_len);
  }

  char* h = out->data();
  h[0] = kMagic[0];
  h[1] = kMagic[1];
  h[2] = static_cast<char>(kVersion);
  h[3] = static_cast<char>((compress ? kFlagZstd : 0) | (encrypt ? kFlagAes : 0) | (routed ? kFlagRouted : 0));
  be::put32(h + 4, encrypt ? dek->id : 0);
  be::put64(h + 8, block.seq);
  be::put64(h + 16, static_cast<uint64_t>(block.created_ms));
  be::put64(h + 24, lin.config_version);
  be::put32(h + 32, static_cast<uint32_t>(ends.size()));
  be::put32(h + 36, raw_len);
  be::put16(h + 40, static_cast<uint16_t>(lin.agent.size()));
  be::put16(h + 42, static_cast<uint16_t>(lin.input.size()));
  be::put16(h + 44, static_cast<uint16_t>(lin.stream.size()));
  char* s = h + kFixedHeaderLen;
  for (const std::string* name : {&lin.agent, &lin.input, &lin.stream}) {
    if (!name->empty()) std::memcpy(s, name->data(), name->size());
    s += name->size();
  }
  if (routed) {
    be::put16(s, static_cast<uint16_t>(lin.route.size()));
    std::memcpy(s + 2, lin.route.data(), lin.route.size());
    s += 2 + lin.route.size();
  }

  if (encrypt) {
    const std::array<uint8_t, 12> nonce = keyring->nextNonce();
    uint64_t counter = 0;
    for (int i = 4; i < 12; ++i) counter = (counter << 8) | nonce[i];
    if (counter > kMaxNoncesPerKey) {
      // Unreachable in practice (2^32 blocks of 256 KiB is 1 PiB), but a nonce must never
      // be used past the key's bound: the buffer has to be reopened for a fresh DEK.
      out->clear();
      return Status(StatusCode::kFailedPrecondition,
                    what + ": data key " + hexId(dek->id) + " has sealed 2^32 blocks");
    }
    std::memcpy(s, nonce.data(), nonce.size());
    auto* body = reinterpret_cast<uint8_t*>(h + header_len);
    // In place: the body is encrypted where it was written; the whole header (with the
    // nonce) is the associated data.
    Status st = im.gcm.seal(dek->bytes.data(), nonce.data(), std::string_view(h, header_len), body,
                            body_len, body, body + body_len);
    if (!st.isOk()) {
      out->clear();
      return st.withContext(what);
    }
  } else {
    be::put32(h + header_len + body_len, crc32c(std::string_view(h, header_len + body_len)));
  }
  return Status::ok();
}

Result<BlockHeader> BlockCodec::peekHeader(std::string_view stored) {
  Layout layout;
  FERRY_RETURN_IF_ERROR(parseLayout(stored, &layout));
  return std::move(layout.header);
}

Result<Block> BlockCodec::open(std::string_view stored, uint64_t expected_seq) {
  Impl& im = *impl_;
  const std::string what = blockName(expected_seq);
  Layout layout;
  Status st = parseLayout(stored, &layout);
  if (!st.isOk()) return st.withContext(what);
  BlockHeader& h = layout.header;
  const char* body = stored.data() + layout.header_len;
  const size_t body_len = layout.body_len;

  if (h.encrypted()) {
    Keyring* keyring = im.options.keyring;
    const KeyMaterial* dek = keyring != nullptr ? keyring->findDataKey(h.key_id) : nullptr;
    if (dek == nullptr) {
      return notFound(what + ": sealed with unknown data key id " + hexId(h.key_id) +
                      (keyring == nullptr || !keyring->enabled()
                           ? " (no encryption keys are loaded)"
                           : " (its wrapped key is missing or its master key is not loaded)"));
    }
    im.plain.resize(body_len);
    const auto* nonce =
        reinterpret_cast<const uint8_t*>(stored.data() + layout.header_len - AesGcm::kNonceLen);
    auto* plain = reinterpret_cast<uint8_t*>(im.plain.data());
    st = im.gcm.open(dek->bytes.data(), nonce, stored.substr(0, layout.header_len),
                     reinterpret_cast<const uint8_t*>(body), body_len, plain,
                     reinterpret_cast<const uint8_t*>(body + body_len));
    if (!st.isOk()) return st.withContext(what);
    body = im.plain.data();
  } else {
    const uint32_t want = be::get32(stored.data() + stored.size() - kCrcLen);
    const uint32_t got = crc32c(stored.substr(0, stored.size() - kCrcLen));
    if (want != got) {
      return corruption(what + ": CRC32C mismatch (stored " + hexId(want) + ", computed " +
                        hexId(got) + ")");
    }
  }
  if (h.seq != expected_seq) {
    return corruption(what + ": header says seq " + std::to_string(h.seq) +
                      " (block stored under the wrong key)");
  }

  const char* payload = body;
  if (h.compressed()) {
    if (im.dctx == nullptr) {
      im.dctx = ZSTD_createDCtx();
      if (im.dctx == nullptr) return resourceExhausted(what + ": cannot allocate a zstd context");
    }
    im.raw.resize(h.raw_len);
    // raw_len is the output bound: a frame that would decode to more fails here instead
    // of allocating.
    const size_t n = ZSTD_decompressDCtx(im.dctx, im.raw.data(), h.raw_len, body, body_len);
    if (ZSTD_isError(n)) {
      return corruption(what + ": zstd: " + ZSTD_getErrorName(n));
    }
    if (n != h.raw_len) {
      return corruption(what + ": payload decompressed to " + std::to_string(n) +
                        " bytes, header says " + std::to_string(h.raw_len));
    }
    payload = im.raw.data();
  }

  // The payload is authenticated (or CRC-checked), but a writer bug or a CRC collision
  // must still not produce records that point outside it.
  const uint32_t count = h.record_count;
  const uint32_t data_len = h.raw_len - count * 4;  // count * 4 <= raw_len: parseLayout
  const char* data = payload + size_t{count} * 4;
  uint32_t prev = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t e = be::get32(payload + size_t{i} * 4);
    if (e < prev || e > data_len) {
      return corruption(what + ": record " + std::to_string(i) + " ends at " + std::to_string(e) +
                        ", outside the payload");
    }
    prev = e;
  }
  if (prev != data_len) {
    return corruption(what + ": records hold " + std::to_string(prev) + " bytes, payload has " +
                      std::to_string(data_len));
  }

  Block block;
  block.seq = h.seq;
  block.created_ms = h.created_ms;
  block.lineage.agent = std::move(h.agent);
  block.lineage.input = std::move(h.input);
  block.lineage.stream = std::move(h.stream);
  block.lineage.route = std::move(h.route);
  block.lineage.config_version = h.config_version;
  block.records.reserve(count, data_len);
  prev = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t e = be::get32(payload + size_t{i} * 4);
    block.records.append(std::string_view(data + prev, e - prev));
    prev = e;
  }
  releaseIfHuge(im.plain);
  releaseIfHuge(im.raw);
  return block;
}

}  // namespace ferry
