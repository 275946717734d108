// ops::MetricsText: the exposition format (HELP/TYPE once per family, labels escaped,
// histogram buckets cumulative with +Inf, _sum and _count), value formatting, and a text
// that `promtool check metrics` accepts without lint complaints.
#include "ops/prometheus.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/ops/promtool.h"

namespace lanlm::ops {
namespace {

TEST(PrometheusTest, FamiliesSamplesAndLabels) {
  MetricsText m;
  m.Counter("lanlm_things_total", "Things done.", 3);
  m.Family("lanlm_phase_seconds_total", "counter", "Time by phase.");
  m.Sample(1.5, {{"phase", "compute"}});
  m.Sample(0.25, {{"phase", "optimizer"}, {"worker", "a\"b\\c\nd"}});
  EXPECT_EQ(m.text(),
            "# HELP lanlm_things_total Things done.\n# TYPE lanlm_things_total counter\nlanlm_things_total 3\n"
            "# HELP lanlm_phase_seconds_total Time by phase.\n# TYPE lanlm_phase_seconds_total counter\n"
            "lanlm_phase_seconds_total{phase=\"compute\"} 1.5\n"
            "lanlm_phase_seconds_total{phase=\"optimizer\",worker=\"a\\\"b\\\\c\\nd\"} 0.25\n");
}

TEST(PrometheusTest, HistogramIsCumulativeWithInfSumAndCount) {
  Histogram h({0.01, 0.1, 1.0});
  for (double v : {0.005, 0.05, 0.05, 0.5, 5.0}) h.Observe(v);
  EXPECT_EQ(h.count(), 5);
  MetricsText m;
  m.Family("lanlm_latency_seconds", "histogram", "Latency.");
  m.HistogramSample(h, {{"kind", "first"}});
  EXPECT_EQ(m.text(),
            "# HELP lanlm_latency_seconds Latency.\n# TYPE lanlm_latency_seconds histogram\n"
            "lanlm_latency_seconds_bucket{kind=\"first\",le=\"0.01\"} 1\n"
            "lanlm_latency_seconds_bucket{kind=\"first\",le=\"0.1\"} 3\n"
            "lanlm_latency_seconds_bucket{kind=\"first\",le=\"1\"} 4\n"
            "lanlm_latency_seconds_bucket{kind=\"first\",le=\"+Inf\"} 5\n"
            "lanlm_latency_seconds_sum{kind=\"first\"} 5.605\n"
            "lanlm_latency_seconds_count{kind=\"first\"} 5\n");
}

TEST(PrometheusTest, FormatValueIsExactAndShort) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(123456789012), "123456789012");
  EXPECT_EQ(FormatValue(-2), "-2");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(std::strtod(FormatValue(0.1).c_str(), nullptr), 0.1);
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(PrometheusTest, PromtoolAcceptsTheOutput) {
  MetricsText m;
  m.Counter("lanlm_things_total", "Things done.", 3);
  m.Gauge("lanlm_queue_bytes", "Bytes queued.", 1024);
  Histogram h({0.001, 0.01});
  h.Observe(0.002);
  m.Family("lanlm_latency_seconds", "histogram", "Latency.");
  m.HistogramSample(h);
  const testing::PromtoolResult check = testing::PromtoolCheck(m.text());
  if (!check.available) GTEST_SKIP() << "promtool not installed (apt-get install prometheus; deploy/setup-deps.sh)";
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << m.text();
  EXPECT_EQ(check.output, "") << m.text();
}

}  // namespace
}  // namespace lanlm::ops
