#include "plugins/inputs/http/http_input.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/buffer/memory_buffer.h"
#include "agent/codec/wire_compress.h"
#include "agent/core/pipeline.h"
#include "ferry/metrics.h"
#include "tests/support/fakes.h"
#include "tests/support/http_client.h"

namespace ferry {
namespace {

using Response = test::HttpResponse;

// One request; on `client` when given (its connection stays open), else on a fresh one.
Response request(uint16_t port, const std::string& path, const std::string& method,
                 const std::string& body, const std::vector<std::string>& headers = {},
                 test::HttpClient* client = nullptr) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  Response r = client != nullptr ? client->request(method, url, body, headers, 10000)
                                 : test::httpRequest(method, url, body, headers, 10000);
  INFO(r.error);
  CHECK(r.code != 0);
  return r;
}

Response post(uint16_t port, const std::string& body, const std::vector<std::string>& headers = {}) {
  return request(port, "/ingest", "POST", body, headers);
}

std::string compress(WireEncoding encoding, const std::string& text) {
  WireCompressor c(encoding, 0);
  std::string out;
  REQUIRE(c.compress(text, &out).isOk());
  return out;
}

// A started input on a free loopback port with a capturing emitter.
struct Server {
  explicit Server(HttpInputSettings s = {}) {
    s.listen = "127.0.0.1:0";
    if (s.path == "/") s.path = "/ingest";
    input = std::make_unique<HttpInput>(std::move(s), "push", &metrics);
    REQUIRE(input->start(emitter).isOk());
    REQUIRE(input->port() != 0);
  }
  ~Server() { input->stop(); }
  uint16_t port() const { return input->port(); }
  double dropped() {
    return static_cast<double>(
        metrics.counter("ferry_dropped_records_total", {{"reason", "http_bad_json"}}).value());
  }

  MetricsRegistry metrics;
  test::CaptureEmitter emitter;
  std::unique_ptr<HttpInput> input;
};

// Counts how many emit() calls overlap; each one takes 20 ms. Any thread.
class OverlapEmitter final : public Emitter {
 public:
  Status emit(const RecordBatch& batch, std::string_view) override {
    const int now = ++inside_;
    int seen = max_inside.load();
    while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    records += static_cast<int>(batch.size());
    --inside_;
    return Status::ok();
  }
  Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint&,
                            std::string_view stream) override {
    return emit(batch, stream);
  }
  Status tryEmit(const RecordBatch& batch, Duration, std::string_view stream) override { return emit(batch, stream); }
  Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream, Duration) override {
    Status st = emit(batch, stream);
    if (!st.isOk()) return st;
    return static_cast<uint64_t>(records.load());
  }
  Status waitForRoom(uint64_t, Duration) override { return Status::ok(); }
  Status waitCommitted(uint64_t, Duration) override { return Status::ok(); }
  Status deadLetter(const RecordBatch& batch, std::string_view reason) override {
    return none_.deadLetter(batch, reason);
  }
  void countDropped(std::string_view reason, uint64_t n) override { none_.countDropped(reason, n); }
  const CheckpointReader& checkpoints() const override { return none_.checkpoints(); }
  bool stopping() const override { return false; }
  bool waitFor(Duration) override { return false; }

  std::atomic<int> max_inside{0};
  std::atomic<int> records{0};

 private:
  std::atomic<int> inside_{0};
  test::CaptureEmitter none_;
};

}  // namespace

