// ferry: the agent and its tools. Parses the command line and dispatches.
#include <CLI/CLI.hpp>

#include "agent/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Ferry: edge ingestion agent (collect, buffer durably, forward upstream)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ferry ") + FERRY_VERSION);

  ferry::cli::RunArgs run_args;
  CLI::App* run = app.add_subcommand("run", "run the agent (without -c: the embedded default config)");
  run->add_option("-c,--config", run_args.config_path, "config file (YAML or JSON)");
  run->add_option("--data-dir", run_args.data_dir, "overrides agent.data_dir");

  std::string validate_path;
  CLI::App* validate = app.add_subcommand("validate", "check a config file; exit 2 if it has problems");
  validate->add_option("-c,--config", validate_path, "config file (YAML or JSON)")->required();

  ferry::cli::BufferToolArgs buffer_args;
  CLI::App* buffer = app.add_subcommand("buffer", "inspect a disk buffer (read-only, safe beside a running agent)");
  buffer->require_subcommand(1);
  for (const char* action : {"stats", "check", "export"}) {
    const char* help = std::string_view(action) == "stats"   ? "backlog per output: records, bytes, oldest age"
                       : std::string_view(action) == "check" ? "verify every block; exit 1 on damage"
                                                             : "print every stored record as NDJSON with its lineage";
    CLI::App* sub = buffer->add_subcommand(action, help);
    sub->add_option("--data-dir", buffer_args.data_dir, "the agent's data_dir");
    sub->add_option("-c,--config", buffer_args.config_path, "take data_dir and keys from this config");
    sub->add_option("--key-file", buffer_args.key_files, "at-rest key file(s): current first, then older ones");
    if (std::string_view(action) == "export") {
      sub->add_flag("--dead-letters", buffer_args.dead_letters,
                    "print the dead-letter queue instead: each record wrapped with the output and reason");
    }
    sub->callback([&buffer_args, action] { buffer_args.action = action; });
  }

  std::string key_type;
  std::string key_out;
  CLI::App* keygen = app.add_subcommand("keygen", "write a new key file (mode 0600)");
  keygen->add_option("--type", key_type, "aes256 (at-rest key)")->required();
  keygen->add_option("--out", key_out, "file to create; never overwritten")->required();

  CLI::App* plugins = app.add_subcommand("plugins", "list built-in plugins and their options");
  CLI::App* version = app.add_subcommand("version", "print version, git hash, build flags, plugins");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (run->parsed()) return ferry::cli::runAgent(run_args);
  if (validate->parsed()) return ferry::cli::validateConfig(validate_path);
  if (buffer->parsed()) return ferry::cli::bufferTool(buffer_args);
  if (keygen->parsed()) return ferry::cli::keygen(key_type, key_out);
  if (plugins->parsed()) return ferry::cli::listPlugins();
  if (version->parsed()) return ferry::cli::printVersion();
  return 1;
}
