#include "agent/core/processor_chain.h"

#include <fnmatch.h>

#include <algorithm>
#include <utility>

#include "ferry/log.h"

namespace ferry {

namespace {

constexpr std::string_view kProcessorError = "processor_error";
constexpr std::string_view kTickLost = "shutdown";

// Per-thread working space of apply(): the two batches processors write into alternately,
// the result of one process() call, and the stream name as a C string for fnmatch.
struct Scratch {
  RecordBatch a;
  RecordBatch b;
  ProcessResult result;
  std::string stream;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

void resetResult(ProcessResult& r) {
  r.filtered = 0;
  r.dropped.clear();
}

}  // namespace

struct ProcessorChain::Stage {
  std::string name;
  std::string match;
  bool match_all = false;
  std::unique_ptr<Processor> processor;
  Counter* in = nullptr;
  Counter* out = nullptr;
  Counter* filtered = nullptr;
  Counter* dropped = nullptr;
  Duration tick_interval{};
  Emitter* tick_emitter = nullptr;
  SteadyTime next_tick{};  // timer thread only

  std::mutex mu;  // serialises process() and tick(); guards the fields below
  std::vector<std::pair<std::string, Counter*>> drop_counters;  // by reason
  SteadyTime last_error_log{};
  bool error_logged = false;
};

// The TickSink of the timer thread: keeps a copy of each batch a tick emits (ticks are rare;
// the batches are reused), so the processor's lock is released before the records travel on.
class ProcessorChain::Collector final : public TickSink {
 public:
  struct Item {
    std::string stream;
    RecordBatch batch;
  };
  void emit(std::string_view stream, const RecordBatch& batch) override {
    if (used == items.size()) items.emplace_back();
    Item& it = items[used++];
    it.stream.assign(stream);
    it.batch.clear();
    it.batch.appendAll(batch);
  }
  uint64_t records() const {
    uint64_t n = 0;
    for (size_t i = 0; i < used; ++i) n += items[i].batch.size();
    return n;
  }

  std::vector<Item> items;
  size_t used = 0;
};

class ProcessorChain::ChainEmitter final : public Emitter {
 public:
  ChainEmitter(ProcessorChain& chain, Emitter& inner, std::string stream)
      : chain_(chain), inner_(inner), stream_(std::move(stream)) {}

  Status emit(const RecordBatch& batch, std::string_view stream) override {
    return inner_.emit(chain_.apply(streamOr(stream), batch), stream);
  }
  Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint& checkpoint,
                            std::string_view stream) override {
    // Even when nothing is left, the checkpoint must commit: the source was consumed.
    return inner_.emitWithCheckpoint(chain_.apply(streamOr(stream), batch), checkpoint, stream);
  }
  // Emits that may give up check for room first: stateful processors (deadband, aggregate,
  // throttle) must not take in records that are then refused and sent again by the source.
  // Room can still vanish between the check and the emit (rare; the records are then seen
  // twice by the processors when the source sends them again).
  Status tryEmit(const RecordBatch& batch, Duration wait, std::string_view stream) override {
    FERRY_RETURN_IF_ERROR(inner_.waitForRoom(batch.bytes(), wait));
    return inner_.tryEmit(chain_.apply(streamOr(stream), batch), wait, stream);
  }
  Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream,
                               Duration wait) override {
    if (wait != Duration::max()) FERRY_RETURN_IF_ERROR(inner_.waitForRoom(batch.bytes(), wait));
    return inner_.emitTracked(chain_.apply(streamOr(stream), batch), stream, wait);
  }
  Status waitForRoom(uint64_t bytes, Duration wait) override { return inner_.waitForRoom(bytes, wait); }
  Status waitCommitted(uint64_t ticket, Duration d) override {
    return inner_.waitCommitted(ticket, d);
  }
  Status deadLetter(const RecordBatch& batch, std::string_view reason) override {
    return inner_.deadLetter(batch, reason);
  }
  void countDropped(std::string_view reason, uint64_t n) override {
    inner_.countDropped(reason, n);
  }
  const CheckpointReader& checkpoints() const override { return inner_.checkpoints(); }
  bool stopping() const override { return inner_.stopping(); }
  bool waitFor(Duration d) override { return inner_.waitFor(d); }

 private:
  std::string_view streamOr(std::string_view stream) const {
    return stream.empty() ? std::string_view(stream_) : stream;
  }

  ProcessorChain& chain_;
  Emitter& inner_;
  const std::string stream_;
};

namespace {

// Adds one process()/tick() call's figures to the stage's counters. Stage mutex held.
template <typename StageT>
void countResult(MetricsRegistry& metrics, StageT& st, uint64_t in, uint64_t out,
                 const ProcessResult& r) {
  if (in > 0) st.in->add(in);
  if (out > 0) st.out->add(out);
  if (r.filtered > 0) st.filtered->add(r.filtered);
  for (const auto& [reason, n] : r.dropped) {
    if (n == 0) continue;
    Counter* c = nullptr;
    for (const auto& [known, counter] : st.drop_counters) {
      if (known == reason) c = counter;
    }
    if (c == nullptr) {
      c = &metrics.counter("ferry_dropped_records_total", {{"reason", std::string(reason)}});
      st.drop_counters.emplace_back(std::string(reason), c);
    }
    c->add(n);
    st.dropped->add(n);
  }
}

}  // namespace

ProcessorChain::ProcessorChain(MetricsRegistry& metrics, const Clock& clock)
    : metrics_(metrics), clock_(clock), collector_(std::make_unique<Collector>()) {}

