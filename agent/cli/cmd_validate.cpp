#include <cstdio>

#include "agent/cli/commands.h"
#include "agent/config/loader.h"

namespace ferry::cli {

int validateConfig(const std::string& path) {
  LoadResult r = loadConfigFile(path, PluginRegistry::builtin());
  if (r.problems.empty()) {
    std::printf("%s: valid (%zu input(s), %zu output(s))\n", path.c_str(), r.config->inputs.size(),
                r.config->outputs.size());
    return 0;
  }
  for (const ConfigProblem& p : r.problems) std::printf("%s\n", p.toString().c_str());
  std::fprintf(stderr, "%s: %zu problem(s)\n", path.c_str(), r.problems.size());
  return 2;
}

}  // namespace ferry::cli
