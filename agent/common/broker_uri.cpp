#include "agent/common/broker_uri.h"

#include <charconv>

namespace ferry {

std::string BrokerAddress::serverUri() const {
  return std::string(tls ? "ssl://" : "tcp://") + host + ":" + std::to_string(port);
}

std::string BrokerAddress::bareHost() const {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

bool parseBrokerUri(std::string_view uri, BrokerAddress* out, std::string* why) {
  const size_t sep = uri.find("://");
  if (sep == std::string_view::npos) {
    *why = "expected scheme://host[:port] with scheme tcp, ssl, mqtt or mqtts";
    return false;
  }
  const std::string_view scheme = uri.substr(0, sep);
  std::string_view rest = uri.substr(sep + 3);
  bool tls = false;
  if (scheme == "tcp" || scheme == "mqtt") {
    tls = false;
  } else if (scheme == "ssl" || scheme == "mqtts") {
    tls = true;
  } else {
    *why = "unknown scheme \"" + std::string(scheme) + "\" (tcp, ssl, mqtt or mqtts)";
    return false;
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *why = "unclosed '[' in the host";
      return false;
    }
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        *why = "expected ':port' after the IPv6 address";
        return false;
      }
      port = after.substr(1);
    }
  } else if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || host == "[]") {
    *why = "no host";
    return false;
  }
  if (host.find_first_of("/?#@ ") != std::string_view::npos) {
    *why =
        "the host may not hold '/', '?', '#', '@' or spaces (no paths or credentials in the URI)";
    return false;
  }
  int port_number = tls ? 8883 : 1883;
  if (rest.size() != host.size()) {
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || port_number < 1 ||
        port_number > 65535) {
      *why = "the port must be a number from 1 to 65535";
      return false;
    }
  }
  out->host = std::string(host);
  out->port = port_number;
  out->tls = tls;
  return true;
}

}  // namespace ferry
