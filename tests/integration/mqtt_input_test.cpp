// The real ferry binary: the mqtt input (QoS 1, persistent session) into a file output,
// while a publisher sends 20,000 numbered QoS 1 messages through a real Mosquitto. The
// agent is killed with SIGKILL several times mid-stream and restarted. The input
// acknowledges a message only after its record is committed to the buffer, so the broker
// keeps (and sends again) whatever a killed agent had not committed: every message must be
// in the output at least once; duplicates (redelivered after a kill) are counted, and the
// first appearances must come in publishing order.
#include <doctest/doctest.h>
#include <signal.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "tests/support/mosquitto.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

constexpr int kMessages = 20000;

struct Scan {
  size_t lines = 0;
  size_t duplicates = 0;
  size_t distinct = 0;
  size_t out_of_order = 0;  // first appearances that do not follow the previous one
  size_t probes = 0;        // the probes of subscribeOnce (a late one may come again)
  size_t foreign = 0;       // anything else: lines without "n" or with the wrong topic
};

Scan scan(const std::string& path) {
  Scan s;
  std::vector<bool> seen(kMessages, false);
  std::ifstream in(path);
  std::string line;
  int last_first = -1;
  while (std::getline(in, line)) {
    ++s.lines;
    if (line.find("\"probe\":1") != std::string::npos) {
      ++s.probes;
      continue;
    }
    const size_t f = line.find("\"n\":");
    int n = -1;
    if (f == std::string::npos ||
        std::from_chars(line.data() + f + 4, line.data() + line.size(), n).ec != std::errc() ||
        n < 0 || n >= kMessages || line.find("\"topic\":\"plant/line1\"") == std::string::npos) {
      ++s.foreign;
      continue;
    }
    if (seen[static_cast<size_t>(n)]) {
      ++s.duplicates;
      continue;
    }
    seen[static_cast<size_t>(n)] = true;
    ++s.distinct;
    if (n != last_first + 1) ++s.out_of_order;
    last_first = n;
  }
  return s;
}

std::string config(const TempDir& dir, const MosquittoBroker& broker, const std::string& out,
                   const std::string& durability = "fsync") {
  return "agent: { id: mqtt-kill, data_dir: " + dir.file("data") +
         " }\n"
         "buffer:\n"
         "  durability: " +
         durability +
         "\n"
         "  block: { max_records: 500, max_wait: 20ms }\n"
         "inputs:\n"
         "  - name: plant\n"
         "    type: mqtt\n"
         "    broker: " +
         broker.url() +
         "\n"
         "    topics: [\"plant/#\"]\n"
         "    qos: 1\n"
         "    keepalive: 5s\n"
         "    retry: { initial: 50ms, max: 500ms }\n"
         "outputs:\n"
         "  - { name: archive, type: file, path: " +
         out + ", sync: true }\n";
}

// Runs the agent once until its input subscribed (a probe message reached the output), so
// that the broker keeps a session for it from then on; stops it. Returns the probes' lines.
size_t subscribeOnce(const std::vector<std::string>& argv, const TempDir& dir,
                     const MosquittoBroker& broker, const std::string& output) {
  Process ferry(argv, dir.path().string(), "ferry-subscribe");
  REQUIRE(eventually([&] { return ferry.stderrText().find("connected to") != std::string::npos; },
                     30s));
  TestPublisher probe(broker.url(), "probe");
  REQUIRE(probe.connect());
  REQUIRE(eventually(
      [&] {
        REQUIRE(probe.publish("plant/probe", {"{\"probe\":1}"}, 1));
        return lineCount(output) > 0;
      },
      30s));
  ferry.signal(SIGTERM);
  REQUIRE(ferry.wait(10s).has_value());
  return lineCount(output);
}

}  // namespace

