// The real ferry binary with the `http` input: good, mixed and oversized bodies POSTed by a
// client, records read back from a file output after a clean stop.
#include <doctest/doctest.h>
#include <signal.h>

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
