// The `keep` processor: keeps only the listed fields (and the objects leading to them).
#include <memory>

#include "ferry/plugin.h"
#include "plugins/processors/common/editing_processor.h"

namespace ferry {

namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "fields",
     .type = OptionType::kStringList,
     .help = "field paths to keep; every other field is removed (and an object on the way that "
             "holds none of them)",
     .required = true},
};

Result<std::unique_ptr<Processor>> makeKeep(const PluginContext& /*ctx*/, const Options& opts) {
  return fieldListProcessor(opts, &FieldEditor::keep);
}

}  // namespace

const PluginDescriptor& keepProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "keep",
      .summary = "keeps only the listed fields (and the objects leading to them)",
      .options = kOptions,
      .make_processor = &makeKeep,
  };
  return kDescriptor;
}

}  // namespace ferry