TEST_SUITE("integration.mqtt_input") {
  TEST_CASE("mqtt input to file survives SIGKILLs mid-stream: every message at least once") {
    TempDir dir;
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    const std::string output = dir.file("out/plant.ndjson");
    writeFile(dir.file("ferry.yaml"), config(dir, broker, output));
    const std::vector<std::string> argv = {FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")};

    const size_t probes = subscribeOnce(argv, dir, broker, output);

    // The publisher runs on its own thread for the whole test; the broker queues what the
    // agent does not take while it is down.
    std::vector<std::string> payloads;
    payloads.reserve(kMessages);
    for (int i = 0; i < kMessages; ++i) {
      payloads.push_back("{\"n\":" + std::to_string(i) + ",\"v\":" + std::to_string(i % 997) + "}");
    }
    bool published = false;
    std::string publish_error;
    std::thread publisher([&] {
      TestPublisher pub(broker.url(), "publisher");
      if (!pub.connect()) {
        publish_error = pub.error();
        return;
      }
      published = pub.publish("plant/line1", payloads, 1, 300s);
      if (!published) publish_error = pub.error();
    });

    std::mt19937 rng(5150);
    int kills = 0;
    int mid_stream = 0;
    for (int round = 0; round < 4; ++round) {
      const size_t before = lineCount(output);
      const size_t left = kMessages + probes - std::min<size_t>(before, kMessages + probes);
      const size_t target = before + 200 + std::uniform_int_distribution<size_t>(0, left / 6)(rng);
      Process ferry(argv, dir.path().string(), "ferry" + std::to_string(round));
      eventually([&] { return lineCount(output) >= target; }, 30s);
      ferry.signal(SIGKILL);
      const auto code = ferry.wait(10s);
      REQUIRE(code.has_value());
      INFO("stderr: ", ferry.stderrText());
      REQUIRE(*code == 128 + SIGKILL);
      ++kills;
      if (scan(output).distinct < static_cast<size_t>(kMessages)) ++mid_stream;
    }

    // A last run takes the rest and stops cleanly; its rate is the steady-state throughput.
    Process ferry(argv, dir.path().string(), "ferry-last");
    REQUIRE(eventually([&] { return ferry.stderrText().find("connected to") != std::string::npos; },
                       30s));
    const size_t start_lines = lineCount(output);
    const auto t0 = std::chrono::steady_clock::now();
    const bool all =
        eventually([&] { return scan(output).distinct >= static_cast<size_t>(kMessages); }, 180s);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t end_lines = lineCount(output);
    publisher.join();
    ferry.signal(SIGTERM);
    const auto code = ferry.wait(10s);
    INFO("stderr: ", ferry.stderrText());
    INFO("broker: ", broker.log());
    REQUIRE_MESSAGE(published, publish_error);
    REQUIRE(code.has_value());
    CHECK(*code == 0);

    const Scan s = scan(output);
    CHECK(all);
    CHECK(s.distinct == static_cast<size_t>(kMessages));  // 0 lost
    CHECK(s.out_of_order == 0);
    CHECK(s.foreign == 0);
    CHECK(s.probes >= probes);
    CHECK(kills == 4);
    CHECK(mid_stream >= 3);
    MESSAGE(
        "mqtt input kill test: ", kills, " SIGKILLs (", mid_stream, " mid-stream), ", s.distinct,
        " of ", kMessages, " messages present, ", s.duplicates, " duplicates (redelivered), ",
        end_lines - start_lines, " records in the last run at ",
        static_cast<int>(static_cast<double>(end_lines - start_lines) / std::max(seconds, 1e-3)),
        " msgs/s");
  }

  // Throughput of the input as the broker's in-flight window and the buffer's durability
  // allow it: 5,000 messages are queued in the input's persistent session while the agent
  // is stopped, then the agent is started and the time until the file holds them all is
  // measured. Printed for the README; each run must deliver every message.
  TEST_CASE("throughput: drain of a queued session by window and durability") {
    constexpr int kQueued = 5000;
    struct Setup {
      int inflight;
      std::string durability;
      bool nodelay;
    };
    for (const Setup& setup :
         {Setup{20, "fsync", false}, Setup{1000, "fsync", false}, Setup{20, "os", false}}) {
      TempDir dir;
      MosquittoBroker broker;
      broker.setExtraConfig("max_inflight_messages " + std::to_string(setup.inflight) + "\n" +
                            (setup.nodelay ? "set_tcp_nodelay true\n" : ""));
      REQUIRE_MESSAGE(broker.start(), broker.log());
      const std::string output = dir.file("out/plant.ndjson");
      writeFile(dir.file("ferry.yaml"), config(dir, broker, output, setup.durability));
      const std::vector<std::string> argv = {FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")};
      subscribeOnce(argv, dir, broker, output);
      {
        TestPublisher pub(broker.url(), "publisher");
        REQUIRE(pub.connect());
        std::vector<std::string> payloads;
        for (int i = 0; i < kQueued; ++i) payloads.push_back("{\"n\":" + std::to_string(i) + "}");
        REQUIRE_MESSAGE(pub.publish("plant/line1", payloads, 1, 120s), pub.error());
      }
      Process ferry(argv, dir.path().string(), "ferry-drain");
      const auto t0 = std::chrono::steady_clock::now();
      const bool all =
          eventually([&] { return scan(output).distinct >= static_cast<size_t>(kQueued); }, 120s);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ferry.signal(SIGTERM);
      REQUIRE(ferry.wait(10s).has_value());
      CHECK(all);
      MESSAGE("mqtt input throughput: max_inflight_messages ", setup.inflight,
              std::string(setup.nodelay ? ", set_tcp_nodelay true" : ""), ", durability ",
              setup.durability, ": ", kQueued, " messages in ", seconds,
              " s = ", static_cast<int>(kQueued / seconds), " msgs/s (agent start included)");
    }
  }
}
