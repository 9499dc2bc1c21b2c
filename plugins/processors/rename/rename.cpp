// The `rename` processor: moves field values to new names.
#include <memory>
#include <string>

#include "ferry/plugin.h"
#include "plugins/processors/common/editing_processor.h"

namespace ferry {

namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "fields",
     .type = OptionType::kStringMap,
     .help =
         "old field path -> new field path; the value moves (replacing what the new field held); "
         "records without the old field are left as they are",
     .required = true},
};

Result<std::unique_ptr<Processor>> makeRename(const PluginContext& /*ctx*/, const Options& opts) {
  const auto& fields = opts.getStringMap("fields");
  if (fields.empty())
    return invalidArgument(locateOption(opts, "fields") + ": give at least one field");
  FieldEditor editor;
  for (const auto& [from, to] : fields) {
    auto from_path = fieldPathOption(opts, "fields", from);
    if (!from_path.isOk()) return from_path.status();
    auto to_path = fieldPathOption(opts, "fields", to);
    if (!to_path.isOk()) return to_path.status();
    editor.rename(std::move(from_path).value(), std::move(to_path).value());
  }
  return editingProcessor(opts, std::move(editor));
}

}  // namespace

const PluginDescriptor& renameProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "rename",
      .summary = "moves field values to new names (nested paths allowed)",
      .options = kOptions,
      .make_processor = &makeRename,
  };
  return kDescriptor;
}

}  // namespace ferry
