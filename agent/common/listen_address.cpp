#include "agent/common/listen_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace ferry {

Status parseListenAddress(std::string_view text, sockaddr_storage* out, socklen_t* len) {
  const std::string what = "listen address \"" + std::string(text) + "\"";
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return invalidArgument(what + ": expected host:port, e.g. 127.0.0.1:9464");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535 || port_text.empty()) {
    return invalidArgument(what + ": the port must be a number 0..65535");
  }
  std::memset(out, 0, sizeof(*out));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(out);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    std::string h(host.substr(1, host.size() - 2));
    if (inet_pton(AF_INET6, h.c_str(), &a6->sin6_addr) != 1) return invalidArgument(what + ": not an IPv6 address");
    *len = sizeof(sockaddr_in6);
    return Status::ok();
  }
  auto* a4 = reinterpret_cast<sockaddr_in*>(out);
  a4->sin_family = AF_INET;
  a4->sin_port = htons(static_cast<uint16_t>(port));
  std::string h = host.empty() ? "0.0.0.0" : host == "localhost" ? "127.0.0.1" : std::string(host);
  if (inet_pton(AF_INET, h.c_str(), &a4->sin_addr) != 1) {
    return invalidArgument(what + ": not an IPv4 address (use an address such as 127.0.0.1, or [::1] for IPv6)");
  }
  *len = sizeof(sockaddr_in);
  return Status::ok();
}

std::string describeAddress(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a6->sin6_port));
  }
  const auto* a4 = reinterpret_cast<const sockaddr_in*>(addr);
  inet_ntop(AF_INET, &a4->sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(a4->sin_port));
}

}  // namespace ferry
