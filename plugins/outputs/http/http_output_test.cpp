// The http output against the loopback HttpTestServer: wire headers and bodies, answer
// classes, misbehaving servers, concurrency, auth, rate limit and TLS.
#include "plugins/outputs/http/http_output.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "agent/codec/envelope.h"
#include "agent/codec/key_file.h"
#include "ferry/metrics.h"
#include "tests/support/http_test_server.h"
#include "tests/support/log_capture.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

struct Env {
  MetricsRegistry metrics;
  PluginContext ctx{.agent_id = "gw-01", .name = "up", .data_dir = "", .clock = &systemClock(),
                    .metrics = &metrics};
};

using Kv = std::vector<std::pair<std::string, OptionValue>>;

Options optionsOf(const Kv& kv) {
  Options o;
  for (const auto& [k, v] : kv) o.set(k, v, {});
  return o;
}

std::unique_ptr<HttpOutput> makeOutput(const Env& env, const Kv& kv) {
  Result<HttpOutputConfig> cfg = httpOutputConfigFromOptions(optionsOf(kv));
  INFO(cfg.status().toString());
  REQUIRE(cfg.isOk());
  auto out = std::make_unique<HttpOutput>(std::move(cfg).value(), env.ctx);
  REQUIRE(out->open("").isOk());
  return out;
}

Status configError(const Kv& kv) { return httpOutputConfigFromOptions(optionsOf(kv)).status(); }

Block blockOf(uint64_t seq, std::string stream, std::initializer_list<std::string_view> records) {
  Block b;
  b.seq = seq;
  b.lineage.stream = std::move(stream);
  for (std::string_view r : records) b.records.append(r);
  return b;
}

SteadyTime in(Duration d) { return systemClock().now() + d; }

