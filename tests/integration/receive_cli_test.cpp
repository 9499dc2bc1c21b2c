// `ferry receive` and `ferry decode` through the real binary.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <string>

#include "agent/codec/envelope.h"
#include "agent/codec/key_file.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace ferry::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

long post(int port, const std::string& body, const std::vector<std::string>& headers, std::string* reply) {
  HttpResponse r = httpRequest("POST", "http://127.0.0.1:" + std::to_string(port) + "/ingest", body, headers);
  *reply += r.body;
  return r.code;
}

Block sampleBlock(uint64_t seq) {
  Block b;
  b.seq = seq;
  b.lineage.stream = "sensors";
  b.records.append("{\"t\":1,\"v\":20.5}");
  b.records.append("{\"t\":2,\"v\":21}");
  b.records.append("{\"t\":3,\"v\":19.75}");
  return b;
}

const std::string kNdjson = "{\"t\":1,\"v\":20.5}\n{\"t\":2,\"v\":21}\n{\"t\":3,\"v\":19.75}\n";

}  // namespace

TEST_SUITE("integration.receive") {
  TEST_CASE("ferry receive on port 0 stores batches once and exits 0 on SIGTERM with totals") {
    TempDir dir;
    const std::string key_path = dir.file("wire.key");
    REQUIRE(runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key_path}, dir.path().string()).code == 0);
    auto key = loadKeyFile(key_path);
    REQUIRE(key.isOk());

    Process rx({FERRY_BINARY, "receive", "--listen", "127.0.0.1:0", "--out", dir.file("out"), "--key", key_path,
                "--min-free", "0"},
               dir.path().string(), "receive");
    int port = 0;
    bool up = eventually(
        [&] {
          std::string out = rx.stdoutText();
          size_t at = out.find("listening on 127.0.0.1:");
          if (at == std::string::npos || out.find('\n', at) == std::string::npos) return false;
          port = std::stoi(out.substr(at + std::string("listening on 127.0.0.1:").size()));
          return true;
        },
        10s);
    INFO(rx.stderrText());
    REQUIRE(up);
    REQUIRE(port > 0);

    EnvelopeSealer sealer(*key, 3);
    std::string frame;
    REQUIRE(sealer.seal(sampleBlock(17), "gw-9", &frame).isOk());
    const std::vector<std::string> env_headers = {
        "Idempotency-Key: gw-9/upstream/17", "Ferry-Agent: gw-9", "Ferry-Stream: sensors",
        "Ferry-First-Seq: 17", "Ferry-Count: 3", "Content-Type: application/vnd.ferry.envelope"};
    std::string reply;
    CHECK(post(port, frame, env_headers, &reply) == 200);
    CHECK(reply == "{\"accepted\":3,\"duplicate\":false}\n");
    reply.clear();
    CHECK(post(port, frame, env_headers, &reply) == 200);
    CHECK(reply.find("\"duplicate\":true") != std::string::npos);
    reply.clear();
    CHECK(post(port, kNdjson, {"Idempotency-Key: gw-9/upstream/20", "Ferry-Count: 3"}, &reply) == 200);
    reply.clear();
    CHECK(post(port, kNdjson, {"Ferry-Count: 3"}, &reply) == 400);
    CHECK(reply.find("Idempotency-Key") != std::string::npos);

    const fs::path batch_dir = dir.path() / "out" / "gw-9" / "upstream";
    CHECK(readFile((batch_dir / "00000000000000000017.ndjson").string()) == kNdjson);
    CHECK(readFile((batch_dir / "00000000000000000020.ndjson").string()) == kNdjson);

    rx.signal(SIGTERM);
    REQUIRE(rx.wait(5s) == std::optional<int>(0));
    CHECK(rx.stdoutText().find("totals: batches 2, records 6,") != std::string::npos);
    CHECK(rx.stdoutText().find("duplicates 1, rejected 1") != std::string::npos);
  }

  TEST_CASE("ferry decode prints an envelope's records and fails clearly on bad input") {
    TempDir dir;
    const std::string key_path = dir.file("wire.key");
    const std::string other_path = dir.file("other.key");
    const std::string cwd = dir.path().string();
    REQUIRE(runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", key_path}, cwd).code == 0);
    REQUIRE(runCommand({FERRY_BINARY, "keygen", "--type", "aes256", "--out", other_path}, cwd).code == 0);
    auto key = loadKeyFile(key_path);
    REQUIRE(key.isOk());
    EnvelopeSealer sealer(*key, 3);
    std::string frame;
    REQUIRE(sealer.seal(sampleBlock(5), "gw-1", &frame).isOk());
    writeFile(dir.file("env.bin"), frame);

    RunResult ok = runCommand({FERRY_BINARY, "decode", "--key", other_path, "--key", key_path, "-v", "--in",
                               dir.file("env.bin")},
                              cwd);
    CHECK(ok.code == 0);
    CHECK(ok.out == kNdjson);
    CHECK(ok.err.find("agent gw-1, stream sensors, first seq 5, 3 records") != std::string::npos);

    // From stdin, as documented.
    RunResult piped = runCommand(
        {"/bin/sh", "-c", std::string(FERRY_BINARY) + " decode --key " + key_path + " < " + dir.file("env.bin")}, cwd);
    CHECK(piped.code == 0);
    CHECK(piped.out == kNdjson);

    char id[16];
    std::snprintf(id, sizeof(id), "0x%08x", key->id);
    RunResult wrong = runCommand({FERRY_BINARY, "decode", "--key", other_path, "--in", dir.file("env.bin")}, cwd);
    CHECK(wrong.code == 1);
    CHECK(wrong.out.empty());
    CHECK(wrong.err.find(id) != std::string::npos);

    RunResult none = runCommand({FERRY_BINARY, "decode", "--in", dir.file("env.bin")}, cwd);
    CHECK(none.code == 1);
    CHECK(none.err.find("--key") != std::string::npos);

    std::string damaged = frame;
    damaged[damaged.size() - 20] ^= 0x10;
    writeFile(dir.file("bad.bin"), damaged);
    RunResult bad = runCommand({FERRY_BINARY, "decode", "--key", key_path, "--in", dir.file("bad.bin")}, cwd);
    CHECK(bad.code == 1);
    CHECK(bad.out.empty());
    CHECK(bad.err.find("corruption") != std::string::npos);

    writeFile(dir.file("plain.ndjson"), kNdjson);
    RunResult notenv = runCommand({FERRY_BINARY, "decode", "--in", dir.file("plain.ndjson")}, cwd);
    CHECK(notenv.code == 1);
    CHECK(notenv.err.find("not an envelope") != std::string::npos);
  }
}
