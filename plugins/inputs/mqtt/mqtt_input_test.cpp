#include "plugins/inputs/mqtt/mqtt_input.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fakes.h"
#include "tests/support/mosquitto.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using test::CaptureEmitter;

size_t recordCount(CaptureEmitter& e) {
  std::lock_guard lock(e.mu_);
  return e.records.size();
}

std::vector<std::string> recordsOf(CaptureEmitter& e) {
  std::lock_guard lock(e.mu_);
  return e.records;
}

bool waitForRecords(CaptureEmitter& e, size_t n, std::chrono::milliseconds timeout = 10s) {
  return test::eventually([&] { return recordCount(e) >= n; }, timeout);
}

MqttInputSettings settingsFor(const test::MosquittoBroker& broker, std::string client_id) {
  MqttInputSettings s;
  s.broker = broker.url();
  std::string why;
  REQUIRE(parseBrokerUri(s.broker, &s.address, &why));
  s.client_id = std::move(client_id);
  s.topics = {"sensors/#"};
  s.keepalive = 5s;
  s.connect_timeout = 2s;
  s.retry_initial = 50ms;
  s.retry_max = 200ms;
  s.max_message_bytes = 1024;
  return s;
}

std::vector<std::string> numbered(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back("{\"n\":" + std::to_string(i) + "}");
  return out;
}

// Publishes `payload` on `topic` until a record arrives (the subscription is in place).
void publishUntilOneArrives(test::TestPublisher& pub, CaptureEmitter& emitter,
                            const std::string& topic, const std::string& payload) {
  REQUIRE(test::eventually(
      [&] {
        REQUIRE(pub.publish(topic, {payload}, 1));
        return recordCount(emitter) > 0;
      },
      10s));
}

// Publishes probes on `topic` until one arrives (the subscription is in place), then a
// fence message, and waits until the fence arrived and every record so far was
// acknowledged: probes still on their way cannot land among the test's messages later.
void warmUp(test::TestPublisher& pub, MqttInput& input, CaptureEmitter& emitter,
            const std::string& topic) {
  publishUntilOneArrives(pub, emitter, topic, "{\"probe\":true}");
  REQUIRE(pub.publish(topic, {"{\"fence\":true}"}, 1));
  REQUIRE(test::eventually(
      [&] {
        const std::vector<std::string> r = recordsOf(emitter);
        return !r.empty() && r.back().find("fence") != std::string::npos &&
               input.acked() >= r.size();
      },
      10s));
}

Options baseOptions() {
  Options o;
  o.set("broker", std::string("tcp://127.0.0.1:1883"), {"ferry.yaml", 3, "inputs[0].broker"});
  o.set("topics", std::vector<std::string>{"a/+/c", "#"}, {"ferry.yaml", 4, "inputs[0].topics"});
  return o;
}

