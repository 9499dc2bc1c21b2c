#include "plugins/outputs/mqtt/mqtt_output.h"

#include <unistd.h>

#include <mqtt/async_client.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

#include "agent/codec/envelope.h"
#include "agent/common/broker_uri.h"
#include "agent/codec/key_file.h"
#include "ferry/log.h"

namespace ferry {
namespace {

constexpr std::string_view kLogComponent = "output.mqtt";
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// close() must fit the agent's stop margin (300 ms). Paho is told not to wait for in-flight
// acks before it sends DISCONNECT (a send() in progress was interrupted already; whatever is
// unacknowledged stays in the buffer and is sent again), close() waits for the disconnect at
// most kCloseTimeout, and dropping Paho's last client costs about 100 ms more (Paho polls
// its threads' stop in 100 ms steps).
constexpr auto kDisconnectDrain = std::chrono::milliseconds(0);
constexpr auto kCloseTimeout = std::chrono::milliseconds(150);
constexpr int kSessionExpirySeconds = 24 * 60 * 60;
// Messages of one block outstanding (published, not yet acknowledged) at once, at most; the
// broker's Receive Maximum (MQTT 5 CONNACK) lowers it. Never more than Paho's own in-flight
// window: Paho 1.3 does not wake its send thread when an ack frees a slot, so publishes
// queued behind a full window trickle out at a few per second.
constexpr size_t kWindow = 1000;
constexpr int kMaxInflight = static_cast<int>(kWindow);
// Paho counts the publishes queued behind its in-flight window as buffered messages, also
// while connected (with offline buffering off), so this bounds the pipelining of one block.
constexpr int kMaxBuffered = 2 * kMaxInflight;
constexpr size_t kMaxTopicBytes = 65535;

// MQTT 5 PUBACK reason codes (spec 3.4.2.1).
constexpr int kRcNotAuthorized = 0x87;
constexpr int kRcTopicNameInvalid = 0x90;
constexpr int kRcPacketTooLarge = 0x95;
constexpr int kRcPayloadFormatInvalid = 0x99;
constexpr int kRcFirstError = 0x80;

bool readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

std::string describeReason(int reason) {
  return strCat("reason 0x", std::hex, reason, std::dec, " (",
                mqtt::exception::reason_code_str(reason), ")");
}

std::string describeFailure(int rc, int reason) {
  if (reason >= kRcFirstError) return describeReason(reason);
  return mqtt::exception::error_str(rc);
}

std::string_view contentType(MqttOutputConfig::Payload p) {
  switch (p) {
    case MqttOutputConfig::Payload::kNdjson:
      return "application/x-ndjson";
    case MqttOutputConfig::Payload::kEnvelope:
      return "application/vnd.ferry.envelope";
    case MqttOutputConfig::Payload::kJsonPerRecord:
      return "application/json";
  }
  return "application/octet-stream";
}

}  // namespace

std::string expandMqttTopic(std::string_view pattern, std::string_view agent,
                            std::string_view stream) {
  constexpr std::string_view kAgent = "{agent}";
  constexpr std::string_view kStream = "{stream}";
  std::string out;
  out.reserve(pattern.size() + agent.size() + stream.size());
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern.substr(i, kAgent.size()) == kAgent) {
      out += agent;
      i += kAgent.size();
    } else if (pattern.substr(i, kStream.size()) == kStream) {
      out += stream;
      i += kStream.size();
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

bool validMqttPublishTopic(std::string_view topic) {
  return !topic.empty() && topic.size() <= kMaxTopicBytes &&
         topic.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos;
}

Result<MqttOutputConfig> mqttOutputConfigFromOptions(const PluginContext& ctx,
                                                     const Options& opts) {
  MqttOutputConfig c;
  c.agent = ctx.agent_id;
  c.output = ctx.name;
  c.broker = opts.getString("broker");
  if (c.broker.empty()) {
    return invalidArgument(opts.locate("broker") +
                           ": a broker URI is required, e.g. tcp://broker.local:1883");
  }
  std::string why;
  BrokerAddress address;
  if (!parseBrokerUri(c.broker, &address, &why)) {
    return invalidArgument(opts.locate("broker") + ": \"" + c.broker + "\": " + why);
  }
  c.server_uri = address.serverUri();
  c.tls = address.tls;
  c.client_id = opts.getString("client_id");
  if (c.client_id.empty()) c.client_id = "ferry-" + c.agent + "-" + c.output;
  if (c.client_id.size() > 65535) {
    return invalidArgument(opts.locate("client_id") + ": longer than 65535 bytes");
  }
  if (opts.has("topic")) c.topic = opts.getString("topic");
  // Placeholders expand to agent ids and stream names, which may be long but never hold
  // wildcards by themselves: check the pattern with a harmless stand-in.
  if (!validMqttPublishTopic(expandMqttTopic(c.topic, "a", "s"))) {
    return invalidArgument(opts.locate("topic") + ": \"" + c.topic +
                           "\" is not a topic one can publish to (empty, or holds '+' or '#')");
  }
  if (opts.has("qos")) c.qos = opts.getString("qos") == "0" ? 0 : 1;
  if (opts.has("retain")) c.retain = opts.getBool("retain");
  if (opts.has("payload")) {
    const std::string& p = opts.getString("payload");
    c.payload = p == "envelope"          ? MqttOutputConfig::Payload::kEnvelope
                : p == "json_per_record" ? MqttOutputConfig::Payload::kJsonPerRecord
                                         : MqttOutputConfig::Payload::kNdjson;
  }
  c.envelope_key_file = opts.getString("envelope_key_file");
  if (!c.envelope_key_file.empty() && c.payload != MqttOutputConfig::Payload::kEnvelope) {
    return invalidArgument(opts.locate("envelope_key_file") +
                           ": only used with payload: envelope");
  }
  if (opts.has("mqtt_version")) c.mqtt_version = opts.getString("mqtt_version") == "3" ? 3 : 5;
  if (opts.has("persistent_session")) c.persistent_session = opts.getBool("persistent_session");
  if (opts.has("keepalive")) c.keepalive = opts.getDuration("keepalive");
  if (c.keepalive < std::chrono::seconds(1) || c.keepalive > std::chrono::seconds(65535)) {
    return invalidArgument(opts.locate("keepalive") + ": must be between 1s and 65535s, got " +
                           formatDuration(c.keepalive));
  }
  c.username = opts.getString("username");
  c.password = opts.getString("password");
  if (!c.password.empty() && c.username.empty()) {
    return invalidArgument(opts.locate("password") + ": a password needs a username");
  }
  c.ca_file = opts.getString("tls.ca_file");
  c.cert_file = opts.getString("tls.cert_file");
  c.key_file = opts.getString("tls.key_file");
  c.insecure_skip_verify = opts.has("tls.insecure_skip_verify") &&
                           opts.getBool("tls.insecure_skip_verify");
  const bool any_tls = !c.ca_file.empty() || !c.cert_file.empty() || !c.key_file.empty() ||
                       c.insecure_skip_verify;
  if (any_tls && !c.tls) {
    return invalidArgument(opts.locate("tls") + ": TLS settings given but broker \"" +
                           c.broker + "\" is not ssl:// or mqtts://");
  }
  if (c.cert_file.empty() != c.key_file.empty()) {
    return invalidArgument(opts.locate("tls") +
                           ": cert_file and key_file go together (client certificate)");
  }
  return c;
}

// Everything Paho touches. The callbacks (Paho's threads) only update the counters below
// under `mu` and notify `cv`; the sender thread does all the work.
struct MqttOutput::State final : public mqtt::iaction_listener {
  // --- shared with Paho's threads and interrupt(), guarded by mu ---
  std::mutex mu;
  std::condition_variable cv;
  uintptr_t next_context = 0;     // action ids given to Paho as user contexts
  uintptr_t connect_context = 0;  // the connect attempt in progress (0: none)
  bool connect_done = false;
  bool connect_failed = false;
  int connect_rc = 0;
  int connect_reason = 0;
  uintptr_t send_context = 0;  // the send in progress; late acks of older sends are ignored
  size_t pending = 0;          // messages of that send not yet acknowledged
  bool publish_failed = false;
  int publish_rc = 0;
  int publish_reason = 0;
  uint64_t losses = 0;  // connections lost so far
  std::string lost_cause;
  bool interrupted = false;

  // --- sender thread only ---
  std::unique_ptr<mqtt::async_client> client;
  mqtt::token_ptr connecting;  // kept so that Paho's token outlives the attempt
  size_t window = kWindow;     // see kWindow; set at each connect
  std::unique_ptr<EnvelopeSealer> sealer;  // payload: envelope
  std::string buf;

  void on_success(const mqtt::token& tok) override { finished(tok, false); }
  void on_failure(const mqtt::token& tok) override { finished(tok, true); }

  void finished(const mqtt::token& tok, bool failed) {
    const auto ctx = reinterpret_cast<uintptr_t>(tok.get_user_context());
    const int rc = tok.get_return_code();
    const int reason = static_cast<int>(tok.get_reason_code());
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ctx != 0 && ctx == connect_context) {
        connect_done = true;
        connect_failed = failed || reason >= kRcFirstError;
        connect_rc = rc;
        connect_reason = reason;
      } else if (ctx != 0 && ctx == send_context && pending > 0) {
        --pending;
        if ((failed || reason >= kRcFirstError) && !publish_failed) {
          publish_failed = true;
          publish_rc = rc;
          publish_reason = reason;
        }
      } else {
        return;
      }
    }
    cv.notify_all();
  }

