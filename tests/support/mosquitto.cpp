#include "tests/support/mosquitto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mqtt/async_client.h>

#include <thread>

#include "tests/support/net.h"

namespace ferry::test {

namespace {
constexpr const char* kMosquitto = "/usr/sbin/mosquitto";
constexpr int kSessionExpirySeconds = 3600;

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}
}  // namespace

bool waitForPort(int port, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      sockaddr_in a = loopback(port);
      const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
      ::close(fd);
      if (ok) return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

MosquittoBroker::MosquittoBroker() = default;

MosquittoBroker::~MosquittoBroker() { kill(); }

bool MosquittoBroker::start() {
  if (proc_ && proc_->running()) return true;
  if (port_ == 0) port_ = freePort();
  if (port_ == 0) return false;
  const std::string conf = dir_.file("mosquitto.conf");
  std::string text = "listener " + std::to_string(port_) + " 127.0.0.1\n" +
                     "allow_anonymous true\n"
                     "persistence true\n"
                     "persistence_location " + dir_.path().string() + "/\n"
                     "autosave_interval 1\n"
                     "autosave_on_changes true\n"
                     // Tests count every message: never drop queued QoS 1 messages.
                     "max_queued_messages 0\n"
                     "log_dest stderr\n"
                     "log_type error\nlog_type warning\nlog_type notice\n";
  text += extra_config_;
  // As root, Mosquitto would switch to the `mosquitto` user, which cannot write here.
  if (::geteuid() == 0) text += "user root\n";
  writeFile(conf, text);
  ++starts_;
  proc_ = std::make_unique<Process>(std::vector<std::string>{kMosquitto, "-c", conf},
                                    dir_.path().string(), "mosquitto" + std::to_string(starts_));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    if (!proc_->running()) return false;  // e.g. the port was taken meanwhile
    if (waitForPort(port_, std::chrono::milliseconds(50))) return true;
  }
  return false;
}

void MosquittoBroker::kill() {
  if (!proc_) return;
  if (proc_->running()) proc_->signal(SIGKILL);  // also ends a paused broker
  proc_->wait(std::chrono::seconds(10));
}

void MosquittoBroker::stop() {
  if (!proc_) return;
  resume();
  if (proc_->running()) proc_->signal(SIGTERM);
  if (!proc_->wait(std::chrono::seconds(10))) kill();
}

bool MosquittoBroker::restart() {
  if (proc_ && proc_->running()) stop();
  return start();
}

void MosquittoBroker::pause() {
  if (proc_ && proc_->running()) proc_->signal(SIGSTOP);
}

void MosquittoBroker::resume() {
  if (proc_ && proc_->running()) proc_->signal(SIGCONT);
}

bool MosquittoBroker::running() { return proc_ && proc_->running(); }

std::string MosquittoBroker::log() const {
  std::string out;
  for (int i = 1; i <= starts_; ++i) {
    out += readFile(dir_.file("mosquitto" + std::to_string(i) + ".stderr"));
  }
  return out;
}

std::string ReceivedMessage::property(const std::string& name) const {
  for (const auto& [k, v] : user_properties) {
    if (k == name) return v;
  }
  return {};
}

struct TestSubscriber::Impl final : public mqtt::callback {
  Impl(const std::string& url, const std::string& id)
      : client(url, id, mqtt::create_options(MQTTVERSION_5)) {}

  void message_arrived(mqtt::const_message_ptr msg) override {
    ReceivedMessage m;
    m.topic = msg->get_topic();
    m.payload = msg->to_string();
    m.qos = msg->get_qos();
    const mqtt::properties& props = msg->get_properties();
    const size_t n = props.count(mqtt::property::USER_PROPERTY);
    for (size_t i = 0; i < n; ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      m.user_properties.emplace_back(std::get<0>(kv), std::get<1>(kv));
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      received.push_back(std::move(m));
    }
    cv.notify_all();
  }

