#include "agent/receive/receiver.h"

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agent/codec/envelope.h"
#include "agent/codec/wire_compress.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using ferry::test::readFile;
using ferry::test::TempDir;
namespace fs = std::filesystem;

namespace {

using HttpReply = ferry::test::HttpResponse;

// One keep-alive connection to the receiver.
class Client {
 public:
  explicit Client(uint16_t port) : base_("http://127.0.0.1:" + std::to_string(port)) {}

  HttpReply send(const std::string& method, const std::string& path, const std::string& body,
                 const std::vector<std::string>& headers) {
    HttpReply r = http_.request(method, base_ + path, body, headers);
    REQUIRE_MESSAGE(r.code != 0, r.error);
    return r;
  }
  HttpReply post(const std::string& body, const std::vector<std::string>& headers) {
    return send("POST", "/ingest", body, headers);
  }

 private:
  std::string base_;
  ferry::test::HttpClient http_;
};

KeyMaterial testKey(uint8_t fill) {
  KeyMaterial k;
  k.bytes.fill(fill);
  k.id = keyIdOf(k.bytes);
  return k;
}

const std::string kTwo = "{\"n\":1}\n{\"n\":2}\n";

std::string batchFile(const TempDir& dir, const std::string& agent, const std::string& output, uint64_t seq) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu.ndjson", static_cast<unsigned long long>(seq));
  return (dir.path() / "out" / agent / output / name).string();
}

// Test directories may sit on a nearly full filesystem; only the min_free test sets it.
ReceiverOptions testOptions() {
  ReceiverOptions o;
  o.min_free = 0;
  return o;
}

struct Fixture {
  TempDir dir;
  Receiver receiver;
  explicit Fixture(ReceiverOptions opts = testOptions(), std::vector<KeyMaterial> keys = {}) {
    REQUIRE(receiver.start("127.0.0.1:0", dir.file("out"), std::move(keys), opts).isOk());
    REQUIRE(receiver.port() != 0);
  }
};

}  // namespace

