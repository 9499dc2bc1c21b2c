// A real Mosquitto broker for tests, and a small MQTT subscriber that records what it gets.
//
// MosquittoBroker runs /usr/sbin/mosquitto on a free 127.0.0.1 port with a generated
// config in its own temp dir (anonymous access, persistence saved on every change), so a
// test can kill it (SIGKILL), stop it (SIGTERM) and restart it on the same port with the
// same persistence file: queued messages of persistent sessions survive.
//
// TestSubscriber is a Paho C++ client with a fixed client id and a persistent session
// (MQTT 5, clean start off, long session expiry) subscribed at QoS 1; it reconnects by
// itself (Paho's automatic reconnect: fine for a test helper) and keeps every message with
// its MQTT 5 user properties.
//
// Thread-safety: MosquittoBroker has one owner. TestSubscriber's accessors may be called
// from any thread while Paho's callback thread adds messages.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace ferry::test {

class MosquittoBroker {
 public:
  MosquittoBroker();
  ~MosquittoBroker();  // kills a broker still running
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  // Lines added to the generated config at the next start() (e.g. a TLS listener, limits).
  void setExtraConfig(std::string lines) { extra_config_ = std::move(lines); }

  // Picks a free port (first start only), writes the config, starts the broker and waits
  // (up to 10 s) until the port accepts connections. False with the broker's log on failure
  // (see log()).
  bool start();
  void kill();     // SIGKILL, waits for the exit
  void stop();     // SIGTERM (the broker saves its persistence file), waits for the exit
  bool restart();  // start() again: same port, same persistence dir
  void pause();    // SIGSTOP: connections stay open, nothing is answered
  void resume();   // SIGCONT
  bool running();

  int port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;  // the broker's stderr/stdout so far
  const std::string& dir() const { return dir_.path().native(); }

 private:
  TempDir dir_;
  int port_ = 0;
  int starts_ = 0;
  std::string extra_config_;
  std::unique_ptr<Process> proc_;
};

// Blocks until a TCP connection to 127.0.0.1:`port` succeeds or `timeout` passes.
bool waitForPort(int port, std::chrono::milliseconds timeout);

struct ReceivedMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  std::vector<std::pair<std::string, std::string>> user_properties;

  // The first user property named `name`, or "" when none.
  std::string property(const std::string& name) const;
};

class TestSubscriber {
 public:
  // `client_id` fixed, so that a restarted broker (or a reconnect) resumes the session.
  TestSubscriber(std::string server_url, std::string client_id);
  ~TestSubscriber();  // disconnects
  TestSubscriber(const TestSubscriber&) = delete;
  TestSubscriber& operator=(const TestSubscriber&) = delete;

  // Connects (persistent session) and subscribes to `topic_filter` at QoS 1; waits for
  // SUBACK. False with the reason in error().
  bool subscribe(const std::string& topic_filter,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

  size_t count() const;
  std::vector<ReceivedMessage> messages() const;  // a copy, in arrival order
  // Waits until `pred(messages)` is true or `timeout` passes (checked on each arrival).
  bool waitFor(const std::function<bool(const std::vector<ReceivedMessage>&)>& pred,
               std::chrono::milliseconds timeout) const;
  bool waitForCount(size_t n, std::chrono::milliseconds timeout) const {
    return waitFor([n](const std::vector<ReceivedMessage>& m) { return m.size() >= n; }, timeout);
  }
  const std::string& error() const { return error_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

// Publishes QoS 0/1 messages with a Paho C++ client (MQTT 3.1.1, clean session): the
// publishing side of the mqtt input's tests. publish() returns once the broker
// acknowledged every message (QoS 1) or wrote them (QoS 0).
class TestPublisher {
 public:
  TestPublisher(std::string server_url, std::string client_id);
  ~TestPublisher();  // disconnects
  TestPublisher(const TestPublisher&) = delete;
  TestPublisher& operator=(const TestPublisher&) = delete;

  bool connect(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Publishes every payload to `topic` (at most 100 unacknowledged at once); false with
  // the reason in error() when one fails or `timeout` passes.
  bool publish(const std::string& topic, const std::vector<std::string>& payloads, int qos = 1,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));
  const std::string& error() const { return error_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

}  // namespace ferry::test
