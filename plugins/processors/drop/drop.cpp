// The `drop` processor: removes fields (nested paths allowed).
#include <memory>

#include "ferry/plugin.h"
#include "plugins/processors/common/editing_processor.h"

namespace ferry {

namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "fields",
     .type = OptionType::kStringList,
     .help = "field paths to remove; missing ones are ignored",
     .required = true},
};

Result<std::unique_ptr<Processor>> makeDrop(const PluginContext& /*ctx*/, const Options& opts) {
  return fieldListProcessor(opts, &FieldEditor::remove);
}

}  // namespace

const PluginDescriptor& dropProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "drop",
      .summary = "removes fields (nested paths allowed)",
      .options = kOptions,
      .make_processor = &makeDrop,
  };
  return kDescriptor;
}

}  // namespace ferry
