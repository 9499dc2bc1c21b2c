// The validated configuration the agent runs on.
//
// Produced only by the loader (agent/config/loader.h) after every check passed, so code
// that receives a Config never re-validates. Value type; safe to copy between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/buffer.h"
#include "ferry/log.h"
#include "ferry/options.h"
#include "ferry/plugin.h"

namespace ferry {

struct AgentSection {
  std::string id;        // defaults to the hostname
  std::string data_dir;  // state of the agent and its plugins
  std::string plugins_dir;  // out-of-tree plugins (*.so); empty: none
};

struct LogSection {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
};

struct MetricsSection {
  std::string listen;  // empty: the endpoint is not served
};

enum class BufferType { kDisk, kMemory };

struct BufferSection {
  BufferType type = BufferType::kDisk;
  uint64_t max_bytes = 0;
  WhenFull when_full = WhenFull::kBlock;
  bool fsync = true;
  bool compress = true;
  int zstd_level = 3;
  std::string key_file;  // empty: plaintext
  std::vector<std::string> previous_key_files;
  uint64_t memory_budget = 16ull << 20;
  Duration max_age{};  // zero: no age limit
  // How the batcher cuts records into blocks: whichever limit is reached first.
  uint64_t block_max_records = 0;
  uint64_t block_max_bytes = 0;
  Duration block_max_wait{};
};

// Sender-loop settings every output shares.
struct RetrySection {
  Duration initial_backoff{};
  Duration max_backoff{};
  int window = 4;                // batches in flight
  Duration timeout{};            // deadline of one send
  std::string dead_letter_output;  // empty: dead letters only kept in the queue
};

struct PluginInstance {
  const PluginDescriptor* descriptor = nullptr;
  std::string name;
  std::string stream;  // inputs: the stream their records belong to
  std::string match;   // outputs, processors: glob over stream names
  RetrySection retry;  // outputs
  Options options;     // plugin-specific keys, validated against descriptor->options
};

class LoadedPlugins;  // agent/core/plugin_loader.h

struct Config {
  std::string source;    // file path, or "<embedded default>"
  std::string hash;      // hex FNV-1a 64 of the document text, for reporting
  uint64_t version = 0;  // remote config version; 0 for local files
  AgentSection agent;
  LogSection log;
  BufferSection buffer;
  MetricsSection metrics;
  std::vector<PluginInstance> inputs;
  std::vector<PluginInstance> processors;  // in config order: the order they apply in
  std::vector<PluginInstance> outputs;
  // The libraries of agent.plugins_dir; instances' descriptors may point into them, so
  // every copy of the Config keeps them loaded. Null without plugins_dir.
  std::shared_ptr<const LoadedPlugins> plugins;
};

}  // namespace ferry
