#include "tests/support/modbus_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ferry::test {

namespace {
// True when `fd` is readable within 50 ms.
bool readable(int fd) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 50) > 0;
}
}  // namespace

ModbusServer::ModbusServer(modbus_mapping_t* map, uint16_t port) : map_(map) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listen_fd_, 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  port_ = ntohs(addr.sin_port);
  ctx_ = modbus_new_tcp("127.0.0.1", port_);
  REQUIRE(ctx_ != nullptr);
  thread_ = std::thread([this] { serve(); });
}

ModbusServer::~ModbusServer() {
  stop_ = true;
  thread_.join();  // serve() closed the client socket
  modbus_free(ctx_);
  ::close(listen_fd_);
}

void ModbusServer::serve() {
  uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  while (!stop_) {
    if (!readable(listen_fd_)) continue;
    if (modbus_tcp_accept(ctx_, &listen_fd_) < 0) continue;
    while (!stop_) {
      if (!readable(modbus_get_socket(ctx_))) continue;
      const int rc = modbus_receive(ctx_, query);
      if (rc > 0) {
        modbus_reply(ctx_, query, rc, map_);
      } else if (rc < 0) {
        break;
      }
    }
    modbus_close(ctx_);
  }
}

}  // namespace ferry::test
