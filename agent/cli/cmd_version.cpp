#include <cstdio>

#include "agent/cli/commands.h"
#include "agent/core/plugin_loader.h"

namespace ferry::cli {

int printVersion() {
  std::printf("ferry %s\ngit %s\nbuild %s\nplugins %s\nplugin_abi %d\n", FERRY_VERSION, FERRY_GIT_HASH,
              FERRY_BUILD_FLAGS, FERRY_ENABLED_PLUGINS, pluginAbiVersion());
  return 0;
}

}  // namespace ferry::cli
