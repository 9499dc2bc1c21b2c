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

  ferry::cli::DecodeArgs decode_args;
  CLI::App* decode = app.add_subcommand("decode", "open one envelope (stdin) and print its records as NDJSON");
  decode->add_option("--key", decode_args.key_files, "aes256 key file(s); the envelope's key id picks one");
  decode->add_option("--in", decode_args.in_path, "read the envelope from FILE instead of stdin");
  decode->add_flag("-v,--verbose", decode_args.verbose, "print a header summary on stderr");

  ferry::cli::ReceiveArgs receive_args;
  CLI::App* receive = app.add_subcommand(
      "receive", "reference upstream: accept HTTP output batches, dedupe by idempotency key, write NDJSON");
  receive->add_option("--listen", receive_args.listen, "HOST:PORT or :PORT (port 0: any free port)")->required();
  receive->add_option("--out", receive_args.out_dir, "directory for DIR/<agent>/<output>/<first-seq>.ndjson")
      ->required();
  receive->add_option("--key", receive_args.key_files, "aes256 key file(s); when given, envelopes must be encrypted");
  receive->add_option("--durability", receive_args.durability, "fsync (default) | os")
      ->check(CLI::IsMember({"fsync", "os"}));
  receive->add_option("--min-free", receive_args.min_free, "answer 503 below this free space (default 64MiB)");
  receive->add_option("--max-body", receive_args.max_body, "largest request body, decoded (default 64MiB)");
  receive->add_option("--max-connections", receive_args.max_connections,
                      "concurrent connections, one thread each (default 64)")
      ->check(CLI::Range(1, 4096));

  std::string plugins_dir;
  CLI::App* plugins = app.add_subcommand("plugins", "list built-in plugins and their options");
  plugins->add_option("--plugins-dir", plugins_dir, "also load and list the out-of-tree plugins (*.so) of DIR");
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
  if (decode->parsed()) return ferry::cli::decode(decode_args);
  if (receive->parsed()) return ferry::cli::receive(receive_args);
  if (plugins->parsed()) return ferry::cli::listPlugins(plugins_dir);
  if (version->parsed()) return ferry::cli::printVersion();
  return 1;
}
