// One function per subcommand; main.cpp only parses arguments and dispatches.
// Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace ferry::cli {

struct RunArgs {
  std::string config_path;  // empty: the embedded default
  std::string data_dir;     // empty: from the config
};

struct BufferToolArgs {
  std::string action;  // stats | check | export
  std::string data_dir;
  std::string config_path;
  std::vector<std::string> key_files;  // first: current, rest: previous
  bool dead_letters = false;           // export: the dead-letter queue
};

struct DecodeArgs {
  std::vector<std::string> key_files;
  std::string in_path;  // empty or "-": stdin
  bool verbose = false;
};

struct ReceiveArgs {
  std::string listen;
  std::string out_dir;
  std::vector<std::string> key_files;
  std::string durability = "fsync";  // fsync | os
  std::string min_free = "64MiB";
  std::string max_body = "64MiB";
  unsigned max_connections = 64;
};

int runAgent(const RunArgs& args);
int bufferTool(const BufferToolArgs& args);
int keygen(const std::string& type, const std::string& out);
int validateConfig(const std::string& path);
int listPlugins(const std::string& plugins_dir);  // empty: built-ins only
int printVersion();
int decode(const DecodeArgs& args);
int receive(const ReceiveArgs& args);

}  // namespace ferry::cli
