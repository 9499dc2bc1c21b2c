#include "ferry/metrics.h"

#include <cmath>
#include <cstdio>

namespace ferry {

namespace {
std::string formatValue(double v) {
  char buf[64];
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::floor(v) == v && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", v);
  }
  return buf;
}
}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v, uint64_t count) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(count, std::memory_order_relaxed);
  count_.fetch_add(count, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v * static_cast<double>(count), std::memory_order_relaxed)) {
  }
}

MetricsRegistry::Family& MetricsRegistry::familyLocked(std::string_view name, std::string_view help) {
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
  if (it->second.help.empty()) it->second.help = help;
  return it->second;
}

Histogram& MetricsRegistry::histogram(std::string_view name, const Labels& labels, std::vector<double> bounds,
                                      std::string_view help) {
  std::lock_guard lock(mu_);
  Family& f = familyLocked(name, help);
  f.is_counter = false;
  f.is_histogram = true;
  auto& slot = f.histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

std::string MetricsRegistry::renderLabels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string s = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) s += ',';
    first = false;
    s += k;
    s += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') s += '\\';
      if (c == '\n') {
        s += "\\n";
        continue;
      }
      s += c;
    }
    s += '"';
  }
  s += '}';
  return s;
}

Counter& MetricsRegistry::counter(std::string_view name, const Labels& labels, std::string_view help) {
  std::lock_guard lock(mu_);
  Family& f = familyLocked(name, help);
  f.is_counter = true;
  auto& slot = f.counters[renderLabels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(std::string_view name, const Labels& labels, std::string_view help) {
  std::lock_guard lock(mu_);
  Family& f = familyLocked(name, help);
  f.is_counter = false;
  auto& slot = f.gauges[renderLabels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

uint64_t MetricsRegistry::counterValue(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto c = it->second.counters.find(renderLabels(labels));
  return c == it->second.counters.end() ? 0 : c->second->value();
}

std::string MetricsRegistry::prometheusText() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + (f.is_histogram ? " histogram\n" : f.is_counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, h] : f.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= h->bounds().size(); ++i) {
        cumulative += h->bucketCount(i);
        Labels with_le = labels;
        with_le.emplace_back("le", i < h->bounds().size() ? formatValue(h->bounds()[i]) : "+Inf");
        out += name + "_bucket" + renderLabels(with_le) + " " + std::to_string(cumulative) + "\n";
      }
      out += name + "_sum" + renderLabels(labels) + " " + formatValue(h->sum()) + "\n";
      out += name + "_count" + renderLabels(labels) + " " + std::to_string(h->count()) + "\n";
    }
    for (const auto& [labels, c] : f.counters) {
      out += name + labels + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) out += name + labels + " " + formatValue(g->value()) + "\n";
  }
  return out;
}

}  // namespace ferry
