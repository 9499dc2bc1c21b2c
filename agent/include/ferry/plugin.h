// Plugin descriptors: what a plugin is called, which options it takes, how to build it.
//
// Each plugin directory (plugins/<kind>/<name>/) defines one descriptor function; CMake
// generates the table of built-in descriptors from the enabled plugins (see
// agent/core/registry.h). Factories run on the control thread, after the options were
// validated against `options`; they check what the table cannot express (a glob that
// does not compile, a directory that cannot be created) and return an error naming the
// key's location (Options::where).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ferry/clock.h"
#include "ferry/input.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/output.h"
#include "ferry/processor.h"
#include "ferry/status.h"

namespace ferry {

enum class PluginKind { kInput, kOutput, kProcessor };
std::string_view pluginKindName(PluginKind kind);

struct PluginDescriptor;

// What the core gives a plugin at construction. References outlive the plugin.
struct PluginContext {
  std::string agent_id;
  std::string name;      // the instance name from the config (inputs[].name / outputs[].name)
  std::string data_dir;  // agent.data_dir; a plugin may keep state under <data_dir>/<kind>/<name>
  const Clock* clock = nullptr;
  MetricsRegistry* metrics = nullptr;
  // The descriptor whose factory is called. Out-of-tree plugins need it (their factories
  // are shared, see agent/core/plugin_loader.h); built-ins may ignore it.
  const PluginDescriptor* descriptor = nullptr;
  uint64_t config_version = 0;  // the config's version (0: a local file), for lineage fields
};

using InputFactory = Result<std::unique_ptr<Input>> (*)(const PluginContext&, const Options&);
using OutputFactory = Result<std::unique_ptr<Output>> (*)(const PluginContext&, const Options&);
using ProcessorFactory = Result<std::unique_ptr<Processor>> (*)(const PluginContext&, const Options&);

struct PluginDescriptor {
  PluginKind kind = PluginKind::kInput;
  std::string_view name;     // the `type:` value in the config
  std::string_view summary;  // one line for `ferry plugins`
  std::span<const OptionSpec> options;  // plugin-specific keys (common keys are the core's)
  InputFactory make_input = nullptr;    // set for inputs
  OutputFactory make_output = nullptr;  // set for outputs
  ProcessorFactory make_processor = nullptr;  // set for processors
  // Out-of-tree plugins: the loaded library behind this descriptor (a LoadedPlugin, see
  // agent/core/plugin_loader.h); null for built-ins.
  const void* loaded = nullptr;
};

}  // namespace ferry
