#include "plugins/processors/throttle/throttle.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <utility>

namespace ferry {
namespace {

constexpr double kMaxRate = 1e9;
constexpr int64_t kMaxStreamsLimit = 1'000'000;
constexpr double kTokenEpsilon = 1e-9;

constexpr OptionSpec kOptions[] = {
    {.key = "rate",
     .type = OptionType::kDouble,
     .help = "records per second let through per stream (may be below 1, e.g. 0.5)",
     .required = true},
    {.key = "burst",
     .type = OptionType::kInt,
     .help = "records a stream may send at once after a quiet spell (the bucket size); "
             "default: rate rounded up, at least 1"},
    {.key = "max_streams",
     .type = OptionType::kInt,
     .default_value = "1000",
     .help = "streams with a bucket of their own; further streams share one bucket (counted)"},
};

}  // namespace

Result<ThrottleSettings> ThrottleSettings::fromOptions(const Options& opts) {
  ThrottleSettings s;
  s.rate = opts.getDouble("rate");
  if (!(s.rate > 0) || s.rate > kMaxRate) {
    return invalidArgument(locateOption(opts, "rate") +
                           ": must be above 0 and at most 1e9 records per second");
  }
  if (opts.has("burst")) {
    const int64_t burst = opts.getInt("burst");
    if (burst < 1 || burst > static_cast<int64_t>(kMaxRate)) {
      return invalidArgument(locateOption(opts, "burst") + ": must be between 1 and 1e9, got " +
                             std::to_string(burst));
    }
    s.burst = static_cast<double>(burst);
  } else {
    s.burst = std::max(1.0, std::ceil(s.rate));
  }
  const int64_t streams = opts.getInt("max_streams");
  if (streams < 1 || streams > kMaxStreamsLimit) {
    return invalidArgument(locateOption(opts, "max_streams") + ": must be between 1 and " +
                           std::to_string(kMaxStreamsLimit) + ", got " + std::to_string(streams));
  }
  s.max_streams = static_cast<size_t>(streams);
  return s;
}

ThrottleProcessor::ThrottleProcessor(ThrottleSettings settings, std::string instance,
                                     const Clock& clock, MetricsRegistry* metrics)
    : settings_(settings), clock_(clock) {
  if (metrics != nullptr) {
    overflow_records_ = &metrics->counter(
        "ferry_processor_overflow_records_total", {{"processor", std::move(instance)}},
        "Records of streams or series beyond a processor's limit, handled together");
  }
}

ThrottleProcessor::Bucket& ThrottleProcessor::bucketFor(std::string_view stream, SteadyTime now,
                                                        bool* overflow) {
  *overflow = false;
  auto it = buckets_.find(stream);
  if (it != buckets_.end()) return it->second;
  if (buckets_.size() < settings_.max_streams) {
    return buckets_.emplace(std::string(stream), Bucket{settings_.burst, now}).first->second;
  }
  *overflow = true;
  if (!overflow_started_) {
    overflow_ = Bucket{settings_.burst, now};
    overflow_started_ = true;
  }
  return overflow_;
}

Status ThrottleProcessor::process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                                  ProcessResult& result) {
  if (in.empty()) return Status::ok();
  const SteadyTime now = clock_.now();
  bool overflow = false;
  Bucket& b = bucketFor(stream, now, &overflow);
  if (now > b.at) {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(settings_.burst, b.tokens + elapsed * settings_.rate);
    b.at = now;
  }
  // The epsilon keeps sums of fractional refills (0.1 + 0.1 + ...) from losing a token.
  const size_t allowed =
      std::min(in.size(), static_cast<size_t>(std::floor(b.tokens + kTokenEpsilon)));
  b.tokens = std::max(0.0, b.tokens - static_cast<double>(allowed));
  if (allowed == in.size()) {
    out.appendAll(in);
  } else {
    out.appendRange(in, 0, allowed);
    result.drop("throttled", in.size() - allowed);
  }
  if (overflow && overflow_records_ != nullptr) overflow_records_->add(in.size());
  return Status::ok();
}

const PluginDescriptor& throttleProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "throttle",
      .summary =
          "at most rate records per second per stream (token bucket); the excess is "
          "refused as throttled",
      .options = kOptions,
      .make_processor = &processors::makeProcessor<ThrottleSettings, ThrottleProcessor>,
  };
  return kDescriptor;
}

}  // namespace ferry
