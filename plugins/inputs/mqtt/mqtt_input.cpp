#include "plugins/inputs/mqtt/mqtt_input.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <utility>

#include "agent/core/backoff.h"
#include "ferry/log.h"

namespace ferry {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kLog = "input.mqtt";
constexpr size_t kBatchMessages = 1000;
constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kMaxTopicBytes = 65535;
constexpr uint64_t kMaxMessageLimit = uint64_t{256} << 20;
constexpr auto kDrainBudget = std::chrono::milliseconds(500);
constexpr auto kAckerSlice = std::chrono::milliseconds(100);
constexpr auto kHeldRetry = std::chrono::milliseconds(100);
constexpr auto kWriteTimeout = std::chrono::seconds(10);
constexpr auto kStopWriteTimeout = std::chrono::milliseconds(200);
constexpr auto kDropLogInterval = std::chrono::seconds(10);

constexpr std::string_view kQos[] = {"0", "1", "2"};

}  // namespace

bool validMqttTopicFilter(std::string_view filter) {
  if (filter.empty() || filter.size() > kMaxTopicBytes) return false;
  if (filter.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = filter.find('/', start);
    const std::string_view level = filter.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (level.find_first_of("+#") != std::string_view::npos && level.size() != 1) return false;
    if (level == "#" && slash != std::string_view::npos) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

Result<MqttInputSettings> MqttInputSettings::fromOptions(const PluginContext& ctx,
                                                         const Options& opts) {
  MqttInputSettings s;
  s.broker = opts.getString("broker");
  std::string why;
  if (s.broker.empty() || !parseBrokerUri(s.broker, &s.address, &why)) {
    return invalidArgument(
        opts.locate("broker") + ": \"" + s.broker +
        "\": " + (s.broker.empty() ? "a broker URI is required, e.g. tcp://broker:1883" : why));
  }
  s.client_id = opts.getString("client_id");
  if (s.client_id.empty()) s.client_id = "ferry-" + ctx.agent_id + "-" + ctx.name;
  if (s.client_id.size() > kMaxTopicBytes) {
    return invalidArgument(opts.locate("client_id") + ": longer than 65535 bytes");
  }
  s.topics = opts.getStringList("topics");
  if (s.topics.empty()) {
    return invalidArgument(opts.locate("topics") + ": at least one topic filter is required");
  }
  for (const std::string& t : s.topics) {
    if (!validMqttTopicFilter(t)) {
      return invalidArgument(
          opts.locate("topics") + ": \"" + t +
          "\" is not a valid topic filter ('+' and '#' must be whole levels, '#' "
          "only last)");
    }
  }
  if (opts.has("qos")) {
    const std::string& q = opts.getString("qos");
    s.qos = q == "0" ? 0 : 1;
    if (q == "2") {
      logWarn(kLog, ctx.name,
              ": qos 2 is subscribed as qos 1 (at-least-once, acknowledged after "
              "commit; duplicates possible)");
    }
  }
  if (opts.has("clean_session")) s.clean_session = opts.getBool("clean_session");
  if (opts.has("keepalive")) s.keepalive = opts.getDuration("keepalive");
  if (s.keepalive < std::chrono::seconds(1) || s.keepalive > std::chrono::seconds(65535)) {
    return invalidArgument(opts.locate("keepalive") + ": must be between 1s and 65535s");
  }
  s.username = opts.getString("username");
  s.password = opts.getString("password");
  if (!s.password.empty() && s.username.empty()) {
    return invalidArgument(opts.locate("password") + ": needs a username (MQTT 3.1.1)");
  }
  s.tls.ca_file = opts.getString("tls.ca_file");
  s.tls.cert_file = opts.getString("tls.cert_file");
  s.tls.key_file = opts.getString("tls.key_file");
  s.tls.insecure_skip_verify =
      opts.has("tls.insecure_skip_verify") && opts.getBool("tls.insecure_skip_verify");
  const bool any_tls = !s.tls.ca_file.empty() || !s.tls.cert_file.empty() ||
                       !s.tls.key_file.empty() || s.tls.insecure_skip_verify;
  if (any_tls && !s.address.tls) {
    return invalidArgument(opts.locate("tls") + ": TLS settings given but broker \"" +
                           s.broker + "\" is not ssl:// or mqtts://");
  }
  if (s.tls.cert_file.empty() != s.tls.key_file.empty()) {
    return invalidArgument(opts.locate("tls") + ": cert_file and key_file go together");
  }
  if (opts.has("max_message_bytes")) s.max_message_bytes = opts.getSize("max_message_bytes");
  if (s.max_message_bytes == 0 || s.max_message_bytes > kMaxMessageLimit) {
    return invalidArgument(opts.locate("max_message_bytes") + ": must be between 1 and " +
                           formatSize(kMaxMessageLimit));
  }
  Result<LineFormatSpec> format = lineFormatSpecFromOptions(opts);
  if (!format) return format.status();
  s.format = std::move(format).value();
  if (opts.has("topic_field")) s.topic_field = opts.getString("topic_field");
  if (opts.has("connect_timeout")) s.connect_timeout = opts.getDuration("connect_timeout");
  if (s.connect_timeout < std::chrono::milliseconds(100)) {
    return invalidArgument(opts.locate("connect_timeout") + ": must be at least 100ms");
  }
  if (opts.has("retry.initial")) s.retry_initial = opts.getDuration("retry.initial");
  if (opts.has("retry.max")) s.retry_max = opts.getDuration("retry.max");
  if (s.retry_initial <= Duration::zero() || s.retry_max < s.retry_initial) {
    return invalidArgument(opts.locate("retry") + ": needs 0 < initial <= max");
  }
  return s;
}

MqttInput::MqttInput(MqttInputSettings settings, std::string instance)
    : settings_(std::move(settings)), instance_(std::move(instance)) {
  batch_.reserve(kBatchMessages, 256 * kBatchMessages);
  batch_ids_.reserve(kBatchMessages);
  read_buf_ = std::make_unique<char[]>(kReadChunk);
  max_body_ = settings_.max_message_bytes + 2 + kMaxTopicBytes + 2;
}

MqttInput::~MqttInput() { stop(); }

Status MqttInput::start(Emitter& emitter) {
  std::lock_guard life(life_mu_);
  if (reader_.joinable()) return {StatusCode::kFailedPrecondition, "mqtt input already started"};
  if (settings_.address.tls && tls_ == nullptr) {
    Result<std::shared_ptr<mqttc::TlsContext>> tls = mqttc::TlsContext::make(settings_.tls);
    if (!tls) return Status(tls.status().code(), instance_ + ": " + tls.status().message());
    tls_ = std::move(tls).value();
    if (settings_.tls.insecure_skip_verify) {
      logWarn(kLog, instance_,
              ": tls.insecure_skip_verify is on: the broker's certificate and "
              "host name are NOT verified");
    }
  }
  if (!parser_) {
    Result<LineParser> parser = LineParser::make(settings_.format);
    if (!parser)
      return Status(parser.status().code(), instance_ + ": " + parser.status().message());
    parser_.emplace(std::move(parser).value());
  }
  const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) return unavailable(instance_ + ": eventfd failed");
  wake_fd_ = wake;
  emitter_ = &emitter;
  stop_.store(false);
  reader_ = std::thread([this] { runReader(); });
  acker_ = std::thread([this] { runAcker(); });
  return Status::ok();
}

void MqttInput::stop() {
  std::lock_guard life(life_mu_);
  if (!reader_.joinable()) return;
  {
    std::lock_guard lock(ack_mu_);
    drain_until_ = SteadyClock::now() + kDrainBudget;
    stop_.store(true);
  }
  ack_cv_.notify_all();
  wake();
  reader_.join();
  acker_.join();
  ::close(wake_fd_);
  wake_fd_ = -1;
}

void MqttInput::wake() {
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof(one)) < 0) {
    // Only fails when the counter would overflow: the reader is awake anyway.
  }
}