HttpReply answer(int status, std::string body = {},
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_SUITE("output.http") {
  TEST_CASE("headers and the idempotency key are exact; the body decodes to the NDJSON") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(200); });
    std::string compression;
    std::string encoding;
    SUBCASE("zstd") { compression = "zstd"; encoding = "zstd"; }
    SUBCASE("gzip") { compression = "gzip"; encoding = "gzip"; }
    SUBCASE("none") { compression = "none"; encoding = "identity"; }
    auto out = makeOutput(env, {{"url", server.url("/ingest")}, {"compression", compression}});
    const Block b = blockOf(42, "sensors", {R"({"a":1})", R"({"b":"x"})"});
    const SendResult r = out->send(b, in(5s));
    CHECK(r.kind == SendResult::Kind::kDelivered);
    REQUIRE(server.requestCount() == 1);
    const HttpRequest req = server.requests()[0];
    CHECK(req.method == "POST");
    CHECK(req.target == "/ingest");
    CHECK(req.header("Content-Type") == "application/x-ndjson");
    CHECK(req.header("Content-Encoding") == encoding);
    CHECK(req.header("Idempotency-Key") == "gw-01/up/42");
    CHECK(req.header("Ferry-Agent") == "gw-01");
    CHECK(req.header("Ferry-Stream") == "sensors");
    CHECK(req.header("Ferry-First-Seq") == "42");
    CHECK(req.header("Ferry-Count") == "2");
    CHECK(req.header("Expect").empty());
    CHECK(req.header("Authorization").empty());
    CHECK(decodedBody(req) == "{\"a\":1}\n{\"b\":\"x\"}\n");
    if (encoding == "identity") CHECK(req.body == decodedBody(req));
    CHECK(env.metrics.counterValue("ferry_output_http_requests_total",
                                   {{"output", "up"}, {"code", "200"}}) == 1);
  }

  TEST_CASE("a replayed block is sent with the same key and the same body") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(503); });
    auto out = makeOutput(env, {{"url", server.url()}});
    const Block b = blockOf(7, "s", {R"({"v":1})"});
    CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kRetry);
    server.setHandler([](const HttpRequest&) { return answer(204); });
    CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
    const auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].header("Idempotency-Key") == reqs[1].header("Idempotency-Key"));
    CHECK(reqs[0].body == reqs[1].body);
    CHECK(server.connectionCount() == 1);  // kept alive between sends
  }

  TEST_CASE("answers are classified: 2xx delivered, 408/429/5xx retry, other 4xx rejected") {
    Env env;
    std::atomic<int> status{200};
    HttpTestServer server([&](const HttpRequest&) {
      return answer(status.load(), "refused: \x01 field \"x\" is bad\nmore");
    });
    auto out = makeOutput(env, {{"url", server.url()}});
    const Block b = blockOf(1, "s", {R"({"v":1})"});
    for (int code : {200, 201, 202, 204}) {
      status = code;
      CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
    }
    for (int code : {408, 429, 500, 502, 503, 504}) {
      status = code;
      const SendResult r = out->send(b, in(5s));
      INFO(code);
      CHECK(r.kind == SendResult::Kind::kRetry);
      CHECK(r.reason.find("HTTP " + std::to_string(code)) == 0);
      CHECK_FALSE(r.retry_after.has_value());
    }
    for (int code : {400, 405, 409, 413, 415, 422}) {
      status = code;
      const SendResult r = out->send(b, in(5s));
      INFO(code);
      CHECK(r.kind == SendResult::Kind::kRejected);
      CHECK(r.reason == "HTTP " + std::to_string(code) + ": refused:   field \"x\" is bad more");
    }
    // The url or the credentials are wrong, not the batch: kept and retried by default.
    for (int code : {401, 403, 404, 407}) {
      status = code;
      const SendResult r = out->send(b, in(5s));
      INFO(code);
      CHECK(r.kind == SendResult::Kind::kRetry);
      CHECK(r.reason.find("HTTP " + std::to_string(code)) == 0);
    }
    // retry_statuses: [] dead-letters them like any other 4xx.
    Result<HttpOutputConfig> cfg = httpOutputConfigFromOptions(optionsOf({{"url", server.url()}}));
    REQUIRE(cfg.isOk());
    cfg->retry_statuses.clear();
    HttpOutput strict(std::move(cfg).value(), env.ctx);
    REQUIRE(strict.open("").isOk());
    status = 401;
    CHECK(strict.send(b, in(5s)).kind == SendResult::Kind::kRejected);
  }

  TEST_CASE("a rejection reason keeps only the start of a long answer") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(400, std::string(5000, 'e')); });
    auto out = makeOutput(env, {{"url", server.url()}});
    const SendResult r = out->send(blockOf(1, "s", {"{}"}), in(5s));
    CHECK(r.kind == SendResult::Kind::kRejected);
    CHECK(r.reason.size() < 250);
  }

  TEST_CASE("Retry-After in seconds or as an HTTP-date is passed on") {
    Env env;
    std::string retry_after;
    HttpTestServer server([&](const HttpRequest&) {
      return answer(429, "", {{"Retry-After", retry_after}});
    });
    auto out = makeOutput(env, {{"url", server.url()}});
    const Block b = blockOf(1, "s", {"{}"});
    retry_after = "17";
    SendResult r = out->send(b, in(5s));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.retry_after == Duration(17s));
    retry_after = "Thu, 01 Jan 1970 00:00:00 GMT";  // in the past
    r = out->send(b, in(5s));
    CHECK(r.retry_after == Duration::zero());
    retry_after = "Fri, 01 Jan 2100 00:00:00 GMT";
    r = out->send(b, in(5s));
    REQUIRE(r.retry_after.has_value());
    CHECK(*r.retry_after > Duration(std::chrono::hours(24 * 365)) - 1s);  // capped at a year
    retry_after = "whenever";
    r = out->send(b, in(5s));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK_FALSE(r.retry_after.has_value());
  }

  TEST_CASE("a redirect is not followed: retry, logged as a misconfiguration") {
    Env env;
    HttpTestServer server([&](const HttpRequest& req) {
      return req.target == "/old" ? answer(301, "", {{"Location", "/new"}}) : answer(200);
    });
    LogCapture logs;
    auto out = makeOutput(env, {{"url", server.url("/old")}});
    const SendResult r = out->send(blockOf(1, "s", {"{}"}), in(5s));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(server.requestCount() == 1);
    CHECK(logs.count("redirects are not followed") == 1);
  }

  TEST_CASE("a server that never answers: retry once the deadline passed") {
    Env env;
    HttpTestServer server([](const HttpRequest&) {
      HttpReply r;
      r.action = HttpReply::Action::kHang;
      return r;
    });
    auto out = makeOutput(env, {{"url", server.url()}});
    const auto t0 = std::chrono::steady_clock::now();
    const SendResult r = out->send(blockOf(1, "s", {"{}"}), in(700ms));
    const double took = secondsSince(t0);
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(took >= 0.6);
    CHECK(took < 1.7);
    CHECK(server.requestCount() == 1);
  }

  TEST_CASE("no time left: retry without sending") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(200); });
    auto out = makeOutput(env, {{"url", server.url()}});
    CHECK(out->send(blockOf(1, "s", {"{}"}), systemClock().now() - 1ms).kind ==
          SendResult::Kind::kRetry);
    CHECK(server.connectionCount() == 0);
  }

  TEST_CASE("interrupt() ends a hung send soon") {
    Env env;
    HttpTestServer server([](const HttpRequest&) {
      HttpReply r;
      r.action = HttpReply::Action::kHang;
      return r;
    });
    auto out = makeOutput(env, {{"url", server.url()}});
    std::thread stopper([&] {
      while (server.requestCount() == 0) std::this_thread::sleep_for(5ms);
      out->interrupt();
    });
    const auto t0 = std::chrono::steady_clock::now();
    const SendResult r = out->send(blockOf(1, "s", {"{}"}), in(30s));
    stopper.join();
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.reason.find("interrupted") != std::string::npos);
    CHECK(secondsSince(t0) < 3.0);
  }

  TEST_CASE("a connection closed without an answer, or refused: retry") {
    Env env;
    auto server = std::make_unique<HttpTestServer>([](const HttpRequest&) {
      HttpReply r;
      r.action = HttpReply::Action::kClose;
      return r;
    });
    const std::string url = server->url();
    auto out = makeOutput(env, {{"url", url}});
    SendResult r = out->send(blockOf(1, "s", {"{}"}), in(5s));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(server->requestCount() >= 1);
    server.reset();  // nothing listens on the port any more
    r = out->send(blockOf(1, "s", {"{}"}), in(5s));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK_FALSE(r.reason.empty());
    CHECK(env.metrics.counterValue("ferry_output_http_requests_total",
                                   {{"output", "up"}, {"code", "error"}}) == 2);
  }

  TEST_CASE("concurrent sends from 4 threads reuse their connections") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(200); });
    auto out = makeOutput(env, {{"url", server.url()}});
    CHECK(out->maxInFlight() == 64);
    std::atomic<int> delivered{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          const Block b = blockOf(static_cast<uint64_t>(t * 100 + i), "s", {R"({"v":1})"});
          if (out->send(b, in(10s)).kind == SendResult::Kind::kDelivered) ++delivered;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(delivered == 100);
    std::set<std::string> keys;
    for (const HttpRequest& r : server.requests()) {
      keys.insert(r.header("Idempotency-Key"));
      CHECK(decodedBody(r) == "{\"v\":1}\n");
    }
    CHECK(keys.size() == 100);
    CHECK(server.connectionCount() <= 4);
  }

  TEST_CASE("auth and configured headers; PUT") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(200); });
    SUBCASE("bearer") {
      auto out = makeOutput(env, {{"url", server.url()}, {"auth.bearer", std::string("t0ken")}});
      CHECK(out->send(blockOf(1, "s", {"{}"}), in(5s)).kind == SendResult::Kind::kDelivered);
      CHECK(server.requests().at(0).header("Authorization") == "Bearer t0ken");
    }
    SUBCASE("basic") {
      auto out = makeOutput(env, {{"url", server.url()},
                                  {"auth.basic.user", std::string("user")},
                                  {"auth.basic.password", std::string("pass")}});
      CHECK(out->send(blockOf(1, "s", {"{}"}), in(5s)).kind == SendResult::Kind::kDelivered);
      CHECK(server.requests().at(0).header("Authorization") == "Basic dXNlcjpwYXNz");
    }
    SUBCASE("headers and PUT") {
      auto out = makeOutput(
          env, {{"url", server.url("/put")},
                {"method", std::string("PUT")},
                {"headers", std::vector<std::pair<std::string, std::string>>{
                                {"X-Tenant", "acme"}, {"X-Empty", ""}}}});
      CHECK(out->send(blockOf(1, "s", {"{}"}), in(5s)).kind == SendResult::Kind::kDelivered);
      const HttpRequest req = server.requests().at(0);
      CHECK(req.method == "PUT");
      CHECK(req.header("X-Tenant") == "acme");
      bool empty_seen = false;
      for (const auto& [k, v] : req.headers) empty_seen |= k == "X-Empty" && v.empty();
      CHECK(empty_seen);
      CHECK(decodedBody(req) == "{}\n");
    }
  }

  TEST_CASE("max_bytes_per_s slows down a large upload") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(200); });
    Block b;
    b.seq = 1;
    b.lineage.stream = "s";
    std::string rec;
    for (int i = 0; i < 20 * 1024; ++i) {  // ~1 MiB
      rec = R"({"i":)" + std::to_string(i) + R"(,"pad":"0123456789abcdef0123456789abcdef01"})";
      b.records.append(rec);
    }
    REQUIRE(b.records.bytes() > 900'000);
    auto fast = makeOutput(env, {{"url", server.url()}, {"compression", std::string("none")}});
    auto t0 = std::chrono::steady_clock::now();
    CHECK(fast->send(b, in(20s)).kind == SendResult::Kind::kDelivered);
    const double unlimited = secondsSince(t0);
    auto slow = makeOutput(env, {{"url", server.url()},
                                 {"compression", std::string("none")},
                                 {"max_bytes_per_s", uint64_t{2} << 20}});
    t0 = std::chrono::steady_clock::now();
    CHECK(slow->send(b, in(20s)).kind == SendResult::Kind::kDelivered);
    const double limited = secondsSince(t0);
    INFO("unlimited ", unlimited, " s, limited ", limited, " s");
    CHECK(limited > 0.25);
    CHECK(limited > unlimited);
    REQUIRE(server.requestCount() == 2);
    CHECK(server.requests()[1].body.size() == b.records.bytes() + b.records.size());
  }

  TEST_CASE("format influx: line protocol, records without fields dropped and counted") {
    Env env;
    HttpTestServer server([](const HttpRequest&) { return answer(204); });
    auto out = makeOutput(env, {{"url", server.url("/write")}, {"format", std::string("influx")},
                                {"compression", std::string("gzip")}});
    const SendResult r = out->send(
        blockOf(3, "env", {R"({"room":"a","t":20.5,"ts":1700000000})", R"({"note":"x"})"}), in(5s));
    CHECK(r.kind == SendResult::Kind::kDelivered);
    REQUIRE(server.requestCount() == 1);
    const HttpRequest req = server.requests()[0];
    CHECK(req.header("Content-Type") == "text/plain; charset=utf-8");
    CHECK(req.header("Content-Encoding") == "gzip");
    CHECK(req.header("Ferry-Count") == "2");
    CHECK(decodedBody(req) == "env,room=a t=20.5 1700000000000000000\n");
    CHECK(env.metrics.counterValue("ferry_dropped_records_total",
                                   {{"reason", "influx_no_fields"}}) == 1);
    // A block whose every record is dropped is not sent at all.
    CHECK(out->send(blockOf(4, "env", {R"({"note":"y"})"}), in(5s)).kind ==
          SendResult::Kind::kDelivered);
    CHECK(server.requestCount() == 1);
    CHECK(env.metrics.counterValue("ferry_dropped_records_total",
                                   {{"reason", "influx_no_fields"}}) == 2);
  }

  TEST_CASE("format envelope: sealed with the key file, no Content-Encoding") {
    Env env;
    TempDir dir;
    HttpTestServer server([](const HttpRequest&) { return answer(200); });
    const Block b = blockOf(9, "sensors", {R"({"a":1})", R"({"b":2})"});
    SUBCASE("with a key") {
      Result<KeyMaterial> key = writeNewKeyFile(dir.file("wire.key"));
      REQUIRE(key.isOk());
      auto out = makeOutput(env, {{"url", server.url()},
                                  {"format", std::string("envelope")},
                                  {"envelope_key_file", dir.file("wire.key")}});
      CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
      REQUIRE(server.requestCount() == 1);
      const HttpRequest req = server.requests()[0];
      CHECK(req.header("Content-Type") == "application/vnd.ferry.envelope");
      CHECK(req.header("Content-Encoding").empty());
      CHECK(req.header("Idempotency-Key") == "gw-01/up/9");
      const KeyMaterial keys[] = {key.value()};
      Result<OpenedEnvelope> opened = openEnvelope(req.body, keys, true, 1 << 20);
      REQUIRE(opened.isOk());
      CHECK(opened->info.encrypted());
      CHECK(opened->info.agent == "gw-01");
      CHECK(opened->info.stream == "sensors");
      CHECK(opened->info.first_seq == 9);
      CHECK(opened->info.count == 2);
      CHECK(opened->ndjson == "{\"a\":1}\n{\"b\":2}\n");
      CHECK(req.body.find("\"a\":1") == std::string::npos);
    }
    SUBCASE("without a key: unencrypted, warned") {
      LogCapture logs;
      auto out = makeOutput(env, {{"url", server.url()}, {"format", std::string("envelope")}});
      CHECK(logs.count("NOT encrypted") == 1);
      CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
      REQUIRE(server.requestCount() == 1);
      Result<OpenedEnvelope> opened = openEnvelope(server.requests()[0].body, {}, false, 1 << 20);
      REQUIRE(opened.isOk());
      CHECK_FALSE(opened->info.encrypted());
      CHECK(opened->ndjson == "{\"a\":1}\n{\"b\":2}\n");
    }
    SUBCASE("a missing key file fails open()") {
      Result<HttpOutputConfig> cfg = httpOutputConfigFromOptions(
          optionsOf({{"url", server.url()},
                     {"format", std::string("envelope")},
                     {"envelope_key_file", dir.file("absent.key")}}));
      REQUIRE(cfg.isOk());
      HttpOutput out(std::move(cfg).value(), env.ctx);
      const Status s = out.open("");
      CHECK(s.code() == StatusCode::kNotFound);
      CHECK(s.message().find("absent.key") != std::string::npos);
    }
  }

  TEST_CASE("configuration errors name the key") {
    const std::string url = "http://127.0.0.1:9/x";
    CHECK(configError({}).code() == StatusCode::kInvalidArgument);
    CHECK(configError({{"url", std::string("ftp://host/x")}}).message().find("url") !=
          std::string::npos);
    CHECK_FALSE(configError({{"url", std::string("127.0.0.1:8080/x")}}).isOk());
    CHECK_FALSE(configError({{"url", std::string("http://")}}).isOk());
    CHECK(configError({{"url", url}}).isOk());
    CHECK(configError({{"url", std::string("https://example.com/")},
                       {"tls.insecure_skip_verify", true}})
              .isOk());
    using Map = std::vector<std::pair<std::string, std::string>>;
    for (const char* reserved : {"Content-Encoding", "idempotency-key", "Ferry-Count", "Expect"}) {
      INFO(reserved);
      CHECK(configError({{"url", url}, {"headers", Map{{reserved, "x"}}}}).message().find(
                "set by the output") != std::string::npos);
    }
    CHECK_FALSE(configError({{"url", url}, {"headers", Map{{"Bad Name", "x"}}}}).isOk());
    CHECK_FALSE(configError({{"url", url}, {"headers", Map{{"X-A", "a\r\nX-B: b"}}}}).isOk());
    CHECK(configError({{"url", url}, {"tls.ca_file", std::string("/etc/ssl/ca.pem")}})
              .message()
              .find("https") != std::string::npos);
    CHECK_FALSE(configError({{"url", url},
                             {"auth.bearer", std::string("t")},
                             {"auth.basic.user", std::string("u")}})
                    .isOk());
    CHECK_FALSE(configError({{"url", std::string("https://h/")},
                             {"tls.pin_sha256", std::string("sha256//short=")}})
                    .isOk());
    CHECK(configError({{"url", std::string("https://h/")},
                       {"tls.pin_sha256",
                        std::string("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;"
                                    "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=")}})
              .isOk());
    CHECK_FALSE(configError({{"url", url}, {"compression", std::string("gzip")},
                             {"compression_level", int64_t{12}}})
                    .isOk());
    CHECK_FALSE(configError({{"url", std::string("https://h/")},
                             {"tls.cert_file", std::string("/c.pem")}})
                    .isOk());
    CHECK_FALSE(configError({{"url", url}, {"envelope_key_file", std::string("/k")}}).isOk());
    CHECK_FALSE(configError({{"url", url}, {"format", std::string("envelope")},
                             {"compression", std::string("gzip")}})
                    .isOk());
  }

  TEST_CASE("open() refuses unreadable TLS files and sends nothing") {
    Env env;
    Result<HttpOutputConfig> cfg = httpOutputConfigFromOptions(optionsOf(
        {{"url", std::string("https://127.0.0.1:9/")},
         {"tls.ca_file", std::string("/nonexistent/ca.pem")}}));
    REQUIRE(cfg.isOk());
    HttpOutput out(std::move(cfg).value(), env.ctx);
    const Status s = out.open("");
    CHECK(s.code() == StatusCode::kNotFound);
    CHECK(s.message().find("/nonexistent/ca.pem") != std::string::npos);
  }

  TEST_CASE("the descriptor builds an output from validated options") {
    Env env;
    const PluginDescriptor& d = httpOutputDescriptor();
    CHECK(d.name == "http");
    CHECK(d.kind == PluginKind::kOutput);
    auto made = d.make_output(env.ctx, optionsOf({{"url", std::string("http://127.0.0.1:9/")}}));
    REQUIRE(made.isOk());
    CHECK(made.value()->maxInFlight() == 64);
  }
}

