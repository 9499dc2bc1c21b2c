#include "plugins/processors/aggregate/aggregate.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <utility>

#include "ferry/json.h"

namespace ferry {
namespace {

using processors::DomField;

constexpr std::string_view kReasonKeyLimit = "aggregate_key_limit";
constexpr std::string_view kStatNames[] = {"count", "min", "max", "mean", "sum", "last"};
constexpr Duration kMinWindow = std::chrono::milliseconds(100);
constexpr Duration kMaxTick = std::chrono::seconds(1);
constexpr Duration kMinTick = std::chrono::milliseconds(10);

constexpr OptionSpec kOptions[] = {
    {.key = "window",
     .type = OptionType::kDuration,
     .default_value = "1m",
     .help = "window length; windows are aligned to the wall clock (1m windows start on the "
             "minute); at least 100ms"},
    processors::kSeriesKeyOption,
    {.key = "fields",
     .type = OptionType::kStringList,
     .help = "numeric fields to aggregate (dotted paths)",
     .required = true},
    {.key = "stats",
     .type = OptionType::kStringList,
     .default_value = "[count, min, max, mean, sum, last]",
     .help = "statistics written per field",
     .choices = kStatNames},
    {.key = "max_keys",
     .type = OptionType::kInt,
     .default_value = "10000",
     .help = "series open at most; records of further series are refused (counted)"},
};

}  // namespace

Result<AggregateSettings> AggregateSettings::fromOptions(const Options& opts) {
  AggregateSettings s;
  s.window = opts.getDuration("window");
  if (s.window < kMinWindow || s.window % std::chrono::milliseconds(1) != Duration::zero()) {
    return invalidArgument(locateOption(opts, "window") +
                           ": must be at least 100ms and whole milliseconds, got " +
                           formatDuration(s.window));
  }

  Result<std::vector<DomField>> key = processors::fieldListOption(opts, "key");
  if (!key.isOk()) return key.status();
  Result<std::vector<DomField>> fields = processors::fieldListOption(opts, "fields");
  if (!fields.isOk()) return fields.status();
  if (fields->empty()) {
    return invalidArgument(locateOption(opts, "fields") + ": name at least one field");
  }
  // Every name becomes a key of the window record: they must not collide.
  std::vector<std::string_view> names = {"window_start", "window_end"};
  for (const DomField& k : *key) {
    if (std::find(names.begin(), names.end(), k.name()) != names.end()) {
      return invalidArgument(locateOption(opts, "key") + ": \"" + k.name() +
                             "\" would collide with another key of the window record");
    }
    names.push_back(k.name());
  }
  for (const DomField& f : *fields) {
    if (std::find(names.begin(), names.end(), f.name()) != names.end()) {
      return invalidArgument(locateOption(opts, "fields") + ": \"" + f.name() +
                             "\" would collide with another key of the window record");
    }
    names.push_back(f.name());
  }
  s.key = processors::SeriesKey(std::move(key).value());
  s.fields = std::move(fields).value();

  if (opts.has("stats")) {
    const std::vector<std::string>& wanted = opts.getStringList("stats");
    if (wanted.empty()) {
      return invalidArgument(locateOption(opts, "stats") + ": name at least one statistic");
    }
    bool seen[std::size(kStatNames)] = {};
    for (size_t i = 0; i < wanted.size(); ++i) {
      const auto* it = std::find(std::begin(kStatNames), std::end(kStatNames), wanted[i]);
      if (it == std::end(kStatNames)) {
        return invalidArgument(processors::optionItemLocation(opts, "stats", i) + ": \"" +
                               wanted[i] + "\" is not one of count, min, max, mean, sum, last");
      }
      const size_t idx = static_cast<size_t>(it - std::begin(kStatNames));
      if (seen[idx]) {
        return invalidArgument(processors::optionItemLocation(opts, "stats", i) + ": \"" +
                               wanted[i] + "\" is listed twice");
      }
      seen[idx] = true;
    }
    for (size_t i = 0; i < std::size(kStatNames); ++i) {
      if (seen[i]) s.stats.push_back(static_cast<AggregateStat>(i));
    }
  } else {
    for (size_t i = 0; i < std::size(kStatNames); ++i) {
      s.stats.push_back(static_cast<AggregateStat>(i));
    }
  }

  Result<size_t> max_keys = processors::maxKeysOption(opts);
  if (!max_keys.isOk()) return max_keys.status();
  s.max_keys = *max_keys;
  return s;
}

AggregateProcessor::AggregateProcessor(AggregateSettings settings, std::string instance,
                                       const Clock& clock, MetricsRegistry* metrics)
    : settings_(std::move(settings)),
      window_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.window).count()),
      clock_(clock) {
  values_.resize(settings_.fields.size());
  present_.resize(settings_.fields.size());
  for (const DomField& f : settings_.fields) {
    std::string prefix = ",";
    appendJsonString(prefix, f.name());
    prefix += ":{";
    field_prefixes_.push_back(std::move(prefix));
  }
  not_numeric_records_ = processors::passedRecordsCounter(metrics, instance, "not_numeric");
  if (metrics != nullptr) {
    not_numeric_values_ = &metrics->counter("ferry_processor_skipped_values_total",
                                            {{"processor", instance}, {"reason", "not_numeric"}},
                                            "Field values a processor left out of its results");
  }
}

