#include <cstdio>

#include "agent/cli/commands.h"

namespace ferry::cli {

int printVersion() {
  std::printf("ferry %s\ngit %s\nbuild %s\nplugins %s\n", FERRY_VERSION, FERRY_GIT_HASH, FERRY_BUILD_FLAGS,
              FERRY_ENABLED_PLUGINS);
  return 0;
}

}  // namespace ferry::cli