void MqttInput::drainWake() {
  uint64_t n = 0;
  while (::read(wake_fd_, &n, sizeof(n)) > 0) {
  }
}

bool MqttInput::sleepInterruptible(Duration d) {
  const auto until = SteadyClock::now() + d;
  while (!stop_.load()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now());
    if (left.count() <= 0) break;
    pollfd p{wake_fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 1000)));
    drainWake();
  }
  return stop_.load();
}

void MqttInput::runReader() {
  Backoff backoff(settings_.retry_initial, settings_.retry_max, std::random_device{}());
  while (!stop_.load()) {
    const uint64_t before = connects_.load();
    Status st = serve();
    connected_.store(false);
    stream_.close();
    generation_.fetch_add(1);
    in_.clear();
    skip_left_ = 0;
    // What was read but not handed over is not acknowledged: the broker sends it again.
    batch_.clear();
    batch_ids_.clear();
    held_ = false;
    if (stop_.load()) break;
    {
      std::lock_guard lock(error_mu_);
      last_error_ = st.message();
    }
    if (connects_.load() != before) backoff.reset();
    const Duration wait = backoff.next();
    logWarn(kLog, instance_, ": ", st.message(), "; reconnecting in ",
            formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(wait)));
    if (sleepInterruptible(wait)) break;
  }
  ack_cv_.notify_all();
}

