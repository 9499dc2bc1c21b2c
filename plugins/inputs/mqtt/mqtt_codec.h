// MQTT 3.1.1 packets, as far as the mqtt input (a subscriber) needs them: it encodes
// CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT and decodes CONNACK, SUBACK, PUBLISH
// and PINGRESP. Every decoder checks every length against the bytes it was given and
// answers false with `why` set instead of reading past them.
//
// Framing: splitFrame() finds one packet at the front of a byte stream (fixed header with
// the remaining-length varint of 1 to 4 bytes, then the body). A body longer than the
// caller's limit is reported as kTooLarge with its size, so that the caller can skip it
// without buffering it (a PUBLISH's packet id sits at its front: peekPublishId()).
//
// Thread-safety: stateless functions. Encoders append to `out` (no allocation beyond
// growing it); decoders return views into the bytes they were given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::mqttc {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kSubscribe = 8,
  kSuback = 9,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// Largest remaining length the varint can express (268,435,455).
constexpr size_t kMaxRemainingLength = 268'435'455;

struct ConnectFields {
  std::string_view client_id;
  bool clean_session = false;
  uint16_t keepalive_seconds = 30;
  bool has_username = false;
  std::string_view username;
  bool has_password = false;  // 3.1.1: only together with a user name
  std::string_view password;
};

void appendRemainingLength(std::string& out, size_t length);
void encodeConnect(const ConnectFields& c, std::string& out);
// One SUBSCRIBE for every filter, each at `qos` (0 or 1).
void encodeSubscribe(uint16_t packet_id, std::span<const std::string> filters, uint8_t qos,
                     std::string& out);
void encodePuback(uint16_t packet_id, std::string& out);
void encodePingreq(std::string& out);
void encodeDisconnect(std::string& out);

enum class FrameResult { kComplete, kNeedMore, kMalformed, kTooLarge };

struct Frame {
  uint8_t header = 0;      // first byte: type << 4 | flags
  size_t header_size = 0;  // fixed header bytes (1 + varint)
  size_t body_size = 0;    // remaining length
  std::string_view body;   // kComplete only
  PacketType type() const { return static_cast<PacketType>(header >> 4); }
  uint8_t flags() const { return header & 0x0f; }
  size_t totalSize() const { return header_size + body_size; }
};

// Looks at the front of `buf`. kComplete: `frame` is the first packet (body included).
// kNeedMore: not all of it is there yet. kTooLarge: the header is complete and the body is
// longer than `max_body` (frame.header/header_size/body_size set, body empty).
// kMalformed: the varint runs over 4 bytes (`why` set).
FrameResult splitFrame(std::string_view buf, size_t max_body, Frame* frame, std::string* why);

struct Connack {
  bool session_present = false;
  uint8_t return_code = 0;  // 0 accepted; 1..5 refused (see connackReason)
};
bool decodeConnack(const Frame& f, Connack* out, std::string* why);
// "unacceptable protocol version", "identifier rejected", ... for a refusal code.
std::string_view connackReason(uint8_t code);

struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> codes;  // granted QoS per filter, or 0x80 (refused)
};
bool decodeSuback(const Frame& f, Suback* out, std::string* why);

struct Publish {
  uint8_t qos = 0;
  bool dup = false;
  bool retain = false;
  std::string_view topic;
  uint16_t packet_id = 0;  // QoS > 0 only
  std::string_view payload;
};
// A complete PUBLISH. Refuses QoS 3, a topic that runs past the body, an empty topic, and
// a packet id of 0 at QoS > 0.
bool decodePublish(const Frame& f, Publish* out, std::string* why);

// For a PUBLISH too large to buffer: reads the QoS from `header` and, at QoS > 0, the
// packet id from the first bytes of the body (`body_prefix`). Returns the number of body
// bytes needed (2 + topic length + 2) when `body_prefix` is shorter, 0 when done (`qos`
// and `packet_id` set), or SIZE_MAX when malformed (`why` set).
size_t peekPublishId(uint8_t header, size_t body_size, std::string_view body_prefix, uint8_t* qos,
                     uint16_t* packet_id, std::string* why);

}  // namespace ferry::mqttc