TEST_SUITE("inputs.mqtt") {
  TEST_CASE("settings: defaults, and errors that name the key") {
    PluginContext ctx;
    ctx.agent_id = "gw1";
    ctx.name = "plant";
    Result<MqttInputSettings> s = MqttInputSettings::fromOptions(ctx, baseOptions());
    REQUIRE(s.isOk());
    CHECK(s->client_id == "ferry-gw1-plant");
    CHECK(s->qos == 1);
    CHECK_FALSE(s->clean_session);
    CHECK(s->address.port == 1883);

    Options bad_filter = baseOptions();
    bad_filter.set("topics", std::vector<std::string>{"a/#/b"},
                   {"ferry.yaml", 4, "inputs[0].topics"});
    Result<MqttInputSettings> r = MqttInputSettings::fromOptions(ctx, bad_filter);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().message().find("ferry.yaml:4: inputs[0].topics") != std::string::npos);
    CHECK(r.status().message().find("a/#/b") != std::string::npos);

    Options tls_on_tcp = baseOptions();
    tls_on_tcp.set("tls.ca_file", std::string("/tmp/ca.pem"),
                   {"ferry.yaml", 7, "inputs[0].tls.ca_file"});
    CHECK_FALSE(MqttInputSettings::fromOptions(ctx, tls_on_tcp).isOk());

    Options password_alone = baseOptions();
    password_alone.set("password", std::string("pw"), {"ferry.yaml", 8, "inputs[0].password"});
    r = MqttInputSettings::fromOptions(ctx, password_alone);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().message().find("inputs[0].password") != std::string::npos);

    Options bad_broker = baseOptions();
    bad_broker.set("broker", std::string("http://x"), {"ferry.yaml", 3, "inputs[0].broker"});
    CHECK_FALSE(MqttInputSettings::fromOptions(ctx, bad_broker).isOk());

    Options none = baseOptions();
    none.set("topics", std::vector<std::string>{}, {"ferry.yaml", 4, "inputs[0].topics"});
    CHECK_FALSE(MqttInputSettings::fromOptions(ctx, none).isOk());
  }

  TEST_CASE("topic filters: wildcards only as whole levels, '#' last") {
    CHECK(validMqttTopicFilter("a/b"));
    CHECK(validMqttTopicFilter("#"));
    CHECK(validMqttTopicFilter("+/x/#"));
    CHECK(validMqttTopicFilter("/"));
    CHECK_FALSE(validMqttTopicFilter(""));
    CHECK_FALSE(validMqttTopicFilter("a/#/b"));
    CHECK_FALSE(validMqttTopicFilter("a+/b"));
    CHECK_FALSE(validMqttTopicFilter("a/b#"));
    CHECK_FALSE(validMqttTopicFilter(std::string("a\0b", 3)));
  }

  TEST_CASE(
      "QoS 0 and 1 messages become records with their topic; bad and too large ones are counted") {
    test::MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    MqttInputSettings s = settingsFor(broker, "ferry-test-records");
    MqttInput input(s, "plant");
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
    test::TestPublisher pub(broker.url(), "pub-records");
    REQUIRE_MESSAGE(pub.connect(), pub.error());
    // Wait until the subscription is in place: publish until one arrives.
    warmUp(pub, input, emitter, "sensors/probe");
    const size_t base = recordCount(emitter);
    REQUIRE(pub.publish("sensors/a", numbered(0, 50), 1));
    REQUIRE(pub.publish("sensors/b", numbered(50, 60), 0));
    REQUIRE(pub.publish("sensors/a", {"not json", "[1,2]", std::string(2000, 'x')}, 1));
    REQUIRE(pub.publish("sensors/c", {"{ \"pretty\" :\n  {\"x\": 1}\n}", "{}"}, 1));
    REQUIRE(waitForRecords(emitter, base + 62));
    // Every QoS 1 message is acknowledged (with auto_commit): the dropped ones too.
    REQUIRE(test::eventually([&] { return input.acked() >= 1 + 50 + 3 + 2; }, 10s));
    input.stop();
    std::vector<std::string> records = recordsOf(emitter);
    REQUIRE(records.size() == base + 62);
    records.erase(records.begin(), records.begin() + static_cast<long>(base));
    for (int i = 0; i < 50; ++i) {
      CHECK(records[i] == "{\"n\":" + std::to_string(i) + ",\"topic\":\"sensors/a\"}");
    }
    CHECK(records[50] == "{\"n\":50,\"topic\":\"sensors/b\"}");
    // One line: the newlines of the payload become spaces.
    CHECK(records[60] == "{ \"pretty\" :   {\"x\": 1} ,\"topic\":\"sensors/c\"}");
    CHECK(records[61] == "{\"topic\":\"sensors/c\"}");
    std::lock_guard lock(emitter.mu_);
    CHECK(emitter.dropped["bad_json"] == 1);
    CHECK(emitter.dropped["not_an_object"] == 1);
    CHECK(emitter.dropped["mqtt_too_large"] == 1);
  }

  TEST_CASE("text format, no topic field, invalid UTF-8 replaced") {
    test::MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    MqttInputSettings s = settingsFor(broker, "ferry-test-text");
    s.format.format = LineFormat::kText;
    s.format.invalid_utf8 = InvalidUtf8::kReplace;
    s.topic_field = "";
    s.topics = {"logs/+"};
    MqttInput input(s, "logs");
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    test::TestPublisher pub(broker.url(), "pub-text");
    REQUIRE(pub.connect());
    publishUntilOneArrives(pub, emitter, "logs/x", {"line \"one\"\n\xff"});
    input.stop();
    CHECK(recordsOf(emitter).front() == "{\"message\":\"line \\\"one\\\"\\n\\ufffd\"}");
  }

  TEST_CASE("PUBACK only after commit: what was not committed comes again to the same client id") {
    test::MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    const MqttInputSettings s = settingsFor(broker, "ferry-test-ack");
    test::TestPublisher pub(broker.url(), "pub-ack");
    REQUIRE(pub.connect());
    {
      // First run: subscribe (persistent session), take everything as committed.
      MqttInput input(s, "plant");
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      warmUp(pub, input, emitter, "sensors/warmup");
      input.stop();
    }
    {
      // Second run: five messages, each in its own tracked emit (one is published once the
      // previous one arrived); only the first three emits are committed.
      MqttInput input(s, "plant");
      CaptureEmitter emitter;
      emitter.auto_commit = false;
      REQUIRE(input.start(emitter).isOk());
      REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
      for (int i = 0; i < 5; ++i) {
        REQUIRE(pub.publish("sensors/a", numbered(i, i + 1), 1));
        REQUIRE(waitForRecords(emitter, static_cast<size_t>(i) + 1));
      }
      {
        std::lock_guard lock(emitter.mu_);
        REQUIRE(emitter.tickets == 5);
      }
      // A wrong implementation (acknowledging on receipt, as Paho does) would have acked by now.
      std::this_thread::sleep_for(200ms);
      CHECK(input.acked() == 0);
      emitter.commitThrough(3);
      const bool three = test::eventually([&] { return input.acked() == 3; }, 5s);
      INFO("acked: ", input.acked());
      REQUIRE(three);
      const auto t0 = std::chrono::steady_clock::now();
      input.stop();
      CHECK(std::chrono::steady_clock::now() - t0 < 1s);
      CHECK(input.acked() == 3);
    }
    {
      // Third run, same client id: the broker sends the unacknowledged ones again.
      MqttInput input(s, "plant");
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
      REQUIRE(test::eventually([&] { return input.acked() >= 2; }, 10s));
      input.stop();
      const std::vector<std::string> again = recordsOf(emitter);
      REQUIRE(again.size() == 2);
      CHECK(again[0] == "{\"n\":3,\"topic\":\"sensors/a\"}");
      CHECK(again[1] == "{\"n\":4,\"topic\":\"sensors/a\"}");
    }
  }

  TEST_CASE("stop() returns within 1 s with commits outstanding and the broker frozen") {
    test::MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    MqttInput input(settingsFor(broker, "ferry-test-stop"), "plant");
    CaptureEmitter emitter;
    emitter.auto_commit = false;
    REQUIRE(input.start(emitter).isOk());
    REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
    test::TestPublisher pub(broker.url(), "pub-stop");
    REQUIRE(pub.connect());
    publishUntilOneArrives(pub, emitter, "sensors/a", {"{}"});
    broker.pause();  // SIGSTOP: the connection stays open, nothing is read or answered
    const auto t0 = std::chrono::steady_clock::now();
    input.stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    broker.resume();
    CHECK(took < 1s);
    CHECK(input.acked() == 0);  // nothing was committed
  }

  TEST_CASE("broker restart: the input reconnects; what was queued while it was away arrives") {
    test::MosquittoBroker broker;
    REQUIRE_MESSAGE(broker.start(), broker.log());
    const MqttInputSettings s = settingsFor(broker, "ferry-test-restart");
    MqttInput input(s, "plant");
    CaptureEmitter emitter;
    REQUIRE(input.start(emitter).isOk());
    REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
    {
      test::TestPublisher pub(broker.url(), "pub-restart-1");
      REQUIRE(pub.connect());
      warmUp(pub, input, emitter, "sensors/warmup");
    }
    const size_t base = recordCount(emitter);
    broker.kill();
    REQUIRE(test::eventually([&] { return !input.connected(); }, 10s));
    REQUIRE_MESSAGE(broker.restart(), broker.log());
    REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
    CHECK(input.connects() == 2);
    input.stop();
    {
      // Published while the input is stopped: queued in its persistent session.
      test::TestPublisher pub(broker.url(), "pub-restart-2");
      REQUIRE(pub.connect());
      REQUIRE(pub.publish("sensors/a", numbered(0, 100), 1));
    }
    MqttInput again(s, "plant");
    REQUIRE(again.start(emitter).isOk());
    REQUIRE(waitForRecords(emitter, base + 100));
    REQUIRE(test::eventually([&] { return again.acked() >= 100; }, 10s));
    again.stop();
    const std::vector<std::string> records = recordsOf(emitter);
    REQUIRE(records.size() == base + 100);
    for (size_t i = 0; i < 100; ++i) {
      CHECK(records[base + i] == "{\"n\":" + std::to_string(i) + ",\"topic\":\"sensors/a\"}");
    }
  }
}

