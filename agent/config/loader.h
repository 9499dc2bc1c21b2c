// Turns a YAML (or JSON) document into a validated Config.
//
// Strict: unknown keys, wrong types, bad durations and sizes, missing required keys,
// unknown plugin types and duplicate names are all reported, each as one Problem with
// file, line and key path ("ferry.yaml:12: inputs[1].paths: expected a list of
// strings"). Every problem of a document is collected, not only the first.
// Scalars may use ${ENV} / ${ENV:-default} and "@file:/path" (a secret read from a file
// that must not be readable by group or others).
//
// This is the only module that calls yaml-cpp; its exceptions are caught here.
// Thread-safety: stateless functions; safe from any thread.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/config.h"
#include "agent/core/registry.h"

namespace ferry {

struct ConfigProblem {
  SourceLocation where;
  std::string message;
  std::string toString() const;  // "file:line: path: message"
};

struct LoadResult {
  std::optional<Config> config;  // set only when problems is empty
  std::vector<ConfigProblem> problems;
};

LoadResult loadConfigFile(const std::string& path, const PluginRegistry& registry);
// `source_name` names the document in problems (a path or "<embedded default>").
LoadResult loadConfigText(std::string_view text, std::string source_name,
                          const PluginRegistry& registry);

// Validates a YAML mapping against one option table and fills defaults (plugin tests,
// tools). Every problem is joined into the returned status message.
Result<Options> optionsFromYaml(std::string_view yaml, std::span<const OptionSpec> specs);

// The embedded default: host metrics every 10 s, memory buffer, stdout.
std::string_view embeddedDefaultConfig();

}  // namespace ferry
