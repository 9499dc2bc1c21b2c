#include "plugins/inputs/syslog/syslog.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "ferry/metrics.h"
#include "tests/support/fakes.h"
#include "tests/support/net.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using test::CaptureEmitter;

int connectTo(uint16_t port, int type) {
  const int fd = test::connectLoopback(port, type);
  REQUIRE(fd >= 0);
  return fd;
}
void sendAll(int fd, std::string_view data) { REQUIRE(test::sendAll(fd, data)); }


size_t recordCount(CaptureEmitter& e) {
  std::lock_guard lock(e.mu_);
  return e.records.size();
}

// Waits until `e` captured `n` records (or 5 s).
bool waitForRecords(CaptureEmitter& e, size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (recordCount(e) >= n) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

SyslogSettings settingsFor(SyslogProtocol protocol, SyslogFraming framing = SyslogFraming::kAuto) {
  SyslogSettings s;
  s.listen = "127.0.0.1:0";
  s.protocol = protocol;
  s.framing = framing;
  s.max_message_bytes = 1024;
  return s;
}

uint64_t dropped(const MetricsRegistry& m, const char* reason) {
  return m.counterValue("ferry_dropped_records_total", {{"reason", reason}});
}

TEST_SUITE("inputs.syslog") {
  TEST_CASE("udp round trip, with too-long and bad datagrams counted") {
    MetricsRegistry metrics;
    SyslogInput input(settingsFor(SyslogProtocol::kUdp), "sys", &metrics);
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    REQUIRE(input.port() != 0);
    const int fd = connectTo(input.port(), SOCK_DGRAM);
    for (int i = 0; i < 20; ++i) {
      sendAll(fd, "<14>1 - host app - - - udp message " + std::to_string(i));
    }
    sendAll(fd, "<14>" + std::string(2000, 'x'));
    sendAll(fd, "no pri here");
    sendAll(fd, "<14>Oct 11 22:14:15 host app: last");
    REQUIRE(waitForRecords(emitter, 21));
    input.stop();
    ::close(fd);
    {
      std::lock_guard lock(emitter.mu_);
      CHECK(emitter.records.size() == 21);
      CHECK(emitter.records.front().find("\"message\":\"udp message 0\"") != std::string::npos);
      CHECK(emitter.records.back().find("\"format\":\"rfc3164\"") != std::string::npos);
      CHECK(emitter.batches < 21);  // batched, not one emit per message
    }
    CHECK(dropped(metrics, "syslog_too_long") == 1);
    CHECK(dropped(metrics, "syslog_bad_message") == 1);
  }

  TEST_CASE("tcp octet-counted round trip, with a too-long frame skipped") {
    MetricsRegistry metrics;
    SyslogInput input(settingsFor(SyslogProtocol::kTcp, SyslogFraming::kOctetCounted), "sys",
                      &metrics);
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    const int fd = connectTo(input.port(), SOCK_STREAM);
    std::string stream;
    auto frame = [&](const std::string& m) { stream += std::to_string(m.size()) + " " + m; };
    frame("<14>1 - h a - - - first\nwith a newline inside");
    frame("<14>" + std::string(1500, 'y'));
    frame("bad");
    frame("<14>1 - h a - - - last");
    // Delivered in small pieces: frames split across reads.
    for (size_t i = 0; i < stream.size(); i += 7) sendAll(fd, std::string_view(stream).substr(i, 7));
    REQUIRE(waitForRecords(emitter, 2));
    ::close(fd);
    input.stop();
    std::lock_guard lock(emitter.mu_);
    REQUIRE(emitter.records.size() == 2);
    CHECK(emitter.records[0].find("\"message\":\"first\\nwith a newline inside\"") !=
          std::string::npos);
    CHECK(emitter.records[1].find("\"message\":\"last\"") != std::string::npos);
    CHECK(dropped(metrics, "syslog_too_long") == 1);
    CHECK(dropped(metrics, "syslog_bad_message") == 1);
  }

  TEST_CASE("tcp newline framing (and auto) round trip") {
    for (SyslogFraming framing : {SyslogFraming::kNewline, SyslogFraming::kAuto}) {
      MetricsRegistry metrics;
      SyslogInput input(settingsFor(SyslogProtocol::kTcp, framing), "sys", &metrics);
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      const int fd = connectTo(input.port(), SOCK_STREAM);
      sendAll(fd, "<13>Oct 11 22:14:15 host one: 1\r\n\n<13>two: 2\n");
      sendAll(fd, "<13>" + std::string(3000, 'z') + "\n");
      sendAll(fd, "garbage\n<13>three: 3");  // the last one ends with the connection
      ::close(fd);
      REQUIRE(waitForRecords(emitter, 3));
      input.stop();
      std::lock_guard lock(emitter.mu_);
      REQUIRE(emitter.records.size() == 3);
      CHECK(emitter.records[0].find("\"host\":\"host\",\"app\":\"one\"") != std::string::npos);
      CHECK(emitter.records[1].find("\"app\":\"two\"") != std::string::npos);
      CHECK(emitter.records[2].find("\"message\":\"3\"") != std::string::npos);
      CHECK(dropped(metrics, "syslog_too_long") == 1);
      CHECK(dropped(metrics, "syslog_bad_message") == 1);
    }
  }

  TEST_CASE("auto framing mixes octet-counted and newline messages") {
    MetricsRegistry metrics;
    SyslogInput input(settingsFor(SyslogProtocol::kTcp), "sys", &metrics);
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    const int fd = connectTo(input.port(), SOCK_STREAM);
    sendAll(fd, "10 <13>framed<13>newline\n");
    REQUIRE(waitForRecords(emitter, 2));
    ::close(fd);
    input.stop();
    std::lock_guard lock(emitter.mu_);
    CHECK(emitter.records[0].find("\"message\":\"framed\"") != std::string::npos);
    CHECK(emitter.records[1].find("\"message\":\"newline\"") != std::string::npos);
  }

  TEST_CASE("stop returns within 1 s with a tcp client connected") {
    SyslogInput input(settingsFor(SyslogProtocol::kTcp), "sys", nullptr);
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    const int fd = connectTo(input.port(), SOCK_STREAM);
    sendAll(fd, "<13>partial without newline");
    std::this_thread::sleep_for(50ms);
    const auto t0 = std::chrono::steady_clock::now();
    input.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    ::close(fd);
  }

  TEST_CASE("a refused batch is kept and handed over again") {
    SyslogInput input(settingsFor(SyslogProtocol::kUdp), "sys", nullptr);
    CaptureEmitter emitter;
    {
      std::lock_guard lock(emitter.mu_);
      emitter.next_status = resourceExhausted("full");
    }
    REQUIRE(input.start(emitter).isOk());
    const int fd = connectTo(input.port(), SOCK_DGRAM);
    sendAll(fd, "<13>kept");
    std::this_thread::sleep_for(200ms);
    {
      std::lock_guard lock(emitter.mu_);
      CHECK(emitter.batches >= 1);
      emitter.records.clear();
      emitter.next_status = Status::ok();
    }
    REQUIRE(waitForRecords(emitter, 1));
    input.stop();
    ::close(fd);
    std::lock_guard lock(emitter.mu_);
    CHECK(emitter.records.size() == 1);
  }

  TEST_CASE("options are checked") {
    Options opts;
    opts.set("listen", std::string("nonsense"), {});
    CHECK(!SyslogSettings::fromOptions(opts).isOk());
    Options good;
    good.set("protocol", std::string("tcp"), {});
    good.set("framing", std::string("newline"), {});
    good.set("max_message_bytes", uint64_t{100}, {});
    Result<SyslogSettings> s = SyslogSettings::fromOptions(good);
    REQUIRE(s.isOk());
    CHECK(s.value().protocol == SyslogProtocol::kTcp);
    CHECK(s.value().framing == SyslogFraming::kNewline);
    CHECK(s.value().listen == "127.0.0.1:5514");
    Options zero;
    zero.set("max_message_bytes", uint64_t{0}, {});
    CHECK(!SyslogSettings::fromOptions(zero).isOk());
  }
}

}  // namespace
}  // namespace ferry
