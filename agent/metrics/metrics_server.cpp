#include "agent/metrics/metrics_server.h"

#include <microhttpd.h>
#include <sys/socket.h>

#include <cstring>

#include "agent/common/listen_address.h"
#include "ferry/log.h"

namespace ferry {

namespace {

MHD_Result reply(MHD_Connection* c, unsigned status, const std::string& body, const char* type) {
  MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (r == nullptr) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*,
                     const char*, size_t* upload_size, void** state) {
  // Bodies are ignored; the first call of a request only sets up.
  if (*state == nullptr) {
    static int marker;
    *state = &marker;
    return MHD_YES;
  }
  *upload_size = 0;
  return static_cast<MHD_Result>(
      MetricsServer::handle(cls, connection, url, method) == 1 ? MHD_YES : MHD_NO);
}

}  // namespace

MetricsServer::MetricsServer(MetricsRegistry& metrics, Refresh refresh, Health healthy)
    : metrics_(metrics), refresh_(std::move(refresh)), healthy_(std::move(healthy)) {}

MetricsServer::~MetricsServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(static_cast<MHD_Daemon*>(daemon_));
}

int MetricsServer::handle(void* cls, void* connection, const char* url, const char* method) {
  auto* self = static_cast<MetricsServer*>(cls);
  auto* c = static_cast<MHD_Connection*>(connection);
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
    return reply(c, 405, "only GET\n", "text/plain; charset=utf-8") == MHD_YES ? 1 : 0;
  }
  if (std::strcmp(url, "/metrics") == 0) {
    if (self->refresh_) self->refresh_();
    return reply(c, 200, self->metrics_.prometheusText(), "text/plain; version=0.0.4; charset=utf-8") == MHD_YES ? 1
                                                                                                               : 0;
  }
  if (std::strcmp(url, "/healthz") == 0) {
    std::string why;
    bool ok = !self->healthy_ || self->healthy_(&why);
    return reply(c, ok ? 200 : 503, ok ? "ok\n" : why + "\n", "text/plain; charset=utf-8") == MHD_YES ? 1 : 0;
  }
  return reply(c, 404, "not found: try /metrics or /healthz\n", "text/plain; charset=utf-8") == MHD_YES ? 1 : 0;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& listen, MetricsRegistry& metrics,
                                                            Refresh refresh, Health healthy) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  FERRY_RETURN_IF_ERROR(parseListenAddress(listen, &addr, &len));
  std::unique_ptr<MetricsServer> s(new MetricsServer(metrics, std::move(refresh), std::move(healthy)));
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  MHD_Daemon* d = MHD_start_daemon(flags, 0, nullptr, nullptr, &onRequest, s.get(), MHD_OPTION_SOCK_ADDR,
                                   reinterpret_cast<sockaddr*>(&addr), MHD_OPTION_CONNECTION_LIMIT, 16u,
                                   MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (d == nullptr) {
    return Status(StatusCode::kUnavailable,
                  "metrics.listen " + listen + ": cannot listen (address in use or not available on this host?)");
  }
  s->daemon_ = d;
  const MHD_DaemonInfo* info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  if (info != nullptr && getsockname(info->listen_fd, reinterpret_cast<sockaddr*>(&bound), &blen) == 0) {
    s->address_ = describeAddress(reinterpret_cast<sockaddr*>(&bound));
  } else {
    s->address_ = listen;
  }
  return s;
}

}  // namespace ferry