std::string MqttInput::lastError() const {
  std::lock_guard lock(error_mu_);
  return last_error_;
}

void MqttInput::runAcker() {
  std::unique_lock lock(ack_mu_);
  for (;;) {
    ack_cv_.wait(lock, [&] { return stop_.load() || !waiting_.empty(); });
    if (waiting_.empty()) {
      if (stop_.load()) return;
      continue;
    }
    if (stop_.load() && SteadyClock::now() >= drain_until_) return;
    const uint64_t ticket = waiting_.front().ticket;
    const uint64_t generation = waiting_.front().generation;
    Pending::State state = Pending::State::kCommitted;
    if (ticket != 0 && generation == generation_.load()) {
      Duration slice = kAckerSlice;
      if (stop_.load()) {
        slice = std::min<Duration>(
            slice, std::chrono::duration_cast<Duration>(drain_until_ - SteadyClock::now()));
      }
      lock.unlock();
      const Status st =
          emitter_->waitCommitted(ticket, std::max<Duration>(slice, Duration::zero()));
      lock.lock();
      if (st.code() == StatusCode::kDeadlineExceeded) continue;
      if (st.code() == StatusCode::kCancelled) {
        state = Pending::State::kCancelled;
      } else if (!st.isOk()) {
        state = Pending::State::kFailed;
      }
    }
    Pending done = std::move(waiting_.front());
    waiting_.pop_front();
    done.state = state;
    settled_.push_back(std::move(done));
    lock.unlock();
    ack_cv_.notify_all();
    wake();
    lock.lock();
  }
}

Status MqttInput::sendNow(std::string_view bytes) {
  // While stopping, a broker that reads nothing must not hold stop() past its 1 s.
  const auto timeout = stop_.load() ? kStopWriteTimeout : kWriteTimeout;
  Status st = stream_.writeAll(bytes, SteadyClock::now() + timeout);
  if (st.isOk()) last_sent_ = SteadyClock::now();
  return st;
}

Status MqttInput::sendSettledAcks() {
  std::deque<Pending> settled;
  {
    std::lock_guard lock(ack_mu_);
    if (settled_.empty()) return Status::ok();
    settled.swap(settled_);
  }
  out_.clear();
  uint64_t acks = 0;
  Status result;
  const uint64_t generation = generation_.load();
  for (const Pending& p : settled) {
    if (p.generation != generation) continue;  // an older connection's: the broker resends
    if (p.state == Pending::State::kFailed) {
      result = unavailable(
          "records were not stored (see the agent's log); reconnecting so that "
          "the broker sends them again");
      break;
    }
    if (p.state == Pending::State::kCancelled) break;
    for (uint16_t id : p.ids) mqttc::encodePuback(id, out_);
    acks += p.ids.size();
  }
  if (!out_.empty()) {
    Status st = sendNow(out_);
    if (!st.isOk()) return st;
    acked_.fetch_add(acks);
  }
  return result;
}

void MqttInput::appendInput(const char* data, size_t n) {
  // Payloads are parsed in place (LineParser::parsePadded): keep kLinePadding allocated
  // bytes past the end.
  if (in_.capacity() < in_.size() + n + kLinePadding) {
    in_.reserve(std::max(in_.capacity() * 2, in_.size() + n + kReadChunk + kLinePadding));
  }
  in_.append(data, n);
}