  void lost(std::string cause) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++losses;
      lost_cause = std::move(cause);
    }
    cv.notify_all();
  }
};

MqttOutput::MqttOutput(MqttOutputConfig config, const Clock& clock)
    : config_(std::move(config)), clock_(clock), state_(std::make_unique<State>()) {}

MqttOutput::~MqttOutput() { close(); }

namespace {

// The real steady-clock time `deadline` (on `clock`) stands for: Paho waits in real time.
std::chrono::steady_clock::time_point realDeadline(const Clock& clock, SteadyTime deadline) {
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(deadline - clock.now());
}

}  // namespace

Status MqttOutput::open(std::string_view /*committed_state*/) {
  close();
  State& st = *state_;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.interrupted = false;
  }
  if (config_.payload == MqttOutputConfig::Payload::kEnvelope) {
    std::optional<KeyMaterial> key;
    if (!config_.envelope_key_file.empty()) {
      Result<KeyMaterial> k = loadKeyFile(config_.envelope_key_file);
      if (!k) return k.status().withContext("envelope_key_file");
      key = std::move(k).value();
    }
    st.sealer = std::make_unique<EnvelopeSealer>(std::move(key), 0);
  }
  const std::pair<std::string_view, const std::string*> files[] = {
      {"tls.ca_file", &config_.ca_file},
      {"tls.cert_file", &config_.cert_file},
      {"tls.key_file", &config_.key_file}};
  for (const auto& [what, path] : files) {
    if (!path->empty() && !readable(*path)) return errnoStatus(strCat(what, ": ", *path), errno);
  }

  const int version = config_.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
  try {
    // No offline buffering: a publish issued after the connection dropped must fail at once
    // (send() answers retry) instead of waiting in Paho for a reconnect, going out again
    // then as a duplicate while send() waits out its deadline. The buffer is the only queue.
    mqtt::create_options create(version, kMaxBuffered);
    create.set_send_while_disconnected(false);
    st.client = std::make_unique<mqtt::async_client>(
        config_.server_uri, config_.client_id, create,
        static_cast<mqtt::iclient_persistence*>(nullptr));
  } catch (const mqtt::exception& e) {
    return invalidArgument(strCat("broker \"", config_.broker, "\": ", e.what()));
  }
  State* s = state_.get();
  st.client->set_connection_lost_handler([s](const std::string& cause) {
    s->lost(cause.empty() ? std::string("connection lost") : cause);
  });
  st.client->set_disconnected_handler([s](const mqtt::properties&, mqtt::ReasonCode reason) {
    s->lost("the broker disconnected: " + describeReason(static_cast<int>(reason)));
  });

  if (config_.insecure_skip_verify) {
    logWarn(kLogComponent, config_.output, ": INSECURE: tls.insecure_skip_verify is set: the ",
            "broker's certificate and host name are NOT verified; anyone on the path can ",
            "read and change what this output sends");
  }
  Status c = connect(std::chrono::steady_clock::now() + kConnectTimeout);
  if (!c) return c;
  logInfo(kLogComponent, config_.output, ": connected to ", config_.broker, " as ",
          config_.client_id, " (MQTT ", config_.mqtt_version == 5 ? "5" : "3.1.1", ")");
  return Status::ok();
}

