// "host:port" listen addresses for the agent's HTTP listeners (/metrics, ferry receive).
// Thread-safety: stateless functions.
#pragma once

#include <netinet/in.h>

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// Accepts "127.0.0.1:9464", "0.0.0.0:80", ":9464" (all interfaces), "localhost:9464",
// "[::1]:9464". Port 0 asks the kernel for a free port. kInvalidArgument names the text.
Status parseListenAddress(std::string_view text, sockaddr_storage* out, socklen_t* len);

// The address a socket is bound to, as "host:port".
std::string describeAddress(const sockaddr* addr);

}  // namespace ferry