TEST_SUITE("inputs.mqtt.tls") {
  TEST_CASE("TLS: verified against ca_file; unknown CA, wrong host name refused; skip_verify") {
    // A self-signed certificate for IP 127.0.0.1 only (no DNS name), made with the openssl
    // CLI; Mosquitto serves TLS on its first listener and plain MQTT on a second one (for the
    // test's publisher).
    test::TempDir certs;
    const std::string cert = certs.file("broker.pem");
    const std::string key = certs.file("broker.key");
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '" +
        key + "' -out '" + cert + "' >/dev/null 2>&1";
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "openssl CLI could not make a certificate");
    const int plain_port = test::freePort();
    test::MosquittoBroker broker;
    broker.setExtraConfig("certfile " + cert + "\nkeyfile " + key + "\nlistener " +
                          std::to_string(plain_port) + " 127.0.0.1\n");
    REQUIRE_MESSAGE(broker.start(), broker.log());
    REQUIRE(test::waitForPort(plain_port, 10s));
    const std::string plain_url = "tcp://127.0.0.1:" + std::to_string(plain_port);

    auto tlsSettings = [&](const std::string& host, const std::string& id) {
      MqttInputSettings s = settingsFor(broker, id);
      s.broker = "ssl://" + host + ":" + std::to_string(broker.port());
      std::string why;
      REQUIRE(parseBrokerUri(s.broker, &s.address, &why));
      return s;
    };

    SUBCASE("ca_file: connects and receives") {
      MqttInputSettings s = tlsSettings("127.0.0.1", "ferry-tls-ok");
      s.tls.ca_file = cert;
      MqttInput input(s, "secure");
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      const bool up = test::eventually([&] { return input.connected(); }, 10s);
      INFO("last error: ", input.lastError());
      REQUIRE(up);
      test::TestPublisher pub(plain_url, "pub-tls");
      REQUIRE(pub.connect());
      warmUp(pub, input, emitter, "sensors/tls");
      input.stop();
      CHECK(recordsOf(emitter).back() == "{\"fence\":true,\"topic\":\"sensors/tls\"}");
    }
    SUBCASE("the system's CAs do not know the broker: refused, retried") {
      MqttInput input(tlsSettings("127.0.0.1", "ferry-tls-unknown"), "secure");
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      REQUIRE(test::eventually(
          [&] {
            return input.lastError().find("certificate verification failed") != std::string::npos;
          },
          10s));
      CHECK_FALSE(input.connected());
      input.stop();
    }
    SUBCASE("a host name the certificate does not name: refused") {
      MqttInputSettings s = tlsSettings("localhost", "ferry-tls-host");
      s.tls.ca_file = cert;
      MqttInput input(s, "secure");
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      REQUIRE(test::eventually(
          [&] {
            return input.lastError().find("certificate verification failed") != std::string::npos;
          },
          10s));
      CHECK(input.connects() == 0);
      input.stop();
    }
    SUBCASE("insecure_skip_verify connects without a CA") {
      MqttInputSettings s = tlsSettings("localhost", "ferry-tls-skip");
      s.tls.insecure_skip_verify = true;
      MqttInput input(s, "secure");
      CaptureEmitter emitter;
      REQUIRE(input.start(emitter).isOk());
      REQUIRE(test::eventually([&] { return input.connected(); }, 10s));
      input.stop();
    }
    SUBCASE("a CA file that cannot be loaded fails start() naming the key") {
      MqttInputSettings s = tlsSettings("127.0.0.1", "ferry-tls-nofile");
      s.tls.ca_file = certs.file("missing.pem");
      MqttInput input(s, "secure");
      CaptureEmitter emitter;
      Status st = input.start(emitter);
      REQUIRE_FALSE(st.isOk());
      CHECK(st.message().find("tls.ca_file") != std::string::npos);
    }
  }
}

}  // namespace
}  // namespace ferry
