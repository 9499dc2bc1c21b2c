// The reference upstream endpoint behind `ferry receive`: an HTTP server (libmicrohttpd)
// that accepts the HTTP output's batches and writes each accepted batch, exactly once, to
// its own file:
//
//   <out_dir>/<agent>/<output>/<first-seq as 20 zero-padded digits>.ndjson
//
// taken from `Idempotency-Key: <agent>/<output>/<first-seq>`. Reading one directory's files
// in name order gives that output's records in sequence order, each batch once.
//
// Request handling (POST or PUT, any path; GET /healthz → 200):
// - body: NDJSON, or an envelope (Content-Type application/vnd.ferry.envelope) opened with
//   the configured keys (with keys, unencrypted envelopes are refused); Content-Encoding
//   zstd | gzip | identity. Body larger than max_body (raw or decoded) → 413.
// - 400 with the reason as text: missing/bad Idempotency-Key, a name that is empty, ".",
//   ".." or holds '/', Ferry-Count or Ferry-First-Seq disagreeing with the batch, a body
//   that does not decode, an envelope that does not open.
// - A batch is answered 200 only after its file is durable: written to a temp name,
//   fsync'd, moved into place without overwriting (renameat2 RENAME_NOREPLACE), and the
//   directory fsync'd (durability kFsync; kOs skips the fsyncs). An existing final file
//   means a duplicate: 200 {"accepted":N,"duplicate":true}, nothing rewritten. This holds
//   across restarts and between concurrent requests with the same key.
// - 503 + Retry-After: 5 when the filesystem has less than min_free bytes free, or a
//   write fails with ENOSPC/EDQUOT (the temp file is removed); 500 for other I/O errors.
//
// Threading: libmicrohttpd runs one thread per connection (keep-alive supported), so
// several agents are served at once and an fsync stalls only its own connection. start()
// and stop() are called from one owner thread; stats() and port() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/codec/key_file.h"
#include "ferry/status.h"

namespace ferry {

struct ReceiverOptions {
  bool fsync = true;                     // durability: fsync | os
  uint64_t min_free = 64ull << 20;       // bytes free on out_dir's filesystem, else 503
  uint64_t max_body = 64ull << 20;       // largest body, both as received and decoded
  unsigned max_connections = 64;         // concurrent connections (one thread each)
  unsigned connection_timeout_s = 120;   // idle keep-alive connections are closed after this
};

struct ReceiverStats {
  uint64_t batches = 0;         // accepted and written
  uint64_t records = 0;         // in accepted batches
  uint64_t bytes = 0;           // NDJSON bytes written
  uint64_t duplicates = 0;      // batches whose file already existed
  uint64_t rejected = 0;        // 4xx answers
  uint64_t unavailable = 0;     // 503 answers (disk full or below min_free)
  uint64_t errors = 0;          // 500 answers
};

class Receiver {
 public:
  Receiver();
  ~Receiver();  // stops
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Listens on `listen` ("HOST:PORT", ":PORT" for every interface, "[V6]:PORT"; port 0
  // picks a free port) and serves until stop(). `out_dir` is created if missing.
  // kInvalidArgument for a bad address or options, kIoError when the directory cannot be
  // made or the port cannot be bound; kFailedPrecondition when already started.
  Status start(const std::string& listen, const std::string& out_dir, std::vector<KeyMaterial> keys,
               const ReceiverOptions& options);
  // Stops accepting, waits for requests in flight to finish. Idempotent.
  void stop();

  // The bound address as "IP:PORT" (valid after a successful start()).
  std::string boundAddress() const;
  uint16_t port() const;
  ReceiverStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry
