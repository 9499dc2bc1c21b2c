#include "plugins/inputs/modbus/modbus.h"

#include <modbus/modbus.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

#include "ferry/json.h"
#include "ferry/log.h"

namespace ferry {
namespace {

constexpr std::string_view kComponent = "modbus";
constexpr int kMaxRegistersPerRead = 125;  // MODBUS_MAX_READ_REGISTERS
constexpr int kMaxBitsPerRead = 2000;      // MODBUS_MAX_READ_BITS
constexpr int kMaxSkippedCollects = 7;
constexpr Duration kMaxBackoff = std::chrono::seconds(60);

constexpr std::string_view kReasons[] = {"connect_failed", "connection_lost", "read_failed",
                                         "bad_value"};
constexpr std::string_view kParities[] = {"none", "even", "odd"};

constexpr std::string_view kRegisterTypes[] = {"holding", "input", "coil", "discrete"};
constexpr std::string_view kDataTypes[] = {"int16", "uint16", "int32", "uint32", "float32", "float64"};
constexpr std::string_view kByteOrders[] = {"ABCD", "DCBA", "BADC", "CDAB"};

constexpr OptionSpec kRegisterOptions[] = {
    {.key = "name",
     .type = OptionType::kString,
     .help = "field name of the value in the record (unique; not ts or unit_id)",
     .required = true},
    {.key = "type",
     .type = OptionType::kEnum,
     .help = "holding | input (16-bit registers) | coil | discrete (bits)",
     .required = true,
     .choices = kRegisterTypes},
    {.key = "address",
     .type = OptionType::kInt,
     .help = "first register or bit, 0..65535 (protocol address, not the 4xxxx notation)",
     .required = true},
    {.key = "count",
     .type = OptionType::kInt,
     .default_value = "1",
     .help = "values to read (an array when above 1): up to 125 registers or 2000 bits per request"},
    {.key = "data_type",
     .type = OptionType::kEnum,
     .default_value = "uint16",
     .help = "registers only: int16 | uint16 | int32 | uint32 | float32 | float64 (2 and 4 registers)",
     .choices = kDataTypes},
    {.key = "byte_order",
     .type = OptionType::kEnum,
     .default_value = "ABCD",
     .help = "registers only: order of the bytes of a multi-register value: ABCD (big-endian), "
             "DCBA, BADC, CDAB (word-swapped)",
     .choices = kByteOrders},
    {.key = "scale",
     .type = OptionType::kDouble,
     .default_value = "1",
     .help = "registers only: value = raw × scale + offset"},
    {.key = "offset",
     .type = OptionType::kDouble,
     .default_value = "0",
     .help = "registers only: added after scale"},
};

constexpr OptionSpec kOptions[] = {
    {.key = "address",
     .type = OptionType::kString,
     .help = "Modbus TCP: host:port of the device ([v6addr]:port for IPv6); set this or device"},
    {.key = "device",
     .type = OptionType::kString,
     .help = "Modbus RTU: serial device, e.g. /dev/ttyUSB0; set this or address"},
    {.key = "baud", .type = OptionType::kInt, .default_value = "9600", .help = "RTU: baud rate"},
    {.key = "parity",
     .type = OptionType::kEnum,
     .default_value = "none",
     .help = "RTU: parity",
     .choices = kParities},
    {.key = "data_bits",
     .type = OptionType::kInt,
     .default_value = "8",
     .help = "RTU: data bits (5..8)"},
    {.key = "stop_bits",
     .type = OptionType::kInt,
     .default_value = "1",
     .help = "RTU: stop bits (1 or 2)"},
    {.key = "unit_id",
     .type = OptionType::kInt,
     .default_value = "1",
     .help = "unit (slave) id of the device, 0..255"},
    {.key = "interval",
     .type = OptionType::kDuration,
     .default_value = "10s",
     .help = "time between two polls"},
    {.key = "timeout",
     .type = OptionType::kDuration,
     .default_value = "1s",
     .help = "response (and connect) timeout of one request; at most interval"},
    {.key = "registers",
     .type = OptionType::kObjectList,
     .help = "what to read: one request per entry, each value becomes a field of the record",
     .required = true,
     .fields = kRegisterOptions},
};

bool parseInt(std::string_view s, int* out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool isIntegerType(ModbusDataType t) {
  return t != ModbusDataType::kFloat32 && t != ModbusDataType::kFloat64;
}

void appendNumber(std::string& out, double v) {
  char buf[32];
  const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? p : buf);
}

Result<std::unique_ptr<Input>> makeModbusInput(const PluginContext& ctx, const Options& opts) {
  Result<ModbusSettings> settings = ModbusSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  if (ctx.clock == nullptr) return internalError("modbus: no clock in the plugin context");
  return std::unique_ptr<Input>(std::make_unique<ModbusInput>(std::move(settings).value(), ctx.name,
                                                              *ctx.clock, ctx.metrics));
}

}  // namespace

int modbusWords(ModbusDataType type) {
  switch (type) {
    case ModbusDataType::kInt16:
    case ModbusDataType::kUint16:
      return 1;
    case ModbusDataType::kInt32:
    case ModbusDataType::kUint32:
    case ModbusDataType::kFloat32:
      return 2;
    case ModbusDataType::kFloat64:
      return 4;
  }
  return 1;
}

double decodeModbusValue(std::span<const uint16_t> words, ModbusDataType type,
                         ModbusByteOrder order) {
  const size_t n = static_cast<size_t>(modbusWords(type));
  const bool swap_bytes = order == ModbusByteOrder::kBADC || order == ModbusByteOrder::kDCBA;
  const bool swap_words = order == ModbusByteOrder::kCDAB || order == ModbusByteOrder::kDCBA;
  uint64_t raw = 0;
  for (size_t i = 0; i < n && i < words.size(); ++i) {
    uint16_t w = words[swap_words ? n - 1 - i : i];
    if (swap_bytes) w = static_cast<uint16_t>((w << 8) | (w >> 8));
    raw = (raw << 16) | w;
  }
  switch (type) {
    case ModbusDataType::kInt16:
      return static_cast<int16_t>(raw);
    case ModbusDataType::kUint16:
      return static_cast<uint16_t>(raw);
    case ModbusDataType::kInt32:
      return static_cast<int32_t>(raw);
    case ModbusDataType::kUint32:
      return static_cast<uint32_t>(raw);
    case ModbusDataType::kFloat32:
      return std::bit_cast<float>(static_cast<uint32_t>(raw));
    case ModbusDataType::kFloat64:
      return std::bit_cast<double>(raw);
  }
  return 0;
}

Result<ModbusRegister> ModbusRegister::fromOptions(const Options& opts, size_t index) {
  const auto key = [&](std::string_view field) { return Options::itemKey("registers", index, field); };
  const auto bad = [&](std::string_view field, const std::string& why) {
    return invalidArgument(opts.locate(key(field)) + ": " + why);
  };
  ModbusRegister r;
  r.name = opts.getString(key("name"));
  if (r.name.empty()) return bad("name", "must not be empty");
  const std::string& type = opts.getString(key("type"));
  r.type = type == "input"      ? ModbusRegisterType::kInput
           : type == "coil"     ? ModbusRegisterType::kCoil
           : type == "discrete" ? ModbusRegisterType::kDiscrete
                                : ModbusRegisterType::kHolding;
  const int64_t address = opts.getInt(key("address"));
  if (address < 0 || address > 65535) return bad("address", "must be 0..65535");
  r.address = static_cast<int>(address);
  const bool bits = r.type == ModbusRegisterType::kCoil || r.type == ModbusRegisterType::kDiscrete;
  if (bits) {
    // Data options mean nothing for bits: refuse them rather than ignore them silently.
    for (std::string_view field : {"data_type", "byte_order", "scale", "offset"}) {
      if (opts.where(key(field)).line != 0) return bad(field, "coil and discrete take no " + std::string(field));
    }
  }
  const std::string& data_type = opts.getString(key("data_type"));
  static constexpr std::pair<std::string_view, ModbusDataType> kTypes[] = {
      {"int16", ModbusDataType::kInt16},     {"uint16", ModbusDataType::kUint16},
      {"int32", ModbusDataType::kInt32},     {"uint32", ModbusDataType::kUint32},
      {"float32", ModbusDataType::kFloat32}, {"float64", ModbusDataType::kFloat64}};
  for (const auto& [n, t] : kTypes) {
    if (n == data_type) r.data_type = t;
  }
  const std::string& order = opts.getString(key("byte_order"));
  static constexpr std::pair<std::string_view, ModbusByteOrder> kOrders[] = {
      {"ABCD", ModbusByteOrder::kABCD},
      {"DCBA", ModbusByteOrder::kDCBA},
      {"BADC", ModbusByteOrder::kBADC},
      {"CDAB", ModbusByteOrder::kCDAB}};
  for (const auto& [n, o] : kOrders) {
    if (n == order) r.byte_order = o;
  }
  if (opts.has(key("scale"))) r.scale = opts.getDouble(key("scale"));
  if (opts.has(key("offset"))) r.offset = opts.getDouble(key("offset"));
  if (!std::isfinite(r.scale)) return bad("scale", "must be a finite number");
  if (!std::isfinite(r.offset)) return bad("offset", "must be a finite number");
  const int64_t count = opts.has(key("count")) ? opts.getInt(key("count")) : 1;
  const int limit = bits ? kMaxBitsPerRead : kMaxRegistersPerRead / modbusWords(r.data_type);
  if (count < 1 || count > limit) {
    return bad("count", "must be 1.." + std::to_string(limit) + " for this type");
  }
  r.count = static_cast<int>(count);
  const int span = bits ? r.count : r.count * modbusWords(r.data_type);
  if (r.address + span > 65536) return bad("address", "address + registers read pass 65535");
  return r;
}

Result<ModbusSettings> ModbusSettings::fromOptions(const Options& opts) {
  ModbusSettings s;
  const std::string& address = opts.getString("address");
  s.device = opts.getString("device");
  if (address.empty() == s.device.empty()) {
    return invalidArgument(opts.locate("address") +
                           ": set exactly one of address (TCP) or "
                           "device (RTU)");
  }
  if (!address.empty()) {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return invalidArgument(opts.locate("address") + ": expected host:port, got \"" + address +
                             "\"");
    }
    s.host = address.substr(0, colon);
    if (s.host.size() > 2 && s.host.front() == '[' && s.host.back() == ']') {
      s.host = s.host.substr(1, s.host.size() - 2);
    }
    s.port = address.substr(colon + 1);
    int port = 0;
    if (!parseInt(s.port, &port) || port < 1 || port > 65535) {
      return invalidArgument(opts.locate("address") + ": port must be 1..65535, got \"" + s.port +
                             "\"");
    }
  }
  const int64_t baud = opts.has("baud") ? opts.getInt("baud") : s.baud;
  if (baud < 1 || baud > 4'000'000)
    return invalidArgument(opts.locate("baud") + ": must be 1..4000000");
  s.baud = static_cast<int>(baud);
  const std::string parity = opts.has("parity") ? opts.getString("parity") : "none";
  s.parity = parity == "even" ? 'E' : parity == "odd" ? 'O' : 'N';
  const int64_t data_bits = opts.has("data_bits") ? opts.getInt("data_bits") : s.data_bits;
  if (data_bits < 5 || data_bits > 8)
    return invalidArgument(opts.locate("data_bits") + ": must be 5..8");
  s.data_bits = static_cast<int>(data_bits);
  const int64_t stop_bits = opts.has("stop_bits") ? opts.getInt("stop_bits") : s.stop_bits;
  if (stop_bits != 1 && stop_bits != 2)
    return invalidArgument(opts.locate("stop_bits") + ": must be 1 or 2");
  s.stop_bits = static_cast<int>(stop_bits);
  const int64_t unit = opts.has("unit_id") ? opts.getInt("unit_id") : s.unit_id;
  if (unit < 0 || unit > 255) return invalidArgument(opts.locate("unit_id") + ": must be 0..255");
  s.unit_id = static_cast<int>(unit);
  if (opts.has("interval")) s.interval = opts.getDuration("interval");
  if (s.interval <= Duration::zero()) {
    return invalidArgument(opts.locate("interval") + ": must be above 0");
  }
  if (opts.has("timeout")) s.timeout = opts.getDuration("timeout");
  if (s.timeout <= Duration::zero() || s.timeout > s.interval) {
    return invalidArgument(opts.locate("timeout") + ": must be above 0 and at most interval");
  }
  const size_t entries = opts.listSize("registers");
  if (entries == 0) return invalidArgument(opts.locate("registers") + ": no registers");
  std::set<std::string, std::less<>> names;
  for (size_t i = 0; i < entries; ++i) {
    Result<ModbusRegister> r = ModbusRegister::fromOptions(opts, i);
    if (!r.isOk()) return r.status();
    const std::string where = opts.locate(Options::itemKey("registers", i, "name"));
    if (r->name == "unit_id" || r->name == "ts") {
      return invalidArgument(where + ": the names unit_id and ts are reserved");
    }
    if (!names.insert(r->name).second) {
      return invalidArgument(where + ": duplicate name \"" + r->name + "\"");
    }
    s.registers.push_back(std::move(r).value());
  }
  return s;
}

ModbusInput::ModbusInput(ModbusSettings settings, std::string instance, const Clock& clock,
                         MetricsRegistry* metrics)
    : settings_(std::move(settings)),
      instance_(std::move(instance)),
      clock_(clock),
      failing_(settings_.registers.size(), false) {
  max_skip_ = static_cast<int>(
      std::clamp<int64_t>(kMaxBackoff / settings_.interval - 1, 0, kMaxSkippedCollects));
  if (metrics != nullptr) {
    for (int i = 0; i < static_cast<int>(Reason::kCount); ++i) {
      errors_[i] = &metrics->counter("ferry_input_errors_total",
                                     {{"input", instance_}, {"reason", std::string(kReasons[i])}},
                                     "failed collections or service starts");
    }
  }
}

ModbusInput::~ModbusInput() { disconnect(); }

void ModbusInput::count(Reason r) {
  Counter* c = errors_[static_cast<int>(r)];
  if (c != nullptr) c->add();
}

void ModbusInput::disconnect() {
  if (ctx_ == nullptr) return;
  if (connected_) modbus_close(ctx_);
  modbus_free(ctx_);
  ctx_ = nullptr;
  connected_ = false;
}

bool ModbusInput::connect() {
  const std::string target =
      settings_.device.empty() ? settings_.host + ":" + settings_.port : settings_.device;
  if (ctx_ == nullptr) {
    ctx_ = settings_.device.empty()
               ? modbus_new_tcp_pi(settings_.host.c_str(), settings_.port.c_str())
               : modbus_new_rtu(settings_.device.c_str(), settings_.baud, settings_.parity,
                                settings_.data_bits, settings_.stop_bits);
  }
  const int err = errno;
  bool ok = ctx_ != nullptr;
  std::string why = ok ? std::string() : std::string(modbus_strerror(err));
  if (ok) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(settings_.timeout).count();
    if (modbus_set_slave(ctx_, settings_.unit_id) != 0 ||
        modbus_set_response_timeout(ctx_, static_cast<uint32_t>(us / 1'000'000),
                                    static_cast<uint32_t>(us % 1'000'000)) != 0 ||
        modbus_connect(ctx_) != 0) {
      why = modbus_strerror(errno);
      ok = false;
    }
  }
  if (!ok) {
    if (ctx_ != nullptr) modbus_free(ctx_);
    ctx_ = nullptr;
    count(Reason::kConnect);
    ++failures_;
    skip_ = std::min((1 << std::min(failures_ - 1, 8)) - 1, max_skip_);
    if (!connect_failing_) {
      logWarn(kComponent, "input ", instance_, ": cannot connect to ", target, ": ", why,
              " (retrying with backoff)");
      connect_failing_ = true;
    }
    return false;
  }
  connected_ = true;
  failures_ = 0;
  skip_ = 0;
  connect_failing_ = false;
  logInfo(kComponent, "input ", instance_, ": connected to ", target);
  return true;
}

