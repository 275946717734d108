// AdamW: one step against a hand computation in double (bias correction, warm-up, decay),
// norm weights not decayed, the schedule, clipping, validation, and thread-count identity.
#include "engine/train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/base/random.h"

namespace lanlm::engine {
namespace {

std::vector<TensorInfo> TwoTensors() {
  // A decayed (2, 3) matrix followed by a non-decayed norm vector of 3.
  return {{"w", {2, 3}, 0, 6, true}, {"norm.weight", {3}, 6, 3, false}};
}

TEST(OptimizerTest, OneStepMatchesHandComputation) {
  AdamWOptions o;
  o.lr = 0.01f;
  o.beta1 = 0.8f;
  o.beta2 = 0.9f;
  o.eps = 1e-6f;
  o.weight_decay = 0.1f;
  o.warmup_steps = 5;
  const int64_t step = 2;  // t = 3, inside warm-up: α = lr·3/5
  std::vector<float> p = {0.5f, -0.25f, 1.5f, 2.0f, -1.0f, 0.125f, 1.0f, 0.75f, 1.25f};
  std::vector<float> g = {0.1f, -0.2f, 0.3f, 0.0f, 1.0f, -0.5f, 0.05f, -0.4f, 0.2f};
  std::vector<float> m = {0.01f, 0.02f, -0.03f, 0.04f, 0.0f, 0.1f, -0.02f, 0.0f, 0.3f};
  std::vector<float> v = {0.001f, 0.002f, 0.0f, 0.01f, 0.5f, 0.02f, 0.001f, 0.003f, 0.0f};
  const auto p0 = p, m0 = m, v0 = v;
  ThreadPool pool(1);
  AdamWStep(o, step, TwoTensors(), p.data(), g.data(), m.data(), v.data(), pool);

  const double alpha = 0.01 * 3.0 / 5.0;
  const double alpha_t = alpha * std::sqrt(1.0 - std::pow(0.9, 3)) / (1.0 - std::pow(0.8, 3));
  for (int i = 0; i < 9; ++i) {
    const double mi = 0.8 * m0[i] + 0.2 * g[i];
    const double vi = 0.9 * v0[i] + 0.1 * double{g[i]} * g[i];
    const double decay = i < 6 ? 0.1 : 0.0;
    const double pi = p0[i] - alpha_t * (mi / (std::sqrt(vi) + 1e-6) + decay * p0[i]);
    EXPECT_NEAR(m[i], mi, 1e-6 * std::abs(mi) + 1e-9) << i;
    EXPECT_NEAR(v[i], vi, 1e-6 * std::abs(vi) + 1e-10) << i;
    EXPECT_NEAR(p[i], pi, 2e-6 * std::abs(p0[i] - pi) + 1e-7) << i;
  }
}

TEST(OptimizerTest, NormWeightsAreNotDecayed) {
  AdamWOptions o;
  o.weight_decay = 0.5f;
  o.warmup_steps = 0;
  std::vector<float> p(9, 2.0f), g(9, 0.0f), m(9, 0.0f), v(9, 0.0f);
  ThreadPool pool(1);
  AdamWStep(o, 10, TwoTensors(), p.data(), g.data(), m.data(), v.data(), pool);
  for (int i = 0; i < 6; ++i) EXPECT_LT(p[i], 2.0f) << "decayed matrix element " << i;
  for (int i = 6; i < 9; ++i) EXPECT_EQ(p[i], 2.0f) << "norm element " << i;
}

TEST(OptimizerTest, LearningRateWarmsUpThenFollowsSchedule) {
  AdamWOptions o;
  o.lr = 1.0f;
  o.warmup_steps = 4;
  o.total_steps = 14;
  o.min_lr_ratio = 0.1f;
  EXPECT_FLOAT_EQ(LearningRate(o, 0), 0.25f);
  EXPECT_FLOAT_EQ(LearningRate(o, 3), 1.0f);
  EXPECT_FLOAT_EQ(LearningRate(o, 4), 1.0f);
  EXPECT_NEAR(LearningRate(o, 9), 0.55f, 1e-6);  // half way down the cosine
  EXPECT_NEAR(LearningRate(o, 14), 0.1f, 1e-6);
  EXPECT_NEAR(LearningRate(o, 100), 0.1f, 1e-6);
  o.schedule = "constant";
  EXPECT_FLOAT_EQ(LearningRate(o, 100), 1.0f);
  o.warmup_steps = 0;
  EXPECT_FLOAT_EQ(LearningRate(o, 0), 1.0f);
}

TEST(OptimizerTest, ClipClampsEachElement) {
  std::vector<float> g = {-3.0f, -1.0f, -0.5f, 0.0f, 0.25f, 1.0f, 7.0f};
  ThreadPool pool(1);
  ClipGradients(g.data(), static_cast<int64_t>(g.size()), 0.5f, pool);
  EXPECT_EQ(g, (std::vector<float>{-0.5f, -0.5f, -0.5f, 0.0f, 0.25f, 0.5f, 0.5f}));
}

TEST(OptimizerTest, ValidateNamesTheField) {
  AdamWOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.beta2 = 1.0f;
  EXPECT_NE(o.Validate().message().find("beta2"), std::string::npos);
  o = AdamWOptions();
  o.schedule = "linear";
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = AdamWOptions();
  o.lr = 0.0f;
  EXPECT_NE(o.Validate().message().find("lr"), std::string::npos);
}

TEST(OptimizerTest, OneThreadEqualsManyThreadsBitForBit) {
  // Tensors whose ends fall inside work blocks.
  const std::vector<TensorInfo> tensors = {
      {"a", {5000}, 0, 5000, true}, {"n", {37}, 5000, 37, false}, {"b", {20000}, 5037, 20000, true}};
  const int64_t n = 25037;
  std::vector<float> g0(n), p0(n), m0(n), v0(n);
  for (int64_t i = 0; i < n; ++i) {
    g0[i] = static_cast<float>(CounterRng::Normal(1, i));
    p0[i] = static_cast<float>(CounterRng::Normal(2, i));
    m0[i] = 0.1f * static_cast<float>(CounterRng::Normal(3, i));
    v0[i] = static_cast<float>(CounterRng::Uniform(4, i));
  }
  std::vector<float> ref;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    auto g = g0, p = p0, m = m0, v = v0;
    ClipGradients(g.data(), n, 1.0f, pool);
    AdamWStep(AdamWOptions(), 7, tensors, p.data(), g.data(), m.data(), v.data(), pool);
    p.insert(p.end(), m.begin(), m.end());
    p.insert(p.end(), v.begin(), v.end());
    if (threads == 1) {
      ref = p;
    } else {
      EXPECT_EQ(0, std::memcmp(p.data(), ref.data(), p.size() * sizeof(float))) << threads;
    }
  }
}

}  // namespace
}  // namespace lanlm::engine
