#include "agent/core/sender.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include "agent/buffer/memory_buffer.h"
#include "agent/core/backoff.h"
#include "tests/support/fakes.h"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

Block makeBlock(const std::string& stream, int first, int count) {
  Block b;
  b.lineage.stream = stream;
  for (int i = 0; i < count; ++i) b.records.append(stream + ":" + std::to_string(first + i));
  return b;
}

struct Fixture {
  MetricsRegistry metrics;
  MemoryBuffer buf{{1 << 20, WhenFull::kBlock, {}}, metrics, systemClock()};
  test::CaptureOutput::Shared shared;

  std::unique_ptr<Sender> sender(const std::string& match = "*") {
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    SenderOptions so;
    so.name = "o";
    so.match = match;
    so.initial_backoff = 1ms;
    so.max_backoff = 5ms;
    return std::make_unique<Sender>(so, std::make_unique<test::CaptureOutput>(shared), buf, metrics,
                                    systemClock());
  }
  void append(Block b) {
    Block arr[] = {std::move(b)};
    REQUIRE(buf.append(arr, 0ms).isOk());
  }
};

}  // namespace

TEST_SUITE("core.sender") {
  TEST_CASE_FIXTURE(Fixture, "delivers in order and acks") {
    auto s = sender();
    append(makeBlock("a", 0, 3));
    append(makeBlock("a", 3, 3));
    s->start();
    CHECK(shared.waitFor(6, 5s) == 6);
    s->stop(true, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(shared.records == std::vector<std::string>{"a:0", "a:1", "a:2", "a:3", "a:4", "a:5"});
    CHECK(buf.cursor("o") == 2);
    CHECK(shared.closed);
    CHECK(metrics.counterValue("ferry_output_records_total", {{"output", "o"}}) == 6);
  }

  TEST_CASE_FIXTURE(Fixture, "retries resend the same block before the next, keeping order") {
    shared.script = {SendResult::retry("503"), SendResult::retry("timeout", 2ms)};
    auto s = sender();
    append(makeBlock("a", 0, 2));
    append(makeBlock("a", 2, 2));
    s->start();
    CHECK(shared.waitFor(4, 5s) == 4);
    s->stop(false, std::chrono::steady_clock::now());
    s->join();
    CHECK(shared.records == std::vector<std::string>{"a:0", "a:1", "a:2", "a:3"});
    CHECK(shared.seqs == std::vector<uint64_t>{1, 1, 1, 2});
    CHECK(metrics.counterValue("ferry_retries_total", {{"output", "o"}}) == 2);
  }

  TEST_CASE_FIXTURE(Fixture, "rejected blocks are counted as dead letters and passed") {
    shared.script = {SendResult::rejected("400 bad request")};
    auto s = sender();
    append(makeBlock("a", 0, 5));
    append(makeBlock("a", 5, 1));
    s->start();
    CHECK(shared.waitFor(1, 5s) == 1);
    s->stop(false, std::chrono::steady_clock::now());
    s->join();
    CHECK(shared.records == std::vector<std::string>{"a:5"});
    CHECK(metrics.counterValue("ferry_dead_letter_records_total", {{"output", "o"}}) == 5);
    CHECK(buf.cursor("o") == 2);
  }

  TEST_CASE_FIXTURE(Fixture, "match skips other streams but still acks them") {
    auto s = sender("temp*");
    append(makeBlock("humidity", 0, 2));
    append(makeBlock("temperature", 0, 2));
    append(makeBlock("humidity", 2, 2));
    s->start();
    CHECK(shared.waitFor(2, 5s) == 2);
    s->stop(true, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(shared.records == std::vector<std::string>{"temperature:0", "temperature:1"});
    CHECK(buf.cursor("o") == 3);
  }

  TEST_CASE_FIXTURE(Fixture, "stop without drain ends a retry loop promptly") {
    for (int i = 0; i < 100; ++i) shared.script.push_back(SendResult::retry("down"));
    auto s = sender();
    append(makeBlock("a", 0, 1));
    s->start();
    std::this_thread::sleep_for(30ms);
    auto t0 = std::chrono::steady_clock::now();
    s->stop(false, t0);
    s->join();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(buf.cursor("o") == 0);  // not acked: it was never delivered
  }

  TEST_CASE("backoff grows exponentially under the cap with full jitter") {
    Backoff b(100ms, 1s, 42);
    for (int i = 0; i < 50; ++i) {
      Duration d = b.next();
      CHECK(d >= 0ms);
      CHECK(d <= 1s);
    }
    Backoff first(100ms, 1s, 1);
    CHECK(first.next() <= 100ms);
    CHECK(first.next() <= 200ms);
    // retry_after is a floor.
    Backoff ra(1ms, 10ms, 3);
    CHECK(ra.next(500ms) >= 500ms);
  }
}

namespace {

// An output that takes concurrent sends: each send waits until the test releases its
// block (or answers at once for blocks listed in `instant`), so tests control completion
// order and can see how many sends are in flight.
class WindowOutput final : public Output {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::map<uint64_t, SendResult> answers;  // seq → answer; absent: wait for one
    std::vector<uint64_t> attempts;          // seqs in the order sends started
    std::vector<uint64_t> delivered;         // seqs answered delivered
    int in_flight = 0;
    int max_in_flight = 0;
    bool all_ok = false;                     // answer delivered to every later send
    bool interrupted = false;
    void answer(uint64_t seq, SendResult r) {
      std::lock_guard lock(mu);
      answers[seq] = std::move(r);
      cv.notify_all();
    }
    bool waitAttempts(size_t n, Duration timeout) {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, timeout, [&] { return attempts.size() >= n; });
    }
  };
  explicit WindowOutput(Shared& s) : s_(s) {}
  size_t maxInFlight() const override { return 64; }
  void interrupt() override {
    std::lock_guard lock(s_.mu);
    s_.interrupted = true;
    s_.cv.notify_all();
  }
  SendResult send(const Block& block, SteadyTime deadline) override {
    std::unique_lock lock(s_.mu);
    s_.attempts.push_back(block.seq);
    s_.max_in_flight = std::max(s_.max_in_flight, ++s_.in_flight);
    s_.cv.notify_all();
    s_.cv.wait_until(lock, deadline,
                     [&] { return s_.interrupted || s_.all_ok || s_.answers.count(block.seq) != 0; });
    --s_.in_flight;
    SendResult r = SendResult::retry("no answer");
    if (auto it = s_.answers.find(block.seq); it != s_.answers.end()) {
      r = it->second;
      s_.answers.erase(it);
    } else if (s_.all_ok) {
      r = SendResult::delivered();
    }
    if (r.kind == SendResult::Kind::kDelivered) s_.delivered.push_back(block.seq);
    return r;
  }

 private:
  Shared& s_;
};

struct WindowFixture {
  MetricsRegistry metrics;
  MemoryBuffer buf{{1 << 20, WhenFull::kBlock, {}}, metrics, systemClock()};
  WindowOutput::Shared shared;

  std::unique_ptr<Sender> sender(int window) {
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    SenderOptions so;
    so.name = "o";
    so.initial_backoff = 1ms;
    so.max_backoff = 5ms;
    so.window = window;
    so.send_timeout = 10s;
    return std::make_unique<Sender>(so, std::make_unique<WindowOutput>(shared), buf, metrics, systemClock());
  }
  void append(int n) {
    for (int i = 0; i < n; ++i) {
      Block arr[] = {makeBlock("a", i, 1)};
      REQUIRE(buf.append(arr, 0ms).isOk());
    }
  }
  double gauge(const std::string& state) {
    std::string text = metrics.prometheusText();
    std::string needle = "ferry_output_state{output=\"o\",state=\"" + state + "\"} ";
    auto at = text.find(needle);
    return at == std::string::npos ? -1 : std::stod(text.substr(at + needle.size()));
  }
};

bool eventuallyTrue(const std::function<bool()>& f, Duration timeout = 5s) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return f();
}

}  // namespace