TEST_SUITE("inputs.http") {
  TEST_CASE("bodies split into records: NDJSON, array, one object, mixed") {
    HttpBodyParse nd = parseHttpBody(" {\"a\": 1}\r\n\n{\"b\":2}  \n");
    REQUIRE(nd.records.size() == 2);
    CHECK(nd.records[0] == "{\"a\": 1}");
    CHECK(nd.records[1] == "{\"b\":2}");
    CHECK(nd.refused == 0);

    HttpBodyParse arr = parseHttpBody("[{\"a\": 1}, 2, {\"b\": [1, 2]}]");
    REQUIRE(arr.records.size() == 2);
    CHECK(arr.records[0] == "{\"a\":1}");
    CHECK(arr.records[1] == "{\"b\":[1,2]}");
    CHECK(arr.refused == 1);
    CHECK(arr.first_error == "element 1: not a JSON object");

    HttpBodyParse one = parseHttpBody("{\n  \"a\": 1,\n  \"b\": \"x\"\n}\n");
    REQUIRE(one.records.size() == 1);
    CHECK(one.records[0] == "{\"a\":1,\"b\":\"x\"}");

    HttpBodyParse mixed = parseHttpBody("{\"a\":1}\nnot json\n[1]\n{\"c\":3} {\"d\":4}\n{\"e\":5}");
    REQUIRE(mixed.records.size() == 2);
    CHECK(mixed.records[1] == "{\"e\":5}");
    CHECK(mixed.refused == 3);
    CHECK(mixed.first_error.starts_with("line 2: invalid JSON"));

    CHECK(parseHttpBody("").records.empty());
    CHECK(parseHttpBody(" \n ").refused == 0);
    CHECK(parseHttpBody("42").refused == 1);
  }

  TEST_CASE("NDJSON, array and single-object bodies are emitted once per request") {
    Server s;
    Response r = post(s.port(), "{\"n\":1}\n{\"n\":2}\n");
    CHECK(r.code == 200);
    CHECK(r.body == "{\"accepted\":2,\"refused\":0}\n");
    r = post(s.port(), "[{\"n\":3},{\"n\":4}]", {"Content-Type: application/json"});
    CHECK(r.code == 200);
    CHECK(r.body == "{\"accepted\":2,\"refused\":0}\n");
    r = post(s.port(), "{\"n\": 5}");
    CHECK(r.code == 200);
    CHECK(r.body == "{\"accepted\":1,\"refused\":0}\n");
    CHECK(s.emitter.batches == 3);
    CHECK(s.emitter.records ==
          std::vector<std::string>{"{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "{\"n\":4}", "{\"n\":5}"});
  }

  TEST_CASE("a mixed body keeps its valid records; an all-bad body is 400") {
    Server s;
    Response r = post(s.port(), "{\"ok\":1}\n{broken\n{\"ok\":2}\n");
    CHECK(r.code == 200);
    CHECK(r.body.starts_with("{\"accepted\":2,\"refused\":1,\"error\":\"line 2: invalid JSON"));
    CHECK(s.emitter.records == std::vector<std::string>{"{\"ok\":1}", "{\"ok\":2}"});
    CHECK(s.dropped() == 1);

    r = post(s.port(), "nope\n[1,2]\n");
    CHECK(r.code == 400);
    CHECK(r.body.starts_with("{\"accepted\":0,\"refused\":2,\"error\":\"line 1:"));
    CHECK(s.emitter.batches == 1);
    CHECK(s.dropped() == 3);

    r = post(s.port(), "");
    CHECK(r.code == 200);
    CHECK(r.body == "{\"accepted\":0,\"refused\":0}\n");
    CHECK(s.emitter.batches == 1);
  }

  TEST_CASE("bodies over max_body_bytes are 413, before and after decompression") {
    HttpInputSettings settings;
    settings.max_body_bytes = 1024;
    Server s(settings);
    std::string big;
    while (big.size() <= 2048) big += "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n";
    Response r = post(s.port(), big);
    CHECK(r.code == 413);
    std::string squeezed = compress(WireEncoding::kZstd, big);
    REQUIRE(squeezed.size() < 1024);
    r = post(s.port(), squeezed, {"Content-Encoding: zstd"});
    CHECK(r.code == 413);
    CHECK(s.emitter.batches == 0);
    r = post(s.port(), "{\"small\":true}");
    CHECK(r.code == 200);
  }

  TEST_CASE("a chunked body over max_body_bytes is 413 once it passes the limit") {
    HttpInputSettings settings;
    settings.max_body_bytes = 1024;
    Server s(settings);
    std::string big;
    while (big.size() <= 4096) big += "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n";
    CHECK(post(s.port(), big, {"Transfer-Encoding: chunked"}).code == 413);
    CHECK(s.emitter.batches == 0);
  }

  TEST_CASE("requests on parallel connections emit one at a time") {
    HttpInputSettings settings;
    settings.listen = "127.0.0.1:0";
    HttpInput input(settings, "push", nullptr);
    OverlapEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int i = 0; i < 6; ++i) {
      clients.emplace_back([&] {
        const std::string url = "http://127.0.0.1:" + std::to_string(input.port()) + "/";
        if (test::httpRequest("POST", url, "{\"a\":1}\n{\"a\":2}\n", {}, 10000).code == 200) ++ok;
      });
    }
    for (std::thread& t : clients) t.join();
    input.stop();
    CHECK(ok.load() == 6);
    CHECK(emitter.records.load() == 12);
    CHECK(emitter.max_inside.load() == 1);
  }

  TEST_CASE("gzip and zstd bodies are decoded; unknown encodings are 415") {
    Server s;
    const std::string body = "{\"z\":1}\n{\"z\":2}\n";
    Response r = post(s.port(), compress(WireEncoding::kGzip, body), {"Content-Encoding: gzip"});
    CHECK(r.code == 200);
    CHECK(r.body == "{\"accepted\":2,\"refused\":0}\n");
    r = post(s.port(), compress(WireEncoding::kZstd, body), {"Content-Encoding: zstd"});
    CHECK(r.code == 200);
    CHECK(s.emitter.records.size() == 4);
    r = post(s.port(), body, {"Content-Encoding: br"});
    CHECK(r.code == 415);
    r = post(s.port(), "not gzip at all", {"Content-Encoding: gzip"});
    CHECK(r.code == 400);
    CHECK(s.emitter.records.size() == 4);
  }

  TEST_CASE("auth.bearer: missing or wrong tokens are 401") {
    HttpInputSettings settings;
    settings.bearer = "s3cret-token";
    Server s(settings);
    CHECK(post(s.port(), "{\"a\":1}").code == 401);
    CHECK(post(s.port(), "{\"a\":1}", {"Authorization: Bearer s3cret-tokem"}).code == 401);
    CHECK(post(s.port(), "{\"a\":1}", {"Authorization: Bearer s3cret"}).code == 401);
    CHECK(post(s.port(), "{\"a\":1}", {"Authorization: Basic s3cret-token"}).code == 401);
    CHECK(s.emitter.batches == 0);
    CHECK(post(s.port(), "{\"a\":1}", {"Authorization: Bearer s3cret-token"}).code == 200);
    CHECK(post(s.port(), "{\"a\":2}", {"Authorization: bearer s3cret-token"}).code == 200);
    CHECK(s.emitter.records.size() == 2);
  }

  TEST_CASE("other paths are 404, other methods 405") {
    Server s;
    CHECK(request(s.port(), "/other", "POST", "{\"a\":1}").code == 404);
    CHECK(request(s.port(), "/", "POST", "{\"a\":1}").code == 404);
    Response r = request(s.port(), "/ingest", "GET", "");
    CHECK(r.code == 405);
    CHECK(r.header("Allow") == "POST");
    CHECK(request(s.port(), "/ingest", "PUT", "{\"a\":1}").code == 405);
    CHECK(s.emitter.batches == 0);
  }

  TEST_CASE("a full buffer or a stopping agent is 503 with Retry-After") {
    Server s;
    s.emitter.next_status = resourceExhausted("buffer full");
    Response r = post(s.port(), "{\"a\":1}\n");
    CHECK(r.code == 503);
    CHECK(r.header("Retry-After") == "5");
    s.emitter.next_status = cancelled("stopping");
    r = post(s.port(), "{\"a\":1}\n");
    CHECK(r.code == 503);
    CHECK(r.header("Retry-After") == "5");
    s.emitter.next_status = Status::ok();
    CHECK(post(s.port(), "{\"a\":1}\n").code == 200);
  }

  TEST_CASE("200 only once the records are committed; not committed in time is 503") {
    HttpInputSettings settings;
    settings.commit_timeout = std::chrono::milliseconds(300);
    Server s(settings);
    s.emitter.auto_commit = false;
    std::atomic<int> code{0};
    std::thread client([&] { code = post(s.port(), "{\"a\":1}\n").code; });
    // The request waits for the commit of its ticket.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (s.emitter.tickets == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(s.emitter.tickets == 1);
    CHECK(code.load() == 0);
    s.emitter.commitThrough(1);
    client.join();
    CHECK(code.load() == 200);

    // Nobody commits the next one: 503 after commit_timeout, with Retry-After.
    Response r = post(s.port(), "{\"b\":2}\n");
    CHECK(r.code == 503);
    CHECK(r.body.find("not committed") != std::string::npos);
    CHECK_FALSE(r.header("retry-after").empty());
  }

  TEST_CASE("stop() returns within 1 s with idle keep-alive connections open") {
    Server s;
    test::HttpClient keep;
    CHECK(request(s.port(), "/ingest", "POST", "{\"a\":1}", {}, &keep).code == 200);
    // A second client that connected and sent nothing.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(s.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    const auto t0 = std::chrono::steady_clock::now();
    s.input->stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took < std::chrono::seconds(1));
    ::close(fd);
  }

  TEST_CASE("a listen address in use fails start() naming listen") {
    Server s;
    HttpInputSettings settings;
    settings.listen = "127.0.0.1:" + std::to_string(s.port());
    HttpInput second(settings, "second", nullptr);
    test::CaptureEmitter e;
    Status st = second.start(e);
    CHECK_FALSE(st.isOk());
    CHECK(st.message().find("listen 127.0.0.1:" + std::to_string(s.port())) != std::string::npos);
  }

  TEST_CASE("options are checked by the factory") {
    Options o;
    o.set("listen", std::string("127.0.0.1:99999"), {"f.yaml", 3, "inputs[0].listen"});
    Result<HttpInputSettings> bad = HttpInputSettings::fromOptions(o);
    REQUIRE_FALSE(bad.isOk());
    CHECK(bad.status().message().find("inputs[0].listen") != std::string::npos);

    Options p;
    p.set("path", std::string("ingest"), {"f.yaml", 4, "inputs[0].path"});
    CHECK_FALSE(HttpInputSettings::fromOptions(p).isOk());

    Options q;
    q.set("max_connections", int64_t{0}, {"f.yaml", 5, "inputs[0].max_connections"});
    CHECK_FALSE(HttpInputSettings::fromOptions(q).isOk());

    Options ok;
    ok.set("listen", std::string(":9000"), {});
    ok.set("auth.bearer", std::string("t"), {});
    ok.set("max_body_bytes", uint64_t{4096}, {});
    Result<HttpInputSettings> s = HttpInputSettings::fromOptions(ok);
    REQUIRE(s.isOk());
    CHECK(s->listen == ":9000");
    CHECK(s->bearer == "t");
    CHECK(s->max_body_bytes == 4096);
    CHECK(s->max_connections == 32);
    CHECK(s->path == "/");
  }
}


