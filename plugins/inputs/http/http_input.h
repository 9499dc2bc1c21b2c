// The `http` input: a listener (libmicrohttpd) that accepts records pushed with POST.
//
// Requests: only `POST <path>` is served; another path answers 404, another method on
// `path` 405 (with Allow: POST). With `auth.bearer` set, a request without the header
// `Authorization: Bearer <token>` (token compared in constant time) answers 401. A body
// over `max_body_bytes` (declared by Content-Length, received, or after decompression)
// answers 413. Content-Encoding may be identity, gzip or zstd (anything else: 415).
//
// Body (after decoding), one of:
//  - a single JSON object (it may span lines): one record, minified;
//  - a JSON array: each element that is an object is a record (minified), any other
//    element is refused;
//  - NDJSON: one JSON object per line; the record is the line with surrounding whitespace
//    (and the '\r' of CRLF) trimmed; empty lines are skipped; a line that is not exactly
//    one JSON object is refused.
// Refused records are counted in ferry_dropped_records_total{reason="http_bad_json"}.
//
// Replies (Content-Type: application/json):
//  200 {"accepted":N,"refused":M[,"error":"<first refusal>"]} when N > 0 or the body held
//      no records at all; the valid records of a mixed body are kept.
//  400 {"accepted":0,"refused":M,"error":"..."} when nothing in the body was valid (or it
//      does not decode).
//  503 + Retry-After: 5 when the core refuses the batch (buffer full, agent stopping);
//      nothing of the request was accepted: the client sends it again.
//  401, 404, 405, 413, 415 {"error":"..."} as above; 500 for an unexpected emitter error.
// What 200 means: the request's records were handed to the core in one Emitter::emit()
// that returned OK, i.e. they were copied into the agent's staging area, from which the
// pipeline's writer commits them to the buffer shortly after (retrying while the buffer
// is full, and flushing on shutdown before the agent exits). Records answered 200 are lost
// only by a crash of the agent before the writer's commit (normally a few milliseconds),
// or by a shutdown whose flush deadline passes while the buffer still cannot take them
// (then counted in ferry_dropped_records_total{reason="shutdown"}).
//
// Threading: start() is called on the input's thread and returns once the daemon listens;
// libmicrohttpd then serves every connection on a thread of its own (thread per
// connection, at most `max_connections`). Handlers only call the emitter, and only one at a
// time: Emitter::emit() is specified for one calling thread, so emits are serialised by a
// mutex of this input (a request waits while another one's emit blocks on back-pressure).
// stop() may be called from any thread; it closes the listener and every connection (idle
// keep-alive ones included) and joins their threads; it returns within 1 s unless an emit()
// is blocked, which the core's stop (inputs stopping first) ends at once.
// Ownership: the input owns the daemon; the emitter given to start() and the metrics
// registry are borrowed and must outlive stop().
// Memory: each connection holds its body (at most max_body_bytes) and, when compressed,
// its decoded form (at most max_body_bytes): worst case about
// 2 * max_connections * max_body_bytes plus the batch.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "ferry/input.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace ferry {

struct HttpInputSettings {
  std::string listen = "127.0.0.1:8088";
  std::string path = "/";
  std::string bearer;  // empty: no authentication
  uint64_t max_body_bytes = 8 << 20;
  unsigned max_connections = 32;
  Duration busy_timeout = std::chrono::seconds(1);
  Duration commit_timeout = std::chrono::seconds(10);

  // Reads the validated options; checks what the table cannot (address syntax, path form,
  // limits), with errors naming the key's location.
  static Result<HttpInputSettings> fromOptions(const Options& opts);
};

// What a request body holds, split into accepted records and refusals.
struct HttpBodyParse {
  RecordBatch records;
  uint64_t refused = 0;
  std::string first_error;  // why the first refused record was refused ("line 3: ...")
};

// Splits a decoded request body into records (the formats above). Stateless; any thread.
HttpBodyParse parseHttpBody(std::string_view body);

class HttpInput final : public Input {
 public:
  HttpInput(HttpInputSettings settings, std::string instance, MetricsRegistry* metrics);
  ~HttpInput() override;
  HttpInput(const HttpInput&) = delete;
  HttpInput& operator=(const HttpInput&) = delete;

  // Binds `listen` and starts serving; returns at once. kUnavailable naming `listen` when
  // the address cannot be bound; kFailedPrecondition when already started.
  Status start(Emitter& emitter) override;
  void stop() override;

  // The bound address and port (after a successful start(); port 0 in `listen` gives the
  // kernel's choice here). Any thread.
  std::string boundAddress() const;
  uint16_t port() const;

  // libmicrohttpd's callbacks (public for the C trampolines in http_input.cpp only).
  struct Request;
  struct Reply;
  int handle(MHD_Connection* connection, const char* url, const char* method,
             const char* upload_data, size_t* upload_data_size, void** con_cls);

 private:
  Reply process(MHD_Connection* connection, const std::string& body);
  bool authorized(MHD_Connection* connection) const;

  const HttpInputSettings settings_;
  const std::string instance_;
  Counter* bad_json_ = nullptr;

  mutable std::mutex life_mu_;  // daemon_, bound_
  MHD_Daemon* daemon_ = nullptr;
  sockaddr_storage bound_{};

  std::mutex emit_mu_;  // one emit() at a time (see Threading)
  std::atomic<int> in_flight_{0};  // requests inside process()
  Emitter* emitter_ = nullptr;
};

const PluginDescriptor& httpInputDescriptor();

}  // namespace ferry
