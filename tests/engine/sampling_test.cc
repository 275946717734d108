// SampleToken and SamplingOptions: greedy, top-k, top-p, reproducibility, empirical
// frequencies against a double-precision softmax, non-finite logits, and Validate messages.
// Also the ConfidenceStop rule.
#include "engine/generate/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace lanlm::engine {
namespace {

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  double max = -1e300, sum = 0.0;
  for (float l : logits) max = std::max(max, static_cast<double>(l));
  std::vector<double> p;
  for (float l : logits) p.push_back(std::exp((l - max) / temperature));
  for (double x : p) sum += x;
  for (double& x : p) x /= sum;
  return p;
}

SamplingOptions Options(float temperature, int top_k, float top_p, uint64_t seed = 1) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  return o;
}

std::vector<double> Frequencies(const std::vector<float>& logits, const SamplingOptions& o, int draws) {
  std::vector<double> freq(logits.size(), 0.0);
  std::vector<float> scratch;
  for (int i = 0; i < draws; ++i) {
    const SampledToken s = SampleToken(logits.data(), static_cast<int>(logits.size()), o, i, scratch);
    freq[s.id] += 1.0 / draws;
  }
  return freq;
}

const std::vector<float> kLogits = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 0.0f};

TEST(SamplingTest, GreedyPicksArgmaxWithSoftmaxProbabilities) {
  std::vector<float> scratch;
  const auto p = Softmax(kLogits, 1.0);
  const SampledToken s = SampleToken(kLogits.data(), 6, Options(0.0f, 40, 0.95f), 0, scratch);
  EXPECT_EQ(s.id, 4);
  EXPECT_NEAR(s.probability, p[4], 1e-6);
  EXPECT_NEAR(s.top_probability, p[4], 1e-6);
}

TEST(SamplingTest, TopKOneEqualsGreedy) {
  std::vector<float> scratch;
  for (uint64_t index = 0; index < 200; ++index) {
    EXPECT_EQ(SampleToken(kLogits.data(), 6, Options(1.5f, 1, 1.0f, index * 7), index, scratch).id, 4);
  }
}

TEST(SamplingTest, SameSeedAndIndexGiveTheSameToken) {
  std::vector<float> scratch;
  std::set<int> seen;
  for (uint64_t index = 0; index < 100; ++index) {
    const auto o = Options(1.0f, 0, 1.0f, 42);
    const int a = SampleToken(kLogits.data(), 6, o, index, scratch).id;
    const int b = SampleToken(kLogits.data(), 6, o, index, scratch).id;
    EXPECT_EQ(a, b);
    seen.insert(a);
  }
  EXPECT_GE(seen.size(), 3u);  // and different indices do draw different tokens
  int differ = 0;
  for (uint64_t index = 0; index < 100; ++index) {
    differ += SampleToken(kLogits.data(), 6, Options(1.0f, 0, 1.0f, 1), index, scratch).id !=
              SampleToken(kLogits.data(), 6, Options(1.0f, 0, 1.0f, 2), index, scratch).id;
  }
  EXPECT_GT(differ, 20);  // the seed matters
}

TEST(SamplingTest, FrequenciesMatchSoftmax) {
  for (const float temperature : {1.0f, 0.5f, 2.0f}) {
    const auto expected = Softmax(kLogits, temperature);
    const auto freq = Frequencies(kLogits, Options(temperature, 0, 1.0f), 40000);
    for (size_t i = 0; i < kLogits.size(); ++i) {
      EXPECT_NEAR(freq[i], expected[i], 0.01) << "temperature " << temperature << " token " << i;
    }
  }
}

TEST(SamplingTest, ProbabilityIsReportedAtTemperatureOne) {
  std::vector<float> scratch;
  const auto p = Softmax(kLogits, 1.0);
  for (uint64_t index = 0; index < 50; ++index) {
    const SampledToken s = SampleToken(kLogits.data(), 6, Options(2.5f, 0, 1.0f), index, scratch);
    EXPECT_NEAR(s.probability, p[s.id], 1e-6);
    EXPECT_NEAR(s.top_probability, p[4], 1e-6);
  }
}