namespace {
// A MemoryBuffer whose appends fail like a full disk (kIoError) while `failing`.
class FailingBuffer final : public Buffer {
 public:
  FailingBuffer(MetricsRegistry& m) : inner_({64 << 20, WhenFull::kBlock, {}}, m, systemClock()) {}
  std::atomic<bool> failing{true};
  Status setOutputs(std::span<const std::string> o) override { return inner_.setOutputs(o); }
  Status append(std::span<Block> b, Duration w) override {
    if (failing) return Status(StatusCode::kIoError, "disk full (test)");
    return inner_.append(b, w);
  }
  Result<std::vector<BlockRef>> read(std::string_view o, uint64_t a, size_t m, Duration w) override {
    return inner_.read(o, a, m, w);
  }
  Status ack(std::string_view o, uint64_t s, std::string_view c) override { return inner_.ack(o, s, c); }
  Result<uint64_t> deadLetter(std::string_view o, const Block& b, std::string_view r,
                              std::string_view c) override {
    return inner_.deadLetter(o, b, r, c);
  }
  Result<uint64_t> keepDeadLetter(std::string_view s, const Block& b, std::string_view r) override {
    return inner_.keepDeadLetter(s, b, r);
  }
  Status forEachDeadLetter(const std::function<void(const DeadLetter&)>& fn) const override {
    return inner_.forEachDeadLetter(fn);
  }
  uint64_t cursor(std::string_view o) const override { return inner_.cursor(o); }
  std::string commitState(std::string_view o) const override { return inner_.commitState(o); }
  std::optional<std::string> checkpoint(std::string_view k) const override { return inner_.checkpoint(k); }
  std::vector<std::pair<std::string, std::string>> checkpoints(std::string_view p) const override {
    return inner_.checkpoints(p);
  }
  BufferStats stats() const override { return inner_.stats(); }
  void interrupt() override { inner_.interrupt(); }