TEST_SUITE("core.sender.window") {
  TEST_CASE_FIXTURE(WindowFixture, "keeps at most `window` sends in flight and acks strictly in order") {
    auto s = sender(3);
    append(6);
    s->start();
    REQUIRE(shared.waitAttempts(3, 5s));
    std::this_thread::sleep_for(50ms);
    {
      std::lock_guard lock(shared.mu);
      auto started = shared.attempts;
      std::sort(started.begin(), started.end());
      CHECK(started == std::vector<uint64_t>{1, 2, 3});  // no fourth before one ends
      CHECK(shared.in_flight == 3);
    }
    // The third and second finish first: nothing may be acked while the first is open.
    shared.answer(3, SendResult::delivered());
    shared.answer(2, SendResult::delivered());
    std::this_thread::sleep_for(50ms);
    CHECK(buf.cursor("o") == 0);
    shared.answer(1, SendResult::delivered());
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 3; }));
    {
      std::lock_guard lock(shared.mu);
      shared.all_ok = true;
      shared.cv.notify_all();
    }
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 6; }));
    s->stop(false, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(shared.max_in_flight == 3);
    CHECK(metrics.counterValue("ferry_output_records_total", {{"output", "o"}}) == 6);
  }

  TEST_CASE_FIXTURE(WindowFixture, "a failure in the window: back off, probe the oldest failed block alone, then resume") {
    auto s = sender(4);
    append(8);
    s->start();
    REQUIRE(shared.waitAttempts(4, 5s));
    shared.answer(2, SendResult::retry("503"));
    std::this_thread::sleep_for(50ms);  // seen: the window stops growing
    shared.answer(1, SendResult::delivered());
    shared.answer(3, SendResult::delivered());
    shared.answer(4, SendResult::retry("503", 30ms));
    // The probe: block 2 alone, not before Retry-After.
    REQUIRE(shared.waitAttempts(5, 5s));
    std::this_thread::sleep_for(50ms);
    {
      std::lock_guard lock(shared.mu);
      CHECK(shared.attempts[4] == 2);
      CHECK(shared.attempts.size() == 5);  // nothing else while probing
      CHECK(shared.in_flight == 1);
    }
    CHECK(buf.cursor("o") == 1);
    CHECK(gauge("backing_off") == 1);
    CHECK(gauge("ok") == 0);
    shared.answer(2, SendResult::delivered());
    // Then the other failed block, then new ones; cursor moves past 3 (delivered earlier).
    {
      std::lock_guard lock(shared.mu);
      shared.all_ok = true;
      shared.cv.notify_all();
    }
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 8; }));
    s->stop(false, std::chrono::steady_clock::now() + 1s);
    s->join();
    std::lock_guard lock(shared.mu);
    CHECK(std::count(shared.attempts.begin(), shared.attempts.end(), 3) == 1);  // delivered once, not resent
    CHECK(std::count(shared.attempts.begin(), shared.attempts.end(), 4) == 2);
    CHECK(metrics.counterValue("ferry_retries_total", {{"output", "o"}}) == 2);
    CHECK(gauge("ok") == 1);
  }

  TEST_CASE_FIXTURE(WindowFixture, "a rejected block in the window is dead-lettered in order, later ones flow") {
    auto s = sender(3);
    append(3);
    s->start();
    REQUIRE(shared.waitAttempts(3, 5s));
    shared.answer(3, SendResult::delivered());
    shared.answer(2, SendResult::rejected("HTTP 400: bad field"));
    shared.answer(1, SendResult::delivered());
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 3; }));
    s->stop(false, std::chrono::steady_clock::now() + 1s);
    s->join();
    std::vector<DeadLetter> dls;
    REQUIRE(buf.forEachDeadLetter([&](const DeadLetter& d) {
                 DeadLetter c;
                 c.output = d.output;
                 c.reason = d.reason;
                 c.block.seq = d.block.seq;
                 c.block.records.appendAll(d.block.records);
                 dls.push_back(std::move(c));
               }).isOk());
    REQUIRE(dls.size() == 1);
    CHECK(dls[0].output == "o");
    CHECK(dls[0].reason == "HTTP 400: bad field");
    CHECK(dls[0].block.seq == 2);
    CHECK(dls[0].block.records[0] == "a:1");
    CHECK(buf.stats().dead_letter_records == 1);
    CHECK(metrics.counterValue("ferry_dead_letter_records_total", {{"output", "o"}}) == 1);
  }

  TEST_CASE_FIXTURE(WindowFixture, "stop while sends are in flight keeps what was delivered and acks nothing beyond") {
    auto s = sender(4);
    append(4);
    s->start();
    REQUIRE(shared.waitAttempts(4, 5s));
    shared.answer(1, SendResult::delivered());
    shared.answer(2, SendResult::delivered());
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 2; }));
    auto t0 = std::chrono::steady_clock::now();
    s->stop(false, t0 + 5s);  // 3 and 4 hang: interrupted
    s->join();
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(buf.cursor("o") == 2);
  }
}

