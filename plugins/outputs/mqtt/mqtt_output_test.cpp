// The mqtt output against a real Mosquitto broker started by each test.
#include "plugins/outputs/mqtt/mqtt_output.h"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "agent/codec/envelope.h"
#include "agent/codec/key_file.h"
#include "tests/support/mosquitto.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace ferry::test;
using namespace std::chrono_literals;

namespace {

PluginContext context(std::string name = "up") {
  PluginContext ctx;
  ctx.agent_id = "gw-7";
  ctx.name = std::move(name);
  ctx.clock = &systemClock();
  return ctx;
}

Options options(const std::string& broker,
                std::vector<std::pair<std::string, OptionValue>> extra = {}) {
  Options o;
  o.setLocation({"ferry.yaml", 3, "outputs[0]"});
  o.set("broker", broker, {"ferry.yaml", 4, "outputs[0].broker"});
  for (auto& [k, v] : extra) o.set(k, std::move(v), {"ferry.yaml", 5, "outputs[0]." + k});
  return o;
}

std::unique_ptr<MqttOutput> makeOutput(const Options& o, const PluginContext& ctx = context()) {
  Result<MqttOutputConfig> c = mqttOutputConfigFromOptions(ctx, o);
  REQUIRE_MESSAGE(c.isOk(), c.status().toString());
  return std::make_unique<MqttOutput>(std::move(c).value(), systemClock());
}

Block makeBlock(uint64_t seq, const std::string& stream, int records, int first_value = 0) {
  Block b;
  b.seq = seq;
  b.lineage = {"gw-7", "in", stream, 1};
  for (int i = 0; i < records; ++i) {
    b.records.append("{\"n\":" + std::to_string(first_value + i) + "}");
  }
  return b;
}

SteadyTime in(Duration d) { return systemClock().now() + d; }

// Sends until delivered (the sender's loop in small), giving up after `limit`.
SendResult sendUntilDelivered(MqttOutput& out, const Block& b, std::chrono::seconds limit,
                              int* retries = nullptr) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    SendResult r = out.send(b, in(2s));
    if (r.kind != SendResult::Kind::kRetry || std::chrono::steady_clock::now() >= until) return r;
    if (retries) ++*retries;
    std::this_thread::sleep_for(100ms);
  }
}

}  // namespace

