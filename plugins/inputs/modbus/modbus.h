// The `modbus` input: polls registers of one Modbus device (TCP, or RTU on a serial line)
// through libmodbus and emits one record per collect.
//
// Registers: each entry of `registers` is an object {name, type, address, count, data_type,
// byte_order, scale, offset} (see README.md). One entry is one read:
// `count` values of `data_type` starting at `address` (a 32-bit type spans two registers,
// a 64-bit one four). coil/discrete entries read `count` bits and take no data_type,
// byte_order, scale or offset.
//
// Decoding: the registers' bytes in wire order are A B (first register), C D, ... A value is
// assembled most significant byte first after applying `byte_order`: ABCD as read, CDAB
// swaps the registers (reverses their order), BADC swaps the two bytes of each register,
// DCBA does both. A 16-bit type uses one register: ABCD/CDAB leave it, BADC/DCBA swap its
// bytes. Numeric values become value*scale+offset; integer types with scale 1 and offset 0
// are written as JSON integers, everything else as the shortest double that round-trips.
//
// Records: {"unit_id":<u>,"ts":<wall clock ms>,"<name>":<value>,...} in register order; a
// count above 1 gives a JSON array; coils and discrete inputs give true/false. A register
// whose read fails is left out, logged when it starts and stops failing, and counted in
// ferry_input_errors_total{input,reason="read_failed"}; a float that is NaN or infinite is
// left out and counted with reason "bad_value". A collect that read no value emits nothing.
//
// Connection: made by collect(), never by the factory (a config loads without the device).
// A failed connect is counted (reason "connect_failed") and retried on a later collect with
// a capped backoff: after n consecutive failures, 2^(n-1)-1 collects are skipped, at most
// 7 and at most as many as fit in 60 s of intervals. A read that fails at the transport
// level (not a Modbus exception reply) closes the connection, counts reason
// "connection_lost" and skips the remaining reads of that collect. Transitions
// (connected, connect failing, connection lost) are logged once each.
//
// Back-pressure: a record the emitter refuses is kept and offered first on the next
// collect; the device is not read again until it was accepted.
//
// Threading: constructed on the control thread (by the factory); interval() and collect()
// are then called only from the input's own thread. No internal locking.
// Ownership: the libmodbus context is owned and freed by the input; the clock and the
// metrics registry are borrowed and must outlive it. collect() blocks at most about
// (number of registers + 1) * timeout.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/clock.h"
#include "ferry/input.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"
#include "ferry/status.h"

struct _modbus;  // libmodbus' context (modbus_t)

namespace ferry {

enum class ModbusRegisterType : uint8_t { kHolding, kInput, kCoil, kDiscrete };
enum class ModbusDataType : uint8_t { kInt16, kUint16, kInt32, kUint32, kFloat32, kFloat64 };
enum class ModbusByteOrder : uint8_t { kABCD, kDCBA, kBADC, kCDAB };

// Registers (16-bit words) one value of `type` takes: 1, 2 or 4.
int modbusWords(ModbusDataType type);

// Decodes one value from exactly modbusWords(type) registers in wire order.
double decodeModbusValue(std::span<const uint16_t> words, ModbusDataType type,
                         ModbusByteOrder order);

struct ModbusRegister {
  std::string name;
  ModbusRegisterType type = ModbusRegisterType::kHolding;
  int address = 0;
  int count = 1;
  ModbusDataType data_type = ModbusDataType::kUint16;
  ModbusByteOrder byte_order = ModbusByteOrder::kABCD;
  double scale = 1;
  double offset = 0;

  // Reads entry `index` of the validated `registers` list. Errors name the entry's key
  // (registers[i].field): an empty name, an address outside 0..65535, a count below 1 or
  // above one request's limit (125 registers, 2000 bits), a scale/offset that is not a
  // finite number, or data options given on a coil/discrete entry.
  static Result<ModbusRegister> fromOptions(const Options& opts, size_t index);
};

// The options of one instance after validation and defaulting.
struct ModbusSettings {
  std::string host;  // TCP: host name or address, and port (service)
  std::string port;
  std::string device;  // RTU: serial device; set instead of host
  int baud = 9600;
  char parity = 'N';  // N | E | O
  int data_bits = 8;
  int stop_bits = 1;
  int unit_id = 1;
  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(1);
  std::vector<ModbusRegister> registers;

  // Reads `opts` (validated against the descriptor's table). Errors name the key's
  // location: neither or both of address/device, an address without a port or with a bad
  // one, a unit_id outside 0..255, RTU settings out of range, an interval of 0, a timeout
  // of 0 or above interval, an empty registers list, a bad entry, a duplicate name or one
  // of the reserved names unit_id/ts.
  static Result<ModbusSettings> fromOptions(const Options& opts);
};

class ModbusInput final : public Input {
 public:
  // `instance` is the input's name in the config (logs, metric labels). `metrics` may be
  // null (no counters then).
  ModbusInput(ModbusSettings settings, std::string instance, const Clock& clock,
              MetricsRegistry* metrics);
  ~ModbusInput() override;
  ModbusInput(const ModbusInput&) = delete;
  ModbusInput& operator=(const ModbusInput&) = delete;

  Duration interval() const override { return settings_.interval; }

  // Connects if needed, reads every register and emits one record (see above). Returns
  // the emitter's status when it refuses the record, OK otherwise (device failures are
  // logged and counted, not returned).
  Status collect(Emitter& emitter) override;

 private:
  enum class Reason : uint8_t { kConnect, kLost, kRead, kBadValue, kCount };

  bool connect();  // true when connected; logs and counts a failure, sets the backoff
  void disconnect();
  void count(Reason r);
  // Reads one register entry and appends `,"name":value` to batch_'s pending record.
  // Returns false on a transport failure (the connection is closed).
  bool readInto(size_t index, std::string& out, bool* got_value);

  const ModbusSettings settings_;
  const std::string instance_;
  const Clock& clock_;

  _modbus* ctx_ = nullptr;
  bool connected_ = false;
  bool connect_failing_ = false;  // a connect failure was logged, no success since
  int failures_ = 0;              // consecutive connect failures
  int skip_ = 0;                  // collects still to skip before the next connect
  int max_skip_ = 0;
  std::vector<bool> failing_;  // per register: its last read failed (logged)
  std::vector<uint16_t> words_;
  std::vector<uint8_t> bits_;
  RecordBatch batch_;
  bool pending_ = false;  // batch_ was refused by the emitter and is offered again
  Counter* errors_[static_cast<int>(Reason::kCount)] = {};
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& modbusInputDescriptor();

}  // namespace ferry
