#include "plugins/inputs/modbus/modbus.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/config/loader.h"
#include "ferry/metrics.h"
#include "tests/support/fakes.h"
#include "tests/support/log_capture.h"
#include "tests/support/modbus_server.h"
#include "tests/support/net.h"

namespace ferry {
namespace {

using test::LogCapture;
using test::ModbusServer;

struct MappingDeleter {
  void operator()(modbus_mapping_t* m) const { modbus_mapping_free(m); }
};

// Writes the words of a 64-bit pattern in ABCD order.
void putWords(uint16_t* dst, uint64_t raw, int words) {
  for (int i = 0; i < words; ++i) {
    dst[i] = static_cast<uint16_t>(raw >> (16 * (words - 1 - i)));
  }
}

struct Harness {
  test::ManualClock clock;
  MetricsRegistry metrics;
  test::CaptureEmitter em;
  std::unique_ptr<Input> input;

  Status make(const std::string& yaml) {
    Result<Options> opts = optionsFromYaml(yaml, modbusInputDescriptor().options);
    if (!opts.isOk()) return opts.status();
    PluginContext ctx;
    ctx.agent_id = "edge-01";
    ctx.name = "plc";
    ctx.clock = &clock;
    ctx.metrics = &metrics;
    Result<std::unique_ptr<Input>> r = modbusInputDescriptor().make_input(ctx, *opts);
    if (!r.isOk()) return r.status();
    input = std::move(r).value();
    return Status::ok();
  }
  uint64_t errors(std::string_view reason) const {
    return metrics.counterValue("ferry_input_errors_total",
                                {{"input", "plc"}, {"reason", std::string(reason)}});
  }
};

double decode(std::vector<uint16_t> w, ModbusDataType t, ModbusByteOrder o) {
  return decodeModbusValue(w, t, o);
}

constexpr auto kABCD = ModbusByteOrder::kABCD;
constexpr auto kDCBA = ModbusByteOrder::kDCBA;
constexpr auto kBADC = ModbusByteOrder::kBADC;
constexpr auto kCDAB = ModbusByteOrder::kCDAB;

TEST_SUITE("inputs.modbus") {
  TEST_CASE("16-bit types in every byte order") {
    CHECK(decode({0xFFFE}, ModbusDataType::kInt16, kABCD) == -2);
    CHECK(decode({0xFFFE}, ModbusDataType::kInt16, kCDAB) == -2);
    CHECK(decode({0xFEFF}, ModbusDataType::kInt16, kBADC) == -2);
    CHECK(decode({0xFEFF}, ModbusDataType::kInt16, kDCBA) == -2);
    CHECK(decode({0x1234}, ModbusDataType::kUint16, kABCD) == 0x1234);
    CHECK(decode({0x1234}, ModbusDataType::kUint16, kCDAB) == 0x1234);
    CHECK(decode({0x3412}, ModbusDataType::kUint16, kBADC) == 0x1234);
    CHECK(decode({0x3412}, ModbusDataType::kUint16, kDCBA) == 0x1234);
    CHECK(decode({0xFFFF}, ModbusDataType::kUint16, kABCD) == 65535);
  }

  TEST_CASE("32-bit integers in every byte order") {
    const double v = 0x11223344;
    CHECK(decode({0x1122, 0x3344}, ModbusDataType::kUint32, kABCD) == v);
    CHECK(decode({0x3344, 0x1122}, ModbusDataType::kUint32, kCDAB) == v);
    CHECK(decode({0x2211, 0x4433}, ModbusDataType::kUint32, kBADC) == v);
    CHECK(decode({0x4433, 0x2211}, ModbusDataType::kUint32, kDCBA) == v);
    CHECK(decode({0xFFFF, 0xFFFF}, ModbusDataType::kUint32, kABCD) == 4294967295.0);
    // -100000 = 0xFFFE7960
    CHECK(decode({0xFFFE, 0x7960}, ModbusDataType::kInt32, kABCD) == -100000);
    CHECK(decode({0x7960, 0xFFFE}, ModbusDataType::kInt32, kCDAB) == -100000);
    CHECK(decode({0xFEFF, 0x6079}, ModbusDataType::kInt32, kBADC) == -100000);
    CHECK(decode({0x6079, 0xFEFF}, ModbusDataType::kInt32, kDCBA) == -100000);
  }

  TEST_CASE("float32 in every byte order") {
    // 21.5f = 0x41AC0000, -0.15625f = 0xBE200000
    CHECK(decode({0x41AC, 0x0000}, ModbusDataType::kFloat32, kABCD) == 21.5);
    CHECK(decode({0x0000, 0x41AC}, ModbusDataType::kFloat32, kCDAB) == 21.5);
    CHECK(decode({0xAC41, 0x0000}, ModbusDataType::kFloat32, kBADC) == 21.5);
    CHECK(decode({0x0000, 0xAC41}, ModbusDataType::kFloat32, kDCBA) == 21.5);
    CHECK(decode({0xBE20, 0x0000}, ModbusDataType::kFloat32, kABCD) == -0.15625);
  }

  TEST_CASE("float64 in every byte order") {
    const double v = -1234.5678;
    const auto raw = std::bit_cast<uint64_t>(v);
    std::vector<uint16_t> abcd(4);
    putWords(abcd.data(), raw, 4);
    CHECK(decode(abcd, ModbusDataType::kFloat64, kABCD) == v);
    CHECK(decode({abcd[3], abcd[2], abcd[1], abcd[0]}, ModbusDataType::kFloat64, kCDAB) == v);
    const auto swap = [](uint16_t w) { return static_cast<uint16_t>((w << 8) | (w >> 8)); };
    CHECK(decode({swap(abcd[0]), swap(abcd[1]), swap(abcd[2]), swap(abcd[3])},
                 ModbusDataType::kFloat64, kBADC) == v);
    CHECK(decode({swap(abcd[3]), swap(abcd[2]), swap(abcd[1]), swap(abcd[0])},
                 ModbusDataType::kFloat64, kDCBA) == v);
  }

  TEST_CASE("register entries: defaults, full form and errors naming registers[i].field") {
    auto settings = [](const std::string& registers) {
      Result<Options> o = optionsFromYaml("address: h:1\nregisters:\n" + registers, modbusInputDescriptor().options);
      if (!o.isOk()) return Result<ModbusSettings>(o.status());
      return ModbusSettings::fromOptions(*o);
    };
    Result<ModbusSettings> s = settings("  - {name: temp, type: holding, address: 7}\n");
    REQUIRE(s.isOk());
    REQUIRE(s->registers.size() == 1);
    ModbusRegister r = s->registers[0];
    CHECK(r.name == "temp");
    CHECK(r.type == ModbusRegisterType::kHolding);
    CHECK(r.address == 7);
    CHECK(r.count == 1);
    CHECK(r.data_type == ModbusDataType::kUint16);
    CHECK(r.byte_order == kABCD);
    CHECK(r.scale == 1);
    CHECK(r.offset == 0);
    s = settings(
        "  - name: p\n    type: input\n    address: 100\n    count: 2\n    data_type: float64\n"
        "    byte_order: DCBA\n    scale: 0.5\n    offset: -3\n");
    REQUIRE(s.isOk());
    r = s->registers[0];
    CHECK(r.type == ModbusRegisterType::kInput);
    CHECK(r.count == 2);
    CHECK(r.data_type == ModbusDataType::kFloat64);
    CHECK(r.byte_order == kDCBA);
    CHECK(r.scale == 0.5);
    CHECK(r.offset == -3);
    CHECK(settings("  - {name: c, type: coil, address: 0, count: 16}\n").isOk());
    auto error = [&](const std::string& entry) {
      Result<ModbusSettings> bad = settings("  - {name: ok, type: holding, address: 0}\n  - " + entry + "\n");
      REQUIRE_FALSE(bad.isOk());
      return bad.status().message();
    };
    CHECK(error("{name: c, type: coil, address: 0, data_type: uint16}").find("registers[1].data_type") !=
          std::string::npos);
    CHECK(error("{name: \"\", type: holding, address: 0}").find("registers[1].name") != std::string::npos);
    CHECK(error("{name: x, type: register, address: 0}").find("registers[1].type") != std::string::npos);
    CHECK(error("{name: x, type: holding, address: 70000}").find("registers[1].address") != std::string::npos);
    CHECK(error("{name: x, type: holding, address: 0, count: 0}").find("registers[1].count") != std::string::npos);
    // 32 float64 values are 128 registers: more than one request.
    CHECK(error("{name: x, type: holding, address: 0, count: 32, data_type: float64}").find("count") !=
          std::string::npos);
    CHECK(error("{name: x, type: holding, address: 0, data_type: int8}").find("registers[1].data_type") !=
          std::string::npos);
    CHECK(error("{name: x, type: holding, address: 0, byte_order: ABDC}").find("registers[1].byte_order") !=
          std::string::npos);
    CHECK(error("{name: x, type: holding, address: 0, scale: .nan}").find("registers[1].scale") != std::string::npos);
    CHECK(error("{name: x, type: holding, address: 65535, data_type: uint32}").find("registers[1].address") !=
          std::string::npos);
    CHECK(error("{name: x, type: holding}").find("registers[1].address") != std::string::npos);
    CHECK(error("{name: x, type: holding, address: 0, colour: red}").find("registers[1].colour") !=
          std::string::npos);
    CHECK(error("not-a-mapping").find("registers[1]") != std::string::npos);
  }

  TEST_CASE("settings: defaults and errors naming the key") {
    Result<Options> o = optionsFromYaml("address: 10.0.0.5:502\nregisters: [{name: a, type: holding, address: 0}]\n",
                                        modbusInputDescriptor().options);
    REQUIRE(o.isOk());
    Result<ModbusSettings> s = ModbusSettings::fromOptions(*o);
    REQUIRE(s.isOk());
    CHECK(s->host == "10.0.0.5");
    CHECK(s->port == "502");
    CHECK(s->unit_id == 1);
    CHECK(s->interval == std::chrono::seconds(10));
    CHECK(s->timeout == std::chrono::seconds(1));
    CHECK(s->registers.size() == 1);

    Harness h;
    CHECK(h.make("registers: [{name: a, type: holding, address: 0}]\n").message().find("address") != std::string::npos);
    CHECK_FALSE(h.make("address: h:1\ndevice: /dev/ttyS0\nregisters: [{name: a, type: holding, address: 0}]\n").isOk());
    CHECK_FALSE(h.make("address: host\nregisters: [{name: a, type: holding, address: 0}]\n").isOk());
    CHECK_FALSE(h.make("address: h:1\nunit_id: 300\nregisters: [{name: a, type: holding, address: 0}]\n").isOk());
    CHECK_FALSE(h.make("address: h:1\ntimeout: 20s\nregisters: [{name: a, type: holding, address: 0}]\n").isOk());
    CHECK_FALSE(h.make("address: h:1\nregisters: [{name: a, type: holding, address: 0}, {name: a, type: input, address: 0}]\n").isOk());
    CHECK_FALSE(h.make("address: h:1\nregisters: [{name: ts, type: holding, address: 0}]\n").isOk());
    const Status bad = h.make("address: h:1\nregisters: [{name: a, type: holding, address: 0}, {name: b, type: what, address: 0}]\n");
    CHECK(bad.message().find("registers[1]") != std::string::npos);
    // RTU options are accepted; nothing is opened by the factory.
    CHECK(h.make("device: /dev/does-not-exist\nbaud: 19200\nparity: even\nstop_bits: 2\n"
                 "registers: [{name: a, type: holding, address: 0}]\n")
              .isOk());
  }

  TEST_CASE("reads a libmodbus TCP server; survives it going away and coming back") {
    std::unique_ptr<modbus_mapping_t, MappingDeleter> map(modbus_mapping_new(16, 16, 100, 100));
    REQUIRE(map != nullptr);
    uint16_t* hr = map->tab_registers;
    uint16_t* ir = map->tab_input_registers;
    hr[0] = 0xFFFE;                   // int16 -2
    putWords(hr + 1, 0x41AC0000, 2);  // float32 21.5, ABCD
    hr[3] = 0x3344;                   // uint32 0x11223344, CDAB
    hr[4] = 0x1122;
    hr[10] = 7;
    hr[11] = 8;
    ir[0] = 1234;                                                                 // *0.5 - 1 = 616
    putWords(ir + 1, __builtin_bswap64(std::bit_cast<uint64_t>(-1234.5678)), 4);  // DCBA
    map->tab_bits[0] = 1;
    map->tab_bits[2] = 1;
    map->tab_input_bits[5] = 1;

    auto server = std::make_unique<ModbusServer>(map.get(), 0);
    const uint16_t port = server->port();
    Harness h;
    LogCapture logs;
    REQUIRE(h.make("address: 127.0.0.1:" + std::to_string(port) +
                   "\ninterval: 1s\ntimeout: 500ms\nregisters:\n"
                   "  - {name: temp, type: holding, address: 0, count: 1, data_type: int16}\n"
                   "  - {name: t, type: holding, address: 1, count: 1, data_type: float32}\n"
                   "  - {name: energy, type: holding, address: 3, count: 1, data_type: uint32, byte_order: CDAB}\n"
                   "  - {name: missing, type: holding, address: 500}\n"
                   "  - {name: pair, type: holding, address: 10, count: 2}\n"
                   "  - {name: volts, type: input, address: 0, count: 1, data_type: uint16, byte_order: ABCD, scale: 0.5, offset: -1}\n"
                   "  - {name: f64, type: input, address: 1, count: 1, data_type: float64, byte_order: DCBA}\n"
                   "  - {name: relays, type: coil, address: 0, count: 3}\n"
                   "  - {name: door, type: discrete, address: 5}\n")
                .isOk());
    CHECK(h.input->interval() == std::chrono::seconds(1));
    const std::string values =
        ",\"temp\":-2,\"t\":21.5,\"energy\":287454020,\"pair\":[7,8],\"volts\":616,"
        "\"f64\":-1234.5678,\"relays\":[true,false,true],\"door\":true}";

    REQUIRE(h.input->collect(h.em).isOk());
    REQUIRE(h.em.records.size() == 1);
    CHECK(h.em.records[0] == "{\"unit_id\":1,\"ts\":" + std::to_string(h.clock.wallMs()) + values);
    CHECK(h.errors("read_failed") == 1);  // "missing": an exception reply, left out
    CHECK(logs.count("reading \"missing\" failed") == 1);

    h.clock.advance(std::chrono::seconds(1));
    REQUIRE(h.input->collect(h.em).isOk());
    REQUIRE(h.em.records.size() == 2);
    CHECK(h.em.records[1] == "{\"unit_id\":1,\"ts\":" + std::to_string(h.clock.wallMs()) + values);
    CHECK(h.errors("read_failed") == 2);
    CHECK(logs.count("reading \"missing\" failed") == 1);  // logged once per change

    // The server goes away: the reads fail, then connecting does; nothing is emitted.
    server.reset();
    for (int i = 0; i < 4; ++i) REQUIRE(h.input->collect(h.em).isOk());
    CHECK(h.em.records.size() == 2);
    CHECK(h.errors("connection_lost") == 1);
    CHECK(h.errors("connect_failed") >= 1);
    CHECK(logs.count("cannot connect") == 1);

    // It comes back on the same port: values again within a few (backed-off) collects.
    server = std::make_unique<ModbusServer>(map.get(), port);
    for (int i = 0; i < 10 && h.em.records.size() == 2; ++i) {
      REQUIRE(h.input->collect(h.em).isOk());
    }
    REQUIRE(h.em.records.size() == 3);
    CHECK(h.em.records[2].ends_with(values));
  }

  TEST_CASE("an unreachable device: connect attempts back off, one log line") {
    Harness h;
    LogCapture logs;
    REQUIRE(h.make("address: 127.0.0.1:" + std::to_string(test::freePort()) +
                   "\ninterval: 1s\nregisters: [{name: a, type: holding, address: 0}]\n")
                .isOk());
    // Attempts on collects 1, 2, 4, 8 (1, then skipping 0, 1, 3 collects).
    for (int i = 0; i < 8; ++i) REQUIRE(h.input->collect(h.em).isOk());
    CHECK(h.errors("connect_failed") == 4);
    CHECK(logs.count("cannot connect") == 1);
    CHECK(h.em.records.empty());
  }

  TEST_CASE("a refused record is offered again before the device is read") {
    std::unique_ptr<modbus_mapping_t, MappingDeleter> map(modbus_mapping_new(0, 0, 4, 0));
    REQUIRE(map != nullptr);
    map->tab_registers[0] = 42;
    ModbusServer server(map.get(), 0);
    Harness h;
    LogCapture logs;
    REQUIRE(h.make("address: 127.0.0.1:" + std::to_string(server.port()) +
                   "\nregisters: [{name: a, type: holding, address: 0}]\n")
                .isOk());
    h.em.next_status = resourceExhausted("full");
    CHECK(h.input->collect(h.em).code() == StatusCode::kResourceExhausted);
    map->tab_registers[0] = 43;
    h.clock.advance(std::chrono::seconds(10));
    h.em.next_status = Status::ok();
    REQUIRE(h.input->collect(h.em).isOk());
    // The capture keeps refused batches too: the refused one, then it again, then a new one.
    REQUIRE(h.em.records.size() == 3);
    CHECK(h.em.records[1] == h.em.records[0]);
    CHECK(h.em.records[2].ends_with(",\"a\":43}"));
  }
}

}  // namespace
}  // namespace ferry
