// The real ferry binary: tail of a 200,000-line file into the mqtt output at QoS 1, with the
// broker killed (SIGKILL) mid-stream and restarted on the same port. A subscriber with a
// persistent session, subscribed before the agent starts, must see every record: duplicates
// (a block resent after a retry) are allowed and removed by their ferry-key; none lost, and
// after dedupe the records come in order. The subscriber is connected when the broker dies,
// and Mosquitto forwards a message to connected subscribers before it acks it, so nothing
// acked is lost with the broker (see the output's README for what a crash can lose for
// offline subscribers).
#include <doctest/doctest.h>
#include <signal.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "tests/support/mosquitto.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

constexpr size_t kLines = 200000;

// The "seq" of every line of an NDJSON payload, in order; false if a line has none.
bool seqsOf(const std::string& payload, std::vector<uint64_t>* out) {
  constexpr std::string_view kField = "\"seq\":";
  size_t pos = 0;
  while (pos < payload.size()) {
    const size_t end = payload.find('\n', pos);
    if (end == std::string::npos) return false;  // every record ends with '\n'
    const std::string_view line(payload.data() + pos, end - pos);
    const size_t f = line.find(kField);
    if (f == std::string_view::npos) return false;
    uint64_t v = 0;
    const char* first = line.data() + f + kField.size();
    if (std::from_chars(first, line.data() + line.size(), v).ec != std::errc()) return false;
    out->push_back(v);
    pos = end + 1;
  }
  return true;
}

struct Tally {
  size_t messages = 0;
  size_t duplicates = 0;  // messages whose ferry-key was seen before
  size_t records = 0;     // after dedupe
  std::map<uint64_t, std::vector<uint64_t>> blocks;  // ferry-first-seq -> record seqs
  bool malformed = false;
};

Tally tally(const std::vector<ReceivedMessage>& got) {
  Tally t;
  std::map<std::string, bool> keys;
  for (const ReceivedMessage& m : got) {
    ++t.messages;
    const std::string key = m.property("ferry-key");
    if (key.empty()) {
      t.malformed = true;
      continue;
    }
    if (!keys.emplace(key, true).second) {
      ++t.duplicates;
      continue;
    }
    std::vector<uint64_t> seqs;
    if (!seqsOf(m.payload, &seqs) || std::to_string(seqs.size()) != m.property("ferry-count")) {
      t.malformed = true;
      continue;
    }
    t.records += seqs.size();
    t.blocks[std::stoull(m.property("ferry-first-seq"))] = std::move(seqs);
  }
  return t;
}

// Records in distinct blocks so far (by ferry-key and ferry-count; cheap enough to run on
// every arrival).
size_t uniqueRecords(const std::vector<ReceivedMessage>& got) {
  std::map<std::string, size_t> blocks;
  for (const ReceivedMessage& m : got) {
    blocks.emplace(m.property("ferry-key"), std::strtoull(m.property("ferry-count").c_str(), nullptr, 10));
  }
  size_t n = 0;
  for (const auto& [key, count] : blocks) n += count;
  return n;
}

}  // namespace

TEST_SUITE("integration.mqtt_output") {
  TEST_CASE("tail to MQTT at QoS 1 across a broker SIGKILL and restart: 0 records lost, in order") {
    TempDir dir;
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    TestSubscriber sub(broker.url(), "it-subscriber");
    REQUIRE_MESSAGE(sub.subscribe("ferry/#"), sub.error());

    const std::string input = dir.file("sensors.log");
    {
      std::ofstream f(input, std::ios::binary);
      for (size_t i = 0; i < kLines; ++i) {
        f << "{\"seq\":" << i << ",\"sensor\":\"t-" << (i % 97) << "\",\"value\":" << (i % 1000) / 10.0
          << "}\n";
      }
    }
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: mqtt-it }\n"
              "buffer:\n"
              "  durability: fsync\n"
              "  block: { max_records: 500, max_wait: 20ms }\n"
              "inputs:\n"
              "  - { name: sensors, type: tail, paths: [" + input + "], format: json }\n"
              "outputs:\n"
              "  - name: up\n"
              "    type: mqtt\n"
              "    broker: " + broker.url() + "\n"
              "    qos: 1\n"
              "    timeout: 5s\n"
              "    retry: { initial: 100ms, max: 1s }\n");

    const auto t0 = std::chrono::steady_clock::now();
    Process ferry({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml"), "--data-dir", dir.file("data")},
                  dir.path().string(), "ferry");
    REQUIRE(eventually([&] { return ferry.stderrText().find("started agent") != std::string::npos; }, 15s));

    // Kill the broker once a quarter of the records arrived, while more are on their way.
    const bool quarter = sub.waitFor(
        [](const std::vector<ReceivedMessage>& got) { return uniqueRecords(got) >= kLines / 4; },
        30s);
    REQUIRE_MESSAGE(quarter, ferry.stderrText());
    broker.kill();
    const size_t at_kill = uniqueRecords(sub.messages());
    std::this_thread::sleep_for(2s);
    REQUIRE_MESSAGE(broker.restart(), broker.log());

    const bool all = sub.waitFor(
        [](const std::vector<ReceivedMessage>& got) { return uniqueRecords(got) >= kLines; }, 45s);
    const auto took = std::chrono::steady_clock::now() - t0;
    ferry.signal(SIGTERM);
    const auto code = ferry.wait(10s);

    const Tally t = tally(sub.messages());
    INFO("ferry stderr: ", ferry.stderrText());
    if (!all) MESSAGE("broker log:\n", broker.log());
    CHECK_FALSE(t.malformed);
    CHECK(all);
    CHECK(at_kill < kLines);  // the kill hit mid-stream
    // Every sequence number once after dedupe, in order across blocks (ordered by block seq).
    uint64_t next = 0;
    size_t out_of_order = 0;
    for (const auto& [first_seq, seqs] : t.blocks) {
      for (uint64_t s : seqs) {
        if (s != next) ++out_of_order;
        next = s + 1;
      }
    }
    CHECK(out_of_order == 0);
    CHECK(t.records == kLines);
    CHECK(next == kLines);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    MESSAGE("mqtt kill/restart: ", t.records, " records in ", t.blocks.size(), " blocks delivered in ",
            std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), " ms; ", at_kill,
            " records before the SIGKILL; ", t.messages, " messages, ", t.duplicates,
            " duplicates removed by ferry-key");
  }
}
