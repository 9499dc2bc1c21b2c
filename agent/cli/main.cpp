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

  CLI::App* plugins = app.add_subcommand("plugins", "list built-in plugins and their options");
  CLI::App* version = app.add_subcommand("version", "print version, git hash, build flags, plugins");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (run->parsed()) return ferry::cli::runAgent(run_args);
  if (validate->parsed()) return ferry::cli::validateConfig(validate_path);
  if (plugins->parsed()) return ferry::cli::listPlugins();
  if (version->parsed()) return ferry::cli::printVersion();
  return 1;
}
