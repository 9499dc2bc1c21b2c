// Helpers for tests of out-of-tree plugins: load a directory of plugin libraries and build
// an instance of one of them the way the agent does. Thread-safety: one test thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "agent/core/plugin_loader.h"
#include "ferry/metrics.h"
#include "ferry/plugin.h"

namespace ferry::test {

// Copies `<from_dir>/<lib>.so` into `to_dir` as `as` (default: the same file name).
void copyPluginLib(const std::string& from_dir, const std::string& lib, const std::string& to_dir,
                   const std::string& as = "");

// A directory's plugins, loaded and checked (REQUIREs that every library loaded), and the
// context the agent would give an instance named `instance` of the plugin `name`.
struct PluginFixture {
  explicit PluginFixture(const std::string& dir);
  const PluginDescriptor& find(PluginKind kind, std::string_view name) const;
  PluginContext context(const PluginDescriptor& d, std::string instance);
  // An instance named `instance` of the plugin `name`, built from `yaml` (its options,
  // validated against its table: REQUIREd valid) by the plugin's factory.
  Result<std::unique_ptr<Input>> input(std::string_view name, std::string_view yaml,
                                       std::string instance);
  Result<std::unique_ptr<Processor>> processor(std::string_view name, std::string_view yaml,
                                               std::string instance);

  std::shared_ptr<const LoadedPlugins> plugins;
  MetricsRegistry metrics;
};

}  // namespace ferry::test
