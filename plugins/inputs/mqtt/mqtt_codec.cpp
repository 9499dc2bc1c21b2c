#include "plugins/inputs/mqtt/mqtt_codec.h"

#include <limits>

namespace ferry::mqttc {
namespace {

void appendU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void appendField(std::string& out, std::string_view s) {
  appendU16(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}

uint16_t readU16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) |
                               static_cast<uint8_t>(b[at + 1]));
}

}  // namespace

void appendRemainingLength(std::string& out, size_t length) {
  do {
    uint8_t byte = length % 128;
    length /= 128;
    if (length > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (length > 0);
}

void encodeConnect(const ConnectFields& c, std::string& out) {
  size_t body = 10 + 2 + c.client_id.size();
  if (c.has_username) body += 2 + c.username.size();
  if (c.has_username && c.has_password) body += 2 + c.password.size();
  out.push_back(static_cast<char>(static_cast<uint8_t>(PacketType::kConnect) << 4));
  appendRemainingLength(out, body);
  appendField(out, "MQTT");
  out.push_back(4);  // protocol level: 3.1.1
  uint8_t flags = 0;
  if (c.clean_session) flags |= 0x02;
  if (c.has_username) flags |= 0x80;
  if (c.has_username && c.has_password) flags |= 0x40;
  out.push_back(static_cast<char>(flags));
  appendU16(out, c.keepalive_seconds);
  appendField(out, c.client_id);
  if (c.has_username) appendField(out, c.username);
  if (c.has_username && c.has_password) appendField(out, c.password);
}

void encodeSubscribe(uint16_t packet_id, std::span<const std::string> filters, uint8_t qos,
                     std::string& out) {
  size_t body = 2;
  for (const std::string& f : filters) body += 2 + f.size() + 1;
  out.push_back(static_cast<char>((static_cast<uint8_t>(PacketType::kSubscribe) << 4) | 0x02));
  appendRemainingLength(out, body);
  appendU16(out, packet_id);
  for (const std::string& f : filters) {
    appendField(out, f);
    out.push_back(static_cast<char>(qos));
  }
}

void encodePuback(uint16_t packet_id, std::string& out) {
  out.push_back(static_cast<char>(static_cast<uint8_t>(PacketType::kPuback) << 4));
  out.push_back(2);
  appendU16(out, packet_id);
}

void encodePingreq(std::string& out) {
  out.push_back(static_cast<char>(static_cast<uint8_t>(PacketType::kPingreq) << 4));
  out.push_back(0);
}

void encodeDisconnect(std::string& out) {
  out.push_back(static_cast<char>(static_cast<uint8_t>(PacketType::kDisconnect) << 4));
  out.push_back(0);
}

FrameResult splitFrame(std::string_view buf, size_t max_body, Frame* frame, std::string* why) {
  if (buf.size() < 2) return FrameResult::kNeedMore;
  size_t length = 0;
  size_t multiplier = 1;
  size_t i = 1;
  for (;; ++i) {
    if (i > 4) {
      *why = "remaining length longer than 4 bytes";
      return FrameResult::kMalformed;
    }
    if (i >= buf.size()) return FrameResult::kNeedMore;
    const uint8_t byte = static_cast<uint8_t>(buf[i]);
    length += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) == 0) break;
  }
  frame->header = static_cast<uint8_t>(buf[0]);
  frame->header_size = i + 1;
  frame->body_size = length;
  frame->body = {};
  if (length > max_body) return FrameResult::kTooLarge;
  if (buf.size() - frame->header_size < length) return FrameResult::kNeedMore;
  frame->body = buf.substr(frame->header_size, length);
  return FrameResult::kComplete;
}

bool decodeConnack(const Frame& f, Connack* out, std::string* why) {
  if (f.type() != PacketType::kConnack || f.body.size() != 2) {
    *why = "CONNACK with a body of " + std::to_string(f.body.size()) + " bytes (expected 2)";
    return false;
  }
  if ((static_cast<uint8_t>(f.body[0]) & 0xfe) != 0) {
    *why = "CONNACK with reserved flag bits set";
    return false;
  }
  out->session_present = (f.body[0] & 0x01) != 0;
  out->return_code = static_cast<uint8_t>(f.body[1]);
  return true;
}

std::string_view connackReason(uint8_t code) {
  switch (code) {
    case 0:
      return "accepted";
    case 1:
      return "unacceptable protocol version (the broker does not speak MQTT 3.1.1)";
    case 2:
      return "client identifier rejected";
    case 3:
      return "server unavailable";
    case 4:
      return "bad user name or password";
    case 5:
      return "not authorized";
    default:
      return "unknown return code";
  }
}

bool decodeSuback(const Frame& f, Suback* out, std::string* why) {
  if (f.body.size() < 3) {
    *why = "SUBACK shorter than 3 bytes";
    return false;
  }
  out->packet_id = readU16(f.body, 0);
  out->codes.assign(f.body.begin() + 2, f.body.end());
  for (uint8_t c : out->codes) {
    if (c > 2 && c != 0x80) {
      *why = "SUBACK with return code " + std::to_string(c);
      return false;
    }
  }
  return true;
}

bool decodePublish(const Frame& f, Publish* out, std::string* why) {
  const uint8_t qos = (f.header >> 1) & 0x03;
  if (qos == 3) {
    *why = "PUBLISH with QoS 3";
    return false;
  }
  if (f.body.size() < 2) {
    *why = "PUBLISH shorter than its topic length";
    return false;
  }
  const size_t topic_len = readU16(f.body, 0);
  size_t at = 2 + topic_len;
  if (topic_len == 0 || at > f.body.size()) {
    *why = topic_len == 0 ? "PUBLISH with an empty topic" : "PUBLISH topic runs past the packet";
    return false;
  }
  out->qos = qos;
  out->dup = (f.header & 0x08) != 0;
  out->retain = (f.header & 0x01) != 0;
  out->topic = f.body.substr(2, topic_len);
  out->packet_id = 0;
  if (qos > 0) {
    if (at + 2 > f.body.size()) {
      *why = "PUBLISH without its packet id";
      return false;
    }
    out->packet_id = readU16(f.body, at);
    if (out->packet_id == 0) {
      *why = "PUBLISH with packet id 0";
      return false;
    }
    at += 2;
  }
  out->payload = f.body.substr(at);
  return true;
}

size_t peekPublishId(uint8_t header, size_t body_size, std::string_view body_prefix, uint8_t* qos,
                     uint16_t* packet_id, std::string* why) {
  constexpr size_t kMalformed = std::numeric_limits<size_t>::max();
  *qos = (header >> 1) & 0x03;
  *packet_id = 0;
  if (*qos == 3) {
    *why = "PUBLISH with QoS 3";
    return kMalformed;
  }
  if (*qos == 0) return 0;
  if (body_prefix.size() < 2) return 2;
  const size_t need = 2 + size_t{readU16(body_prefix, 0)} + 2;
  if (need > body_size) {
    *why = "PUBLISH topic runs past the packet";
    return kMalformed;
  }
  if (body_prefix.size() < need) return need;
  *packet_id = readU16(body_prefix, need - 2);
  if (*packet_id == 0) {
    *why = "PUBLISH with packet id 0";
    return kMalformed;
  }
  return 0;
}

}  // namespace ferry::mqttc