void MqttOutput::fillConnectOptions(mqtt::connect_options* o, std::chrono::seconds timeout) const {
  const bool v5 = config_.mqtt_version == 5;
  o->set_mqtt_version(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
  if (v5) {
    o->set_clean_start(!config_.persistent_session);
    if (config_.persistent_session) {
      o->set_properties({{mqtt::property::SESSION_EXPIRY_INTERVAL, kSessionExpirySeconds}});
    }
  } else {
    o->set_clean_session(!config_.persistent_session);
  }
  o->set_keep_alive_interval(std::chrono::duration_cast<std::chrono::seconds>(config_.keepalive));
  o->set_connect_timeout(timeout);
  o->set_automatic_reconnect(false);
  o->set_max_inflight(kMaxInflight);
  if (!config_.username.empty()) o->set_user_name(config_.username);
  if (!config_.password.empty()) o->set_password(config_.password);
  if (config_.tls) {
    mqtt::ssl_options ssl;
    if (!config_.ca_file.empty()) ssl.set_trust_store(config_.ca_file);
    if (!config_.cert_file.empty()) ssl.set_key_store(config_.cert_file);
    if (!config_.key_file.empty()) ssl.set_private_key(config_.key_file);
    // Paho checks the host name only with verify(true); both are needed.
    ssl.set_enable_server_cert_auth(!config_.insecure_skip_verify);
    ssl.set_verify(!config_.insecure_skip_verify);
    o->set_ssl(std::move(ssl));
  }
}

Status MqttOutput::connect(std::chrono::steady_clock::time_point until) {
  State& st = *state_;
  const auto fail = [&](std::string why) {
    return unavailable(strCat("broker ", config_.broker, ": connect failed: ", why));
  };
  uintptr_t ctx = 0;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    ctx = st.connect_context;
  }
  if (ctx == 0) {  // no attempt in progress: start one
    {
      std::lock_guard<std::mutex> lock(st.mu);
      ctx = st.connect_context = ++st.next_context;
      st.connect_done = false;
    }
    // Built in place for each attempt: Paho 1.2's connect_options copies keep pointers into
    // the object they were copied from (properties, TLS), so a stored copy would dangle.
    mqtt::connect_options opts;
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(
        until - std::chrono::steady_clock::now());
    try {
      fillConnectOptions(&opts, std::clamp<std::chrono::seconds>(left, std::chrono::seconds(1),
                                                                 kConnectTimeout));
      st.connecting = st.client->connect(opts, reinterpret_cast<void*>(ctx), st);
    } catch (const mqtt::exception& e) {
      std::lock_guard<std::mutex> lock(st.mu);
      st.connect_context = 0;
      return fail(e.what());
    }
  }
  std::unique_lock<std::mutex> lock(st.mu);
  st.cv.wait_until(lock, until, [&] { return st.connect_done || st.interrupted; });
  if (!st.connect_done) {
    // The attempt goes on in Paho; the next call waits for it instead of starting another.
    return st.interrupted ? cancelled("interrupted while connecting")
                          : Status(StatusCode::kDeadlineExceeded,
                                   strCat("broker ", config_.broker, ": connect timed out"));
  }
  st.connect_context = 0;
  const bool failed = st.connect_failed;
  const int rc = st.connect_rc;
  const int reason = st.connect_reason;
  lock.unlock();
  mqtt::token_ptr tok = std::move(st.connecting);
  if (!failed) {
    st.window = kWindow;
    if (tok && config_.mqtt_version == 5) {
      const mqtt::properties props = tok->get_connect_response().get_properties();
      if (props.contains(mqtt::property::RECEIVE_MAXIMUM)) {
        const auto receive_max = mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
        st.window = std::clamp<size_t>(receive_max, 1, kWindow);
      }
    }
    return Status::ok();
  }
  // The token's own message says most (e.g. "TCP/TLS connect failure"); it throws it.
  std::string why = describeFailure(rc, reason);
  try {
    if (tok) tok->try_wait();
  } catch (const mqtt::exception& e) {
    why = e.what();
  }
  if (reason == kRcNotAuthorized || reason == 0x86 /* bad user name or password */ ||
      (config_.mqtt_version == 3 && (rc == 4 || rc == 5))) {
    logError(kLogComponent, config_.output, ": broker ", config_.broker,
             " refused the credentials or the client id: check username/password and the ",
             "broker's ACL (", why, ")");
  }
  return fail(why);
}

