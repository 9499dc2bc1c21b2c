// The real ferry binary forwarding over HTTP: to `ferry receive` (outage of 10 s with
// 1,000,000 records) and to a test server that misbehaves on purpose (flapping 200/503
// with 10 SIGKILLs of the agent, 429 with Retry-After, 400 on one batch, hangs, closes).
// Every check dedupes by Idempotency-Key, as a receiver would, and then asks for every
// record exactly once, in order per stream.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/http_test_server.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Lines {"f":"<tag>","i":<n>,...} for n in [0, count).
void writeLines(const std::string& path, const std::string& tag, size_t count, size_t poison_at = SIZE_MAX) {
  std::ofstream f(path, std::ios::binary);
  for (size_t i = 0; i < count; ++i) {
    f << "{\"f\":\"" << tag << "\",\"i\":" << i << ",\"sensor\":\"t-" << (i % 97) << "\",\"value\":" << (i % 1000) / 10.0;
    if (i == poison_at) f << ",\"poison\":true";
    f << "}\n";
  }
}

long field(std::string_view line, std::string_view name) {
  std::string needle = "\"" + std::string(name) + "\":";
  size_t at = line.find(needle);
  if (at == std::string_view::npos) return -1;
  return std::strtol(line.data() + at + needle.size(), nullptr, 10);
}
std::string tag(std::string_view line) {
  size_t at = line.find("\"f\":\"");
  if (at == std::string_view::npos) return {};
  size_t end = line.find('"', at + 5);
  return std::string(line.substr(at + 5, end - at - 5));
}

// Batches received, deduplicated by idempotency key; checked for stable identities.
struct Received {
  std::mutex mu;
  std::map<std::string, std::string> by_key;       // key → decoded body
  std::map<uint64_t, std::string> by_first_seq;    // first seq → decoded body
  size_t duplicates = 0;
  size_t identity_mismatches = 0;  // same key, different records
  size_t records = 0;

  void add(const HttpRequest& r) {
    std::string body = decodedBody(r);
    std::lock_guard lock(mu);
    const std::string key = r.header("Idempotency-Key");
    auto [it, fresh] = by_key.emplace(key, body);
    if (!fresh) {
      ++duplicates;
      if (it->second != body) ++identity_mismatches;
      return;
    }
    by_first_seq[std::stoull(r.header("Ferry-First-Seq"))] = body;
    records += static_cast<size_t>(std::count(body.begin(), body.end(), '\n'));
  }
  size_t count() {
    std::lock_guard lock(mu);
    return records;
  }
};

// Every tag's records must be 0..expected-1, once, in order (batches in first-seq order).
void checkExactlyOnceInOrder(const std::vector<std::string>& bodies_in_seq_order,
                             const std::map<std::string, size_t>& expected) {
  std::map<std::string, long> next;
  std::map<std::string, size_t> out_of_order;
  for (const std::string& body : bodies_in_seq_order) {
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
      std::string t = tag(line);
      long i = field(line, "i");
      if (i != next[t]) ++out_of_order[t];
      next[t] = i + 1;
    }
  }
  for (const auto& [t, n] : expected) {
    CAPTURE(t);
    CHECK(out_of_order[t] == 0);
    CHECK(next[t] == static_cast<long>(n));
  }
}

std::string keygen(TempDir& dir) {
  const std::string key = dir.file("at-rest.key");
  RunResult kg = runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key}, dir.path().string());
  REQUIRE(kg.code == 0);
  return key;
}

std::string agentConfig(TempDir& dir, const std::string& inputs, const std::string& output_extra,
                        const std::string& url, const std::string& more_outputs = {}, int block_records = 2000) {
  return "agent: { id: gw-7, data_dir: " + dir.file("data") + " }\n"
         "buffer:\n"
         "  durability: fsync\n"
         "  encryption: { key_file: " + dir.file("at-rest.key") + " }\n"
         "  block: { max_records: " + std::to_string(block_records) + ", max_wait: 20ms }\n"
         "inputs:\n" + inputs +
         "outputs:\n"
         "  - name: up\n"
         "    type: http\n"
         "    url: " + url + "\n"
         "    compression: zstd\n" + output_extra + more_outputs;
}