Status MqttInput::handshake() {
  const auto deadline = SteadyClock::now() + settings_.connect_timeout;
  FERRY_RETURN_IF_ERROR(stream_.open(settings_.address, tls_.get(), wake_fd_, deadline));
  mqttc::ConnectFields c;
  c.client_id = settings_.client_id;
  c.clean_session = settings_.clean_session;
  c.keepalive_seconds = static_cast<uint16_t>(
      std::chrono::duration_cast<std::chrono::seconds>(settings_.keepalive).count());
  c.has_username = !settings_.username.empty();
  c.username = settings_.username;
  c.has_password = !settings_.password.empty();
  c.password = settings_.password;
  out_.clear();
  mqttc::encodeConnect(c, out_);
  FERRY_RETURN_IF_ERROR(sendNow(out_));
  // The first packet must be CONNACK; anything after it (queued messages) stays in in_.
  in_.clear();
  for (;;) {
    mqttc::Frame f;
    std::string why;
    const mqttc::FrameResult r = mqttc::splitFrame(in_, 64, &f, &why);
    if (r == mqttc::FrameResult::kComplete) {
      mqttc::Connack ack;
      if (f.type() != mqttc::PacketType::kConnack || !mqttc::decodeConnack(f, &ack, &why)) {
        return unavailable("broker " + settings_.broker + ": expected CONNACK, got packet type " +
                           std::to_string(static_cast<int>(f.type())) +
                           (why.empty() ? "" : ": " + why));
      }
      if (ack.return_code != 0) {
        return unavailable("broker " + settings_.broker + " refused the connection of client \"" +
                           settings_.client_id +
                           "\": " + std::string(mqttc::connackReason(ack.return_code)));
      }
      in_.erase(0, f.totalSize());
      if (!ack.session_present && !settings_.clean_session && connects_.load() > 0) {
        logWarn(kLog, instance_, ": the broker had no session for \"", settings_.client_id,
                "\": messages published while disconnected may be lost");
      }
      break;
    }
    if (r != mqttc::FrameResult::kNeedMore) {
      return unavailable("broker " + settings_.broker + ": malformed CONNACK: " + why);
    }
    Result<size_t> n = stream_.read(read_buf_.get(), kReadChunk, wake_fd_, deadline);
    if (!n) return n.status();
    if (stop_.load()) return cancelled("stopping");
    if (*n == 0) {
      if (SteadyClock::now() >= deadline) {
        return unavailable("broker " + settings_.broker + ": no CONNACK within " +
                           formatDuration(settings_.connect_timeout));
      }
      drainWake();
      continue;
    }
    appendInput(read_buf_.get(), *n);
  }
  out_.clear();
  subscribe_id_ = next_packet_id_++;
  if (next_packet_id_ == 0) next_packet_id_ = 1;
  mqttc::encodeSubscribe(subscribe_id_, settings_.topics, settings_.qos, out_);
  FERRY_RETURN_IF_ERROR(sendNow(out_));
  last_received_ = SteadyClock::now();
  return Status::ok();
}

