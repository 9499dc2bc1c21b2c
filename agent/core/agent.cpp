#include "agent/core/agent.h"

#include <cstdlib>
#include <mutex>
#include <thread>

#include "agent/buffer/disk_buffer.h"
#include "agent/buffer/memory_buffer.h"
#include "agent/codec/key_file.h"
#include "agent/core/dead_letter.h"
#include "agent/core/input_runner.h"
#include "agent/core/pipeline.h"
#include "agent/core/processor_chain.h"
#include "agent/core/sender.h"
#include "ferry/log.h"

namespace ferry {

namespace {
// Where one output's dead letters are forwarded: an emitter of the generation's pipeline
// whose blocks are routed to the target output. Shared with the sender (which may outlive
// the generation when abandoned), so retire() detaches the emitter under the mutex.
// Each queue entry is emitted with the checkpoint "<routed input>/forwarded" = its id, so
// the position commits with the forwarded records; entries above it are forwarded again
// after a restart (forwardBacklog), none twice.
struct DeadLetterRoute {
  std::mutex mu;
  Emitter* emitter = nullptr;
  Buffer* buffer = nullptr;
  std::string source_output;
  std::string checkpoint_key;
  uint64_t emitted_up_to = 0;  // this run; guarded by mu
};

uint64_t forwardedUpTo(DeadLetterRoute& route) {
  auto v = route.buffer->checkpoint(route.checkpoint_key);
  return v ? std::strtoull(v->c_str(), nullptr, 10) : 0;
}

Status forwardDeadLetter(DeadLetterRoute& route, uint64_t id, const Block& refused, std::string_view reason,
                         int64_t at_ms) {
  std::lock_guard lock(route.mu);
  if (route.emitter == nullptr) return cancelled("agent is stopping");
  if (id <= route.emitted_up_to || id <= forwardedUpTo(route)) return Status::ok();
  RecordBatch wrapped;
  wrapDeadLetters({route.source_output, reason, refused.lineage.stream, refused.seq, at_ms}, refused.records,
                  &wrapped);
  FERRY_RETURN_IF_ERROR(
      route.emitter->emitWithCheckpoint(wrapped, {"forwarded", std::to_string(id)}, refused.lineage.stream));
  route.emitted_up_to = id;
  return Status::ok();
}

void forwardBacklog(DeadLetterRoute& route) {
  const uint64_t done = forwardedUpTo(route);
  size_t n = 0;
  Status st = route.buffer->forEachDeadLetter([&](const DeadLetter& d) {
    if (d.id <= done || d.output != route.source_output || !d.block.lineage.route.empty()) return;
    if (forwardDeadLetter(route, d.id, d.block, d.reason, d.at_ms).isOk()) ++n;
  });
  if (!st.isOk()) logWarn("agent", "reading the dead-letter queue of ", route.source_output, ": ", st.toString());
  if (n > 0) logInfo("agent", "forwarded ", n, " dead letter(s) of ", route.source_output, " left from the last run");
}
}  // namespace

struct Agent::Generation {
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<ProcessorChain> processors;        // wraps the inputs' pipeline emitters
  std::vector<std::unique_ptr<InputRunner>> inputs;  // destroyed before the chain and the pipeline
  std::vector<std::unique_ptr<Sender>> senders;
  std::vector<std::string> output_names;
  std::vector<std::shared_ptr<DeadLetterRoute>> dead_letter_routes;