  mqtt::async_client client;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<ReceivedMessage> received;
};

TestSubscriber::TestSubscriber(std::string server_url, std::string client_id)
    : impl_(std::make_unique<Impl>(server_url, client_id)) {
  impl_->client.set_callback(*impl_);
}

TestSubscriber::~TestSubscriber() {
  try {
    if (impl_->client.is_connected()) impl_->client.disconnect(std::chrono::milliseconds(100))->wait_for(std::chrono::seconds(2));
    impl_->client.disable_callbacks();
  } catch (const mqtt::exception&) {
    // The broker may be gone already; nothing to clean up.
  }
}

bool TestSubscriber::subscribe(const std::string& topic_filter, std::chrono::milliseconds timeout) {
  try {
    // Built in place, never copied from a builder: Paho C++ 1.2's connect_options copy keeps
    // the C struct's connectProperties pointing into the source object. A copy from
    // connect_options_builder().finalize() points into the destroyed builder, so the session
    // expiry went out as garbage or not at all (seen under ASan: the broker answered a
    // reconnect after its restart with "session present 0", the subscription was gone and
    // every message published after the restart was dropped). Paho C copies the properties
    // inside connect(), which is all the automatic reconnects use later.
    mqtt::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_5);
    opts.set_clean_start(false);
    opts.set_properties({{mqtt::property::SESSION_EXPIRY_INTERVAL, kSessionExpirySeconds}});
    opts.set_automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(2));
    opts.set_keep_alive_interval(std::chrono::seconds(5));
    opts.set_connect_timeout(std::chrono::seconds(5));
    mqtt::token_ptr connected = impl_->client.connect(opts);
    if (!connected->wait_for(timeout)) {
      error_ = "connect timed out";
      return false;
    }
    if (!impl_->client.subscribe(topic_filter, 1)->wait_for(timeout)) {
      error_ = "subscribe timed out";
      return false;
    }
    return true;
  } catch (const mqtt::exception& e) {
    error_ = e.what();
    return false;
  }
}

size_t TestSubscriber::count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received.size();
}

std::vector<ReceivedMessage> TestSubscriber::messages() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received;
}

bool TestSubscriber::waitFor(const std::function<bool(const std::vector<ReceivedMessage>&)>& pred,
                             std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return pred(impl_->received); });
}

struct TestPublisher::Impl {
  Impl(const std::string& url, const std::string& id) : client(url, id) {}
  mqtt::async_client client;
};

TestPublisher::TestPublisher(std::string server_url, std::string client_id)
    : impl_(std::make_unique<Impl>(server_url, client_id)) {}

TestPublisher::~TestPublisher() {
  try {
    if (impl_->client.is_connected()) impl_->client.disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
    // The broker may be gone already.
  }
}

bool TestPublisher::connect(std::chrono::milliseconds timeout) {
  try {
    mqtt::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(true);
    opts.set_connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout));
    if (!impl_->client.connect(opts)->wait_for(timeout)) {
      error_ = "connect timed out";
      return false;
    }
    return true;
  } catch (const mqtt::exception& e) {
    error_ = e.what();
    return false;
  }
}

bool TestPublisher::publish(const std::string& topic, const std::vector<std::string>& payloads,
                            int qos, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  constexpr size_t kWindow = 100;
  try {
    std::vector<mqtt::delivery_token_ptr> window;
    auto settle = [&](size_t keep) {
      while (window.size() > keep) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !window.front()->wait_for(left)) {
          error_ = "publish timed out";
          return false;
        }
        window.erase(window.begin());
      }
      return true;
    };
    for (const std::string& p : payloads) {
      if (!settle(kWindow - 1)) return false;
      window.push_back(impl_->client.publish(topic, p.data(), p.size(), qos, false));
    }
    return settle(0);
  } catch (const mqtt::exception& e) {
    error_ = e.what();
    return false;
  }
}

}  // namespace ferry::test