TEST(SamplingTest, TopKRestrictsTheSupport) {
  const auto freq = Frequencies(kLogits, Options(1.0f, 2, 1.0f), 20000);
  // Only the two largest logits (ids 4 and 1), renormalised: e^3 / (e^3 + e^2).
  const double p4 = std::exp(3.0) / (std::exp(3.0) + std::exp(2.0));
  EXPECT_NEAR(freq[4], p4, 0.01);
  EXPECT_NEAR(freq[1], 1.0 - p4, 0.01);
  for (int i : {0, 2, 3, 5}) EXPECT_EQ(freq[i], 0.0) << i;
}

TEST(SamplingTest, TopPRestrictsTheSupport) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (as logs): top_p 0.75 keeps {0, 1} (0.5 < 0.75 <= 0.8).
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  const auto freq = Frequencies(logits, Options(1.0f, 0, 0.75f), 20000);
  EXPECT_NEAR(freq[0], 0.625, 0.012);
  EXPECT_NEAR(freq[1], 0.375, 0.012);
  EXPECT_EQ(freq[2], 0.0);
  EXPECT_EQ(freq[3], 0.0);
  // top_p 0.81 keeps three tokens; top-k 2 then top_p 0.5 of {0.625, 0.375} keeps only id 0.
  const auto three = Frequencies(logits, Options(1.0f, 0, 0.81f), 5000);
  EXPECT_GT(three[2], 0.0);
  EXPECT_EQ(three[3], 0.0);
  const auto one = Frequencies(logits, Options(1.0f, 2, 0.5f), 2000);
  EXPECT_NEAR(one[0], 1.0, 1e-9);
}

