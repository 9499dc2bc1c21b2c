// The metrics endpoint: GET /metrics (Prometheus text format 0.0.4) and GET /healthz,
// served by libmicrohttpd on its own thread at `metrics.listen`.
//
// Before each /metrics answer `refresh` runs (gauges computed on demand, e.g. backlog per
// output); /healthz answers 200 "ok" while `healthy` says so, else 503 with its reason.
// Thread-safety: start/stop from the control thread; the callbacks run on the server's
// thread and must be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ferry/metrics.h"
#include "ferry/status.h"

namespace ferry {

class MetricsServer {
 public:
  using Refresh = std::function<void()>;
  using Health = std::function<bool(std::string* why)>;

  // Binds `listen` ("host:port", see listen_address.h) and starts serving.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& listen, MetricsRegistry& metrics,
                                                      Refresh refresh, Health healthy);
  ~MetricsServer();  // stops serving
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address, "host:port" (the real port when 0 was asked for).
  const std::string& address() const { return address_; }

  // libmicrohttpd's request callback (internal): 1 when a reply was queued.
  static int handle(void* cls, void* connection, const char* url, const char* method);

 private:
  MetricsServer(MetricsRegistry& metrics, Refresh refresh, Health healthy);

  MetricsRegistry& metrics_;
  Refresh refresh_;
  Health healthy_;
  std::string address_;
  void* daemon_ = nullptr;
};

}  // namespace ferry