Duration AggregateProcessor::tickInterval() const {
  return std::clamp(settings_.window / 10, kMinTick, kMaxTick);
}

int64_t AggregateProcessor::windowStartOf(int64_t wall_ms) const {
  int64_t q = wall_ms / window_ms_;
  if (wall_ms % window_ms_ < 0) --q;  // floor for times before 1970
  return q * window_ms_;
}

Status AggregateProcessor::process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                                   ProcessResult& result) {
  const int64_t window = windowStartOf(clock_.wallMs());
  StreamState* st = nullptr;
  if (auto it = streams_.find(stream); it != streams_.end()) {
    st = &it->second;
    if (window > st->window_start) {
      // The tick has not closed the stream's window yet: close it now, so that these
      // records start the next one; the next tick emits it.
      flush(*st, st->pending);
      st->window_start = window;
    }
  }
  const size_t nfields = settings_.fields.size();
  uint64_t passed = 0;
  uint64_t skipped = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string_view record = in[i];
    simdjson::dom::element root;
    if (!parser_.parse(record, &root)) {
      result.drop(kReasonBadJson);
      continue;
    }
    bool any = false;
    uint64_t odd = 0;
    for (size_t f = 0; f < nfields; ++f) {
      simdjson::dom::element v;
      present_[f] = 0;
      if (!settings_.fields[f].find(root, &v)) continue;
      if (processors::numberOf(v, &values_[f])) {
        present_[f] = 1;
        any = true;
      } else {
        ++odd;
      }
    }
    if (!any) {
      ++passed;
      out.append(record);
      continue;
    }
    if (st == nullptr) {
      if (key_count_ >= settings_.max_keys) {
        result.drop(kReasonKeyLimit);
        continue;
      }
      auto [it, inserted] = streams_.emplace(std::string(stream), StreamState{});
      st = &it->second;
      st->window_start = window;
    }
    settings_.key.build(stream, root, key_);
    auto it = st->series.find(std::string_view(key_));
    if (it == st->series.end()) {
      if (key_count_ >= settings_.max_keys) {
        result.drop(kReasonKeyLimit);
        continue;
      }
      it = st->series.emplace(key_, Series{}).first;
      it->second.stats.resize(nfields);
      ++key_count_;
    }
    skipped += odd;  // counted only for records that were taken
    Series& s = it->second;
    if (!s.has_data) {
      s.has_data = true;
      s.order = st->next_order++;
    }
    for (size_t f = 0; f < nfields; ++f) {
      if (present_[f] == 0) continue;
      const double v = values_[f];
      Stat& stat = s.stats[f];
      if (stat.count == 0) {
        stat.min = v;
        stat.max = v;
      } else {
        stat.min = std::min(stat.min, v);
        stat.max = std::max(stat.max, v);
      }
      stat.sum += v;
      stat.last = v;
      ++stat.count;
    }
    ++result.filtered;
  }
  if (st != nullptr && st->series.empty() && st->pending.empty()) {
    // Nothing open and nothing to emit: do not keep an empty stream around.
    streams_.erase(streams_.find(stream));
  }
  if (passed > 0 && not_numeric_records_ != nullptr) not_numeric_records_->add(passed);
  if (skipped > 0 && not_numeric_values_ != nullptr) not_numeric_values_->add(skipped);
  return Status::ok();
}

