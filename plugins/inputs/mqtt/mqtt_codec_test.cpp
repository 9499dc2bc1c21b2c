#include "plugins/inputs/mqtt/mqtt_codec.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ferry::mqttc;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// A PUBLISH as a broker would send it.
std::string publishPacket(std::string_view topic, uint8_t qos, uint16_t id,
                          std::string_view payload, bool dup = false) {
  std::string body;
  body.push_back(static_cast<char>(topic.size() >> 8));
  body.push_back(static_cast<char>(topic.size() & 0xff));
  body.append(topic);
  if (qos > 0) {
    body.push_back(static_cast<char>(id >> 8));
    body.push_back(static_cast<char>(id & 0xff));
  }
  body.append(payload);
  std::string out;
  out.push_back(static_cast<char>(0x30 | (qos << 1) | (dup ? 0x08 : 0)));
  appendRemainingLength(out, body.size());
  return out + body;
}

}  // namespace

TEST_SUITE("mqtt_codec") {
  TEST_CASE("remaining length: 1 to 4 bytes, round trip through splitFrame") {
    for (size_t n : {size_t{0}, size_t{127}, size_t{128}, size_t{16383}, size_t{16384},
                     size_t{2097151}, size_t{2097152}, kMaxRemainingLength}) {
      std::string enc;
      enc.push_back(static_cast<char>(0x30));
      appendRemainingLength(enc, n);
      const size_t expected_len = n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
      CHECK(enc.size() == 1 + expected_len);
      Frame f;
      std::string why;
      // Too large for the limit: the header is understood without the body.
      CHECK(splitFrame(enc, n == 0 ? 0 : n - 1, &f, &why) ==
            (n == 0 ? FrameResult::kComplete : FrameResult::kTooLarge));
      CHECK(f.body_size == n);
      CHECK(f.header_size == 1 + expected_len);
    }
  }

  TEST_CASE("encoders write the bytes of the 3.1.1 spec") {
    std::string out;
    encodePuback(0x1234, out);
    CHECK(out == bytes({0x40, 0x02, 0x12, 0x34}));
    out.clear();
    encodePingreq(out);
    encodeDisconnect(out);
    CHECK(out == bytes({0xc0, 0x00, 0xe0, 0x00}));
    out.clear();
    ConnectFields c;
    c.client_id = "ab";
    c.clean_session = false;
    c.keepalive_seconds = 60;
    c.has_username = true;
    c.username = "u";
    c.has_password = true;
    c.password = "pw";
    encodeConnect(c, out);
    CHECK(out == bytes({0x10, 21, 0,   4,   'M', 'Q', 'T', 'T', 4, 0xc0, 0,  60,
                        0,    2,  'a', 'b', 0,   1,   'u', 0,   2, 'p',  'w'}));
    out.clear();
    c.has_username = false;
    c.has_password = true;  // 3.1.1: no password without a user name
    c.clean_session = true;
    encodeConnect(c, out);
    CHECK(out == bytes({0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'a', 'b'}));
    out.clear();
    const std::vector<std::string> filters = {"a/+", "#"};
    encodeSubscribe(7, filters, 1, out);
    CHECK(out == bytes({0x82, 12, 0, 7, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 1}));
  }

  TEST_CASE("PUBLISH decodes at QoS 0 and 1; its packet id is peeked without the body") {
    const std::string p1 = publishPacket("sensors/t1", 1, 42, "{\"v\":1}", true);
    Frame f;
    std::string why;
    REQUIRE(splitFrame(p1, 1 << 20, &f, &why) == FrameResult::kComplete);
    CHECK(f.totalSize() == p1.size());
    Publish p;
    REQUIRE(decodePublish(f, &p, &why));
    CHECK(p.qos == 1);
    CHECK(p.dup);
    CHECK(p.topic == "sensors/t1");
    CHECK(p.packet_id == 42);
    CHECK(p.payload == "{\"v\":1}");

    const std::string p0 = publishPacket("t", 0, 0, "");
    REQUIRE(splitFrame(p0, 1 << 20, &f, &why) == FrameResult::kComplete);
    REQUIRE(decodePublish(f, &p, &why));
    CHECK(p.qos == 0);
    CHECK(p.packet_id == 0);
    CHECK(p.payload.empty());

    // Too large: header first, then the id from the front of the body.
    const std::string big = publishPacket("big/topic", 1, 513, std::string(5000, 'x'));
    REQUIRE(splitFrame(big, 100, &f, &why) == FrameResult::kTooLarge);
    uint8_t qos = 9;
    uint16_t id = 0;
    const std::string_view body = std::string_view(big).substr(f.header_size);
    CHECK(peekPublishId(f.header, f.body_size, body.substr(0, 1), &qos, &id, &why) == 2);
    CHECK(peekPublishId(f.header, f.body_size, body.substr(0, 5), &qos, &id, &why) == 13);
    CHECK(peekPublishId(f.header, f.body_size, body.substr(0, 13), &qos, &id, &why) == 0);
    CHECK(qos == 1);
    CHECK(id == 513);
  }

  TEST_CASE("several packets in one buffer split one after the other; a partial one waits") {
    std::string stream =
        publishPacket("a", 1, 1, "x") + publishPacket("b", 1, 2, "yy") + bytes({0xd0, 0x00});
    const std::string partial = publishPacket("c", 1, 3, "zzz");
    stream += partial.substr(0, partial.size() - 1);
    std::vector<int> types;
    size_t pos = 0;
    Frame f;
    std::string why;
    while (splitFrame(std::string_view(stream).substr(pos), 1 << 20, &f, &why) ==
           FrameResult::kComplete) {
      types.push_back(static_cast<int>(f.type()));
      pos += f.totalSize();
    }
    CHECK(types == std::vector<int>{3, 3, 13});
    CHECK(stream.size() - pos == partial.size() - 1);
  }

  TEST_CASE("malformed packets are refused with a reason, never read past their bytes") {
    Frame f;
    std::string why;
    // A fifth length byte.
    CHECK(splitFrame(bytes({0x30, 0xff, 0xff, 0xff, 0xff, 0x01}), 1 << 20, &f, &why) ==
          FrameResult::kMalformed);
    CHECK(why.find("4 bytes") != std::string::npos);
    // Truncated: header promises more than there is.
    CHECK(splitFrame(bytes({0x30, 0x05, 0x00}), 1 << 20, &f, &why) == FrameResult::kNeedMore);
    CHECK(splitFrame(bytes({0x30}), 1 << 20, &f, &why) == FrameResult::kNeedMore);
    CHECK(splitFrame(bytes({0x30, 0x80}), 1 << 20, &f, &why) == FrameResult::kNeedMore);

    Publish p;
    auto decode = [&](const std::string& packet) {
      REQUIRE(splitFrame(packet, 1 << 20, &f, &why) == FrameResult::kComplete);
      why.clear();
      return decodePublish(f, &p, &why);
    };
    CHECK_FALSE(decode(bytes({0x32, 0x03, 0x00, 0x09, 'a'})));  // topic past the end
    CHECK(why.find("topic") != std::string::npos);
    CHECK_FALSE(decode(bytes({0x32, 0x03, 0x00, 0x01, 'a'})));              // no packet id
    CHECK_FALSE(decode(bytes({0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00})));  // id 0
    CHECK_FALSE(decode(bytes({0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01})));  // QoS 3
    CHECK_FALSE(decode(bytes({0x30, 0x02, 0x00, 0x00})));                   // empty topic
    CHECK_FALSE(decode(bytes({0x30, 0x01, 0x00})));                         // no topic length

    uint8_t qos = 0;
    uint16_t id = 0;
    CHECK(peekPublishId(0x32, 4, bytes({0x00, 0x09}), &qos, &id, &why) == SIZE_MAX);

    Connack c;
    const std::string connack = bytes({0x20, 0x02, 0x01, 0x05});  // f.body points into it
    REQUIRE(splitFrame(connack, 16, &f, &why) == FrameResult::kComplete);
    REQUIRE(decodeConnack(f, &c, &why));
    CHECK(c.session_present);
    CHECK(c.return_code == 5);
    CHECK(connackReason(5) == "not authorized");
    const std::string long_connack = bytes({0x20, 0x03, 0x00, 0x00, 0x00});
    REQUIRE(splitFrame(long_connack, 16, &f, &why) == FrameResult::kComplete);
    CHECK_FALSE(decodeConnack(f, &c, &why));

    Suback s;
    const std::string suback = bytes({0x90, 0x04, 0x00, 0x07, 0x01, 0x80});
    REQUIRE(splitFrame(suback, 16, &f, &why) == FrameResult::kComplete);
    REQUIRE(decodeSuback(f, &s, &why));
    CHECK(s.packet_id == 7);
    CHECK(s.codes == std::vector<uint8_t>{1, 0x80});
    const std::string bad_code = bytes({0x90, 0x03, 0x00, 0x07, 0x03});
    REQUIRE(splitFrame(bad_code, 16, &f, &why) == FrameResult::kComplete);
    CHECK_FALSE(decodeSuback(f, &s, &why));
    const std::string no_codes = bytes({0x90, 0x02, 0x00, 0x07});
    REQUIRE(splitFrame(no_codes, 16, &f, &why) == FrameResult::kComplete);
    CHECK_FALSE(decodeSuback(f, &s, &why));
  }
}