TEST_SUITE("receive.receiver") {
  TEST_CASE("an NDJSON batch is written to its own file, then answered 200") {
    Fixture f;
    Client c(f.receiver.port());
    HttpReply r = c.post(kTwo, {"Idempotency-Key: gw-01/up/42", "Ferry-Agent: gw-01", "Ferry-Stream: s",
                                "Ferry-First-Seq: 42", "Ferry-Count: 2", "Content-Type: application/x-ndjson"});
    CHECK(r.code == 200);
    CHECK(r.body == "{\"accepted\":2,\"duplicate\":false}\n");
    CHECK(readFile(batchFile(f.dir, "gw-01", "up", 42)) == kTwo);
    CHECK(f.receiver.stats().batches == 1);
    CHECK(f.receiver.stats().records == 2);
    // No temp files are left beside it.
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(f.dir.path() / "out" / "gw-01" / "up")) entries += e.is_regular_file();
    CHECK(entries == 1);
    // A body without its final newline still makes whole lines in the file.
    CHECK(c.post("{\"n\":3}", {"Idempotency-Key: gw-01/up/44"}).code == 200);
    CHECK(readFile(batchFile(f.dir, "gw-01", "up", 44)) == "{\"n\":3}\n");
    CHECK(c.send("PUT", "/any/path", kTwo, {"Idempotency-Key: gw-01/up/45"}).code == 200);
  }

  TEST_CASE("zstd and gzip bodies are decoded") {
    Fixture f;
    Client c(f.receiver.port());
    for (WireEncoding e : {WireEncoding::kZstd, WireEncoding::kGzip}) {
      WireCompressor comp(e, 0);
      std::string body;
      REQUIRE(comp.compress(kTwo, &body).isOk());
      std::string name(wireEncodingName(e));
      uint64_t seq = e == WireEncoding::kZstd ? 1 : 2;
      HttpReply r = c.post(body, {"Idempotency-Key: a/" + name + "/" + std::to_string(seq),
                                  "Content-Encoding: " + name, "Ferry-Count: 2"});
      CHECK_MESSAGE(r.code == 200, r.body);
      CHECK(readFile(batchFile(f.dir, "a", name, seq)) == kTwo);
    }
  }

  TEST_CASE("envelopes are opened with the configured key; plain ones are then refused") {
    KeyMaterial key = testKey(7);
    Fixture f(testOptions(), {testKey(1), key});
    Client c(f.receiver.port());
    Block b;
    b.seq = 9;
    b.lineage.stream = "s";
    b.records.append("{\"n\":1}");
    b.records.append("{\"n\":2}");
    std::string frame;
    EnvelopeSealer sealer(key, 3);
    REQUIRE(sealer.seal(b, "gw", &frame).isOk());
    const std::string type = "Content-Type: application/vnd.ferry.envelope";
    HttpReply r = c.post(frame, {"Idempotency-Key: gw/env/9", type, "Ferry-Count: 2"});
    CHECK_MESSAGE(r.code == 200, r.body);
    CHECK(readFile(batchFile(f.dir, "gw", "env", 9)) == kTwo);

    // Compressed on the wire as well.
    WireCompressor gz(WireEncoding::kGzip, 0);
    std::string body;
    REQUIRE(gz.compress(frame, &body).isOk());
    r = c.post(body, {"Idempotency-Key: gw/env-gz/9", type, "Content-Encoding: gzip"});
    CHECK_MESSAGE(r.code == 200, r.body);

    EnvelopeSealer plain(std::nullopt, 3);
    REQUIRE(plain.seal(b, "gw", &frame).isOk());
    r = c.post(frame, {"Idempotency-Key: gw/env/10", type});
    CHECK(r.code == 400);
    CHECK(r.body.find("not encrypted") != std::string::npos);

    EnvelopeSealer other(testKey(99), 3);
    REQUIRE(other.seal(b, "gw", &frame).isOk());
    r = c.post(frame, {"Idempotency-Key: gw/env/11", type});
    CHECK(r.code == 503);  // a key this receiver lacks: its config is behind, the sender keeps the batch
    CHECK(r.body.find("key 0x") != std::string::npos);

    frame[frame.size() / 2] ^= 1;
    r = c.post(frame, {"Idempotency-Key: gw/env/12", type});
    CHECK(r.code == 400);

    // The envelope's first seq must be the idempotency key's.
    REQUIRE(sealer.seal(b, "gw", &frame).isOk());
    r = c.post(frame, {"Idempotency-Key: gw/env/13", type});
    CHECK(r.code == 400);
    CHECK_FALSE(fs::exists(batchFile(f.dir, "gw", "env", 13)));
  }

  TEST_CASE("a duplicate is answered 200, counted and not rewritten, also after a restart") {
    TempDir dir;
    ReceiverOptions opts = testOptions();
    const std::vector<std::string> headers = {"Idempotency-Key: gw/up/7", "Ferry-Count: 2"};
    std::string path;
    {
      Receiver rx;
      REQUIRE(rx.start("127.0.0.1:0", dir.file("out"), {}, opts).isOk());
      Client c(rx.port());
      CHECK(c.post(kTwo, headers).code == 200);
      char name[32];
      std::snprintf(name, sizeof(name), "%020d.ndjson", 7);
      path = (dir.path() / "out" / "gw" / "up" / name).string();
      // Mark the file: a rewrite would lose the mark.
      test::writeFile(path, "{\"marked\":1}\n{\"marked\":2}\n");
      HttpReply r = c.post(kTwo, headers);
      CHECK(r.code == 200);
      CHECK(r.body == "{\"accepted\":2,\"duplicate\":true}\n");
      CHECK(rx.stats().duplicates == 1);
      CHECK(rx.stats().batches == 1);
    }
    Receiver again;
    REQUIRE(again.start("127.0.0.1:0", dir.file("out"), {}, opts).isOk());
    Client c(again.port());
    HttpReply r = c.post(kTwo, headers);
    CHECK(r.code == 200);
    CHECK(r.body.find("\"duplicate\":true") != std::string::npos);
    CHECK(again.stats().duplicates == 1);
    CHECK(readFile(path) == "{\"marked\":1}\n{\"marked\":2}\n");
  }

  TEST_CASE("concurrent requests with one key write one file and count the rest as duplicates") {
    Fixture f;
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 6; ++i) {
      threads.emplace_back([&] {
        const std::string url = "http://127.0.0.1:" + std::to_string(f.receiver.port()) + "/";
        if (ferry::test::httpRequest("POST", url, kTwo, {"Idempotency-Key: gw/race/1"}).code == 200) ok.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    CHECK(ok.load() == 6);
    CHECK(f.receiver.stats().batches == 1);
    CHECK(f.receiver.stats().duplicates == 5);
    CHECK(readFile(batchFile(f.dir, "gw", "race", 1)) == kTwo);
  }

  TEST_CASE("bad requests are answered 400 with the reason") {
    Fixture f;
    Client c(f.receiver.port());
    struct Case {
      std::string body;
      std::vector<std::string> headers;
      std::string reason;
    };
    std::vector<Case> cases = {
        {kTwo, {}, "missing Idempotency-Key"},
        {kTwo, {"Idempotency-Key: gw/up"}, "expected <agent>/<output>/<first-seq>"},
        {kTwo, {"Idempotency-Key: gw/up/x1"}, "not a number"},
        {kTwo, {"Idempotency-Key: ../up/1"}, "non-empty names"},
        {kTwo, {"Idempotency-Key: gw/../1"}, "non-empty names"},
        {kTwo, {"Idempotency-Key: /up/1"}, "non-empty names"},
        {kTwo, {"Idempotency-Key: gw/a/b/1"}, "expected <agent>/<output>/<first-seq>"},
        {kTwo, {"Idempotency-Key: gw/up/1", "Ferry-Count: 3"}, "Ferry-Count 3"},
        {kTwo, {"Idempotency-Key: gw/up/1", "Ferry-First-Seq: 2"}, "Ferry-First-Seq 2"},
        {"not zstd", {"Idempotency-Key: gw/up/1", "Content-Encoding: zstd"}, "does not decode as zstd"},
        {"not gzip", {"Idempotency-Key: gw/up/1", "Content-Encoding: gzip"}, "does not decode as gzip"},
        {kTwo, {"Idempotency-Key: gw/up/1", "Content-Encoding: br"}, "unsupported Content-Encoding"},
        {"[1,2]\n", {"Idempotency-Key: gw/up/1"}, "not a JSON object"},
        {"{\"a\":1}\n\n", {"Idempotency-Key: gw/up/1"}, "record 2"},
        {"garbage", {"Idempotency-Key: gw/up/1", "Content-Type: application/vnd.ferry.envelope"},
         "envelope refused"},
    };
    for (const Case& k : cases) {
      CAPTURE(k.reason);
      HttpReply r = c.post(k.body, k.headers);
      CHECK(r.code == 400);
      CHECK_MESSAGE(r.body.find(k.reason) != std::string::npos, r.body);
    }
    CHECK(f.receiver.stats().rejected == cases.size());
    CHECK(f.receiver.stats().batches == 0);
    CHECK_FALSE(fs::exists(f.dir.path() / "out" / "gw"));
    CHECK_FALSE(fs::exists(f.dir.path() / "up"));
  }

  TEST_CASE("bodies over max_body, raw or decoded, are answered 413") {
    ReceiverOptions opts = testOptions();
    opts.max_body = 1000;
    Fixture f(opts);
    Client c(f.receiver.port());
    std::string big;
    while (big.size() <= 1000) big += "{\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n";
    CHECK(c.post(big, {"Idempotency-Key: gw/up/1"}).code == 413);
    // Small on the wire, too large once decoded.
    WireCompressor z(WireEncoding::kZstd, 0);
    std::string small;
    REQUIRE(z.compress(big, &small).isOk());
    REQUIRE(small.size() < 1000);
    CHECK(c.post(small, {"Idempotency-Key: gw/up/1", "Content-Encoding: zstd"}).code == 413);
    // The connection still serves a good batch afterwards.
    Client c2(f.receiver.port());
    CHECK(c2.post(kTwo, {"Idempotency-Key: gw/up/2"}).code == 200);
  }

  TEST_CASE("below min_free the answer is 503 with Retry-After") {
    ReceiverOptions opts = testOptions();
    opts.min_free = uint64_t{1} << 62;
    Fixture f(opts);
    Client c(f.receiver.port());
    HttpReply r = c.post(kTwo, {"Idempotency-Key: gw/up/1"});
    CHECK(r.code == 503);
    CHECK(r.header("Retry-After") == "5");
    CHECK(f.receiver.stats().unavailable == 1);
    CHECK_FALSE(fs::exists(batchFile(f.dir, "gw", "up", 1)));
  }

  TEST_CASE("an I/O error other than a full disk is answered 500 and leaves no file") {
    Fixture f;
    Client c(f.receiver.port());
    // The agent's directory is taken by a regular file: mkdir fails with ENOTDIR/EEXIST.
    test::writeFile(f.dir.file("out/blocked"), "x");
    HttpReply r = c.post(kTwo, {"Idempotency-Key: blocked/up/1"});
    CHECK(r.code == 500);
    CHECK(r.body.find("cannot store the batch") != std::string::npos);
    CHECK(f.receiver.stats().errors == 1);
    CHECK(c.post(kTwo, {"Idempotency-Key: fine/up/1"}).code == 200);
  }

  TEST_CASE("healthz, other methods and bad listen addresses") {
    Fixture f;
    Client c(f.receiver.port());
    CHECK(c.send("GET", "/healthz", "", {}).code == 200);
    CHECK(c.send("GET", "/nothing", "", {}).code == 404);
    CHECK(c.send("DELETE", "/ingest", "", {}).code == 405);

    TempDir dir;
    Receiver rx;
    CHECK(rx.start("127.0.0.1", dir.file("o"), {}, {}).code() == StatusCode::kInvalidArgument);
    CHECK(rx.start("127.0.0.1:99999", dir.file("o"), {}, {}).code() == StatusCode::kInvalidArgument);
    // The port is taken by the fixture.
    Status busy = rx.start("127.0.0.1:" + std::to_string(f.receiver.port()), dir.file("o"), {}, testOptions());
    CHECK(busy.code() == StatusCode::kIoError);
    Receiver any;
    REQUIRE(any.start(":0", dir.file("o"), {}, testOptions()).isOk());
    CHECK(any.boundAddress().rfind("0.0.0.0:", 0) == 0);
  }
}
