// `ferry validate -c FILE`: the loader's checks (schema, types, cross-references), then
// every plugin's factory, which checks what an option table cannot express (a URL, a
// glob, a TLS pin, a broker address). Factories have no side effects: nothing is opened,
// connected or created until the agent runs.
#include <cstdio>
#include <string>

#include "agent/cli/commands.h"
#include "agent/config/loader.h"
#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/plugin.h"

namespace ferry::cli {

int validateConfig(const std::string& path) {
  LoadResult r = loadConfigFile(path, PluginRegistry::builtin());
  std::vector<std::string> problems;
  for (const ConfigProblem& p : r.problems) problems.push_back(p.toString());
  if (r.config) {
    setLogLevel(LogLevel::kError);  // factories' warnings (e.g. insecure TLS) are for `run`
    MetricsRegistry metrics;
    const Config& c = *r.config;
    for (const PluginInstance& in : c.inputs) {
      PluginContext ctx{c.agent.id, in.name, c.agent.data_dir, &systemClock(), &metrics, in.descriptor};
      auto made = in.descriptor->make_input(ctx, in.options);
      if (!made.isOk()) problems.push_back(made.status().message());
    }
    for (const PluginInstance& proc : c.processors) {
      PluginContext ctx{c.agent.id, proc.name, c.agent.data_dir, &systemClock(), &metrics, proc.descriptor,
                        c.version};
      auto made = proc.descriptor->make_processor(ctx, proc.options);
      if (!made.isOk()) problems.push_back(made.status().message());
    }
    for (const PluginInstance& out : c.outputs) {
      PluginContext ctx{c.agent.id, out.name, c.agent.data_dir, &systemClock(), &metrics, out.descriptor};
      auto made = out.descriptor->make_output(ctx, out.options);
      if (!made.isOk()) problems.push_back(made.status().message());
    }
  }
  if (problems.empty()) {
    std::string processors;
    if (!r.config->processors.empty()) processors = ", " + std::to_string(r.config->processors.size()) + " processor(s)";
    std::printf("%s: valid (%zu input(s)%s, %zu output(s))\n", path.c_str(), r.config->inputs.size(),
                processors.c_str(), r.config->outputs.size());
    return 0;
  }
  for (const std::string& p : problems) std::printf("%s\n", p.c_str());
  std::fprintf(stderr, "%s: %zu problem(s)\n", path.c_str(), problems.size());
  return 2;
}

}  // namespace ferry::cli
