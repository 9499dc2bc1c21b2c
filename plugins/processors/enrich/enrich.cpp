// The `enrich` processor: adds static tags and the agent's identity to every record.
#include <unistd.h>

#include <memory>
#include <string>

#include "ferry/json.h"
#include "ferry/plugin.h"
#include "plugins/processors/common/editing_processor.h"

namespace ferry {

namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "tags",
     .type = OptionType::kStringMap,
     .help = "field path -> string value, added to every record (replacing a field of that name)"},
    {.key = "agent_id",
     .type = OptionType::kBool,
     .default_value = "false",
     .help = "add field \"agent\": the agent's id (agent.id)"},
    {.key = "hostname",
     .type = OptionType::kBool,
     .default_value = "false",
     .help = "add field \"host\": the machine's host name, read when the config is applied"},
    {.key = "config_version",
     .type = OptionType::kBool,
     .default_value = "false",
     .help = "add field \"config_version\": the running config's version (a number; 0 for a local "
             "file)"},
    {.key = "target",
     .type = OptionType::kString,
     .help =
         "field path of an object to put the added fields in (created when missing), e.g. meta; "
         "default: the record's top level"},
};

std::string jsonString(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

Result<std::unique_ptr<Processor>> makeEnrich(const PluginContext& ctx, const Options& opts) {
  FieldPath base;
  if (opts.has("target")) {
    auto target = fieldPathOption(opts, "target", opts.getString("target"));
    if (!target.isOk()) return target.status();
    base = std::move(target).value();
  }
  auto at = [&](FieldPath rest) {
    FieldPath p = base;
    p.insert(p.end(), rest.begin(), rest.end());
    return p;
  };
  FieldEditor editor;
  size_t added = 0;
  for (const auto& [key, value] : opts.getStringMap("tags")) {
    auto path = fieldPathOption(opts, "tags", key);
    if (!path.isOk()) return path.status();
    editor.set(at(std::move(path).value()), jsonString(value));
    ++added;
  }
  if (opts.getBool("agent_id")) {
    editor.set(at({"agent"}), jsonString(ctx.agent_id));
    ++added;
  }
  if (opts.getBool("hostname")) {
    char host[256] = {0};
    if (::gethostname(host, sizeof host - 1) != 0) {
      return invalidArgument(locateOption(opts, "hostname") + ": cannot read the host name");
    }
    editor.set(at({"host"}), jsonString(host));
    ++added;
  }
  if (opts.getBool("config_version")) {
    editor.set(at({"config_version"}), std::to_string(ctx.config_version));
    ++added;
  }
  if (added == 0) {
    return invalidArgument(
        locateOption(opts, "") +
        ": nothing to add: give tags, or set agent_id, hostname or config_version");
  }
  return editingProcessor(opts, std::move(editor), "tags");
}

}  // namespace

const PluginDescriptor& enrichProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "enrich",
      .summary =
          "adds static tags, the agent id, the host name and the config version to every record",
      .options = kOptions,
      .make_processor = &makeEnrich,
  };
  return kDescriptor;
}

}  // namespace ferry