TEST_SUITE("core.sender.dead_letters") {
  TEST_CASE_FIXTURE(WindowFixture, "a dead letter is kept and acked first; a failed forward does not hold the output back") {
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    SenderOptions so;
    so.name = "o";
    so.initial_backoff = 1ms;
    so.max_backoff = 5ms;
    so.window = 3;
    std::atomic<int> forward_calls{0};
    std::atomic<uint64_t> kept_before_forward{0};
    so.forward_dead_letters = [&](uint64_t id, const Block& b, std::string_view reason) {
      ++forward_calls;
      CHECK(id == 1);
      CHECK(b.seq == 1);
      CHECK(reason == "HTTP 400");
      kept_before_forward = buf.stats().dead_letter_records;
      return cancelled("agent is stopping");
    };
    auto s = std::make_unique<Sender>(so, std::make_unique<WindowOutput>(shared), buf, metrics, systemClock());
    append(3);
    s->start();
    REQUIRE(shared.waitAttempts(3, 5s));
    shared.answer(2, SendResult::delivered());
    shared.answer(3, SendResult::delivered());
    shared.answer(1, SendResult::rejected("HTTP 400"));
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 3; }));
    s->stop(false, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(forward_calls == 1);
    CHECK(kept_before_forward == 1);  // the queue holds it before any forwarding
    CHECK(buf.stats().dead_letter_records == 1);
    CHECK(metrics.counterValue("ferry_dead_letter_records_total", {{"output", "o"}}) == 1);
  }

  TEST_CASE_FIXTURE(WindowFixture, "forwarded blocks refused again are kept, not forwarded (no loops); backlog runs at start") {
    std::vector<std::string> outs = {"o"};
    REQUIRE(buf.setOutputs(outs).isOk());
    SenderOptions so;
    so.name = "o";
    so.window = 1;
    std::vector<uint64_t> forwarded;
    int backlog_runs = 0;
    so.forward_dead_letters = [&](uint64_t, const Block& b, std::string_view) {
      forwarded.push_back(b.seq);
      return Status::ok();
    };
    so.forward_backlog = [&] { ++backlog_runs; };
    auto s = std::make_unique<Sender>(so, std::make_unique<WindowOutput>(shared), buf, metrics, systemClock());
    Block routed = makeBlock("a", 0, 1);
    routed.lineage.route = "o";  // a forwarded dead letter of another output
    Block arr[] = {std::move(routed), makeBlock("a", 1, 1)};
    REQUIRE(buf.append(arr, 0ms).isOk());
    shared.answer(1, SendResult::rejected("HTTP 422: nope"));
    shared.answer(2, SendResult::rejected("HTTP 422: nope"));
    s->start();
    CHECK(eventuallyTrue([&] { return buf.cursor("o") == 2; }));
    s->stop(false, std::chrono::steady_clock::now() + 1s);
    s->join();
    CHECK(forwarded == std::vector<uint64_t>{2});
    CHECK(backlog_runs == 1);
    CHECK(buf.stats().dead_letter_records == 2);
  }
}

TEST_SUITE("core.sender.stop") {
  TEST_CASE_FIXTURE(WindowFixture, "a draining stop ends at its deadline even with a send hanging") {
    for (int window : {1, 3}) {
      CAPTURE(window);
      WindowOutput::Shared fresh;
      std::vector<std::string> outs = {"o"};
      REQUIRE(buf.setOutputs(outs).isOk());
      SenderOptions so;
      so.name = "o";
      so.window = window;
      so.send_timeout = 20s;
      auto s = std::make_unique<Sender>(so, std::make_unique<WindowOutput>(fresh), buf, metrics, systemClock());
      append(2);
      s->start();
      REQUIRE(fresh.waitAttempts(1, 5s));
      auto t0 = std::chrono::steady_clock::now();
      s->stop(/*drain=*/true, t0 + 300ms);
      CHECK(s->joinUntil(t0 + 1500ms));
      CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
    }
  }
}
