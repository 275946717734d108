// MetricsText: writes the Prometheus text exposition format (version 0.0.4): one HELP and
// TYPE line per metric family, then its samples, label values escaped. Names follow the
// conventions (base units in the name: _seconds, _bytes; counters end in _total); the writer
// does not enforce them, `promtool check metrics` in the tests does.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lanlm::ops {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A histogram's state: cumulative counts are derived when written. counts[i] counts
// observations <= bounds[i] (and > bounds[i-1]); overflow counts those above the last bound.
struct Histogram {
  std::vector<double> bounds;   // ascending upper bounds, seconds for latencies
  std::vector<int64_t> counts;  // same size as bounds
  int64_t overflow = 0;
  double sum = 0.0;

  explicit Histogram(std::vector<double> upper_bounds = {})
      : bounds(std::move(upper_bounds)), counts(bounds.size(), 0) {}
  void Observe(double value);
  int64_t count() const;
};

class MetricsText {
 public:
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts a family; type is "counter", "gauge" or "histogram".
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // A sample of the current family (name suffixes such as "_bucket" are the writer's job).
  void Sample(double value, const Labels& labels = {});
  // Shorthands: a family with one unlabelled sample.
  void Counter(const std::string& name, const std::string& help, double value);
  void Gauge(const std::string& name, const std::string& help, double value);
  // A histogram sample set (the family must be of type "histogram").
  void HistogramSample(const Histogram& histogram, const Labels& labels = {});

  const std::string& text() const { return out_; }

 private:
  void Line(const std::string& name, const Labels& labels, double value);
  std::string family_;
  std::string out_;
};

// Formats a sample value: integers exactly, others with 17 significant digits; NaN, +Inf, -Inf.
std::string FormatValue(double value);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);

}  // namespace lanlm::ops
