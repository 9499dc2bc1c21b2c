#include "ferry/metrics.h"

#include <cmath>
#include <cstdio>

namespace ferry {

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
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
  Family& f = it->second;
  if (f.help.empty()) f.help = help;
  f.is_counter = true;
  auto& slot = f.counters[renderLabels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(std::string_view name, const Labels& labels, std::string_view help) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
  Family& f = it->second;
  if (f.help.empty()) f.help = help;
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
    out += "# TYPE " + name + (f.is_counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, c] : f.counters) {
      out += name + labels + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) {
      char buf[64];
      double v = g->value();
      if (std::floor(v) == v && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
      } else {
        std::snprintf(buf, sizeof buf, "%.6g", v);
      }
      out += name + labels + " " + buf + "\n";
    }
  }
  return out;
}

}  // namespace ferry
