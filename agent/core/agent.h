// The running agent: one buffer, and one generation of inputs, pipeline and senders
// built from the current config.
//
// start() builds every plugin of a config before anything runs, so a factory error
// leaves nothing half-started. reload() builds the new generation's plugins first; if
// any fails the old generation keeps running untouched. Otherwise the old inputs stop,
// what they emitted is flushed into the buffer, the old senders stop, and the new
// generation starts on the same buffer: outputs that keep their name keep their
// cursor. stop() follows the shutdown order of the contract: inputs, then the
// pipeline's flush, then the outputs (which drain a memory buffer until the deadline).
//
// Thread-safety: all methods from the control thread (main / signal loop).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "agent/config/config.h"
#include "ferry/buffer.h"
#include "ferry/metrics.h"

namespace ferry {

class MemoryBuffer;

class Agent {
 public:
  Agent(MetricsRegistry& metrics, const Clock& clock);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  Status start(const Config& config);
  Status reload(const Config& config);
  // Returns within about `deadline - now`; undelivered records of a memory buffer are
  // counted as dropped (reason "shutdown").
  void stop(SteadyTime deadline);

  Buffer& buffer();
  // Gauges computed on demand (backlog and oldest unacked age per output, config version),
  // for the metrics endpoint. Any thread, while the agent runs (between start and stop).
  void refreshGauges();
  // True when a sender did not stop in time (stuck in a send) and was left running; the
  // process should then end without running destructors (see cmd_run.cpp).
  bool hasAbandonedSenders() const { return !abandoned_.empty(); }
  const Config& config() const { return config_; }

 private:
  struct Generation;
  Result<std::unique_ptr<Generation>> build(const Config& config);
  void launch(Generation& g);
  // `carry`: reload; blocks the old pipeline could not append are moved there.
  void retire(Generation& g, SteadyTime deadline, bool drain, std::vector<Block>* carry = nullptr);

  MetricsRegistry& metrics_;
  const Clock& clock_;
  Config config_;
  std::atomic<uint64_t> config_version_{0};
  std::unique_ptr<Buffer> buffer_;
  MemoryBuffer* memory_buffer_ = nullptr;  // set when buffer_ is a MemoryBuffer
  std::unique_ptr<Generation> current_;
  // Senders stuck in a send at stop/reload: kept alive (never destroyed) so their thread
  // may still finish; a disk buffer replays what they did not ack.
  std::vector<std::unique_ptr<class Sender>> abandoned_;
};

// Applies the log section (level, format).
void applyLogSection(const LogSection& log);

// Opens the buffer a config asks for (disk: <data_dir>/buffer, keys loaded and checked).
// `read_only` opens a disk buffer for tools, beside a running agent.
Result<std::unique_ptr<Buffer>> openBuffer(const Config& config, MetricsRegistry& metrics, const Clock& clock,
                                           bool read_only = false);

}  // namespace ferry
