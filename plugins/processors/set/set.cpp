// The `set` processor: gives fields fixed values (created when missing, replaced otherwise).
#include <simdjson.h>

#include <memory>
#include <string>

#include "ferry/json.h"
#include "ferry/plugin.h"
#include "plugins/processors/common/editing_processor.h"

namespace ferry {

namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "fields",
     .type = OptionType::kStringMap,
     .help =
         "field path -> value; a value that is valid JSON (3, true, null, \"text\", {\"a\":1}) is "
         "used as that JSON, anything else as a string",
     .required = true},
};

// The value as compact JSON: itself when it is valid JSON, else a JSON string.
std::string jsonValue(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element element;
  if (!text.empty() && parser.parse(padded).get(element) == simdjson::SUCCESS)
    return simdjson::minify(element);
  std::string out;
  appendJsonString(out, text);
  return out;
}

Result<std::unique_ptr<Processor>> makeSet(const PluginContext& /*ctx*/, const Options& opts) {
  const auto& fields = opts.getStringMap("fields");
  if (fields.empty())
    return invalidArgument(locateOption(opts, "fields") + ": give at least one field");
  FieldEditor editor;
  for (const auto& [key, value] : fields) {
    auto path = fieldPathOption(opts, "fields", key);
    if (!path.isOk()) return path.status();
    editor.set(std::move(path).value(), jsonValue(value));
  }
  return editingProcessor(opts, std::move(editor));
}

}  // namespace

const PluginDescriptor& setProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "set",
      .summary = "gives fields fixed values (JSON or strings), creating missing fields and objects",
      .options = kOptions,
      .make_processor = &makeSet,
  };
  return kDescriptor;
}

}  // namespace ferry
