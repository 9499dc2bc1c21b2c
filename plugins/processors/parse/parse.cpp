// The `parse` processor: parses the text of one field with a line format of the shared
// library (agent/formats/line_format.h: json, text, logfmt, csv, influx, regex) and merges the
// fields it yields into the record (at the top level or into a target object).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/formats/line_format.h"
#include "ferry/metrics.h"
#include "ferry/plugin.h"
#include "ferry/record_fields.h"
#include "plugins/processors/common/processor_options.h"

namespace ferry {

namespace {

constexpr std::string_view kOnError[] = {"drop", "keep"};
constexpr std::string_view kReasonNoField = "parse_no_field";
constexpr std::string_view kReasonNotString = "parse_not_string";

constexpr OptionSpec kOwn[] = {
    {.key = "field",
     .type = OptionType::kString,
     .default_value = "message",
     .help = "field path of the text to parse (a JSON string)"},
    {.key = "target",
     .type = OptionType::kString,
     .help =
         "field path of an object that receives the parsed fields (replaced when it exists); "
         "default: they are merged into the record's top level, replacing fields of the same name"},
    {.key = "keep_original",
     .type = OptionType::kBool,
     .default_value = "false",
     .help = "keep the parsed field in the record (default: it is removed once parsed)"},
    {.key = "on_error",
     .type = OptionType::kEnum,
     .default_value = "drop",
     .help =
         "a record whose field is missing, not a string or not parsable: drop (refused with the "
         "format's reason) | keep (goes on unchanged); both counted in "
         "ferry_processor_parse_errors_total",
     .choices = kOnError},
};
constexpr auto kOptions = withLineFormatOptions(kOwn);

// True when the (escaped) keys `a` and `b` name the same member.
bool sameKey(std::string_view a, bool a_escaped, std::string_view b, std::string& s1,
             std::string& s2) {
  if (!a_escaped && b.find('\\') == std::string_view::npos) return a == b;
  return unescapeJsonString(a, s1) && unescapeJsonString(b, s2) && s1 == s2;
}

class ParseProcessor final : public Processor {
 public:
  ParseProcessor(LineParser parser, FieldPath field, FieldEditor editor, size_t slot,
                 bool merge_root, bool keep_on_error, MetricsRegistry* metrics, std::string name)
      : metrics_(metrics),
        name_(std::move(name)),
        parser_(std::move(parser)),
        field_(std::move(field)),
        editor_(std::move(editor)),
        slot_(slot),
        merge_root_(merge_root),
        keep_on_error_(keep_on_error) {}

  Status process(std::string_view /*stream*/, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    for (size_t i = 0; i < in.size(); ++i) {
      const std::string_view record = in[i];
      std::string_view reason;
      switch (parseOne(record, out, &reason)) {
        case Step::kDone:
          break;
        case Step::kUnchanged:
          out.append(record);
          break;
        case Step::kRefused:
          countError(reason);
          if (keep_on_error_) {
            out.append(record);
          } else {
            result.drop(reason);
          }
          break;
      }
    }
    return Status::ok();
  }

 private:
  enum class Step : uint8_t { kDone, kUnchanged, kRefused };

  // ferry_processor_parse_errors_total{processor,reason}: every record that could not be
  // parsed, kept (on_error: keep) or refused (also in ferry_dropped_records_total).
  void countError(std::string_view reason) {
    if (metrics_ == nullptr) return;
    for (auto& [r, c] : error_counters_) {
      if (r == reason) {
        c->add();
        return;
      }
    }
    Counter& c = metrics_->counter("ferry_processor_parse_errors_total",
                                   {{"processor", name_}, {"reason", std::string(reason)}},
                                   "records the parse processor could not parse, by reason");
    error_counters_.emplace_back(std::string(reason), &c);
    c.add();
  }

  Step parseOne(std::string_view record, RecordBatch& out, std::string_view* reason) {
    std::string_view value;
    switch (findField(record, field_, &value, key_scratch_)) {
      case FindResult::kMalformed:
        *reason = kReasonBadJson;
        return Step::kRefused;
      case FindResult::kMissing:
        *reason = kReasonNoField;
        return Step::kRefused;
      case FindResult::kFound:
        break;
    }
    if (jsonKindOf(value) != JsonKind::kString) {
      *reason = kReasonNotString;
      return Step::kRefused;
    }
    std::string_view text = value.substr(1, value.size() - 2);
    if (text.find('\\') != std::string_view::npos) {
      if (!unescapeJsonString(text, text_)) {
        *reason = kReasonBadJson;
        return Step::kRefused;
      }
      text = text_;
    }
    parsed_.clear();
    const LineOutcome outcome = parser_.parse(text, parsed_);
    if (outcome.refused()) {
      *reason = outcome.reason;
      return Step::kRefused;
    }
    if (!outcome.appended()) return Step::kUnchanged;  // an empty text, a csv header, a comment
    const std::string_view fields = parsed_[0];
    std::string& data = out.mutableData();
    const size_t mark = data.size();
    bool ok = true;
    if (merge_root_) {
      // Edit first (remove the source field), then merge at the top level.
      edited_.clear();
      ok = editor_.apply(record, edited_, edit_scratch_) && mergeRoot(edited_, fields, data);
    } else {
      edit_scratch_.renamed.resize(editor_.slots());
      edit_scratch_.renamed[slot_] = fields;
      ok = editor_.apply(record, data, edit_scratch_);
    }
    if (!ok) {
      data.resize(mark);
      *reason = kReasonBadJson;
      return Step::kRefused;
    }
    out.commitRecord();
    return Step::kDone;
  }

