// Small network helpers for tests: a free loopback port and a plain HTTP GET.
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ferry::test {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
uint16_t freePort();

// A socket of `type` (SOCK_STREAM, SOCK_DGRAM) connected to 127.0.0.1:port; -1 on failure.
int connectLoopback(uint16_t port, int type);

// Writes all of `data` (MSG_NOSIGNAL); false when the peer is gone.
bool sendAll(int fd, std::string_view data);

// GET http://<address><path> with HTTP/1.0; returns the whole response (status line,
// headers, body), or "" when the connection fails. `address` is "host:port".
std::string httpGet(const std::string& address, const std::string& path);

// The value of the first sample line "<series> <value>" in Prometheus text, or -1.
double metricValue(const std::string& prometheus_text, const std::string& series);

}  // namespace ferry::test
