// The real ferry binary with the `http` input: good, mixed and oversized bodies POSTed by a
// client, records read back from a file output after a clean stop.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <set>
#include <cstdio>
#include <sstream>
#include <string>

#include "tests/support/http_client.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

const std::string kFerry = FERRY_BINARY;

// POSTs `body` with the bearer token; returns the status (0 when the request failed).
long postBody(const std::string& url, const std::string& body, std::string* reply) {
  HttpResponse r = httpRequest("POST", url, body, {"Authorization: Bearer it-token"}, 10000);
  *reply += r.body;
  return r.code;
}

}  // namespace

TEST_SUITE("integration.http_input") {
  TEST_CASE("good, mixed and oversized bodies: 200 / 200 with a refusal / 413, records kept") {
    TempDir dir;
    const uint16_t port = freePort();
    const std::string address = "127.0.0.1:" + std::to_string(port);
    const std::string out = dir.file("out/records.ndjson");
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: it-gw, data_dir: " + dir.file("data") + " }\n"
              "inputs:\n"
              "  - name: push\n"
              "    type: http\n"
              "    listen: " + address + "\n"
              "    path: /ingest\n"
              "    auth: { bearer: it-token }\n"
              "    max_body_bytes: 4KiB\n"
              "outputs:\n"
              "  - name: local\n"
              "    type: file\n"
              "    path: " + out + "\n");
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    // Up once GET /ingest answers 405 (a GET never adds records).
    bool up = eventually([&] { return httpGet(address, "/ingest").find(" 405 ") != std::string::npos; },
                         15s);
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(up);

    const std::string url = "http://" + address + "/ingest";
    std::string reply;
    CHECK(postBody(url, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n", &reply) == 200);
    CHECK(reply == "{\"accepted\":3,\"refused\":0}\n");
    reply.clear();
    CHECK(postBody(url, "[{\"n\":4},\"bad\",{\"n\":5}]", &reply) == 200);
    CHECK(reply.starts_with("{\"accepted\":2,\"refused\":1,"));
    reply.clear();
    CHECK(postBody(url, "not json\n", &reply) == 400);
    std::string big;
    while (big.size() <= 8192) big += "{\"n\":999,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n";
    reply.clear();
    CHECK(postBody(url, big, &reply) == 413);

    CHECK(eventually([&] { return lineCount(out) >= 5; }, 15s));
    ferry.signal(SIGTERM);
    auto code = ferry.wait(10s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);

    std::istringstream in(readFile(out));
    std::string all;
    for (std::string line; std::getline(in, line);) all += line + "\n";
    CHECK(lineCount(out) == 5);
    for (int n = 1; n <= 5; ++n) {
      CHECK(all.find("\"n\":" + std::to_string(n)) != std::string::npos);
    }
    CHECK(all.find("\"n\":999") == std::string::npos);
  }
}

TEST_SUITE("integration.http_input") {
  TEST_CASE("a full buffer answers 503 with Retry-After; every record answered 200 arrives once room is back") {
    TempDir dir;
    const uint16_t port = freePort();
    const uint16_t upstream_port = freePort();  // nothing listens yet: the output cannot deliver
    const std::string address = "127.0.0.1:" + std::to_string(port);
    writeFile(dir.file("ferry.yaml"),
              "agent: { id: it-full, data_dir: " + dir.file("data") + " }\n"
              "buffer: { max_bytes: 256KiB, when_full: block, block: { max_bytes: 16KiB }, compression: { codec: none } }\n"
              "inputs:\n"
              "  - name: push\n"
              "    type: http\n"
              "    listen: " + address + "\n"
              "    busy_timeout: 200ms\n"
              "outputs:\n"
              "  - name: up\n"
              "    type: http\n"
              "    url: http://127.0.0.1:" + std::to_string(upstream_port) + "/ingest\n"
              "    retry: { initial: 50ms, max: 200ms }\n");
    Process ferry({kFerry, "run", "-c", dir.file("ferry.yaml")}, dir.path().string(), "ferry");
    REQUIRE(eventually([&] { return httpGet(address, "/").find(" 405 ") != std::string::npos; }, 15s));
    const std::string url = "http://" + address + "/";
    // ~2 KiB per request: the 256 KiB buffer fills after about a hundred requests.
    std::set<int> answered_ok;
    long last = 0;
    HttpResponse busy;
    for (int i = 0; i < 400 && last != 503; ++i) {
      std::string body;
      for (int j = 0; j < 20; ++j) {
        body += "{\"req\":" + std::to_string(i) + ",\"j\":" + std::to_string(j) +
                ",\"pad\":\"" + std::string(64, static_cast<char>('a' + j % 26)) + "\"}\n";
      }
      const auto t0 = std::chrono::steady_clock::now();
      // A request staged just before the buffer filled waits for its commit (commit_timeout
      // 10 s); the client gives up after 3 s. Its records may still arrive (at least once).
      HttpResponse r = httpRequest("POST", url, body, {}, 3000);
      last = r.code;
      if (r.code == 200) answered_ok.insert(i);
      if (r.code == 503) {
        busy = r;
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // busy_timeout, not a hang
      }
    }
    INFO("stderr: ", ferry.stderrText());
    REQUIRE(last == 503);
    CHECK(answered_ok.size() > 10);
    CHECK_FALSE(busy.header("retry-after").empty());

    // The upstream comes up: the backlog drains; every record answered 200 arrives exactly once.
    Process receiver({kFerry, "receive", "--listen", "127.0.0.1:" + std::to_string(upstream_port), "--out",
                      dir.file("received")},
                     dir.path().string(), "receive");
    auto received = [&] {
      std::map<std::pair<int, int>, int> seen;  // (req, j) → copies
      std::error_code ec;
      for (const auto& f : std::filesystem::recursive_directory_iterator(dir.file("received"), ec)) {
        if (!f.is_regular_file() || f.path().extension() != ".ndjson") continue;
        std::istringstream in(readFile(f.path().string()));
        for (std::string line; std::getline(in, line);) {
          int req = -1;
          int j = -1;
          if (std::sscanf(line.c_str(), "{\"req\":%d,\"j\":%d", &req, &j) == 2) ++seen[{req, j}];
        }
      }
      return seen;
    };
    auto all_ok_arrived = [&] {
      auto seen = received();
      for (int req : answered_ok) {
        for (int j = 0; j < 20; ++j) {
          if (!seen.contains({req, j})) return false;
        }
      }
      return true;
    };
    CHECK(eventually(all_ok_arrived, 30s));
    for (const auto& [key, copies] : received()) {
      INFO("req ", key.first, " j ", key.second);
      CHECK(copies == 1);
    }
    ferry.signal(SIGTERM);
    CHECK(ferry.wait(10s).value_or(-1) == 0);
    receiver.signal(SIGTERM);
    (void)receiver.wait(10s);
  }
}
