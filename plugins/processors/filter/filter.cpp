// The `filter` processor: keeps (or drops) the records for which an expression holds.
// The expression language is in filter_expr.h; this file is the plugin around it.
#include <memory>
#include <string>

#include "ferry/plugin.h"
#include "plugins/processors/common/processor_options.h"
#include "plugins/processors/filter/filter_expr.h"

namespace ferry {

namespace {

constexpr std::string_view kActions[] = {"keep", "drop"};
constexpr std::string_view kReasonRegexLimit = "regex_limit";

constexpr OptionSpec kOptions[] = {
    {.key = "expression",
     .type = OptionType::kString,
     .help = "condition over the record's fields, e.g. 'temp > 30 and site == \"north\"' (language "
             "in the "
             "README: == != < <= > >= =~ !~, and or not, exists(field), parentheses)",
     .required = true},
    {.key = "action",
     .type = OptionType::kEnum,
     .default_value = "keep",
     .help = "keep: records for which the expression holds go on, the others are filtered out; "
             "drop: the "
             "records for which it holds are filtered out",
     .choices = kActions},
};

class FilterProcessor final : public Processor {
 public:
  FilterProcessor(FilterExpression expr, bool keep) : expr_(std::move(expr)), keep_(keep) {}

  Status process(std::string_view /*stream*/, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    // Runs of records that go on are copied with one appendRange each.
    size_t run_begin = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const FilterExpression::Outcome o = expr_.evaluate(in[i]);
      bool pass = false;
      switch (o) {
        case FilterExpression::Outcome::kTrue:
          pass = keep_;
          break;
        case FilterExpression::Outcome::kFalse:
          pass = !keep_;
          break;
        case FilterExpression::Outcome::kMalformed:
          result.drop(kReasonBadJson);
          break;
        case FilterExpression::Outcome::kRegexLimit:
          result.drop(kReasonRegexLimit);
          break;
      }
      if (pass) continue;
      if (o == FilterExpression::Outcome::kTrue || o == FilterExpression::Outcome::kFalse)
        ++result.filtered;
      out.appendRange(in, run_begin, i);
      run_begin = i + 1;
    }
    out.appendRange(in, run_begin, in.size());
    return Status::ok();
  }

 private:
  FilterExpression expr_;
  const bool keep_;
};

Result<std::unique_ptr<Processor>> makeFilter(const PluginContext& /*ctx*/, const Options& opts) {
  auto expr = FilterExpression::parse(opts.getString("expression"));
  if (!expr.isOk()) {
    return invalidArgument(locateOption(opts, "expression") +
                           ": filter expression: " + expr.status().message());
  }
  return std::unique_ptr<Processor>(std::make_unique<FilterProcessor>(
      std::move(expr).value(), opts.getString("action") == "keep"));
}

}  // namespace

const PluginDescriptor& filterProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "filter",
      .summary = "keeps (or drops) the records for which an expression over their fields holds",
      .options = kOptions,
      .make_processor = &makeFilter,
  };
  return kDescriptor;
}

}  // namespace ferry