SendResult MqttOutput::send(const Block& block, SteadyTime deadline) {
  State& st = *state_;
  if (!st.client) return SendResult::retry("not open");
  const auto until = realDeadline(clock_, deadline);
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.interrupted) return SendResult::retry("interrupted");
  }
  if (!st.client->is_connected()) {
    Status c = connect(until);
    if (!c) return SendResult::retry(c.message());
    logInfo(kLogComponent, config_.output, ": reconnected to ", config_.broker);
  }

  const std::string topic_text = expandMqttTopic(config_.topic, config_.agent, block.lineage.stream);
  if (!validMqttPublishTopic(topic_text)) {
    return SendResult::rejected(strCat("topic \"", topic_text, "\" (stream \"",
                                       block.lineage.stream,
                                       "\") is not a valid MQTT topic name"));
  }
  const mqtt::string_ref topic(topic_text);
  const bool v5 = config_.mqtt_version == 5;
  mqtt::properties base;
  if (v5) {
    using P = mqtt::property;
    base.add(P(P::CONTENT_TYPE, std::string(contentType(config_.payload))));
    base.add(P(P::USER_PROPERTY, "ferry-key",
               strCat(config_.agent, '/', config_.output, '/', block.seq)));
    base.add(P(P::USER_PROPERTY, "ferry-agent", config_.agent));
    base.add(P(P::USER_PROPERTY, "ferry-stream", block.lineage.stream));
    base.add(P(P::USER_PROPERTY, "ferry-first-seq", std::to_string(block.seq)));
    base.add(P(P::USER_PROPERTY, "ferry-count", std::to_string(block.records.size())));
  }

  // A loss after this point is seen by the waits below. One before it (between the check
  // above and here) makes the first publish fail at once: Paho clears its connected flag
  // before it reports the loss, and it refuses publishes while disconnected (no offline
  // buffering, see open()).
  uint64_t losses_before = 0;
  uintptr_t ctx = 0;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    ctx = st.send_context = ++st.next_context;
    st.pending = 0;
    st.publish_failed = false;
    losses_before = st.losses;
  }

  enum class Outcome { kOk, kFailed, kLost, kInterrupted, kTimeout };
  // Waits until at most `limit` messages are outstanding (or why not).
  const auto waitPending = [&](size_t limit) {
    std::unique_lock<std::mutex> lock(st.mu);
    const auto ready = [&] {
      return st.pending <= limit || st.publish_failed || st.losses != losses_before ||
             st.interrupted;
    };
    st.cv.wait_until(lock, until, ready);
    if (st.publish_failed) return Outcome::kFailed;
    if (st.losses != losses_before) return Outcome::kLost;
    if (st.interrupted) return Outcome::kInterrupted;
    return st.pending <= limit ? Outcome::kOk : Outcome::kTimeout;
  };
  std::string publish_error;
  const auto publish = [&](const char* data, size_t size, const mqtt::properties& props) {
    {
      std::lock_guard<std::mutex> lock(st.mu);
      ++st.pending;
    }
    try {
      mqtt::message_ptr msg = mqtt::message::create(topic, data, size, config_.qos, config_.retain,
                                                    props);
      st.client->publish(msg, reinterpret_cast<void*>(ctx), st);
      return true;
    } catch (const mqtt::exception& e) {
      std::lock_guard<std::mutex> lock(st.mu);
      --st.pending;
      publish_error = e.what();
      return false;
    }
  };

  Outcome outcome = Outcome::kOk;
  size_t published = 0;
  switch (config_.payload) {
    case MqttOutputConfig::Payload::kNdjson:
      st.buf.clear();
      block.records.appendNdjson(st.buf);
      if (publish(st.buf.data(), st.buf.size(), base)) ++published;
      break;
    case MqttOutputConfig::Payload::kEnvelope:
      if (Status s = st.sealer->seal(block, config_.agent, &st.buf); !s) {
        return SendResult::retry(s.withContext("sealing the envelope").message());
      }
      if (publish(st.buf.data(), st.buf.size(), base)) ++published;
      break;
    case MqttOutputConfig::Payload::kJsonPerRecord:
      for (size_t i = 0; i < block.records.size(); ++i) {
        if ((outcome = waitPending(st.window - 1)) != Outcome::kOk) break;
        mqtt::properties props = base;
        if (v5) {
          props.add(mqtt::property(mqtt::property::USER_PROPERTY, "ferry-index",
                                   std::to_string(i)));
        }
        const std::string_view r = block.records[i];
        if (!publish(r.data(), r.size(), props)) break;
        ++published;
      }
      break;
  }
  if (outcome == Outcome::kOk && publish_error.empty()) outcome = waitPending(0);
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.send_context = 0;  // acks still on their way count for nothing now
  }
  if (!publish_error.empty() && (outcome == Outcome::kOk || outcome == Outcome::kTimeout)) {
    return SendResult::retry(strCat("publish failed after ", published, " messages: ",
                                    publish_error));
  }
  switch (outcome) {
    case Outcome::kOk:
      return SendResult::delivered();
    case Outcome::kLost: {
      std::lock_guard<std::mutex> lock(st.mu);
      return SendResult::retry("connection lost: " + st.lost_cause);
    }
    case Outcome::kInterrupted:
      return SendResult::retry("interrupted");
    case Outcome::kTimeout: {
      std::lock_guard<std::mutex> lock(st.mu);
      return SendResult::retry(strCat("timed out waiting for ", st.pending, " of ", published,
                                      " acknowledgements"));
    }
    case Outcome::kFailed:
      break;
  }
  int rc = 0, reason = 0;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    rc = st.publish_rc;
    reason = st.publish_reason;
  }
  const std::string why = strCat("the broker refused a message: ", describeFailure(rc, reason));
  switch (reason) {
    case kRcPacketTooLarge:
    case kRcPayloadFormatInvalid:
    case kRcTopicNameInvalid:
      return SendResult::rejected(why);
    case kRcNotAuthorized:
      logError(kLogComponent, config_.output, ": broker ", config_.broker,
               " does not let client \"", config_.client_id, "\" publish to \"", topic_text,
               "\": fix the broker's ACL or the topic; retrying");
      return SendResult::retry(why);
    default:
      return SendResult::retry(why);
  }
}

