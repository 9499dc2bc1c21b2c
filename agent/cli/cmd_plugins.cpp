// `ferry plugins [--plugins-dir DIR]`: every built-in plugin and its options, then the
// out-of-tree plugins of DIR (exit 2 when one of its libraries cannot be used).
#include <cstdio>

#include "agent/cli/commands.h"
#include "agent/core/plugin_loader.h"
#include "agent/core/registry.h"

namespace ferry::cli {

int listPlugins(const std::string& plugins_dir) {
  if (plugins_dir.empty()) {
    std::fputs(PluginRegistry::builtin().describe().c_str(), stdout);
    return 0;
  }
  LoadedPlugins::DirResult loaded = LoadedPlugins::loadDir(plugins_dir, PluginRegistry::builtin());
  const PluginRegistry all(PluginRegistry::builtin(), loaded.plugins->descriptors());
  std::fputs(all.describe().c_str(), stdout);
  std::printf("Out-of-tree plugins (%s):\n", plugins_dir.c_str());
  for (size_t i = 0; i < loaded.plugins->descriptors().size(); ++i) {
    const PluginDescriptor* d = loaded.plugins->descriptors()[i];
    std::printf("  %s %s from %s\n", std::string(pluginKindName(d->kind)).c_str(),
                std::string(d->name).c_str(), loaded.plugins->files()[i].c_str());
  }
  for (const std::string& p : loaded.problems) std::fprintf(stderr, "%s\n", p.c_str());
  return loaded.problems.empty() ? 0 : 2;
}

}  // namespace ferry::cli