void AggregateProcessor::tick(SteadyTime /*now*/, bool final, TickSink& sink,
                              ProcessResult& /*result*/) {
  const int64_t window = windowStartOf(clock_.wallMs());
  for (auto it = streams_.begin(); it != streams_.end();) {
    StreamState& st = it->second;
    if (final || window > st.window_start) {
      flush(st, st.pending);
      st.window_start = window;
    }
    if (!st.pending.empty()) {
      sink.emit(it->first, st.pending);
      st.pending.clear();
    }
    if (final || st.series.empty()) {
      key_count_ -= st.series.size();
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
}

void AggregateProcessor::flush(StreamState& st, RecordBatch& out) {
  flush_order_.clear();
  for (auto it = st.series.begin(); it != st.series.end();) {
    if (it->second.has_data) {
      flush_order_.emplace_back(it->second.order, &*it);
      ++it;
    } else {
      it = st.series.erase(it);  // idle for a whole window
      --key_count_;
    }
  }
  std::sort(flush_order_.begin(), flush_order_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [order, entry] : flush_order_) {
    writeRecord(st.window_start, entry->first, entry->second, out);
  }
  for (auto& [key, s] : st.series) {
    s.has_data = false;
    std::fill(s.stats.begin(), s.stats.end(), Stat{});
  }
  st.next_order = 0;
}

void AggregateProcessor::writeRecord(int64_t window_start, std::string_view key, const Series& s,
                                     RecordBatch& out) {
  std::string& d = out.mutableData();
  d += "{\"window_start\":";
  processors::appendInteger(d, window_start);
  d += ",\"window_end\":";
  processors::appendInteger(d, window_start + window_ms_);
  settings_.key.appendFields(key, d);
  for (size_t f = 0; f < settings_.fields.size(); ++f) {
    const Stat& stat = s.stats[f];
    d += field_prefixes_[f];
    bool first = true;
    for (AggregateStat which : settings_.stats) {
      if (!first) d += ',';
      first = false;
      d += '"';
      d += kStatNames[static_cast<size_t>(which)];
      d += "\":";
      if (which == AggregateStat::kCount) {
        processors::appendInteger(d, stat.count);
      } else if (which == AggregateStat::kSum) {
        processors::appendNumber(d, stat.sum);
      } else if (stat.count == 0) {
        d += "null";
      } else if (which == AggregateStat::kMin) {
        processors::appendNumber(d, stat.min);
      } else if (which == AggregateStat::kMax) {
        processors::appendNumber(d, stat.max);
      } else if (which == AggregateStat::kMean) {
        processors::appendNumber(d, stat.sum / static_cast<double>(stat.count));
      } else {
        processors::appendNumber(d, stat.last);
      }
    }
    d += '}';
  }
  d += '}';
  out.commitRecord();
}

const PluginDescriptor& aggregateProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "aggregate",
      .summary =
          "tumbling windows per series: count/min/max/mean/sum/last of numeric fields, "
          "one record per series and window",
      .options = kOptions,
      .make_processor = &processors::makeProcessor<AggregateSettings, AggregateProcessor>,
  };
  return kDescriptor;
}

}  // namespace ferry
