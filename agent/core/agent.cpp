#include "agent/core/agent.h"

#include "agent/buffer/memory_buffer.h"
#include "agent/core/input_runner.h"
#include "agent/core/pipeline.h"
#include "agent/core/sender.h"
#include "ferry/log.h"

namespace ferry {

struct Agent::Generation {
  std::unique_ptr<Pipeline> pipeline;
  std::vector<std::unique_ptr<InputRunner>> inputs;  // destroyed before the pipeline
  std::vector<std::unique_ptr<Sender>> senders;
  std::vector<std::string> output_names;

  ~Generation() {
    inputs.clear();
    pipeline.reset();
    senders.clear();
  }
};

void applyLogSection(const LogSection& log) {
  setLogLevel(log.level);
  setLogFormat(log.format);
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

  for (const PluginInstance& in : config.inputs) {
    PluginContext ctx{config.agent.id, in.name, config.agent.data_dir, &clock_, &metrics_};
    auto input = in.descriptor->make_input(ctx, in.options);
    if (!input.isOk()) return input.status().withContext("input " + in.name);
    Emitter& emitter = g->pipeline->emitterFor(in.name, in.stream);
    g->inputs.push_back(
        std::make_unique<InputRunner>(in.name, std::move(input).value(), emitter, metrics_, clock_));
  }
  for (const PluginInstance& out : config.outputs) {
    PluginContext ctx{config.agent.id, out.name, config.agent.data_dir, &clock_, &metrics_};
    auto output = out.descriptor->make_output(ctx, out.options);
    if (!output.isOk()) return output.status().withContext("output " + out.name);
    SenderOptions so;
    so.name = out.name;
    so.match = out.match;
    so.initial_backoff = out.retry.initial_backoff;
    so.max_backoff = out.retry.max_backoff;
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
  for (auto& in : g.inputs) in->start();
}

void Agent::retire(Generation& g, SteadyTime deadline, bool drain) {
  g.pipeline->stopInputs();
  for (auto& in : g.inputs) in->stop();
  for (auto& in : g.inputs) in->join();
  // Leave the outputs at least a third of the time.
  Duration left = deadline - clock_.now();
  g.pipeline->flushAndStop(clock_.now() + std::max(Duration::zero(), left / 3));
  for (auto& s : g.senders) s->stop(drain, deadline);
  for (auto& s : g.senders) s->join();
}

Status Agent::start(const Config& config) {
  applyLogSection(config.log);
  BufferLimits limits;
  limits.max_bytes = config.buffer.max_bytes;
  limits.when_full = config.buffer.when_full;
  limits.max_age = config.buffer.max_age;
  buffer_ = std::make_unique<MemoryBuffer>(limits, metrics_, clock_);
  logWarn("agent", "buffer.type is memory: records not yet delivered are lost when the agent stops");

  auto g = build(config);
  if (!g.isOk()) return g.status();
  config_ = config;
  current_ = std::move(g).value();
  launch(*current_);
  logInfo("agent", "started agent ", config.agent.id, " with ", config.inputs.size(), " input(s) and ",
          config.outputs.size(), " output(s) from ", config.source, " (hash ", config.hash, ")");
  return Status::ok();
}

Status Agent::reload(const Config& config) {
  const BufferSection& a = config_.buffer;
  const BufferSection& b = config.buffer;
  if (a.max_bytes != b.max_bytes || a.when_full != b.when_full || a.max_age != b.max_age ||
      config.agent.data_dir != config_.agent.data_dir) {
    logWarn("agent", "changes to buffer.* or agent.data_dir take effect at the next restart");
  }
  auto g = build(config);
  if (!g.isOk()) return g.status();
  applyLogSection(config.log);
  if (current_) retire(*current_, clock_.now() + std::chrono::seconds(3), /*drain=*/false);
  current_ = std::move(g).value();
  Config applied = config;
  applied.buffer = config_.buffer;
  applied.agent.data_dir = config_.agent.data_dir;
  config_ = applied;
  launch(*current_);
  logInfo("agent", "reloaded config from ", config.source, " (hash ", config.hash, ")");
  return Status::ok();
}

Buffer& Agent::buffer() { return *buffer_; }

void Agent::stop(SteadyTime deadline) {
  if (!current_) return;
  retire(*current_, deadline, /*drain=*/true);
  current_.reset();
  buffer_->interrupt();
  buffer_->discardAtShutdown();
}

}  // namespace ferry
