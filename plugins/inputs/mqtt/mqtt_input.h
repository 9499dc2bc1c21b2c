// The `mqtt` input: subscribes to `topics` on an MQTT broker and emits one record per
// message. Built on Ferry's own small MQTT 3.1.1 client (mqtt_codec.h, mqtt_transport.h),
// not on Paho: Paho C acknowledges a QoS 1 PUBLISH (PUBACK) before it hands the message to
// the application, and this input must acknowledge only after the records are committed.
//
// Acknowledgement (QoS 1): the reader thread decodes whatever arrived (at most
// kBatchMessages messages per batch), emits it with Emitter::emitTracked and queues
// (ticket, packet ids). The acker thread waits for the tickets in order
// (Emitter::waitCommitted) and hands the committed ones back; the reader thread then sends
// their PUBACKs, in the order the PUBLISHes arrived. Reading never waits for a commit: the
// broker's in-flight window (Mosquitto: max_inflight_messages, 20 by default) is what
// bounds the messages outstanding. A ticket that fails (kIoError: the records were not
// stored) is not acknowledged and the connection is dropped and made again, so that the
// broker sends the message again. A killed agent never acknowledged what it had not
// committed: the broker redelivers it (at-least-once; duplicates possible).
// Messages dropped on purpose (too large, not JSON with `format: json`) are counted and
// acknowledged in their turn: sending them again would not help.
//
// Records: the payload is one "line" of the shared line formats (agent/formats/line_format.h,
// docs/formats.md: json, text, logfmt, csv, influx, regex, with their options), and the
// message's topic is added as the member `topic_field` (default "topic"; none when empty).
// Payloads a format refuses are counted with the format's reason (bad_json, not_an_object,
// invalid_utf8, ...); payloads over max_message_bytes are skipped without being buffered
// and counted as ferry_dropped_records_total{reason="mqtt_too_large"}.
//
// Connection: CONNECT with clean_session (default off: the broker keeps the subscription
// and queues QoS 1 messages while the agent is away, under the stable client_id), then
// one SUBSCRIBE for every topic (re-sent at every connect). Refused subscriptions (0x80)
// and downgrades are logged as errors. Keep-alive: PINGREQ when nothing was sent for
// `keepalive`; a connection silent for 1.5 x keepalive is dropped. Failures reconnect
// after a capped exponential backoff with full jitter (`retry`).
//
// Threading: start() starts the reader thread and the acker thread and returns. The reader
// thread owns the connection and is the only one to call Emitter::emit*/countDropped; the
// acker thread only calls Emitter::waitCommitted. stop() (any thread) makes the reader stop
// reading, wait up to 500 ms for outstanding commits, acknowledge what committed, send
// DISCONNECT and close; it returns within about 600 ms (unless an emit() is blocked on a
// full buffer, which the core's stop ends).
// Ownership: the input owns its threads, socket and TLS context; the emitter given to
// start() must outlive stop().
// Memory: a read buffer of at most max_message_bytes + 64 KiB (+ topic), one batch of at
// most kBatchMessages records, and the ids of unacknowledged messages (bounded by the
// broker's in-flight window).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/broker_uri.h"
#include "agent/formats/line_format.h"
#include "ferry/input.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"
#include "plugins/inputs/mqtt/mqtt_codec.h"
#include "plugins/inputs/mqtt/mqtt_transport.h"

namespace ferry {

struct MqttInputSettings {
  std::string broker;  // as configured
  BrokerAddress address;
  std::string client_id;  // default ferry-<agent>-<input>
  std::vector<std::string> topics;
  uint8_t qos = 1;  // 2 is downgraded to 1 (logged)
  bool clean_session = false;
  Duration keepalive = std::chrono::seconds(30);
  std::string username;
  std::string password;
  mqttc::TlsFiles tls;
  uint64_t max_message_bytes = 1 << 20;
  LineFormatSpec format;  // format, pattern, columns, delimiter, invalid_utf8
  std::string topic_field = "topic";
  Duration connect_timeout = std::chrono::seconds(10);
  Duration retry_initial = std::chrono::seconds(1);
  Duration retry_max = std::chrono::seconds(60);

