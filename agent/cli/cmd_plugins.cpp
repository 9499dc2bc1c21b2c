#include <cstdio>

#include "agent/cli/commands.h"
#include "agent/core/registry.h"

namespace ferry::cli {

int listPlugins() {
  std::fputs(PluginRegistry::builtin().describe().c_str(), stdout);
  return 0;
}

}  // namespace ferry::cli
