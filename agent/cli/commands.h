// One function per subcommand; main.cpp only parses arguments and dispatches.
// Each returns the process exit code.
#pragma once

#include <string>

namespace ferry::cli {

struct RunArgs {
  std::string config_path;  // empty: the embedded default
  std::string data_dir;     // empty: from the config
};

int runAgent(const RunArgs& args);
int validateConfig(const std::string& path);
int listPlugins();
int printVersion();

}  // namespace ferry::cli