// The support of top-k then top-p, computed independently: sort by logit, keep k, then the
// shortest prefix whose renormalised probability reaches top_p. Draws must stay inside it.
TEST(SamplingTest, DrawsStayInsideTheReferenceSupport) {
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> scratch;
  int checked = 0;
  for (int trial = 0; trial < 120; ++trial) {
    const int vocab = 50 + static_cast<int>(rng() % 2000);
    std::vector<float> logits(vocab);
    for (float& l : logits) l = normal(rng);
    const float temperature = std::vector<float>{0.3f, 1.0f, 2.0f}[trial % 3];
    const int top_k = std::vector<int>{0, 1, 5, 60}[trial % 4];
    const float top_p = std::vector<float>{0.2f, 0.9f, 0.99f, 1.0f, 0.5f}[trial % 5];
    std::vector<int> order(vocab);
    for (int i = 0; i < vocab; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    const int n = top_k > 0 ? std::min(top_k, vocab) : vocab;
    std::vector<double> p(n);
    double sum = 0.0;
    for (int j = 0; j < n; ++j) sum += p[j] = std::exp((logits[order[j]] - logits[order[0]]) / temperature);
    int m = n;
    double cumulative = 0.0;
    bool near_boundary = false;
    for (int j = 0; j < n; ++j) {
      cumulative += p[j] / sum;
      near_boundary = near_boundary || std::abs(cumulative - top_p) < 1e-4;
      if (cumulative >= top_p) {
        m = j + 1;
        break;
      }
    }
    if (near_boundary && top_p < 1.0f) continue;  // float rounding may legitimately move the cut
    const std::set<int> support(order.begin(), order.begin() + m);
    for (uint64_t index = 0; index < 40; ++index) {
      const SampledToken s =
          SampleToken(logits.data(), vocab, Options(temperature, top_k, top_p, trial), index, scratch);
      ASSERT_TRUE(support.count(s.id)) << "trial " << trial << " id " << s.id << " support size " << m;
    }
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(SamplingTest, TiesAreBrokenByLowerId) {
  const std::vector<float> logits(10, 0.25f);
  const auto freq = Frequencies(logits, Options(1.0f, 3, 1.0f), 6000);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(freq[i], 1.0 / 3, 0.03);
  for (int i = 3; i < 10; ++i) EXPECT_EQ(freq[i], 0.0);
  std::vector<float> scratch;
  EXPECT_EQ(SampleToken(logits.data(), 10, Options(0.0f, 0, 1.0f), 0, scratch).id, 0);
}

TEST(SamplingTest, NonFiniteLogitsAreNeverChosen) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {nan, 1.0f, inf, -inf, 2.0f, nan};
  std::vector<float> scratch;
  const auto p = Softmax({1.0f, 2.0f}, 1.0);
  EXPECT_EQ(SampleToken(logits.data(), 6, Options(0.0f, 0, 1.0f), 0, scratch).id, 4);
  for (uint64_t index = 0; index < 300; ++index) {
    const SampledToken s = SampleToken(logits.data(), 6, Options(1.0f, 0, 0.9f), index, scratch);
    ASSERT_TRUE(s.id == 1 || s.id == 4) << s.id;
    EXPECT_NEAR(s.probability, s.id == 4 ? p[1] : p[0], 1e-6);
  }
  const std::vector<float> garbage = {nan, inf, -inf};
  const SampledToken s = SampleToken(garbage.data(), 3, Options(1.0f, 0, 1.0f), 0, scratch);
  EXPECT_EQ(s.id, 0);
  EXPECT_EQ(s.probability, 0.0f);
  EXPECT_EQ(s.top_probability, 0.0f);
}

TEST(SamplingTest, ExtremeTemperaturesAndLogitsStayFinite) {
  const std::vector<float> logits = {-3e38f, 3e38f, 0.0f, 1e30f};
  std::vector<float> scratch;
  for (const float temperature : {1e-30f, 1e-3f, 1.0f, 100.0f}) {
    for (uint64_t index = 0; index < 50; ++index) {
      const SampledToken s = SampleToken(logits.data(), 4, Options(temperature, 0, 1.0f), index, scratch);
      ASSERT_TRUE(s.id >= 0 && s.id < 4);
      EXPECT_TRUE(s.probability >= 0.0f && s.probability <= 1.0f);
    }
  }
  EXPECT_EQ(SampleToken(logits.data(), 4, Options(1e-30f, 0, 1.0f), 0, scratch).id, 1);
}

TEST(SamplingTest, ValidateNamesTheFieldAndLimit) {
  EXPECT_TRUE(SamplingOptions().Validate().ok());
  EXPECT_TRUE(Options(0.0f, 0, 1.0f).Validate().ok());
  const struct {
    SamplingOptions options;
    const char* message;
  } cases[] = {
      {Options(-1.0f, 40, 0.9f), "temperature = -1 is outside [0, 100]"},
      {Options(1000.0f, 40, 0.9f), "temperature = 1000 is outside [0, 100]"},
      {Options(std::numeric_limits<float>::quiet_NaN(), 40, 0.9f), "temperature = nan is outside"},
      {Options(1.0f, -1, 0.9f), "top_k = -1 is below 0"},
      {Options(1.0f, 40, 1.5f), "top_p = 1.5 is outside (0, 1]"},
      {Options(1.0f, 40, 0.0f), "top_p = 0 is outside (0, 1]"},
      {Options(1.0f, 40, std::numeric_limits<float>::infinity()), "top_p = inf is outside (0, 1]"},
  };
  for (const auto& c : cases) {
    const Status s = c.options.Validate();
    ASSERT_FALSE(s.ok()) << c.message;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
  }
}

TEST(SamplingTest, ConfidenceStopNeedsConsecutiveLowTokens) {
  ConfidenceStop stop;  // 0.15, three in a row
  EXPECT_FALSE(stop.Update(0.1f));
  EXPECT_FALSE(stop.Update(0.1f));
  EXPECT_FALSE(stop.Update(0.9f));  // resets the run
  EXPECT_FALSE(stop.Update(0.1f));
  EXPECT_FALSE(stop.Update(0.14f));
  EXPECT_TRUE(stop.Update(0.0f));
  ConfidenceStop off(0.0f, 3);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(off.Update(0.0f));
}

}  // namespace
}  // namespace lanlm::engine