 private:
  MemoryBuffer inner_;
};
}  // namespace

TEST_SUITE("inputs.http") {
  // Regression (found by review): while the buffer cannot store (disk full / I/O error: buffer_full_ stays false, so
  // emitTracked accepts), a request waits in waitCommitted for commit_timeout (default 10s).
  // Agent::retire: stopInputs() does not release it, and HttpInput::stop() ->
  // MHD_stop_daemon joins that connection thread: SIGTERM takes commit_timeout, not < 5 s.
  TEST_CASE("stop() is not held by a request waiting for its commit") {
    MetricsRegistry metrics;
    FailingBuffer buf(metrics);
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    BatchingOptions opts;
    opts.max_wait = std::chrono::milliseconds(1);
    Pipeline p(buf, opts, "gw", 0, metrics, systemClock());
    Emitter& e = p.emitterFor("push", "push");
    p.start();
    HttpInputSettings s;
    s.listen = "127.0.0.1:0";
    s.path = "/ingest";
    s.commit_timeout = std::chrono::seconds(4);
    HttpInput input(std::move(s), "push", &metrics);
    REQUIRE(input.start(e).isOk());
    const uint16_t port = input.port();
    std::thread client([&] { post(port, "{\"a\":1}"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    p.stopInputs();  // Agent::retire's order: stopInputs, then in->stop()
    const auto t0 = std::chrono::steady_clock::now();
    input.stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took < std::chrono::milliseconds(1500));
    client.join();
    buf.failing = false;
    p.flushAndStop(std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
  }
}

}  // namespace ferry
