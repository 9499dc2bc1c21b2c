// Out-of-tree plugins: shared objects speaking the C ABI of ferry/plugin_abi.h.
//
// LoadedPlugins::loadDir() dlopens every `*.so` in a directory (agent.plugins_dir), checks
// each library's descriptor (ABI version and struct size first, then names, option
// declarations and the functions its kind needs) and turns it into an ordinary
// PluginDescriptor: owned copies of the name, summary and option table, so the config
// loader validates a plugin's options exactly like a built-in's, and shared factories that
// wrap an instance in a C++ adapter (ferry::Input / ferry::Processor) calling the C
// functions, one call per batch.
//
// A library that cannot be used (not a shared object, no entry symbol, another ABI
// version, a name a built-in or another library already has, a bad option table, a file
// others may write) is a problem naming the file; the config that names the directory is
// then invalid, so the agent refuses to start and `ferry validate` reports it.
//
// Lifetime: LoadedPlugins owns the descriptors and keeps the libraries open; the Config
// holds it (Config::plugins). Every instance an adapter wraps holds its library too, so a
// library is closed only after the last of its instances was destroyed.
// Thread-safety: loadDir() on the control thread; a LoadedPlugins is immutable afterwards.
// The adapters follow the threading of Input / Processor and the rules of plugin_abi.h.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/core/registry.h"
#include "ferry/plugin.h"

namespace ferry {

struct LoadedPlugin;

class LoadedPlugins {
 public:
  struct DirResult {
    std::shared_ptr<const LoadedPlugins> plugins;  // the libraries that passed every check
    std::vector<std::string> problems;             // "<file>: <what is wrong>", one per library
  };

  // Loads every `*.so` in `dir`, in name order. `taken` holds the plugins the new ones must
  // not clash with (the built-ins).
  static DirResult loadDir(const std::string& dir, const PluginRegistry& taken);

  LoadedPlugins();
  ~LoadedPlugins();
  LoadedPlugins(const LoadedPlugins&) = delete;
  LoadedPlugins& operator=(const LoadedPlugins&) = delete;

  std::span<const PluginDescriptor* const> descriptors() const { return descriptors_; }
  // The library file each descriptor came from (same order).
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::vector<const PluginDescriptor*> descriptors_;
  std::vector<std::string> files_;
};

// The host's plugin ABI version (FERRY_PLUGIN_ABI_VERSION), for `ferry version`.
int pluginAbiVersion();

}  // namespace ferry