Status MqttInput::serve() {
  FERRY_RETURN_IF_ERROR(handshake());
  connected_.store(true);
  connects_.fetch_add(1);
  logInfo(kLog, instance_, ": connected to ", settings_.broker, " as \"", settings_.client_id,
          "\"");
  const auto keepalive = std::chrono::duration_cast<SteadyClock::duration>(settings_.keepalive);
  bool ping_outstanding = false;
  // Frames may already wait in in_ (sent right after CONNACK).
  bool parse_first = !in_.empty();
  for (;;) {
    if (stop_.load()) {
      drainAndDisconnect();
      return cancelled("stopping");
    }
    drainWake();
    FERRY_RETURN_IF_ERROR(sendSettledAcks());
    const auto now = SteadyClock::now();
    if (held_) {
      Status st = flushBatch();
      if (st.code() == StatusCode::kCancelled) continue;
      if (held_) {
        last_received_ = now;  // not reading: silence is ours
        pollfd p{wake_fd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(kHeldRetry.count()));
        continue;
      }
      parse_first = !in_.empty();
    }
    if (now - last_received_ > keepalive + keepalive / 2) {
      return unavailable("broker " + settings_.broker + " silent for 1.5 x keepalive (" +
                         formatDuration(settings_.keepalive) + ")");
    }
    if (now - last_sent_ >= keepalive && !ping_outstanding) {
      out_.clear();
      mqttc::encodePingreq(out_);
      FERRY_RETURN_IF_ERROR(sendNow(out_));
      ping_outstanding = true;
    }
    if (!parse_first) {
      const auto deadline = std::min(last_sent_ + keepalive, now + std::chrono::seconds(1));
      Result<size_t> n = stream_.read(read_buf_.get(), kReadChunk, wake_fd_,
                                      std::max(deadline, now + std::chrono::milliseconds(1)));
      if (!n) return n.status();
      if (*n == 0) continue;
      last_received_ = SteadyClock::now();
      ping_outstanding = false;
      size_t skip = static_cast<size_t>(std::min<uint64_t>(skip_left_, *n));
      skip_left_ -= skip;
      if (skip < *n) appendInput(read_buf_.get() + skip, *n - skip);
    }
    parse_first = false;
    FERRY_RETURN_IF_ERROR(parseFrames());
  }
}

Status MqttInput::parseFrames() {
  size_t pos = 0;
  Status result;
  while (pos < in_.size() && !held_) {
    mqttc::Frame f;
    std::string why;
    const std::string_view rest = std::string_view(in_).substr(pos);
    const mqttc::FrameResult r = mqttc::splitFrame(rest, max_body_, &f, &why);
    if (r == mqttc::FrameResult::kNeedMore) break;
    if (r == mqttc::FrameResult::kMalformed) {
      result = unavailable("broker " + settings_.broker + " sent a malformed packet: " + why);
      break;
    }
    if (r == mqttc::FrameResult::kTooLarge) {
      if (f.type() != mqttc::PacketType::kPublish) {
        result = unavailable("broker " + settings_.broker + " sent a packet of type " +
                             std::to_string(static_cast<int>(f.type())) + " with " +
                             std::to_string(f.body_size) + " bytes");
        break;
      }
      uint8_t qos = 0;
      uint16_t id = 0;
      const size_t need =
          mqttc::peekPublishId(f.header, f.body_size, rest.substr(f.header_size), &qos, &id, &why);
      if (need == SIZE_MAX) {
        result = unavailable("broker " + settings_.broker + " sent a malformed PUBLISH: " + why);
        break;
      }
      if (need > 0) break;  // the packet id has not arrived yet
      noteDropped("mqtt_too_large", "a message larger than max_message_bytes (" +
                                        std::to_string(f.body_size) + " bytes with its topic)");
      if (qos > 0) batch_ids_.push_back(id);
      const size_t have = std::min(rest.size(), f.totalSize());
      skip_left_ = f.totalSize() - have;
      pos += have;
      continue;
    }
    pos += f.totalSize();
    result = handleFrame(f);
    if (!result.isOk()) break;
    if (batch_.size() >= kBatchMessages || batch_ids_.size() >= kBatchMessages) {
      Status st = flushBatch();
      if (!st.isOk() && st.code() != StatusCode::kResourceExhausted) {
        result = st;
        break;
      }
    }
  }
  in_.erase(0, pos);
  if (!result.isOk()) return result;
  if (!held_) {
    Status st = flushBatch();
    if (!st.isOk() && st.code() != StatusCode::kResourceExhausted) return st;
  }
  return Status::ok();
}

