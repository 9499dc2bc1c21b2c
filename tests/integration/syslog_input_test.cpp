// The real ferry binary with the `syslog` input: RFC 5424 and 3164 messages over UDP and TCP
// (octet-counted), a malformed one in between, records read back from a file output after
// a clean stop.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

void sendUdp(uint16_t port, const std::string& message) {
  const int fd = connectLoopback(port, SOCK_DGRAM);
  REQUIRE(fd >= 0);
  (void)sendAll(fd, message);  // a datagram nobody reads yet is simply lost; callers repeat
  ::close(fd);
}

bool sendTcp(uint16_t port, const std::string& bytes) {
  const int fd = connectLoopback(port, SOCK_STREAM);
  if (fd < 0) return false;
  const bool ok = sendAll(fd, bytes);
  ::close(fd);
  return ok;
}

std::string octetCounted(const std::string& m) { return std::to_string(m.size()) + " " + m; }

}  // namespace

TEST_SUITE("integration.syslog_input") {
  TEST_CASE("UDP and TCP syslog into the agent: parsed records kept, a malformed message dropped") {
    TempDir dir;
    const uint16_t udp_port = freePort();
    const uint16_t tcp_port = freePort();
    const std::string out = dir.file("out/records.ndjson");
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: it-gw, data_dir: " + dir.file("data") + " }\n"
              "inputs:\n"
              "  - { name: udp, type: syslog, listen: \"127.0.0.1:" + std::to_string(udp_port) + "\" }\n"
              "  - { name: tcp, type: syslog, protocol: tcp, listen: \"127.0.0.1:" + std::to_string(tcp_port) + "\" }\n"
              "outputs:\n"
              "  - { name: local, type: file, path: " + out + " }\n");
    Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    // Up once the TCP listener takes a connection (an empty one adds nothing).
    REQUIRE(eventually([&] { return sendTcp(tcp_port, ""); }, 15s));
    // UDP is connectionless: repeat a marker until it shows up, then send the real ones.
    REQUIRE(eventually(
        [&] {
          sendUdp(udp_port, "<13>Nov 24 12:00:00 gw probe: ready");
          return lineCount(out) > 0;
        },
        15s));

    sendUdp(udp_port, "<34>1 2026-11-24T12:00:01Z gw-7 app 42 ID1 [ex@1 k=\"v\"] disk full");
    sendUdp(udp_port, "no priority here");
    CHECK(sendTcp(tcp_port, octetCounted("<165>1 2026-11-24T12:00:02Z gw-7 plc - - - valve open") +
                                octetCounted("<13>Nov 24 12:00:03 gw-7 sshd[99]: login")));
    REQUIRE(eventually(
        [&] {
          std::string text = readFile(out);
          return text.find("valve open") != std::string::npos && text.find("disk full") != std::string::npos &&
                 text.find("login") != std::string::npos;
        },
        15s));
    ferry.signal(SIGTERM);
    auto code = ferry.wait(10s);
    INFO("stderr: ", ferry.stderrText());
    CHECK(code == 0);

    const std::string text = readFile(out);
    CHECK(text.find("\"format\":\"rfc5424\"") != std::string::npos);
    CHECK(text.find("\"format\":\"rfc3164\"") != std::string::npos);
    CHECK(text.find("\"procid\":\"99\"") != std::string::npos);
    CHECK(text.find("\"k\":\"v\"") != std::string::npos);
    CHECK(text.find("no priority here") == std::string::npos);
  }
}