TEST_SUITE("output.http.tls") {
  // A self-signed certificate for 127.0.0.1 made with the openssl CLI, and the pin of its key.
  struct Cert {
    TempDir dir;
    std::string cert, key, pin;
    bool ok = false;
    Cert() {
      cert = dir.file("cert.pem");
      key = dir.file("key.pem");
      const std::string pin_file = dir.file("pin");
      const std::string cmd =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '" + key +
          "' -out '" + cert + "' >/dev/null 2>&1 && openssl pkey -in '" + key +
          "' -pubout -outform DER 2>/dev/null | openssl dgst -sha256 -binary | openssl base64 -A > '" +
          pin_file + "'";
      ok = std::system(cmd.c_str()) == 0;
      if (ok) pin = readFile(pin_file);
      ok = ok && pin.size() == 44;
    }
  };

  TEST_CASE("certificate verification, ca_file, pins and insecure_skip_verify") {
    Cert c;
    REQUIRE_MESSAGE(c.ok, "openssl CLI could not make a certificate");
    HttpTestServer server([](const HttpRequest&) { return answer(200); }, TlsFiles{c.cert, c.key});
    REQUIRE(server.error().empty());
    Env env;
    const Block b = blockOf(5, "s", {R"({"secret":1})"});
    SUBCASE("verification fails by default, before any request; logged once") {
      LogCapture logs;
      auto out = makeOutput(env, {{"url", server.url()}});
      SendResult r = out->send(b, in(5s));
      CHECK(r.kind == SendResult::Kind::kRetry);
      CHECK(r.reason.find("TLS") == 0);
      r = out->send(b, in(5s));
      CHECK(r.kind == SendResult::Kind::kRetry);
      CHECK(server.connectionCount() >= 1);
      CHECK(server.requestCount() == 0);
      CHECK(logs.count("TLS with") == 1);
    }
    SUBCASE("ca_file makes it pass, over HTTP/1.1 (the server offers no h2)") {
      auto out = makeOutput(env, {{"url", server.url()}, {"tls.ca_file", c.cert}});
      CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
      REQUIRE(server.requestCount() == 1);
      CHECK(decodedBody(server.requests()[0]) == "{\"secret\":1}\n");
    }
    SUBCASE("the right pin passes, a wrong one fails before any request") {
      auto good = makeOutput(env, {{"url", server.url()}, {"tls.ca_file", c.cert},
                                   {"tls.pin_sha256", c.pin}});
      CHECK(good->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
      CHECK(server.requestCount() == 1);
      auto bad = makeOutput(env, {{"url", server.url()}, {"tls.ca_file", c.cert},
                                  {"tls.pin_sha256",
                                   std::string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")}});
      const SendResult r = bad->send(b, in(5s));
      CHECK(r.kind == SendResult::Kind::kRetry);
      CHECK(r.reason.find("TLS") == 0);
      CHECK(server.requestCount() == 1);
    }
    SUBCASE("insecure_skip_verify passes, with a loud warning") {
      LogCapture logs;
      auto out = makeOutput(env, {{"url", server.url()}, {"tls.insecure_skip_verify", true}});
      CHECK(logs.count("INSECURE") == 1);
      CHECK(out->send(b, in(5s)).kind == SendResult::Kind::kDelivered);
      CHECK(server.requestCount() == 1);
    }
  }
}