std::string tailInput(const std::string& name, const std::string& path, int batch_records = 1000) {
  return "  - { name: " + name + ", type: tail, paths: [" + path + "], format: json, poll_interval: 20ms,"
         " batch_max_records: " + std::to_string(batch_records) + " }\n";
}

}  // namespace

TEST_SUITE("integration.http") {
  TEST_CASE("outage: receiver down for 10 s while 1,000,000 records are ingested, then all arrive once, in order") {
    TempDir dir;
    keygen(dir);
    writeLines(dir.file("a.log"), "a", 500000);
    writeLines(dir.file("b.log"), "b", 500000);
    const uint16_t port = freePort();
    const std::string metrics = "127.0.0.1:" + std::to_string(freePort());
    writeFile(dir.file("ferry.yaml"),
              agentConfig(dir, tailInput("a", dir.file("a.log")) + tailInput("b", dir.file("b.log")),
                          "    window: 4\n    timeout: 5s\n    retry: { initial: 100ms, max: 1s }\n",
                          "http://127.0.0.1:" + std::to_string(port) + "/ingest") +
                  "metrics: { listen: \"" + metrics + "\" }\n");
    Process agent({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "agent");
    INFO("agent stderr: ", agent.stderrText());
    // Everything is read into the buffer while the upstream is down; the output says so.
    REQUIRE(eventually(
        [&] {
          std::string m = httpGet(metrics, "/metrics");
          return metricValue(m, "ferry_buffer_records{output=\"up\"}") == 1000000;
        },
        20s));
    const auto down_since = std::chrono::steady_clock::now();
    std::string m = httpGet(metrics, "/metrics");
    CHECK(metricValue(m, "ferry_output_state{output=\"up\",state=\"ok\"}") == 0);
    CHECK(metricValue(m, "ferry_output_records_total{output=\"up\"}") <= 0);
    std::this_thread::sleep_for(10s - (std::chrono::steady_clock::now() - down_since));

    Process receiver({FERRY_BINARY, "receive", "--listen", "127.0.0.1:" + std::to_string(port), "--out",
                      dir.file("received")},
                     dir.path().string(), "receiver");
    INFO("receiver stderr: ", receiver.stderrText());
    REQUIRE(eventually(
        [&] {
          return metricValue(httpGet(metrics, "/metrics"), "ferry_output_records_total{output=\"up\"}") == 1000000;
        },
        60s));
    m = httpGet(metrics, "/metrics");
    CHECK(metricValue(m, "ferry_output_state{output=\"up\",state=\"ok\"}") == 1);
    CHECK(metricValue(m, "ferry_retries_total{output=\"up\"}") > 0);
    agent.signal(SIGTERM);
    CHECK(agent.wait(10s) == 0);
    receiver.signal(SIGTERM);
    CHECK(receiver.wait(10s) == 0);

    // One file per batch, named by first seq: name order is sequence order.
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(dir.file("received"))) {
      if (e.is_regular_file() && e.path().extension() == ".ndjson") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end(), [](const fs::path& x, const fs::path& y) {
      return x.filename().string() < y.filename().string();
    });
    REQUIRE(!files.empty());
    CHECK(files.front().parent_path().filename() == "up");
    CHECK(files.front().parent_path().parent_path().filename() == "gw-7");
    std::vector<std::string> bodies;
    for (const auto& f : files) bodies.push_back(readFile(f.string()));
    checkExactlyOnceInOrder(bodies, {{"a", 500000}, {"b", 500000}});
  }

  TEST_CASE("10 SIGKILLs while the upstream flaps between 200 and 503: 0 lost, 0 duplicates after dedupe, order kept") {
    TempDir dir;
    keygen(dir);
    const size_t kLines = 200000;
    writeLines(dir.file("a.log"), "a", kLines / 2);
    writeLines(dir.file("b.log"), "b", kLines / 2);
    Received received;
    const auto t0 = std::chrono::steady_clock::now();
    HttpTestServer server([&](const HttpRequest& r) {
      // 300 ms up, 300 ms down, ...
      auto phase = std::chrono::duration_cast<std::chrono::milliseconds>(r.at - t0).count() / 300;
      if (phase % 2 == 1) return HttpReply{HttpReply::Action::kReply, 503, {{"Retry-After", "0"}}, "flapping"};
      // A slow upstream (~10 ms a batch), so that the run lasts long enough for the kills
      // to land while data flows.
      std::this_thread::sleep_for(20ms);
      received.add(r);
      return HttpReply{};
    });
    writeFile(dir.file("ferry.yaml"),
              agentConfig(dir, tailInput("a", dir.file("a.log"), 250) + tailInput("b", dir.file("b.log"), 250),
                          "    window: 2\n    timeout: 2s\n    retry: { initial: 20ms, max: 200ms }\n",
                          server.url("/ingest"), {}, /*block_records=*/250));
    std::mt19937 rng(20261124);
    std::uniform_int_distribution<int> run_ms(150, 900);
    int mid_stream = 0;
    for (int kill = 0; kill < 10; ++kill) {
      Process agent({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "agent");
      std::this_thread::sleep_for(std::chrono::milliseconds(run_ms(rng)));
      agent.signal(SIGKILL);
      REQUIRE(agent.wait(10s) == 128 + SIGKILL);
      if (received.count() < kLines) ++mid_stream;
    }
    MESSAGE("kills while records were still undelivered: ", mid_stream, " of 10");
    CHECK(mid_stream >= 5);  // the kills hit while data was flowing
    Process agent({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "agent");
    REQUIRE(eventually([&] { return agent.stderrText().find("started agent") != std::string::npos; }, 10s));
    REQUIRE(eventually([&] { return received.count() >= kLines; }, 60s));
    agent.signal(SIGTERM);
    auto code = agent.wait(10s);
    INFO("agent stderr: ", agent.stderrText());
    CHECK(code == 0);

    std::lock_guard lock(received.mu);
    CHECK(received.identity_mismatches == 0);  // a replayed batch is the same batch
    CHECK(received.records == kLines);
    MESSAGE("duplicates (removed by key): ", received.duplicates, ", requests: ", server.requestCount());
    std::vector<std::string> bodies;
    for (const auto& [seq, body] : received.by_first_seq) bodies.push_back(body);
    checkExactlyOnceInOrder(bodies, {{"a", kLines / 2}, {"b", kLines / 2}});
  }

  TEST_CASE("429 with Retry-After: 2 — no request before 2 s have passed") {
    TempDir dir;
    keygen(dir);
    writeLines(dir.file("a.log"), "a", 100);
    std::atomic<int> calls{0};
    HttpTestServer server([&](const HttpRequest&) {
      if (calls++ == 0) return HttpReply{HttpReply::Action::kReply, 429, {{"Retry-After", "2"}}, "slow down"};
      return HttpReply{};
    });
    writeFile(dir.file("ferry.yaml"),
              agentConfig(dir, tailInput("a", dir.file("a.log")),
                          "    retry: { initial: 20ms, max: 100ms }\n", server.url("/ingest")));
    Process agent({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "agent");
    INFO("agent stderr: ", agent.stderrText());
    REQUIRE(eventually([&] { return server.requestCount() >= 2; }, 15s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(10s) == 0);
    auto reqs = server.requests();
    REQUIRE(reqs.size() >= 2);
    // requests()[0].at is before the 429 was even written, so this is a lower bound.
    CHECK(reqs[1].at - reqs[0].at >= 2s);
    CHECK(reqs[1].header("Idempotency-Key") == reqs[0].header("Idempotency-Key"));
  }

  TEST_CASE("400 on one batch: its records land in the dead-letter queue with the reason, later batches flow") {
    TempDir dir;
    keygen(dir);
    const size_t kLines = 20000;
    writeLines(dir.file("a.log"), "a", kLines, /*poison_at=*/7000);
    Received received;
    std::atomic<int> refused_count{-1};
    HttpTestServer server([&](const HttpRequest& r) {
      std::string body = decodedBody(r);
      if (body.find("\"poison\":true") != std::string::npos) {
        refused_count = std::stoi(r.header("Ferry-Count"));
        return HttpReply{HttpReply::Action::kReply, 400, {}, "field \"poison\" is not allowed"};
      }
      received.add(r);
      return HttpReply{};
    });
    const std::string dlq_file = dir.file("dead/letters.ndjson");
    writeFile(dir.file("ferry.yaml"),
              agentConfig(dir, tailInput("a", dir.file("a.log")),
                          "    retry: { initial: 20ms, max: 100ms }\n    dead_letter: { output: dlq }\n",
                          server.url("/ingest"),
                          "  - { name: dlq, type: file, path: " + dlq_file + ", match: \"no-stream-matches-this\" }\n"));
    Process agent({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "agent");
    INFO("agent stderr: ", agent.stderrText());
    REQUIRE(eventually([&] { return refused_count >= 0 && received.count() + static_cast<size_t>(refused_count) >= kLines; }, 30s));
    REQUIRE(eventually([&] { return lineCount(dlq_file) == static_cast<size_t>(refused_count.load()); }, 10s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(10s) == 0);
    CHECK(server.requestCount() == received.by_key.size() + 1);  // the 400 was not retried

    RunResult dl = runCommand({FERRY_BINARY, "buffer", "export", "--dead-letters", "--data-dir", dir.file("data"),
                               "--key-file", dir.file("at-rest.key")},
                              dir.path().string());
    INFO("export: ", dl.out, dl.err);
    REQUIRE(dl.code == 0);
    std::istringstream in(dl.out);
    std::string line;
    std::set<long> dead;
    while (std::getline(in, line)) {
      CHECK(line.find("\"output\":\"up\"") != std::string::npos);
      CHECK(line.find("HTTP 400") != std::string::npos);
      CHECK(line.find("is not allowed") != std::string::npos);
      dead.insert(field(line.substr(line.find("\"record\":")), "i"));
    }
    CHECK(dead.size() == static_cast<size_t>(refused_count.load()));
    CHECK(dead.count(7000) == 1);
    // Forwarded too, wrapped the same way.
    std::string forwarded = readFile(dlq_file);
    CHECK(forwarded.find("\"dead_letter\":{\"output\":\"up\"") != std::string::npos);
    CHECK(forwarded.find("\"poison\":true") != std::string::npos);
    // Everything else was delivered exactly once.
    std::lock_guard lock(received.mu);
    CHECK(received.records + dead.size() == kLines);
    std::set<long> seen;
    for (const auto& [key, body] : received.by_key) {
      std::istringstream b(body);
      while (std::getline(b, line)) seen.insert(field(line, "i"));
    }
    for (long d : dead) CHECK(seen.count(d) == 0);
    CHECK(seen.size() + dead.size() == kLines);
  }

  TEST_CASE("a hung request times out and a closed socket is retried; the batch still arrives once") {
    TempDir dir;
    keygen(dir);
    writeLines(dir.file("a.log"), "a", 1000);
    Received received;
    std::atomic<int> calls{0};
    HttpTestServer server([&](const HttpRequest& r) {
      int n = calls++;
      if (n == 0) return HttpReply{HttpReply::Action::kHang, 0, {}, {}};
      if (n == 1) return HttpReply{HttpReply::Action::kClose, 0, {}, {}};
      received.add(r);
      return HttpReply{};
    });
    writeFile(dir.file("ferry.yaml"),
              agentConfig(dir, tailInput("a", dir.file("a.log")),
                          "    window: 1\n    timeout: 1s\n    retry: { initial: 20ms, max: 100ms }\n",
                          server.url("/ingest")));
    Process agent({FERRY_BINARY, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "agent");
    INFO("agent stderr: ", agent.stderrText());
    REQUIRE(eventually([&] { return received.count() >= 1000; }, 20s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(10s) == 0);
    auto reqs = server.requests();
    REQUIRE(reqs.size() >= 3);
    CHECK(reqs[0].header("Idempotency-Key") == reqs[2].header("Idempotency-Key"));
    CHECK(reqs[1].header("Idempotency-Key") == reqs[2].header("Idempotency-Key"));
    std::lock_guard lock(received.mu);
    std::vector<std::string> bodies;
    for (const auto& [seq, body] : received.by_first_seq) bodies.push_back(body);
    checkExactlyOnceInOrder(bodies, {{"a", 1000}});
  }
}
