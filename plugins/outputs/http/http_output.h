// The `http` output: each block POSTed (or PUT) to an upstream URL with libcurl.
//
// Wire (docs in README.md beside this file): the body is the block's records as NDJSON
// compressed per `compression` (Content-Encoding zstd|gzip|identity), or an envelope
// (agent/codec/envelope.h; compressed inside, so no Content-Encoding), or InfluxDB line
// protocol (influx.h, compressed like NDJSON). Every request carries Idempotency-Key
// <agent>/<output>/<block seq>, Ferry-Agent, Ferry-Stream, Ferry-First-Seq and Ferry-Count,
// so a block replayed after a crash or outage is recognisable upstream.
//
// Answers: 2xx → delivered; 408, 429, 5xx → retry (honouring Retry-After, delta-seconds or
// an HTTP-date); other 4xx → rejected (the block goes to the dead letters, with the status
// and the start of the answer's body); 3xx → retry, logged as a misconfiguration (redirects
// are not followed: a redirected batch would be sent again to wherever a Location points,
// and a POST redirect changes meaning between clients; point `url` at the final address).
// Transport failures (refused, reset, timeout, TLS verification or pin mismatch) → retry;
// TLS failures are logged once until a send succeeds again, and fail in the handshake, so
// no payload byte leaves the agent.
//
// Threading: send() may run on up to maxInFlight() sender threads at once. Each call takes
// a connection slot (a curl easy handle with its scratch buffers, compressor, sealer and
// influx encoder) from a mutex-protected free list, creating one when the list is empty,
// and gives it back afterwards, so connections are kept alive and reused. open() and
// close() are never concurrent with send() (ferry/output.h); interrupt() may be called
// from any thread and makes sends in flight give up within about a second.
// Blocking: send() blocks until the answer or the deadline (CURLOPT_TIMEOUT_MS from it;
// connecting is bounded by min(deadline, 10 s)).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/codec/key_file.h"
#include "agent/codec/wire_compress.h"
#include "ferry/output.h"
#include "ferry/plugin.h"
#include "ferry/status.h"

namespace ferry {

// The validated settings of one http output.
struct HttpOutputConfig {
  enum class Format { kNdjson, kEnvelope, kInflux };

  std::string url;
  std::string method = "POST";  // POST | PUT
  std::vector<std::pair<std::string, std::string>> headers;  // configured extra headers
  Format format = Format::kNdjson;
  WireEncoding compression = WireEncoding::kZstd;
  int compression_level = 0;  // 0: the codec's default
  std::string envelope_key_file;  // format envelope; empty: unencrypted (warned)

  std::string ca_file, cert_file, key_file;  // tls.*
  bool insecure_skip_verify = false;
  std::string pin_sha256;  // base64 SHA-256 of the server's public key (curl "sha256//" form)

  std::string bearer;                       // auth.bearer
  std::string basic_user, basic_password;  // auth.basic.*

  uint64_t max_bytes_per_s = 0;  // 0: unlimited
  bool http2 = true;
  // 4xx answers that mean the endpoint or the credentials are wrong, not the batch:
  // retried (with an error log) instead of dead-lettered.
  std::vector<int> retry_statuses = {401, 403, 404, 407};
};

// Reads and checks the options of an `http` output (the descriptor's table): URL syntax and
// scheme, method, header names and values (none the output sets itself), TLS options only
// with https, one kind of auth, pin syntax. Errors are kInvalidArgument naming the key.
Result<HttpOutputConfig> httpOutputConfigFromOptions(const Options& opts);

class HttpOutput final : public Output {
 public:
  HttpOutput(HttpOutputConfig config, const PluginContext& ctx);
  ~HttpOutput() override;
  HttpOutput(const HttpOutput&) = delete;
  HttpOutput& operator=(const HttpOutput&) = delete;

  // Checks that the TLS files (and the envelope key) are readable and loads the key; no
  // request is sent. kNotFound / kPermissionDenied / kInvalidArgument naming the file.
  Status open(std::string_view committed_state) override;
  SendResult send(const Block& block, SteadyTime deadline) override;
  size_t maxInFlight() const override { return kMaxInFlight; }
  void interrupt() override;
  void close() override;

  static constexpr size_t kMaxInFlight = 64;

  const HttpOutputConfig& config() const { return config_; }

 private:
  struct Slot;
  std::unique_ptr<Slot> takeSlot();
  void giveBack(std::unique_ptr<Slot> slot);
  Status renderBody(Slot& slot, const Block& block, bool* empty);
  SendResult classify(Slot& slot, int curl_code, long status);
  void countRequest(const std::string& code);

  HttpOutputConfig config_;
  std::string agent_;
  std::string name_;
  const Clock* clock_;
  MetricsRegistry* metrics_;
  Counter* wire_bytes_ = nullptr;  // request body bytes put on the wire, every attempt
  std::string content_type_;
  std::optional<KeyMaterial> envelope_key_;  // loaded by open()
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> tls_error_logged_{false};
  std::atomic<bool> redirect_logged_{false};
  std::atomic<bool> client_error_logged_{false};
  std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> free_;  // guarded by mu_
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& httpOutputDescriptor();

}  // namespace ferry
