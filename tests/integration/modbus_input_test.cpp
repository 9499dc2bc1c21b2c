// The real ferry binary polling a Modbus TCP server the test runs (libmodbus): decoded,
// scaled values land in a file output; the device going away and coming back is survived.
#include <doctest/doctest.h>
#include <modbus/modbus.h>
#include <signal.h>

#include <memory>
#include <string>

#include "tests/support/modbus_server.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

TEST_SUITE("integration.modbus_input") {
  TEST_CASE("values from a Modbus TCP device reach the output; a lost device is reported, then read again") {
    TempDir dir;
    std::unique_ptr<modbus_mapping_t, void (*)(modbus_mapping_t*)> map(modbus_mapping_new(0, 0, 16, 16),
                                                                        &modbus_mapping_free);
    REQUIRE(map != nullptr);
    map->tab_registers[0] = 215;                  // temperature, tenths of a degree
    map->tab_input_registers[2] = 0x0001;         // counter (uint32, high word first)
    map->tab_input_registers[3] = 0x86A0;         // = 100000
    auto server = std::make_unique<ModbusServer>(map.get(), 0);
    const uint16_t port = server->port();
    const std::string out = dir.file("out/plc.ndjson");
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: it-gw, data_dir: " + dir.file("data") + " }\n"
              "inputs:\n"
              "  - name: plc\n"
              "    type: modbus\n"
              "    address: \"127.0.0.1:" + std::to_string(port) + "\"\n"
              "    interval: 100ms\n"
              "    timeout: 100ms\n"
              "    registers: [{name: temp, type: holding, address: 0, count: 1, data_type: int16, byte_order: ABCD, scale: 0.1}, {name: count, type: input, address: 2, count: 1, data_type: uint32}]\n"
              "outputs:\n"
              "  - { name: local, type: file, path: " + out + " }\n");
    Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(eventually([&] { return readFile(out).find("\"count\":100000") != std::string::npos; }, 15s));
    CHECK(readFile(out).find("\"temp\":21.5") != std::string::npos);

    server.reset();  // the device goes away
    REQUIRE(eventually([&] { return ferry.stderrText().find("plc") != std::string::npos &&
                                    ferry.stderrText().find("connect") != std::string::npos; },
                       15s));
    map->tab_registers[0] = 300;
    server = std::make_unique<ModbusServer>(map.get(), port);  // back on the same port
    REQUIRE(eventually([&] { return readFile(out).find("\"temp\":30") != std::string::npos; }, 30s));
    ferry.signal(SIGTERM);
    CHECK(ferry.wait(10s) == 0);
  }
}