void MqttOutput::interrupt() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->interrupted = true;
  }
  state_->cv.notify_all();
}

void MqttOutput::close() {
  State& st = *state_;
  if (st.client) {
    try {
      // Bounded: a silent broker never answers, and the client is dropped next anyway.
      if (st.client->is_connected()) {
        st.client->disconnect(kDisconnectDrain)->wait_for(kCloseTimeout);
      }
    } catch (const mqtt::exception& e) {
      logDebug(kLogComponent, config_.output, ": disconnect: ", e.what());
    }
    try {
      // Paho refuses this while a command is still queued (e.g. a stalled disconnect);
      // the client is destroyed next either way, and `st` outlives it.
      st.client->disable_callbacks();
    } catch (const mqtt::exception& e) {
      logDebug(kLogComponent, config_.output, ": disable callbacks: ", e.what());
    }
    st.client.reset();
  }
  st.connecting.reset();
  st.sealer.reset();
  std::lock_guard<std::mutex> lock(st.mu);
  st.connect_context = 0;
  st.send_context = 0;
  st.pending = 0;
}

namespace {

constexpr std::string_view kQos[] = {"0", "1"};
constexpr std::string_view kPayloads[] = {"ndjson", "envelope", "json_per_record"};
constexpr std::string_view kVersions[] = {"5", "3"};

const OptionSpec kMqttOptions[] = {
    {.key = "broker", .type = OptionType::kString,
     .help = "broker URI: tcp://host:port or mqtt://host:port (1883), ssl:// or mqtts:// (8883)",
     .required = true},
    {.key = "client_id", .type = OptionType::kString,
     .help = "MQTT client id; default ferry-<agent>-<output> (keep it stable: the broker keeps "
             "the session under it)"},
    {.key = "topic", .type = OptionType::kString, .default_value = "ferry/{agent}/{stream}",
     .help = "topic to publish to; {agent} and {stream} are replaced"},
    {.key = "qos", .type = OptionType::kEnum, .default_value = "1",
     .help = "1: a block is acknowledged once every PUBACK arrived; 0: once written to the socket "
             "(may be lost)",
     .choices = kQos},
    {.key = "retain", .type = OptionType::kBool, .default_value = "false",
     .help = "publish with the retain flag"},
    {.key = "payload", .type = OptionType::kEnum, .default_value = "ndjson",
     .help = "ndjson: one message per block; envelope: one sealed envelope per block; "
             "json_per_record: one message per record",
     .choices = kPayloads},
    {.key = "envelope_key_file", .type = OptionType::kString,
     .help = "payload envelope: AES-256 key file (ferry keygen --type aes256); without it the "
             "envelope is compressed but not encrypted"},
    {.key = "mqtt_version", .type = OptionType::kEnum, .default_value = "5",
     .help = "5, or 3 for MQTT 3.1.1 (no user properties)", .choices = kVersions},
    {.key = "persistent_session", .type = OptionType::kBool, .default_value = "true",
     .help = "clean start off with a session expiry of one day, so the broker keeps in-flight "
             "state across reconnects"},
    {.key = "keepalive", .type = OptionType::kDuration, .default_value = "30s",
     .help = "MQTT keep-alive interval (1s..65535s); a dead connection is noticed after 1.5x"},
    {.key = "username", .type = OptionType::kString, .help = "user name for the broker"},
    {.key = "password", .type = OptionType::kString, .help = "password for the broker",
     .secret = true},
    {.key = "tls", .type = OptionType::kObject,
     .help = "TLS for ssl:// and mqtts:// (certificate and host name verified; TLS 1.3 when "
             "offered; lowest version: what the system's OpenSSL allows, TLS 1.2 with OpenSSL 3 "
             "defaults)",
     .fields = kMqttTlsOptions},
};

Result<std::unique_ptr<Output>> makeMqttOutput(const PluginContext& ctx, const Options& opts) {
  Result<MqttOutputConfig> config = mqttOutputConfigFromOptions(ctx, opts);
  if (!config) return config.status();
  const Clock& clock = ctx.clock != nullptr ? *ctx.clock : systemClock();
  return std::unique_ptr<Output>(std::make_unique<MqttOutput>(std::move(config).value(), clock));
}

}  // namespace

const PluginDescriptor& mqttOutputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kOutput,
      .name = "mqtt",
      .summary = "publishes blocks to an MQTT broker (QoS 1: acknowledged after every PUBACK)",
      .options = kMqttOptions,
      .make_output = &makeMqttOutput,
  };
  return kDescriptor;
}

}  // namespace ferry
