#include "tests/support/plugin_libs.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "agent/core/registry.h"
#include "ferry/clock.h"

namespace ferry::test {

void copyPluginLib(const std::string& from_dir, const std::string& lib, const std::string& to_dir,
                   const std::string& as) {
  namespace fs = std::filesystem;
  fs::copy_file(fs::path(from_dir) / (lib + ".so"),
                fs::path(to_dir) / (as.empty() ? lib + ".so" : as),
                fs::copy_options::overwrite_existing);
}

PluginFixture::PluginFixture(const std::string& dir) {
  // Checked against no built-ins: this support code also links into tests without them.
  LoadedPlugins::DirResult r =
      LoadedPlugins::loadDir(dir, PluginRegistry(std::span<const PluginDescriptor* const>()));
  std::string problems;
  for (const std::string& p : r.problems) problems += p + "\n";
  INFO(problems);
  REQUIRE(r.problems.empty());
  plugins = r.plugins;
}

const PluginDescriptor& PluginFixture::find(PluginKind kind, std::string_view name) const {
  for (const PluginDescriptor* d : plugins->descriptors()) {
    if (d->kind == kind && d->name == name) return *d;
  }
  FAIL("no loaded ", pluginKindName(kind), " named ", name);
  return *plugins->descriptors().front();
}

PluginContext PluginFixture::context(const PluginDescriptor& d, std::string instance) {
  return PluginContext{"test-agent", std::move(instance), "", &systemClock(), &metrics, &d};
}

}  // namespace ferry::test