bool ModbusInput::readInto(size_t index, std::string& out, bool* got_value) {
  const ModbusRegister& r = settings_.registers[index];
  const bool bits = r.type == ModbusRegisterType::kCoil || r.type == ModbusRegisterType::kDiscrete;
  const int n = bits ? r.count : r.count * modbusWords(r.data_type);
  int rc = -1;
  if (bits) {
    bits_.resize(static_cast<size_t>(n));
    rc = r.type == ModbusRegisterType::kCoil
             ? modbus_read_bits(ctx_, r.address, n, bits_.data())
             : modbus_read_input_bits(ctx_, r.address, n, bits_.data());
  } else {
    words_.resize(static_cast<size_t>(n));
    rc = r.type == ModbusRegisterType::kHolding
             ? modbus_read_registers(ctx_, r.address, n, words_.data())
             : modbus_read_input_registers(ctx_, r.address, n, words_.data());
  }
  if (rc != n) {
    const int err = errno;
    // A Modbus exception (or a malformed reply) leaves the link usable; anything else
    // (reset, timeout, EOF) means the next request cannot trust the stream.
    const bool transport = rc < 0 && (err < MODBUS_ENOBASE || err == EMBBADDATA) && err != EMBMDATA;
    count(transport ? Reason::kLost : Reason::kRead);
    if (transport) {
      logWarn(kComponent, "input ", instance_, ": connection lost reading \"", r.name,
              "\": ", modbus_strerror(err));
      disconnect();
      return false;
    }
    if (!failing_[index]) {
      logWarn(kComponent, "input ", instance_, ": reading \"", r.name,
              "\" failed: ", rc < 0 ? modbus_strerror(err) : "short reply");
      failing_[index] = true;
    }
    return true;
  }
  if (failing_[index]) {
    logInfo(kComponent, "input ", instance_, ": reading \"", r.name, "\" works again");
    failing_[index] = false;
  }
  std::string value;
  if (r.count > 1) value.push_back('[');
  const int words = modbusWords(r.data_type);
  for (int i = 0; i < r.count; ++i) {
    if (i > 0) value.push_back(',');
    if (bits) {
      value.append(bits_[static_cast<size_t>(i)] != 0 ? "true" : "false");
      continue;
    }
    const std::span<const uint16_t> w(words_.data() + static_cast<size_t>(i * words),
                                      static_cast<size_t>(words));
    const double raw = decodeModbusValue(w, r.data_type, r.byte_order);
    const double v = raw * r.scale + r.offset;
    if (!std::isfinite(v)) {
      count(Reason::kBadValue);
      return true;  // the field is left out
    }
    if (isIntegerType(r.data_type) && r.scale == 1 && r.offset == 0) {
      value.append(std::to_string(static_cast<int64_t>(raw)));
    } else {
      appendNumber(value, v);
    }
  }
  if (r.count > 1) value.push_back(']');
  out.push_back(',');
  appendJsonString(out, r.name);
  out.push_back(':');
  out.append(value);
  *got_value = true;
  return true;
}

Status ModbusInput::collect(Emitter& emitter) {
  if (pending_) {
    Status st = emitter.emit(batch_);
    if (!st.isOk()) return st;
    pending_ = false;
    batch_.clear();
  }
  if (!connected_) {
    if (skip_ > 0) {
      --skip_;
      return Status::ok();
    }
    if (!connect()) return Status::ok();
  }
  std::string record = "{\"unit_id\":" + std::to_string(settings_.unit_id) +
                       ",\"ts\":" + std::to_string(clock_.wallMs());
  bool any = false;
  for (size_t i = 0; i < settings_.registers.size(); ++i) {
    if (!readInto(i, record, &any)) break;
  }
  if (!any) return Status::ok();
  record.push_back('}');
  batch_.clear();
  batch_.append(record);
  Status st = emitter.emit(batch_);
  if (st.code() == StatusCode::kResourceExhausted) {
    pending_ = true;
    return st;
  }
  batch_.clear();
  return st;
}

const PluginDescriptor& modbusInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "modbus",
      .summary = "polls registers of a Modbus TCP/RTU device, one record per poll",
      .options = kOptions,
      .make_input = &makeModbusInput,
  };
  return kDescriptor;
}

}  // namespace ferry