  // Appends `record` without the members `fields` also has, then the members of `fields`.
  bool mergeRoot(std::string_view record, std::string_view fields, std::string& out) {
    out.push_back('{');
    bool first = true;
    JsonObjectReader reader(record);
    std::string_view k, v;
    while (reader.next(&k, &v)) {
      bool replaced = false;
      JsonObjectReader fr(fields);
      std::string_view fk, fv;
      while (!replaced && fr.next(&fk, &fv))
        replaced = sameKey(k, reader.keyEscaped(), fk, s1_, s2_);
      if (replaced) continue;
      if (!first) out.push_back(',');
      first = false;
      out.append(record.data() + reader.memberBegin(),
                 static_cast<size_t>(v.data() + v.size() - record.data()) - reader.memberBegin());
    }
    if (reader.failed()) return false;
    // The inside of the parsed object (the library writes it compact, or trimmed JSON).
    const size_t open = fields.find('{');
    const size_t close = fields.rfind('}');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
      return false;
    std::string_view inner = fields.substr(open + 1, close - open - 1);
    while (!inner.empty() && (inner.front() == ' ' || inner.front() == '\t'))
      inner.remove_prefix(1);
    while (!inner.empty() && (inner.back() == ' ' || inner.back() == '\t')) inner.remove_suffix(1);
    if (!inner.empty()) {
      if (!first) out.push_back(',');
      out += inner;
    }
    out.push_back('}');
    return true;
  }

  MetricsRegistry* metrics_;
  const std::string name_;
  std::vector<std::pair<std::string, Counter*>> error_counters_;
  LineParser parser_;
  const FieldPath field_;
  const FieldEditor editor_;  // removes the source field; with a target, also sets it per record
  const size_t slot_;
  const bool merge_root_;
  const bool keep_on_error_;
  // Scratch, reused for every record.
  RecordBatch parsed_;
  std::string text_;
  std::string edited_;
  std::string key_scratch_;
  std::string s1_, s2_;
  FieldEditor::Scratch edit_scratch_;
};

Result<std::unique_ptr<Processor>> makeParse(const PluginContext& ctx, const Options& opts) {
  auto spec = lineFormatSpecFromOptions(opts);
  if (!spec.isOk()) return spec.status();
  auto parser = LineParser::make(*spec);
  if (!parser.isOk())
    return invalidArgument(locateOption(opts, "format") + ": " + parser.status().message());
  auto field = fieldPathOption(opts, "field", opts.getString("field"));
  if (!field.isOk()) return field.status();
  const bool keep_original = opts.getBool("keep_original");
  FieldEditor editor;
  size_t slot = 0;
  bool merge_root = true;
  if (opts.has("target")) {
    auto target = fieldPathOption(opts, "target", opts.getString("target"));
    if (!target.isOk()) return target.status();
    merge_root = false;
    if (*target == *field) {
      if (keep_original) {
        return invalidArgument(locateOption(opts, "keep_original") +
                               ": cannot keep the original when target is the parsed field itself");
      }
    } else if (!keep_original) {
      editor.remove(*field);
    }
    slot = editor.setPerRecord(std::move(target).value());
  } else if (!keep_original) {
    editor.remove(*field);
  }
  Status st = editor.compile();
  if (!st.isOk()) return invalidArgument(locateOption(opts, "target") + ": " + st.message());
  return std::unique_ptr<Processor>(std::make_unique<ParseProcessor>(
      std::move(parser).value(), std::move(field).value(), std::move(editor), slot, merge_root,
      opts.getString("on_error") == "keep", ctx.metrics, ctx.name));
}

}  // namespace

const PluginDescriptor& parseProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "parse",
      .summary =
          "parses a text field (json, logfmt, csv, influx, regex, text) and merges the fields it "
          "yields",
      .options = kOptions,
      .make_processor = &makeParse,
  };
  return kDescriptor;
}

}  // namespace ferry
