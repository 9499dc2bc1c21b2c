// The `mqtt` output: publishes each block to an MQTT broker (Eclipse Paho C++ async
// client) and acknowledges it once the broker acknowledged every message of it.
//
// Messages per block (`payload`):
//   ndjson          one message, every record followed by '\n'
//   envelope        one message, the block sealed by EnvelopeSealer (agent/codec/envelope.h)
//   json_per_record one message per record (the record's JSON, no newline)
// The topic is `topic` with {agent} (this agent's id) and {stream} (the block's stream)
// replaced. With MQTT 5 every message carries the user properties ferry-key
// ("<agent>/<output>/<seq>", the block's idempotency key, stable across retries),
// ferry-agent, ferry-stream, ferry-first-seq, ferry-count, and with json_per_record also
// ferry-index (the record's position in the block), so a subscriber can drop duplicates.
//
// Acks (QoS 1): send() publishes the block's messages and waits for every PUBACK until the
// deadline; then the block is delivered. At QoS 0 a message counts as delivered once Paho
// wrote it to the socket. Everything else is retried by the core's sender (the whole
// block: at-least-once, duplicates carry the same keys):
//   - not connected: send() tries one connect, bounded by the deadline (the sender's
//     backoff paces the attempts; Paho's own reconnect loop is off); a publish issued after
//     the connection dropped fails at once (Paho's offline buffering is off: nothing is
//     queued in Paho to go out again, as a duplicate, after a reconnect);
//   - the connection drops while messages are in flight, a publish fails, or the deadline
//     passes before the last PUBACK;
//   - a PUBACK reason code the broker may stop giving (0x80 unspecified, 0x83, 0x91 packet
//     id in use, 0x97 quota exceeded) and 0x87 not authorized (a broker ACL problem that an
//     operator can fix without touching the agent: logged as an error every time).
// Rejected (the block goes to dead letters) only when the broker can never take the block
// as it is: PUBACK 0x95 packet too large, 0x99 payload format invalid, 0x90 topic name
// invalid, or a topic that is invalid before publishing (a stream name with '+', '#' or
// NUL). With json_per_record the other records of such a block may have been delivered.
//
// Sessions: persistent_session connects with clean start (3.1.1: clean session) off and,
// for MQTT 5, a session expiry of one day, so the broker keeps the session's in-flight
// state over short outages; Paho keeps its own state in memory only
// (MQTTCLIENT_PERSISTENCE_NONE): durability is the buffer's job.
//
// Threading: one sender thread owns an instance and calls open(), send() and close(), never
// concurrently (maxInFlight() is 1: Paho pipelines the messages of one block). Paho's
// threads only run the callbacks of this class, which update counters under a mutex and
// notify the waiting sender. Blocking: open() up to 10 s (connect); send() until its
// deadline; close() about 250 ms at most. No exception leaves this module: Paho's
// mqtt::exception is caught here and turned into Status / SendResult values.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ferry/clock.h"
#include "ferry/output.h"
#include "ferry/plugin.h"
#include "ferry/status.h"

namespace mqtt {
class connect_options;
}  // namespace mqtt

namespace ferry {

// The validated settings of one mqtt output.
struct MqttOutputConfig {
  enum class Payload { kNdjson, kEnvelope, kJsonPerRecord };

  std::string broker;      // as configured (tcp:// ssl:// mqtt:// mqtts://)
  std::string server_uri;  // as Paho takes it: tcp://host:port or ssl://host:port
  bool tls = false;        // ssl:// or mqtts://
  std::string client_id;   // default "ferry-<agent>-<output>"
  std::string topic = "ferry/{agent}/{stream}";
  int qos = 1;
  bool retain = false;
  Payload payload = Payload::kNdjson;
  std::string envelope_key_file;  // payload envelope; empty: compressed, not encrypted
  int mqtt_version = 5;           // 5, or 3 for MQTT 3.1.1
  bool persistent_session = true;
  Duration keepalive = std::chrono::seconds(30);
  std::string username;
  std::string password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;

  std::string agent;   // PluginContext::agent_id
  std::string output;  // PluginContext::name
};

// Reads and checks the options of an `mqtt` output. Errors are kInvalidArgument naming
// the key's location (e.g. "ferry.yaml:12: outputs[0].broker: ...").
Result<MqttOutputConfig> mqttOutputConfigFromOptions(const PluginContext& ctx,
                                                     const Options& opts);

// `pattern` with {agent} and {stream} replaced (other text kept as it is).
std::string expandMqttTopic(std::string_view pattern, std::string_view agent,
                            std::string_view stream);

// True when `topic` may be published to: not empty, no '+', '#' or NUL, at most 65535 bytes.
bool validMqttPublishTopic(std::string_view topic);

class MqttOutput final : public Output {
 public:
  // `clock` measures send() deadlines (the agent's Clock); it must outlive the output.
  MqttOutput(MqttOutputConfig config, const Clock& clock);
  ~MqttOutput() override;  // close() if still open
  MqttOutput(const MqttOutput&) = delete;
  MqttOutput& operator=(const MqttOutput&) = delete;

  // Creates the client (and the envelope sealer) and connects, waiting up to 10 s. Errors:
  // kInvalidArgument naming `broker` for a URI Paho refuses; the key loader's or errno's
  // code naming envelope_key_file or the TLS file that cannot be read; kUnavailable "broker <uri>: connect failed: <why>" when
  // the broker cannot be reached or refuses the connection (bad credentials included: the
  // sender retries open() with backoff).
  Status open(std::string_view committed_state) override;

  // Publishes the block and waits for its acks (see the top of this file).
  SendResult send(const Block& block, SteadyTime deadline) override;

  // Makes a send() or connect in progress give up (retry) soon. Any thread.
  void interrupt() override;

  // Disconnects (without waiting for in-flight acks) and drops the client: about 250 ms at
  // most, also when the broker answers nothing, so it fits the agent's 300 ms stop margin.
  // Unacknowledged messages stay in the buffer and are sent again.
  void close() override;

  const MqttOutputConfig& config() const { return config_; }

 private:
  struct State;
  // Starts a connect (or keeps waiting for the one in progress) until `until`.
  Status connect(std::chrono::steady_clock::time_point until);
  // The options of one connect attempt (Paho may throw for bad values: caller catches).
  void fillConnectOptions(mqtt::connect_options* o, std::chrono::seconds timeout) const;

  MqttOutputConfig config_;
  const Clock& clock_;
  std::unique_ptr<State> state_;
};

// The descriptor the generated plugin table points at.
const PluginDescriptor& mqttOutputDescriptor();

}  // namespace ferry