Status MqttInput::handleFrame(const mqttc::Frame& f) {
  std::string why;
  switch (f.type()) {
    case mqttc::PacketType::kPublish:
      return handlePublish(f);
    case mqttc::PacketType::kPingresp:
      return Status::ok();
    case mqttc::PacketType::kSuback: {
      mqttc::Suback ack;
      if (!mqttc::decodeSuback(f, &ack, &why)) {
        return unavailable("broker " + settings_.broker + " sent a malformed SUBACK: " + why);
      }
      for (size_t i = 0; i < ack.codes.size() && i < settings_.topics.size(); ++i) {
        if (ack.codes[i] == 0x80) {
          logError(kLog, instance_, ": broker ", settings_.broker,
                   " refused the subscription to \"", settings_.topics[i],
                   "\" (not authorized or invalid filter)");
        } else if (ack.codes[i] < settings_.qos) {
          logError(kLog, instance_, ": broker ", settings_.broker, " granted QoS ",
                   static_cast<int>(ack.codes[i]), " for \"", settings_.topics[i],
                   "\": its messages are not acknowledged after commit and may be lost");
        }
      }
      if (ack.codes.size() != settings_.topics.size()) {
        logWarn(kLog, instance_, ": SUBACK holds ", ack.codes.size(), " codes for ",
                settings_.topics.size(), " topics");
      }
      return Status::ok();
    }
    default:
      return unavailable("broker " + settings_.broker + " sent an unexpected packet of type " +
                         std::to_string(static_cast<int>(f.type())));
  }
}

Status MqttInput::handlePublish(const mqttc::Frame& f) {
  mqttc::Publish p;
  std::string why;
  if (!mqttc::decodePublish(f, &p, &why)) {
    return unavailable("broker " + settings_.broker + " sent a malformed PUBLISH: " + why);
  }
  if (p.qos == 2) {
    return unavailable("broker " + settings_.broker + " sent a QoS 2 message on \"" +
                       std::string(p.topic) + "\" although the subscription is QoS " +
                       std::to_string(settings_.qos));
  }
  if (p.qos == 1) batch_ids_.push_back(p.packet_id);
  if (p.payload.size() > settings_.max_message_bytes) {
    noteDropped("mqtt_too_large",
                "a message larger than max_message_bytes on \"" + std::string(p.topic) + "\"");
    return Status::ok();
  }
  addRecord(p.topic, p.payload);
  return Status::ok();
}

void MqttInput::addRecord(std::string_view topic, std::string_view payload) {
  extra_.clear();
  if (!settings_.topic_field.empty()) appendExtraMember(extra_, settings_.topic_field, topic);
  // in_ keeps kLinePadding bytes of capacity past its end, and the payload is a view into it.
  const LineOutcome r = parser_->parsePadded(payload, batch_, extra_);
  if (r.refused()) {
    noteDropped(r.reason, "a payload refused by format " +
                              std::string(lineFormatName(settings_.format.format)) + " on \"" +
                              std::string(topic) + "\"");
  }
}

void MqttInput::noteDropped(std::string_view reason, const std::string& what) {
  emitter_->countDropped(reason);
  ++dropped_since_log_;
  const auto now = SteadyClock::now();
  if (now >= next_drop_log_) {
    logWarn(kLog, instance_, ": dropped ", what, " (reason ", reason, "; ", dropped_since_log_,
            " dropped since the last such line)");
    dropped_since_log_ = 0;
    next_drop_log_ = now + kDropLogInterval;
  }
}

Status MqttInput::flushBatch() {
  if (batch_.empty() && batch_ids_.empty()) return Status::ok();
  Pending pending;
  if (!batch_.empty()) {
    if (batch_ids_.empty()) {
      Status st = emitter_->emit(batch_);
      if (st.code() == StatusCode::kResourceExhausted) {
        held_ = true;
        return st;
      }
      held_ = false;
      batch_.clear();
      return st;  // kCancelled: the agent stops; QoS 0 messages are lost then
    }
    Result<uint64_t> ticket = emitter_->emitTracked(batch_);
    if (!ticket) {
      if (ticket.status().code() == StatusCode::kResourceExhausted) {
        held_ = true;
        return ticket.status();
      }
      // Not accepted: not acknowledged; the broker sends these again after a reconnect.
      held_ = false;
      batch_.clear();
      batch_ids_.clear();
      return ticket.status();
    }
    pending.ticket = *ticket;
  }
  held_ = false;
  pending.generation = generation_.load();
  pending.ids.assign(batch_ids_.begin(), batch_ids_.end());
  batch_.clear();
  batch_ids_.clear();
  {
    std::lock_guard lock(ack_mu_);
    waiting_.push_back(std::move(pending));
  }
  ack_cv_.notify_all();
  return Status::ok();
}