TEST_SUITE("outputs.mqtt") {
  TEST_CASE("config: defaults, scheme mapping and errors naming the key") {
    Result<MqttOutputConfig> c = mqttOutputConfigFromOptions(context(), options("mqtt://broker.local"));
    REQUIRE(c.isOk());
    CHECK(c->server_uri == "tcp://broker.local:1883");
    CHECK_FALSE(c->tls);
    CHECK(c->client_id == "ferry-gw-7-up");
    CHECK(c->topic == "ferry/{agent}/{stream}");
    CHECK(c->qos == 1);
    CHECK(c->mqtt_version == 5);
    CHECK(c->persistent_session);
    CHECK(c->payload == MqttOutputConfig::Payload::kNdjson);

    c = mqttOutputConfigFromOptions(context(), options("mqtts://[::1]"));
    REQUIRE(c.isOk());
    CHECK(c->server_uri == "ssl://[::1]:8883");
    CHECK(c->tls);
    c = mqttOutputConfigFromOptions(context(), options("ssl://h:9000"));
    REQUIRE(c.isOk());
    CHECK(c->server_uri == "ssl://h:9000");

    for (const char* bad : {"http://h:1883", "h:1883", "tcp://", "tcp://h:0", "tcp://h:99999",
                            "tcp://user@h:1883", "tcp://h:1883/path"}) {
      CAPTURE(bad);
      Result<MqttOutputConfig> r = mqttOutputConfigFromOptions(context(), options(bad));
      REQUIRE_FALSE(r.isOk());
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      CHECK(r.status().message().find("ferry.yaml:4: outputs[0].broker") != std::string::npos);
    }
    Result<MqttOutputConfig> r = mqttOutputConfigFromOptions(
        context(), options("tcp://h", {{"topic", std::string("ferry/#")}}));
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().message().find("outputs[0].topic") != std::string::npos);
    r = mqttOutputConfigFromOptions(context(),
                                    options("tcp://h", {{"tls.ca_file", std::string("/ca.pem")}}));
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().message().find("not ssl://") != std::string::npos);
    r = mqttOutputConfigFromOptions(context(),
                                    options("tcp://h", {{"password", std::string("pw")}}));
    CHECK_FALSE(r.isOk());
    r = mqttOutputConfigFromOptions(context(), options("tcp://h", {{"keepalive", Duration(0)}}));
    CHECK_FALSE(r.isOk());
  }

  TEST_CASE("topic placeholders and publishable topics") {
    CHECK(expandMqttTopic("ferry/{agent}/{stream}", "gw", "temp") == "ferry/gw/temp");
    CHECK(expandMqttTopic("x/{stream}/{stream}/{other}", "gw", "s") == "x/s/s/{other}");
    CHECK(validMqttPublishTopic("a/b"));
    CHECK_FALSE(validMqttPublishTopic(""));
    CHECK_FALSE(validMqttPublishTopic("a/+/b"));
    CHECK_FALSE(validMqttPublishTopic("a/#"));
    CHECK_FALSE(validMqttPublishTopic(std::string("a\0b", 3)));
  }

  TEST_CASE("ndjson: one message per block on the default topic, with user properties") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    TestSubscriber sub(broker.url(), "test-sub-ndjson");
    REQUIRE_MESSAGE(sub.subscribe("ferry/#"), sub.error());
    auto out = makeOutput(options(broker.url()));
    REQUIRE(out->open("").isOk());

    SendResult r = out->send(makeBlock(41, "temp", 3), in(5s));
    CHECK(r.kind == SendResult::Kind::kDelivered);
    REQUIRE(sub.waitForCount(1, 5s));
    std::vector<ReceivedMessage> got = sub.messages();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "ferry/gw-7/temp");
    CHECK(got[0].qos == 1);
    CHECK(got[0].payload == "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
    CHECK(got[0].property("ferry-key") == "gw-7/up/41");
    CHECK(got[0].property("ferry-agent") == "gw-7");
    CHECK(got[0].property("ferry-stream") == "temp");
    CHECK(got[0].property("ferry-first-seq") == "41");
    CHECK(got[0].property("ferry-count") == "3");
    CHECK(got[0].property("ferry-index").empty());
    out->close();
  }

  TEST_CASE("json_per_record: one message per record, custom topic, ferry-index") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    TestSubscriber sub(broker.url(), "test-sub-per-record");
    REQUIRE_MESSAGE(sub.subscribe("site/#"), sub.error());
    auto out = makeOutput(options(broker.url(), {{"payload", std::string("json_per_record")},
                                                 {"topic", std::string("site/{stream}/from/{agent}")}}));
    REQUIRE(out->open("").isOk());
    // More records than the per-send window, so the window is exercised too.
    const int kRecords = 2500;
    SendResult r = out->send(makeBlock(7, "power", kRecords), in(20s));
    REQUIRE_MESSAGE(r.kind == SendResult::Kind::kDelivered, r.reason);
    REQUIRE(sub.waitForCount(kRecords, 10s));
    std::vector<ReceivedMessage> got = sub.messages();
    std::set<std::string> indexes;
    for (const ReceivedMessage& m : got) {
      CHECK(m.topic == "site/power/from/gw-7");
      CHECK(m.property("ferry-key") == "gw-7/up/7");
      CHECK(m.property("ferry-count") == std::to_string(kRecords));
      indexes.insert(m.property("ferry-index"));
    }
    CHECK(indexes.size() == static_cast<size_t>(kRecords));
    CHECK(got.front().payload == "{\"n\":0}");
    CHECK(indexes.count("2499") == 1);
  }

  TEST_CASE("envelope: one sealed message per block that the key opens") {
    TempDir dir;
    Result<KeyMaterial> key = writeNewKeyFile(dir.file("wire.key"));
    REQUIRE(key.isOk());
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    TestSubscriber sub(broker.url(), "test-sub-envelope");
    REQUIRE_MESSAGE(sub.subscribe("ferry/#"), sub.error());
    auto out = makeOutput(options(broker.url(), {{"payload", std::string("envelope")},
                                                 {"envelope_key_file", dir.file("wire.key")}}));
    REQUIRE(out->open("").isOk());
    SendResult r = out->send(makeBlock(9, "temp", 4), in(5s));
    REQUIRE_MESSAGE(r.kind == SendResult::Kind::kDelivered, r.reason);
    REQUIRE(sub.waitForCount(1, 5s));
    const ReceivedMessage m = sub.messages()[0];
    CHECK(m.property("ferry-key") == "gw-7/up/9");
    const KeyMaterial keys[] = {*key};
    Result<OpenedEnvelope> opened = openEnvelope(m.payload, keys, true, 1 << 20);
    REQUIRE_MESSAGE(opened.isOk(), opened.status().toString());
    CHECK(opened->info.encrypted());
    CHECK(opened->info.agent == "gw-7");
    CHECK(opened->info.stream == "temp");
    CHECK(opened->info.first_seq == 9);
    CHECK(opened->info.count == 4);
    CHECK(opened->ndjson == "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");

    // The key file is checked at config time only for its place; open() names it.
    Result<MqttOutputConfig> wrong = mqttOutputConfigFromOptions(
        context(), options(broker.url(), {{"envelope_key_file", dir.file("wire.key")}}));
    CHECK_FALSE(wrong.isOk());  // only with payload: envelope
    auto missing = makeOutput(options(broker.url(), {{"payload", std::string("envelope")},
                                                     {"envelope_key_file", dir.file("none.key")}}));
    Status s = missing->open("");
    REQUIRE_FALSE(s.isOk());
    CHECK(s.message().find("envelope_key_file") != std::string::npos);
  }

  TEST_CASE("MQTT 3.1.1 publishes without properties") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    TestSubscriber sub(broker.url(), "test-sub-v3");
    REQUIRE_MESSAGE(sub.subscribe("ferry/#"), sub.error());
    auto out = makeOutput(options(broker.url(), {{"mqtt_version", std::string("3")}}));
    REQUIRE(out->open("").isOk());
    SendResult r = out->send(makeBlock(1, "s", 2), in(5s));
    CHECK(r.kind == SendResult::Kind::kDelivered);
    REQUIRE(sub.waitForCount(1, 5s));
    CHECK(sub.messages()[0].user_properties.empty());
    CHECK(sub.messages()[0].payload == "{\"n\":0}\n{\"n\":1}\n");
  }

  TEST_CASE("QoS 0 and retain: delivered once written, kept by the broker") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    auto out = makeOutput(options(broker.url(), {{"qos", std::string("0")}, {"retain", true}}));
    REQUIRE(out->open("").isOk());
    SendResult r = out->send(makeBlock(3, "kept", 1), in(5s));
    CHECK(r.kind == SendResult::Kind::kDelivered);
    // A subscriber that comes later still gets the retained message.
    TestSubscriber late(broker.url(), "test-sub-late");
    REQUIRE_MESSAGE(late.subscribe("ferry/gw-7/kept"), late.error());
    REQUIRE(late.waitForCount(1, 5s));
    CHECK(late.messages()[0].payload == "{\"n\":0}\n");
  }

  TEST_CASE("a silent broker: send times out at its deadline, interrupt cuts the wait short") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    auto out = makeOutput(options(broker.url()));
    REQUIRE(out->open("").isOk());
    broker.pause();  // the connection stays up, no PUBACK comes
    auto t0 = std::chrono::steady_clock::now();
    SendResult timed_out = out->send(makeBlock(1, "s", 1), in(700ms));
    CHECK(timed_out.kind == SendResult::Kind::kRetry);
    CHECK(timed_out.reason.find("timed out") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    std::thread stopper([&] {
      std::this_thread::sleep_for(300ms);
      out->interrupt();
    });
    t0 = std::chrono::steady_clock::now();
    SendResult r = out->send(makeBlock(1, "s", 1), in(20s));
    stopper.join();
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.reason == "interrupted");
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    // close() fits the agent's stop margin (300 ms) although the broker answers nothing and
    // two messages are still unacknowledged.
    t0 = std::chrono::steady_clock::now();
    out->close();
    const auto close_took = std::chrono::steady_clock::now() - t0;
    CHECK(close_took < 300ms);
    MESSAGE("close() with a silent broker: ",
            std::chrono::duration_cast<std::chrono::milliseconds>(close_took).count(), " ms");
    broker.resume();
  }

  TEST_CASE("a stream that makes an invalid topic is rejected, not retried") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    auto out = makeOutput(options(broker.url()));
    REQUIRE(out->open("").isOk());
    SendResult r = out->send(makeBlock(1, "bad/+/stream", 1), in(5s));
    CHECK(r.kind == SendResult::Kind::kRejected);
    CHECK(r.reason.find("not a valid MQTT topic") != std::string::npos);
  }

  TEST_CASE("broker down: open fails naming the broker, send answers retry within its deadline") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    auto out = makeOutput(options(broker.url()));
    REQUIRE(out->open("").isOk());
    broker.kill();

    const auto t0 = std::chrono::steady_clock::now();
    SendResult r = out->send(makeBlock(1, "s", 1), in(1500ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(took < 2500ms);
    MESSAGE("send with the broker down: ", r.reason);
    // Again, now that the loss is known: one connect attempt, bounded by the deadline.
    r = out->send(makeBlock(1, "s", 1), in(1500ms));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.reason.find("connect") != std::string::npos);
    out->close();

    auto fresh = makeOutput(options(broker.url()));
    Status s = fresh->open("");
    REQUIRE_FALSE(s.isOk());
    CHECK(s.retryable());
    CHECK(s.message().find("broker " + broker.url()) != std::string::npos);
  }

  TEST_CASE("an unresolvable broker host: open error naming the broker") {
    auto out = makeOutput(options("tcp://no-such-host.invalid:1883"));
    Status s = out->open("");
    REQUIRE_FALSE(s.isOk());
    CHECK(s.message().find("broker tcp://no-such-host.invalid:1883") != std::string::npos);
  }

  // What holds across a broker SIGKILL (README, "What delivered promises"): blocks acked
  // before the kill were already forwarded to the connected subscriber; blocks sent while the
  // broker is down are retried until the restarted broker acks them; the restarted broker
  // queues them for the subscriber's persistent session (restored from the database saved
  // on every change) until the subscriber is back. The kill falls between two sends, so no
  // acked message waits unsaved in the broker (Mosquitto acks before it saves).
  TEST_CASE("broker killed and restarted mid-sequence: every block delivered, none lost") {
    MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    TestSubscriber sub(broker.url(), "test-sub-restart");
    REQUIRE_MESSAGE(sub.subscribe("ferry/#"), sub.error());
    auto out = makeOutput(options(broker.url()));
    REQUIRE(out->open("").isOk());

    const int kBlocks = 60, kPerBlock = 50;
    int retries = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::thread restarter;
    for (int b = 0; b < kBlocks; ++b) {
      if (b == 20) {
        broker.kill();
        restarter = std::thread([&broker] {
          std::this_thread::sleep_for(1500ms);
          broker.restart();
        });
      }
      SendResult r = sendUntilDelivered(*out, makeBlock(100 + b, "s", kPerBlock, b * kPerBlock),
                                        30s, &retries);
      REQUIRE_MESSAGE(r.kind == SendResult::Kind::kDelivered, r.reason);
    }
    restarter.join();
    CHECK(retries > 0);
    // Every record at least once (dedupe by key: a retried block may arrive twice).
    const bool all = sub.waitFor(
        [&](const std::vector<ReceivedMessage>& got) {
          std::set<std::string> keys;
          for (const ReceivedMessage& m : got) keys.insert(m.property("ferry-key"));
          return keys.size() == static_cast<size_t>(kBlocks);
        },
        30s);
    std::vector<ReceivedMessage> got = sub.messages();
    std::map<std::string, std::string> by_key;
    for (const ReceivedMessage& m : got) {
      auto [it, fresh] = by_key.emplace(m.property("ferry-key"), m.payload);
      if (!fresh) CHECK(it->second == m.payload);  // a duplicate is the same block
    }
    if (!all) MESSAGE("broker log:\n", broker.log());
    CHECK(all);
    CHECK(by_key.size() == static_cast<size_t>(kBlocks));
    MESSAGE("kill/restart: ", kBlocks, " blocks delivered in ",
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count(),
            " ms, ", retries, " retries, ", got.size() - by_key.size(), " duplicate messages");
  }
}
