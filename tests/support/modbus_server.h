// A Modbus TCP server for tests (libmodbus): serves a register mapping on 127.0.0.1 from a
// thread of its own, one client at a time. The listening socket is bound by the server
// (port 0: any free port) and handed to libmodbus.
// Thread-safety: construct and destroy on one thread; the mapping must outlive the server
// and is read by the server thread (tests change it only between polls).
#pragma once

#include <modbus/modbus.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace ferry::test {

class ModbusServer {
 public:
  ModbusServer(modbus_mapping_t* map, uint16_t port);
  ~ModbusServer();
  ModbusServer(const ModbusServer&) = delete;
  ModbusServer& operator=(const ModbusServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  void serve();

  modbus_mapping_t* map_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  modbus_t* ctx_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ferry::test
