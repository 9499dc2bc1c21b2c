// Counters and gauges, exported in Prometheus text format.
//
// Registration (counter()/gauge()) takes a lock and returns a reference that stays valid
// for the registry's lifetime; hot paths keep that reference and only do atomic adds.
// Thread-safety: everything may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry {

class Counter {
 public:
  void add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Fixed buckets (upper bounds, ascending); observe() is lock-free (atomic adds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v, uint64_t count = 1);
  const std::vector<double>& bounds() const { return bounds_; }
  uint64_t bucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }  // not cumulative
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  // `name` must be a Prometheus metric name; `help` is kept from the first registration.
  Counter& counter(std::string_view name, const Labels& labels = {}, std::string_view help = {});
  Gauge& gauge(std::string_view name, const Labels& labels = {}, std::string_view help = {});
  // `bounds` are used by the first registration of the family.
  Histogram& histogram(std::string_view name, const Labels& labels, std::vector<double> bounds,
                       std::string_view help = {});

  // Current value of a counter, 0 when absent (for tests and the CLI).
  uint64_t counterValue(std::string_view name, const Labels& labels = {}) const;

  // Prometheus text exposition format, version 0.0.4.
  std::string prometheusText() const;

 private:
  struct Family {
    std::string help;
    bool is_counter = true;
    bool is_histogram = false;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // by rendered label set
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  static std::string renderLabels(const Labels& labels);
  // The family `name`, created when new; mu_ held.
  Family& familyLocked(std::string_view name, std::string_view help);
  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace ferry
