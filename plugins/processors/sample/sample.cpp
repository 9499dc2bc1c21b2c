// The `sample` processor: lets a fixed share of records through, deterministically.
#include <cmath>
#include <cstdint>
#include <memory>

#include "ferry/plugin.h"
#include "plugins/processors/common/processor_options.h"

namespace ferry {

namespace {

constexpr OptionSpec kOptions[] = {
    {.key = "rate",
     .type = OptionType::kDouble,
     .help = "share of records kept, in (0, 1] (resolution 1e-6), spread evenly: 0.25 keeps the "
             "4th, 8th, "
             "12th, ... record"},
    {.key = "every",
     .type = OptionType::kInt,
     .help = "keep the 1st, (N+1)th, (2N+1)th, ... record (N >= 1)"},
};

constexpr uint64_t kScale = 1'000'000;

// Counter based, so a test (or a person) can tell exactly which records pass: with `every`
// the record n (0-based, counted across every stream this instance sees) is kept when
// n % every == 0; with `rate` (as k per million) when floor((n+1)k/1e6) > floor(nk/1e6).
class SampleProcessor final : public Processor {
 public:
  SampleProcessor(uint64_t every, uint64_t per_million)
      : every_(every), per_million_(per_million) {}

  Status process(std::string_view /*stream*/, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    for (size_t i = 0; i < in.size(); ++i, ++n_) {
      const bool keep = every_ > 0
                            ? n_ % every_ == 0
                            : ((n_ + 1) * per_million_) / kScale > (n_ * per_million_) / kScale;
      if (keep) {
        out.append(in[i]);
      } else {
        ++result.filtered;
      }
    }
    return Status::ok();
  }

 private:
  const uint64_t every_;
  const uint64_t per_million_;
  uint64_t n_ = 0;
};

Result<std::unique_ptr<Processor>> makeSample(const PluginContext& /*ctx*/, const Options& opts) {
  const bool has_rate = opts.has("rate");
  const bool has_every = opts.has("every");
  if (has_rate == has_every) {
    return invalidArgument(locateOption(opts, "") + ": give exactly one of rate and every");
  }
  if (has_every) {
    const int64_t every = opts.getInt("every");
    if (every < 1) return invalidArgument(locateOption(opts, "every") + ": must be at least 1");
    return std::unique_ptr<Processor>(
        std::make_unique<SampleProcessor>(static_cast<uint64_t>(every), 0));
  }
  const double rate = opts.getDouble("rate");
  const auto per_million = static_cast<uint64_t>(std::llround(rate * static_cast<double>(kScale)));
  if (!(rate > 0 && rate <= 1) || per_million == 0) {
    return invalidArgument(locateOption(opts, "rate") +
                           ": must be in (0, 1] and at least 0.000001");
  }
  return std::unique_ptr<Processor>(std::make_unique<SampleProcessor>(0, per_million));
}

}  // namespace

const PluginDescriptor& sampleProcessorDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kProcessor,
      .name = "sample",
      .summary =
          "keeps a fixed share of records (rate or every N), counter based and deterministic",
      .options = kOptions,
      .make_processor = &makeSample,
  };
  return kDescriptor;
}

}  // namespace ferry