  void detachRoutes() {
    for (auto& r : dead_letter_routes) {
      std::lock_guard lock(r->mu);
      r->emitter = nullptr;
    }
  }
  ~Generation() {
    detachRoutes();
    inputs.clear();
    processors.reset();
    pipeline.reset();
    senders.clear();
  }
};

void applyLogSection(const LogSection& log) {
  setLogLevel(log.level);
  setLogFormat(log.format);
}

Result<std::unique_ptr<Buffer>> openBuffer(const Config& config, MetricsRegistry& metrics, const Clock& clock,
                                           bool read_only) {
  const BufferSection& b = config.buffer;
  if (b.type == BufferType::kMemory) {
    BufferLimits limits;
    limits.max_bytes = b.max_bytes;
    limits.when_full = b.when_full;
    limits.max_age = b.max_age;
    return std::unique_ptr<Buffer>(std::make_unique<MemoryBuffer>(limits, metrics, clock));
  }
  DiskBufferOptions o;
  o.path = config.agent.data_dir + "/buffer";
  o.max_bytes = b.max_bytes;
  o.when_full = b.when_full;
  o.max_age = b.max_age;
  o.fsync = b.fsync;
  o.compress = b.compress;
  o.zstd_level = b.zstd_level;
  o.memory_budget = b.memory_budget;
  o.read_only = read_only;
  if (!b.key_file.empty()) {
    auto key = loadKeyFile(b.key_file);
    if (!key.isOk()) return key.status().withContext("buffer.encryption.key_file");
    o.keys.push_back(*key);
    for (const std::string& f : b.previous_key_files) {
      auto old = loadKeyFile(f);
      if (!old.isOk()) return old.status().withContext("buffer.encryption.previous_key_files");
      o.keys.push_back(*old);
    }
  } else if (!read_only) {
    logWarn("buffer", "buffer.encryption.key_file is not set: blocks are stored in plaintext in ",
            o.path);
  }
  auto disk = DiskBuffer::open(std::move(o), metrics, clock);
  if (!disk.isOk()) return disk.status();
  return std::unique_ptr<Buffer>(std::move(disk).value());
}

Agent::Agent(MetricsRegistry& metrics, const Clock& clock) : metrics_(metrics), clock_(clock) {}

Agent::~Agent() {
  if (current_) stop(clock_.now() + std::chrono::seconds(2));
}

Result<std::unique_ptr<Agent::Generation>> Agent::build(const Config& config) {
  auto g = std::make_unique<Generation>();
  BatchingOptions batching;
  batching.max_records = config.buffer.block_max_records;
  batching.max_bytes = config.buffer.block_max_bytes;
  batching.max_wait = config.buffer.block_max_wait;
  g->pipeline = std::make_unique<Pipeline>(*buffer_, batching, config.agent.id, config.version, metrics_, clock_);

  g->processors = std::make_unique<ProcessorChain>(metrics_, clock_);
  for (const PluginInstance& proc : config.processors) {
    PluginContext ctx{config.agent.id, proc.name,      config.agent.data_dir, &clock_,
                      &metrics_,       proc.descriptor, config.version};
    auto processor = proc.descriptor->make_processor(ctx, proc.options);
    if (!processor.isOk()) return processor.status().withContext("processor " + proc.name);
    g->processors->add(proc.name, proc.match, std::move(processor).value());
  }
  Pipeline& pipeline = *g->pipeline;
  g->processors->connectTicks([&pipeline](const std::string& input) -> Emitter& {
    return pipeline.tickEmitterFor(input);
  });
  for (const PluginInstance& in : config.inputs) {
    PluginContext ctx{config.agent.id, in.name, config.agent.data_dir, &clock_, &metrics_, in.descriptor};
    auto input = in.descriptor->make_input(ctx, in.options);
    if (!input.isOk()) return input.status().withContext("input " + in.name);
    Emitter& emitter = g->processors->wrap(g->pipeline->emitterFor(in.name, in.stream), in.stream);
    g->inputs.push_back(
        std::make_unique<InputRunner>(in.name, std::move(input).value(), emitter, metrics_, clock_));
  }
  for (const PluginInstance& out : config.outputs) {
    PluginContext ctx{config.agent.id, out.name, config.agent.data_dir, &clock_, &metrics_, out.descriptor};
    auto output = out.descriptor->make_output(ctx, out.options);
    if (!output.isOk()) return output.status().withContext("output " + out.name);
    SenderOptions so;
    so.name = out.name;
    so.match = out.match;
    so.initial_backoff = out.retry.initial_backoff;
    so.max_backoff = out.retry.max_backoff;
    so.send_timeout = out.retry.timeout;
    so.window = out.retry.window;
    for (const PluginInstance& o : config.outputs) so.outputs.push_back(o.name);
    if (!out.retry.dead_letter_output.empty()) {
      auto route = std::make_shared<DeadLetterRoute>();
      const std::string input = "dead_letters/" + out.name;
      route->emitter = &g->pipeline->routedEmitterFor(input, out.retry.dead_letter_output);
      route->buffer = buffer_.get();
      route->source_output = out.name;
      route->checkpoint_key = input + "/forwarded";
      g->dead_letter_routes.push_back(route);
      const Clock& clock = clock_;
      so.forward_dead_letters = [route, &clock](uint64_t id, const Block& refused, std::string_view reason) {
        return forwardDeadLetter(*route, id, refused, reason, clock.wallMs());
      };
      so.forward_backlog = [route] { forwardBacklog(*route); };
    }
    g->senders.push_back(std::make_unique<Sender>(so, std::move(output).value(), *buffer_, metrics_, clock_));
    g->output_names.push_back(out.name);
  }
  return g;
}

void Agent::launch(Generation& g) {
  Status st = buffer_->setOutputs(g.output_names);
  if (!st.isOk()) logError("agent", "declaring outputs: ", st.toString());
  for (auto& s : g.senders) s->start();
  g.pipeline->start();
  g.processors->start();
  for (auto& in : g.inputs) in->start();
}

void Agent::retire(Generation& g, SteadyTime deadline, bool drain, std::vector<Block>* carry) {
  g.pipeline->stopInputs();
  g.detachRoutes();
  for (auto& in : g.inputs) in->stop();
  for (auto& in : g.inputs) in->join();
  // Time-driven processors flush (final tick) into the pipeline before it cuts its blocks.
  g.processors->finish();
  // Leave the outputs at least a third of the time.
  Duration left = deadline - clock_.now();
  g.pipeline->flushAndStop(clock_.now() + std::max(Duration::zero(), left / 3), carry);
  for (auto& s : g.senders) s->stop(drain, deadline);
  for (auto& s : g.senders) {
    if (!s->joinUntil(deadline + std::chrono::milliseconds(300))) {
      logError("agent", "output ", s->name(), " is stuck in a send and did not stop in time; leaving it behind",
               memory_buffer_ != nullptr ? " (its undelivered records are lost with the memory buffer)"
                                         : " (the disk buffer resends what it did not acknowledge)");
      abandoned_.push_back(std::move(s));
    }
  }
  std::erase(g.senders, nullptr);
}

Status Agent::start(const Config& config) {
  applyLogSection(config.log);
  auto buffer = openBuffer(config, metrics_, clock_);
  if (!buffer.isOk()) return buffer.status();
  buffer_ = std::move(buffer).value();
  memory_buffer_ = dynamic_cast<MemoryBuffer*>(buffer_.get());
  if (memory_buffer_ != nullptr) {
    logWarn("agent", "buffer.type is memory: records not yet delivered are lost when the agent stops");
  }

  auto g = build(config);
  if (!g.isOk()) return g.status();
  config_ = config;
  config_version_ = config.version;
  current_ = std::move(g).value();
  launch(*current_);
  logInfo("agent", "started agent ", config.agent.id, " with ", config.inputs.size(), " input(s), ",
          config.processors.size(), " processor(s) and ", config.outputs.size(), " output(s) from ", config.source,
          " (hash ", config.hash, ")");
  return Status::ok();
}

Status Agent::reload(const Config& config) {
  const BufferSection& a = config_.buffer;
  const BufferSection& b = config.buffer;
  if (a.type != b.type || a.max_bytes != b.max_bytes || a.when_full != b.when_full || a.max_age != b.max_age ||
      a.fsync != b.fsync || a.compress != b.compress || a.zstd_level != b.zstd_level || a.key_file != b.key_file ||
      a.previous_key_files != b.previous_key_files || a.memory_budget != b.memory_budget ||
      config.agent.data_dir != config_.agent.data_dir) {
    logWarn("agent", "changes to buffer.* or agent.data_dir take effect at the next restart");
  }
  auto g = build(config);
  if (!g.isOk()) return g.status();
  applyLogSection(config.log);
  std::vector<Block> carried;  // staged records the old pipeline could not store (buffer full)
  if (current_) retire(*current_, clock_.now() + std::chrono::seconds(3), /*drain=*/false, &carried);
  current_ = std::move(g).value();
  if (!carried.empty()) {
    logInfo("agent", "reload: ", carried.size(), " staged block(s) handed to the new pipeline");
    current_->pipeline->adopt(std::move(carried));
  }
  Config applied = config;
  applied.buffer = config_.buffer;
  applied.agent.data_dir = config_.agent.data_dir;
  config_ = applied;
  config_version_ = config.version;
  launch(*current_);
  logInfo("agent", "reloaded config from ", config.source, " (hash ", config.hash, ")");
  return Status::ok();
}

Buffer& Agent::buffer() { return *buffer_; }

void Agent::refreshGauges() {
  BufferStats s = buffer_->stats();
  const int64_t now = clock_.wallMs();
  metrics_.gauge("ferry_buffer_bytes", {}, "bytes held by the buffer").set(static_cast<double>(s.bytes));
  metrics_.gauge("ferry_dead_letter_queue_records", {}, "records kept in the dead-letter queue")
      .set(static_cast<double>(s.dead_letter_records));
  for (const OutputBacklog& o : s.outputs) {
    metrics_.gauge("ferry_buffer_records", {{"output", o.output}}, "records not yet acknowledged by each output")
        .set(static_cast<double>(o.records));
    metrics_
        .gauge("ferry_oldest_unacked_age_seconds", {{"output", o.output}},
               "age of the oldest record each output has not acknowledged")
        .set(o.oldest_ms > 0 ? static_cast<double>(now - o.oldest_ms) / 1000.0 : 0.0);
  }
  metrics_.gauge("ferry_config_version", {}, "version of the running config (0: a local file)")
      .set(static_cast<double>(config_version_.load(std::memory_order_relaxed)));
}

void Agent::stop(SteadyTime deadline) {
  if (!current_) return;
  // A memory buffer loses what is not delivered: give the outputs the time left. A disk
  // buffer keeps it: stop after the send in flight.
  retire(*current_, deadline, /*drain=*/memory_buffer_ != nullptr);
  current_.reset();
  buffer_->interrupt();
  if (!abandoned_.empty()) return;  // a stuck sender still uses the buffer: the process exits as is
  if (memory_buffer_ != nullptr) memory_buffer_->discardAtShutdown();
  memory_buffer_ = nullptr;
  buffer_.reset();  // closes RocksDB (flushes memtables) before the process exits
}

}  // namespace ferry
