#include "plugins/processors/deadband/deadband.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ferry {
namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "field",
     .type = OptionType::kString,
     .help = "the numeric field compared, as a dotted path (e.g. value, reading.temp)",
     .required = true},
    processors::kSeriesKeyOption,
    {.key = "threshold",
     .type = OptionType::kDouble,
     .help = "report when the value moved more than this (absolute) from the last reported "
             "value; give this or threshold_percent"},
    {.key = "threshold_percent",
     .type = OptionType::kDouble,
     .help = "report when the value moved more than this percentage of the last reported "
             "value; give this or threshold"},
    {.key = "max_interval",
     .type = OptionType::kDuration,
     .help = "report anyway when this long has passed since the series last reported; "
             "default: never"},
    {.key = "max_keys",
     .type = OptionType::kInt,
     .default_value = "10000",
     .help = "series kept at most; records of further series pass unchanged (counted)"},
};

}  // namespace

Result<DeadbandSettings> DeadbandSettings::fromOptions(const Options& opts) {
  DeadbandSettings s;
  Result<FieldPath> field = fieldPathOption(opts, "field", opts.getString("field"));
  if (!field.isOk()) return field.status();
  s.field = processors::DomField(std::move(field).value());

  Result<std::vector<processors::DomField>> key = processors::fieldListOption(opts, "key");
  if (!key.isOk()) return key.status();
  s.key = processors::SeriesKey(std::move(key).value());

  const bool has_abs = opts.has("threshold");
  const bool has_rel = opts.has("threshold_percent");
  if (has_abs == has_rel) {
    return invalidArgument(locateOption(opts, has_abs ? "threshold_percent" : "threshold") +
                           (has_abs ? ": give either threshold or threshold_percent, not both"
                                    : ": deadband needs threshold or threshold_percent"));
  }
  const std::string_view which = has_abs ? "threshold" : "threshold_percent";
  const double t = opts.getDouble(which);
  if (!(t >= 0) || !std::isfinite(t)) {
    return invalidArgument(locateOption(opts, which) + ": must be a finite number >= 0");
  }
  s.relative = has_rel;
  (has_abs ? s.threshold : s.threshold_percent) = t;

  if (opts.has("max_interval")) {
    s.max_interval = opts.getDuration("max_interval");
    if (s.max_interval < Duration::zero()) {
      return invalidArgument(locateOption(opts, "max_interval") + ": must not be negative");
    }
  }
  Result<size_t> max_keys = processors::maxKeysOption(opts);
  if (!max_keys.isOk()) return max_keys.status();
  s.max_keys = *max_keys;
  return s;
}

DeadbandProcessor::DeadbandProcessor(DeadbandSettings settings, std::string instance,
                                     const Clock& clock, MetricsRegistry* metrics)
    : settings_(std::move(settings)), clock_(clock) {
  not_numeric_ = processors::passedRecordsCounter(metrics, instance, "not_numeric");
  key_limit_ = processors::passedRecordsCounter(metrics, instance, "key_limit");
  series_.reserve(std::min<size_t>(settings_.max_keys, 1024));
}

bool DeadbandProcessor::moved(double last, double value) const {
  const double change = std::fabs(value - last);
  if (!settings_.relative) return change > settings_.threshold;
  return change > std::fabs(last) * settings_.threshold_percent / 100.0;
}

bool DeadbandProcessor::forgetExpired(SteadyTime now) {
  // A series that has not reported for max_interval would report its next record anyway, as
  // a first record does: forgetting it changes nothing. Sweeps are spaced by a tenth of
  // max_interval so that a table full of live series is not scanned for every record.
  if (settings_.max_interval <= Duration::zero() || now < next_sweep_) return false;
  next_sweep_ = now + settings_.max_interval / 10;
  std::erase_if(series_, [&](const auto& entry) {
    return now - entry.second.last_at >= settings_.max_interval;
  });
  return series_.size() < settings_.max_keys;
}

Status DeadbandProcessor::process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                                  ProcessResult& result) {
  const SteadyTime now = clock_.now();
  const bool timed = settings_.max_interval > Duration::zero();
  uint64_t not_numeric = 0;
  uint64_t key_limit = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string_view record = in[i];
    simdjson::dom::element root;
    if (!parser_.parse(record, &root)) {
      result.drop(kReasonBadJson);
      continue;
    }
    simdjson::dom::element field;
    double value = 0;
    if (!settings_.field.find(root, &field) || !processors::numberOf(field, &value)) {
      ++not_numeric;
      out.append(record);
      continue;
    }
    settings_.key.build(stream, root, key_);
    auto it = series_.find(std::string_view(key_));
    if (it == series_.end()) {
      if (series_.size() >= settings_.max_keys && !forgetExpired(now)) {
        ++key_limit;
        out.append(record);
        continue;
      }
      series_.emplace(key_, Series{value, now});
      out.append(record);
      continue;
    }
    Series& s = it->second;
    if (moved(s.last, value) || (timed && now - s.last_at >= settings_.max_interval)) {
      s.last = value;
      s.last_at = now;
      out.append(record);
    } else {
      ++result.filtered;
    }
  }
  if (not_numeric > 0 && not_numeric_ != nullptr) not_numeric_->add(not_numeric);
  if (key_limit > 0 && key_limit_ != nullptr) key_limit_->add(key_limit);
  return Status::ok();
}

const PluginDescriptor& deadbandProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "deadband",
      .summary =
          "report by exception: a record per series only when its value moved more "
          "than a threshold or max_interval passed",
      .options = kOptions,
      .make_processor = &processors::makeProcessor<DeadbandSettings, DeadbandProcessor>,
  };
  return kDescriptor;
}

}  // namespace ferry
