#include "tests/support/plugin_libs.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "agent/config/loader.h"
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

Result<std::unique_ptr<Input>> PluginFixture::input(std::string_view name, std::string_view yaml,
                                                    std::string instance) {
  const PluginDescriptor& d = find(PluginKind::kInput, name);
  Result<Options> opts = optionsFromYaml(yaml, d.options);
  INFO(opts.status().message());
  REQUIRE(opts.isOk());
  return d.make_input(context(d, std::move(instance)), opts.value());
}

Result<std::unique_ptr<Processor>> PluginFixture::processor(std::string_view name,
                                                            std::string_view yaml,
                                                            std::string instance) {
  const PluginDescriptor& d = find(PluginKind::kProcessor, name);
  Result<Options> opts = optionsFromYaml(yaml, d.options);
  INFO(opts.status().message());
  REQUIRE(opts.isOk());
  return d.make_processor(context(d, std::move(instance)), opts.value());
}

}  // namespace ferry::test