ProcessorChain::~ProcessorChain() {
  {
    std::lock_guard lock(timer_mu_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

void ProcessorChain::add(std::string name, std::string match,
                         std::unique_ptr<Processor> processor) {
  auto st = std::make_unique<Stage>();
  static constexpr std::string_view kHelp =
      "records per processor: in (handed to it), out (passed on or produced), filtered (left out "
      "on purpose), dropped (refused, by reason in ferry_dropped_records_total)";
  auto counter = [&](const char* result) {
    return &metrics_.counter("ferry_processor_records_total",
                             {{"processor", name}, {"result", result}}, kHelp);
  };
  st->in = counter("in");
  st->out = counter("out");
  st->filtered = counter("filtered");
  st->dropped = counter("dropped");
  st->match_all = match == "*";
  st->name = std::move(name);
  st->match = std::move(match);
  st->tick_interval = processor->tickInterval();
  st->processor = std::move(processor);
  stages_.push_back(std::move(st));
}

Emitter& ProcessorChain::wrap(Emitter& inner, std::string stream) {
  if (stages_.empty()) return inner;
  emitters_.push_back(std::make_unique<ChainEmitter>(*this, inner, std::move(stream)));
  return *emitters_.back();
}

void ProcessorChain::connectTicks(
    const std::function<Emitter&(const std::string& input)>& emitter_for) {
  for (auto& st : stages_) {
    if (st->tick_interval > Duration::zero())
      st->tick_emitter = &emitter_for("processor:" + st->name);
  }
}

const RecordBatch& ProcessorChain::apply(std::string_view stream, const RecordBatch& in,
                                         size_t from) {
  Scratch& s = scratch();
  const RecordBatch* cur = &in;
  bool have_stream = false;
  for (size_t i = from; i < stages_.size() && !cur->empty(); ++i) {
    Stage& st = *stages_[i];
    if (!st.match_all) {
      if (!have_stream) {
        s.stream.assign(stream);  // NUL-terminated for fnmatch; capacity is reused
        have_stream = true;
      }
      if (::fnmatch(st.match.c_str(), s.stream.c_str(), 0) != 0) continue;
    }
    RecordBatch& out = cur == &s.a ? s.b : s.a;
    out.clear();
    resetResult(s.result);
    const uint64_t n = cur->size();
    std::lock_guard lock(st.mu);
    Status status = st.processor->process(stream, *cur, out, s.result);
    if (!status.isOk()) {
      out.clear();
      resetResult(s.result);
      s.result.drop(kProcessorError, n);
      const SteadyTime now = clock_.now();
      if (!st.error_logged || now - st.last_error_log >= std::chrono::minutes(1)) {
        logError("processor", st.name, ": ", status.toString(), "; a batch of ", n,
                 " record(s) is dropped (processor_error)");
        st.error_logged = true;
        st.last_error_log = now;
      }
    }
    countResult(metrics_, st, n, out.size(), s.result);
    cur = &out;
  }
  return *cur;
}

void ProcessorChain::runTick(size_t index, SteadyTime now, bool final) {
  Stage& st = *stages_[index];
  Collector& c = *collector_;
  c.used = 0;
  ProcessResult result;
  {
    std::lock_guard lock(st.mu);
    st.processor->tick(now, final, c, result);
    countResult(metrics_, st, 0, c.records(), result);
  }
  for (size_t k = 0; k < c.used; ++k) {
    const Collector::Item& item = c.items[k];
    const RecordBatch& out = apply(item.stream, item.batch, index + 1);
    if (out.empty()) continue;
    Status emitted = st.tick_emitter->emit(out, item.stream);
    if (!emitted.isOk()) {
      // Only at stop (the pipeline no longer takes records): counted like staged records.
      metrics_.counter("ferry_dropped_records_total", {{"reason", std::string(kTickLost)}})
          .add(out.size());
      logWarn("processor", st.name, ": ", out.size(),
              " record(s) of a tick were not stored: ", emitted.toString());
    }
  }
}

void ProcessorChain::start() {
  std::vector<size_t> ticking;
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (stages_[i]->tick_interval > Duration::zero() && stages_[i]->tick_emitter != nullptr)
      ticking.push_back(i);
  }
  if (ticking.empty()) return;
  const SteadyTime now = clock_.now();
  for (size_t i : ticking) stages_[i]->next_tick = now + stages_[i]->tick_interval;
  timer_ = std::thread([this] { timerLoop(); });
}

void ProcessorChain::timerLoop() {
  std::unique_lock lock(timer_mu_);
  while (!timer_stop_) {
    SteadyTime now = clock_.now();
    SteadyTime next = now + std::chrono::seconds(1);
    for (size_t i = 0; i < stages_.size() && !timer_stop_; ++i) {
      Stage& st = *stages_[i];
      if (st.tick_interval <= Duration::zero() || st.tick_emitter == nullptr) continue;
      if (now >= st.next_tick) {
        lock.unlock();
        runTick(i, now, false);
        lock.lock();
        st.next_tick += st.tick_interval;
        if (st.next_tick <= now)
          st.next_tick = now + st.tick_interval;  // a tick ran late: no catch-up burst
      }
      next = std::min(next, st.next_tick);
    }
    if (timer_stop_) break;
    // The injected clock decides when a tick is due; the wait itself is real time.
    timer_cv_.wait_for(lock, std::max(Duration(std::chrono::milliseconds(1)), next - clock_.now()),
                       [&] { return timer_stop_; });
  }
}

void ProcessorChain::finish() {
  {
    std::lock_guard lock(timer_mu_);
    if (finished_) return;
    finished_ = true;
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (stages_[i]->tick_interval > Duration::zero() && stages_[i]->tick_emitter != nullptr) {
      runTick(i, clock_.now(), true);
    }
  }
}

}  // namespace ferry