void MqttInput::drainAndDisconnect() {
  // Nothing more is read; what was read but not emitted is not acknowledged.
  {
    std::unique_lock lock(ack_mu_);
    ack_cv_.wait_until(lock, drain_until_, [&] { return waiting_.empty(); });
  }
  if (!sendSettledAcks().isOk()) return;
  out_.clear();
  mqttc::encodeDisconnect(out_);
  // Best effort: the broker ends the session's connection either way.
  (void)stream_.writeAll(out_, SteadyClock::now() + kStopWriteTimeout);
}

namespace {

constexpr OptionSpec kRetryOptions[] = {
    {.key = "initial",
     .type = OptionType::kDuration,
     .default_value = "1s",
     .help = "cap of the wait after the first failed connect"},
    {.key = "max",
     .type = OptionType::kDuration,
     .default_value = "60s",
     .help = "cap of the exponential backoff between connects (full jitter below it)"},
};

constexpr OptionSpec kOwnOptions[] = {
    {.key = "broker",
     .type = OptionType::kString,
     .help = "broker URI: tcp://host:port or mqtt://host:port (1883), ssl:// or mqtts:// (8883)",
     .required = true},
    {.key = "client_id",
     .type = OptionType::kString,
     .help = "MQTT client id; default ferry-<agent>-<input> (keep it stable: the broker keeps "
             "the session and its queued messages under it)"},
    {.key = "topics",
     .type = OptionType::kStringList,
     .help = "topic filters to subscribe to ('+' and '#' wildcards allowed)",
     .required = true},
    {.key = "qos",
     .type = OptionType::kEnum,
     .default_value = "1",
     .help = "1: each message is acknowledged (PUBACK) only after its record is committed; 0: "
             "at most once; 2 is subscribed as 1",
     .choices = kQos},
    {.key = "clean_session",
     .type = OptionType::kBool,
     .default_value = "false",
     .help = "false: the broker keeps the session (subscriptions, queued QoS 1 messages) while "
             "the agent is away"},
    {.key = "keepalive",
     .type = OptionType::kDuration,
     .default_value = "30s",
     .help = "MQTT keep-alive (1s..65535s); a connection silent for 1.5x this is dropped"},
    {.key = "username", .type = OptionType::kString, .help = "user name for the broker"},
    {.key = "password",
     .type = OptionType::kString,
     .help = "password for the broker (needs username); use @file:/path or ${ENV}",
     .secret = true},
    {.key = "tls",
     .type = OptionType::kObject,
     .help = "TLS for ssl:// and mqtts:// (TLS 1.2 or newer; certificate and host name verified)",
     .fields = kMqttTlsOptions},
    {.key = "max_message_bytes",
     .type = OptionType::kSize,
     .default_value = "1MiB",
     .help = "larger payloads are skipped unread, acknowledged and counted (reason "
             "mqtt_too_large)"},
    {.key = "topic_field",
     .type = OptionType::kString,
     .default_value = "topic",
     .help = "field that receives the message's topic (empty: none; json: not added when the "
             "payload has the field)"},
    {.key = "connect_timeout",
     .type = OptionType::kDuration,
     .default_value = "10s",
     .help = "limit of one connect (TCP, TLS, CONNACK)"},
    {.key = "retry",
     .type = OptionType::kObject,
     .help = "backoff between failed connects",
     .fields = kRetryOptions},
};

constexpr auto kOptions = withLineFormatOptions(kOwnOptions);

Result<std::unique_ptr<Input>> makeMqttInput(const PluginContext& ctx, const Options& opts) {
  Result<MqttInputSettings> s = MqttInputSettings::fromOptions(ctx, opts);
  if (!s) return s.status();
  return std::unique_ptr<Input>(std::make_unique<MqttInput>(std::move(s).value(), ctx.name));
}

}  // namespace

const PluginDescriptor& mqttInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "mqtt",
      .summary = "subscribes to MQTT topics (QoS 1: acknowledged only after commit)",
      .options = kOptions,
      .make_input = &makeMqttInput,
  };
  return kDescriptor;
}

}  // namespace ferry