  // Reads the validated options; checks what the table cannot (URI, topic filters, limits)
  // with errors naming the key's location.
  static Result<MqttInputSettings> fromOptions(const PluginContext& ctx, const Options& opts);
};

// True when `filter` is a valid MQTT topic filter: not empty, '#' only as the last level,
// '+' and '#' only as whole levels, no NUL, at most 65535 bytes.
bool validMqttTopicFilter(std::string_view filter);

class MqttInput final : public Input {
 public:
  // `instance` names the input in logs.
  MqttInput(MqttInputSettings settings, std::string instance);
  ~MqttInput() override;
  MqttInput(const MqttInput&) = delete;
  MqttInput& operator=(const MqttInput&) = delete;

  // Loads the TLS context (errors name the file) and starts the threads; returns at once.
  // Connecting happens on the reader thread (failures are logged and retried).
  Status start(Emitter& emitter) override;
  void stop() override;

  // For tests and logs. Any thread.
  bool connected() const { return connected_.load(); }
  uint64_t connects() const { return connects_.load(); }
  uint64_t acked() const { return acked_.load(); }
  // Why the last connection attempt or connection ended ("" before the first failure).
  std::string lastError() const;

 private:
  struct Pending {
    uint64_t ticket = 0;  // 0: nothing to wait for (every message was dropped on purpose)
    uint64_t generation = 0;
    std::vector<uint16_t> ids;
    enum class State { kWaiting, kCommitted, kFailed, kCancelled } state = State::kWaiting;
  };

  void runReader();
  void runAcker();
  // One connection: connect, subscribe, serve until it drops or stop. Returns why it ended.
  Status serve();
  Status handshake();
  void appendInput(const char* data, size_t n);  // to in_, keeping kLinePadding
  // Handles every complete packet in in_ and emits what they held.
  Status parseFrames();
  Status handleFrame(const mqttc::Frame& frame);
  Status handlePublish(const mqttc::Frame& frame);
  void addRecord(std::string_view topic, std::string_view payload);
  // Counts a message dropped on purpose; logs at most once per 10 s.
  void noteDropped(std::string_view reason, const std::string& what);
  // Emits the batch being built (tracked when it holds QoS 1 ids). kResourceExhausted:
  // keep it and retry later.
  Status flushBatch();
  // Sends the PUBACKs of settled entries; kUnavailable when one failed (reconnect).
  Status sendSettledAcks();
  // Waits up to 500 ms for outstanding commits, acks them, sends DISCONNECT.
  void drainAndDisconnect();
  Status sendNow(std::string_view bytes);
  void wake();
  void drainWake();
  bool sleepInterruptible(Duration d);

  const MqttInputSettings settings_;
  const std::string instance_;
  std::shared_ptr<mqttc::TlsContext> tls_;
  Emitter* emitter_ = nullptr;

  std::mutex life_mu_;  // threads' lifetime
  std::thread reader_;
  std::thread acker_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> acked_{0};
  mutable std::mutex error_mu_;
  std::string last_error_;  // error_mu_

  // Shared by the reader and the acker.
  std::mutex ack_mu_;
  std::condition_variable ack_cv_;
  std::deque<Pending> waiting_;          // emitted, commit not known yet, in arrival order
  std::deque<Pending> settled_;          // commit known, PUBACKs not sent yet
  std::atomic<uint64_t> generation_{0};  // connection number; old acks are not sent
  std::chrono::steady_clock::time_point drain_until_{};  // ack_mu_; acker gives up then

  // Reader thread only.
  mqttc::BrokerStream stream_;
  std::string in_;                    // bytes read and not yet consumed (+ kLinePadding capacity)
  std::string out_;                   // packets being encoded
  std::unique_ptr<char[]> read_buf_;  // kReadChunk bytes
  size_t max_body_ = 0;               // largest PUBLISH body buffered
  RecordBatch batch_;
  std::vector<uint16_t> batch_ids_;   // QoS 1 ids of the messages in batch_ (dropped ones too)
  bool held_ = false;                 // batch_ was refused (buffer full); retry before reading
  uint64_t skip_left_ = 0;            // body bytes of an oversized PUBLISH still to skip
  std::optional<LineParser> parser_;  // made at start()
  std::string extra_;                 // the topic member of the record being built
  std::chrono::steady_clock::time_point last_sent_{};
  std::chrono::steady_clock::time_point last_received_{};
  uint16_t next_packet_id_ = 1;
  uint16_t subscribe_id_ = 0;
  uint64_t dropped_since_log_ = 0;
  std::chrono::steady_clock::time_point next_drop_log_{};
};

const PluginDescriptor& mqttInputDescriptor();

}  // namespace ferry
