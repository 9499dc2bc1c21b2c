#include "agent/core/registry.h"

#include <sstream>

namespace ferry {

std::string_view pluginKindName(PluginKind kind) {
  switch (kind) {
    case PluginKind::kInput: return "input";
    case PluginKind::kOutput: return "output";
    case PluginKind::kProcessor: return "processor";
  }
  return "plugin";
}

namespace {
const OptionSpec kCommonInput[] = {
    {.key = "name", .type = OptionType::kString,
     .help = "instance name, unique among inputs; defaults to the type"},
    {.key = "type", .type = OptionType::kString, .help = "plugin name", .required = true},
    {.key = "stream", .type = OptionType::kString,
     .help = "stream the records belong to; defaults to the input's name"},
};
const OptionSpec kRetry[] = {
    {.key = "initial", .type = OptionType::kDuration, .default_value = "1s",
     .help = "cap of the wait after the first failed send"},
    {.key = "max", .type = OptionType::kDuration, .default_value = "60s",
     .help = "cap of the exponential backoff (full jitter is applied below the cap); retries never "
             "end by count: data waits in the buffer until delivered, dead-lettered or aged out"},
};
const OptionSpec kDeadLetter[] = {
    {.key = "output", .type = OptionType::kString,
     .help = "another output that receives this output's dead letters (each record wrapped with the "
             "reason); they are kept in the buffer's dead-letter queue either way"},
};
const OptionSpec kCommonOutput[] = {
    {.key = "name", .type = OptionType::kString,
     .help = "instance name, unique among outputs; defaults to the type"},
    {.key = "type", .type = OptionType::kString, .help = "plugin name", .required = true},
    {.key = "match", .type = OptionType::kString, .default_value = "*",
     .help = "glob over stream names; only matching streams are sent"},
    {.key = "retry", .type = OptionType::kObject, .help = "backoff between failed sends",
     .fields = kRetry},
    {.key = "window", .type = OptionType::kInt, .default_value = "4",
     .help = "batches in flight at once (1..64; outputs that cannot send concurrently use 1); acks "
             "still commit in order"},
    {.key = "timeout", .type = OptionType::kDuration, .default_value = "30s",
     .help = "deadline of one send (connect, upload, answer); a timeout is retried"},
    {.key = "dead_letter", .type = OptionType::kObject,
     .help = "where records the upstream refuses permanently go besides the dead-letter queue",
     .fields = kDeadLetter},
};

const OptionSpec kCommonProcessor[] = {
    {.key = "name", .type = OptionType::kString,
     .help = "instance name, unique among processors (metrics label); defaults to the type, or "
             "<type>-<position> when the type is used more than once"},
    {.key = "type", .type = OptionType::kString, .help = "plugin name", .required = true},
    {.key = "match", .type = OptionType::kString, .default_value = "*",
     .help = "glob over stream names; batches of other streams pass this processor untouched"},
};

void describeOptions(std::ostringstream& os, std::span<const OptionSpec> specs, int indent,
                     std::string_view prefix) {
  for (const OptionSpec& o : specs) {
    os << std::string(indent, ' ') << prefix << o.key << " (" << optionTypeName(o.type);
    if (o.type == OptionType::kEnum) {
      os << ":";
      for (size_t i = 0; i < o.choices.size(); ++i) os << (i ? "|" : " ") << o.choices[i];
    }
    os << ")";
    if (o.required) os << " required";
    if (!o.default_value.empty()) os << " default " << o.default_value;
    if (o.secret) os << " secret";
    os << "\n" << std::string(indent + 4, ' ') << o.help << "\n";
    if (o.type == OptionType::kObject) {
      describeOptions(os, o.fields, indent + 2, std::string(prefix) + std::string(o.key) + ".");
    } else if (o.type == OptionType::kObjectList) {
      describeOptions(os, o.fields, indent + 2, std::string(prefix) + std::string(o.key) + "[].");
    }
  }
}
}  // namespace

std::span<const OptionSpec> commonInputOptions() { return kCommonInput; }
std::span<const OptionSpec> commonOutputOptions() { return kCommonOutput; }
std::span<const OptionSpec> commonProcessorOptions() { return kCommonProcessor; }

std::span<const OptionSpec> commonOptions(PluginKind kind) {
  switch (kind) {
    case PluginKind::kInput: return kCommonInput;
    case PluginKind::kOutput: return kCommonOutput;
    case PluginKind::kProcessor: return kCommonProcessor;
  }
  return {};
}

PluginRegistry::PluginRegistry(std::span<const PluginDescriptor* const> plugins)
    : plugins_(plugins.begin(), plugins.end()) {}

PluginRegistry::PluginRegistry(const PluginRegistry& base, std::span<const PluginDescriptor* const> more)
    : plugins_(base.plugins_) {
  plugins_.insert(plugins_.end(), more.begin(), more.end());
}

const PluginDescriptor* PluginRegistry::find(PluginKind kind, std::string_view name) const {
  for (const PluginDescriptor* d : plugins_) {
    if (d->kind == kind && d->name == name) return d;
  }
  return nullptr;
}

std::vector<std::string> PluginRegistry::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const PluginDescriptor* d : plugins_) {
    if (d->kind == kind) out.emplace_back(d->name);
  }
  return out;
}

std::string PluginRegistry::describe() const {
  std::ostringstream os;
  for (PluginKind kind : {PluginKind::kInput, PluginKind::kProcessor, PluginKind::kOutput}) {
    os << (kind == PluginKind::kInput ? "Inputs" : kind == PluginKind::kOutput ? "Outputs" : "Processors")
       << " (common keys:";
    for (const OptionSpec& o : commonOptions(kind)) {
      os << " " << o.key;
    }
    os << ")\n";
    for (const PluginDescriptor* d : plugins_) {
      if (d->kind != kind) continue;
      os << "  " << d->name << " - " << d->summary << "\n";
      describeOptions(os, d->options, 4, "");
    }
  }
  return os.str();
}

}  // namespace ferry
