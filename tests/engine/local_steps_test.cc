// DiLoCo replica rounds (engine/train/local_steps): one inner step equals a hand-built AdamW
// step from zeroed moments at the run's rate; H steps lower the replica's loss on its data and
// give the same bits at 1 and 3 threads; bad arguments are refused; the outer Nesterov step
// matches a naive double-precision reference.
#include "engine/train/local_steps.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/base/random.h"
#include "engine/model/parameters.h"
#include "engine/train/gradient_tree.h"
#include "engine/train/trainer.h"
#include "tests/support/tiny.h"

namespace lanlm::engine {
namespace {

// V=13 C=8 L=1 NH=2 F=16 T=6: a round of a few steps runs in milliseconds.
// This suite's model sizes (tests/support/tiny.h).
constexpr test_support::TinySizes kSizes = {.vocab = 13, .layers = 1, .ffn = 16, .context = 6};

// (steps, shards, B, T+1) tokens, a fixed pattern per shard so the replica can learn it.
std::vector<int32_t> Tokens(int steps, int shards, int B, const ModelConfig& c) {
  std::vector<int32_t> t(static_cast<size_t>(steps) * shards * B * (c.context + 1));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(CounterRng::Below(5, i % 37, c.vocab_size));
  return t;
}

AdamWOptions Adam() {
  AdamWOptions o;
  o.lr = 3e-3f;
  o.warmup_steps = 4;
  o.total_steps = 40;
  return o;
}

TEST(LocalStepsTest, OneInnerStepIsAdamWFromZeroMomentsAtTheRunsRate) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const int B = 2;
  const TrainingState init = TrainingState::Init(c, 3, 0.02f);
  const int64_t n = static_cast<int64_t>(init.params.size());
  const auto tokens = Tokens(1, 1, B, c);
  ThreadPool pool(1);
  Model model(c, B);
  std::vector<float> delta(static_cast<size_t>(n));
  float loss = 0;
  ASSERT_TRUE(RunLocalSteps(Adam(), 6, 1, 1, model, B, init.params.data(), tokens.data(), delta.data(), &loss, pool).ok());

  std::vector<float> grad(static_cast<size_t>(n)), params = init.params, m(grad.size()), v(grad.size());
  const float expected_loss = ComputeShardGradient(model, params.data(), tokens.data(), B, grad.data(), pool);
  ClipGradients(grad.data(), n, Adam().clip, pool);
  AdamWOptions at_step_6 = Adam();
  at_step_6.lr = LearningRate(Adam(), 6);  // past warm-up, on the cosine
  at_step_6.warmup_steps = 0;
  at_step_6.schedule = "constant";
  AdamWStep(at_step_6, 0, ParameterTensors(c), params.data(), grad.data(), m.data(), v.data(), pool);
  EXPECT_EQ(loss, expected_loss);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(delta[i], init.params[i] - params[i]) << i;
}

TEST(LocalStepsTest, SeveralStepsLowerTheLossAndAreBitIdenticalAcrossThreads) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const int B = 2, H = 6, K = 2;
  const TrainingState init = TrainingState::Init(c, 3, 0.02f);
  const int64_t n = static_cast<int64_t>(init.params.size());
  const auto tokens = Tokens(H, K, B, c);
  std::vector<std::vector<float>> deltas;
  std::vector<float> losses(K);
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    Model model(c, B);
    deltas.emplace_back(static_cast<size_t>(n));
    ASSERT_TRUE(RunLocalSteps(Adam(), 0, H, K, model, B, init.params.data(), tokens.data(), deltas.back().data(),
                              losses.data(), pool)
                    .ok());
  }
  EXPECT_EQ(std::memcmp(deltas[0].data(), deltas[1].data(), static_cast<size_t>(n) * 4), 0);
  // The first shard's loss at the end is below its mean over the round (which includes the start).
  ThreadPool pool(1);
  Model model(c, B);
  std::vector<float> end(init.params), grad(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) end[i] -= deltas[0][i];
  const float final_loss = ComputeShardGradient(model, end.data(), tokens.data(), B, grad.data(), pool);
  EXPECT_LT(final_loss, losses[0]);
  const float start_loss = ComputeShardGradient(model, init.params.data(), tokens.data(), B, grad.data(), pool);
  EXPECT_LT(losses[0], start_loss);

  std::vector<float> delta(static_cast<size_t>(n));
  EXPECT_EQ(RunLocalSteps(Adam(), 0, 0, K, model, B, init.params.data(), tokens.data(), delta.data(), losses.data(),
                          pool)
                .code(),
            StatusCode::kInvalidArgument);
  int calls = 0;
  EXPECT_EQ(RunLocalSteps(Adam(), 0, H, K, model, B, init.params.data(), tokens.data(), delta.data(), losses.data(),
                          pool, [&] { return ++calls > 2; })
                .code(),
            StatusCode::kCancelled);
}

TEST(LocalStepsTest, OuterNesterovMatchesNaiveReference) {
  const int64_t n = 10007;
  std::vector<float> sum(n), params(n), m(n);
  for (int64_t i = 0; i < n; ++i) {
    sum[i] = 0.01f * static_cast<float>((i * 7919) % 201 - 100);
    params[i] = 0.001f * static_cast<float>(i % 97);
    m[i] = 0.002f * static_cast<float>(i % 13) - 0.01f;
  }
  std::vector<float> p1 = params, m1 = m, p3 = params, m3 = m;
  ThreadPool one(1), three(3);
  OuterNesterovStep(0.7f, 0.9f, sum.data(), 0.5f, p1.data(), m1.data(), n, one);
  OuterNesterovStep(0.7f, 0.9f, sum.data(), 0.5f, p3.data(), m3.data(), n, three);
  EXPECT_EQ(std::memcmp(p1.data(), p3.data(), n * 4), 0);
  EXPECT_EQ(std::memcmp(m1.data(), m3.data(), n * 4), 0);
  for (int64_t i = 0; i < n; ++i) {
    const double avg = double{sum[i]} * 0.5;
    const double mom = 0.9 * double{m[i]} + avg;
    const double p = double{params[i]} - 0.7 * (avg + 0.9 * mom);
    ASSERT_NEAR(m1[i], mom, 1e-6 * (1 + std::fabs(mom))) << i;
    ASSERT_NEAR(p1[i], p, 1e-6 * (1 + std::fabs(p))) << i;
  }
}

}  // namespace
}  // namespace lanlm::engine
