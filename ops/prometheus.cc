// Prometheus text exposition; see prometheus.h.
#include "ops/prometheus.h"

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace lanlm::ops {

void Histogram::Observe(double value) {
  sum += value;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) {
      ++counts[i];
      return;
    }
  }
  ++overflow;
}

int64_t Histogram::count() const {
  int64_t total = overflow;
  for (int64_t c : counts) total += c;
  return total;
}

std::string FormatValue(double value) {
  // By the bits: the build's -ffast-math lets std::isnan and std::isinf answer false.
  const uint64_t bits = std::bit_cast<uint64_t>(value);
  if ((bits & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) {
    if ((bits & 0x000fffffffffffffull) != 0) return "NaN";
    return (bits >> 63) != 0 ? "-Inf" : "+Inf";
  }
  char buf[40];
  if (value == std::floor(value) && std::fabs(value) < 9.0e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return buf;
  }
  // The shortest of 15-17 significant digits that reads back as the same double.
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricsText::Family(const std::string& name, const std::string& type, const std::string& help) {
  family_ = name;
  std::string escaped_help;
  for (char c : help) escaped_help += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
  out_ += "# HELP " + name + " " + escaped_help + "\n# TYPE " + name + " " + type + "\n";
}

void MetricsText::Line(const std::string& name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out_ += ',';
      out_ += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
    }
    out_ += '}';
  }
  out_ += ' ' + FormatValue(value) + '\n';
}

void MetricsText::Sample(double value, const Labels& labels) { Line(family_, labels, value); }

void MetricsText::Counter(const std::string& name, const std::string& help, double value) {
  Family(name, "counter", help);
  Sample(value);
}

void MetricsText::Gauge(const std::string& name, const std::string& help, double value) {
  Family(name, "gauge", help);
  Sample(value);
}

void MetricsText::HistogramSample(const Histogram& histogram, const Labels& labels) {
  int64_t cumulative = 0;
  for (size_t i = 0; i < histogram.bounds.size(); ++i) {
    cumulative += histogram.counts[i];
    Labels with_le = labels;
    with_le.emplace_back("le", FormatValue(histogram.bounds[i]));
    Line(family_ + "_bucket", with_le, static_cast<double>(cumulative));
  }
  Labels with_inf = labels;
  with_inf.emplace_back("le", "+Inf");
  Line(family_ + "_bucket", with_inf, static_cast<double>(cumulative + histogram.overflow));
  Line(family_ + "_sum", labels, histogram.sum);
  Line(family_ + "_count", labels, static_cast<double>(histogram.count()));
}

}  // namespace lanlm::ops
