// Model under --precision bf16: 1 = 2 = 3 threads bit for bit, the accumulate contract, and the
// gradient within bf16's precision of the fp32 model's (which model_test.cc checks against
// central differences of a double reference). A central difference of the bf16 model itself is
// not a meaningful check: its matmuls round the weights to bf16, so the loss is piecewise
// constant in steps smaller than a bf16 ulp.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "engine/base/random.h"
#include "engine/model/model.h"
#include "engine/model/parameters.h"
#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

ModelConfig Bf16ModelConfig() {
  ModelConfig c;
  c.vocab_size = 96;
  c.dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.ffn_hidden = 72;
  c.context = 24;
  return c;
}

std::vector<int32_t> Tokens(const ModelConfig& c, int B, uint64_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(B) * (c.context + 1));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(CounterRng::Below(seed, i, c.vocab_size));
  return t;
}

std::vector<float> Params(const ModelConfig& c, uint64_t seed) {
  std::vector<float> params(ParameterCount(c));
  InitParameters(c, seed, 0.1f, params.data());
  return params;
}

struct LossAndGrad {
  float loss;
  std::vector<float> grad;
};

LossAndGrad ForwardBackward(const ModelConfig& c, Precision p, const std::vector<float>& params,
                            const std::vector<int32_t>& tokens, int B, ThreadPool& pool) {
  Model model(c, B, p);
  LossAndGrad r{model.Forward(params.data(), tokens.data(), B, pool), std::vector<float>(params.size(), 0.0f)};
  model.Backward(params.data(), tokens.data(), B, r.grad.data(), pool);
  return r;
}

TEST(ModelBf16Test, OneThreadEqualsManyThreadsBitForBit) {
  const ModelConfig c = Bf16ModelConfig();
  std::vector<float> params = Params(c, 23);
  const auto tokens = Tokens(c, 3, 29);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    LossAndGrad r = ForwardBackward(c, Precision::kBf16, params, tokens, 3, pool);
    return std::vector<std::vector<float>>{{r.loss}, r.grad};
  });
}

TEST(ModelBf16Test, BackwardAccumulatesExactlyTwice) {
  const ModelConfig c = Bf16ModelConfig();
  std::vector<float> params = Params(c, 5);
  const auto tokens = Tokens(c, 2, 6);
  ThreadPool pool(2);
  Model model(c, 2, Precision::kBf16);
  std::vector<float> once(params.size(), 0.0f), twice(params.size(), 0.0f);
  model.Forward(params.data(), tokens.data(), 2, pool);
  model.Backward(params.data(), tokens.data(), 2, once.data(), pool);
  for (int k = 0; k < 2; ++k) {
    model.Forward(params.data(), tokens.data(), 2, pool);
    model.Backward(params.data(), tokens.data(), 2, twice.data(), pool);
  }
  op_test::ExpectTwiceIsDouble("grad", once, twice);
}

TEST(ModelBf16Test, GradientWithinBf16PrecisionOfFp32) {
  // bf16 keeps 8 significant bits: each matmul input is off by at most 2^-9 relative, which
  // compounds over the layers into about 1% on a gradient tensor. Tolerance: 4% of each
  // tensor's norm, and the loss within 0.5%. The bf16 run must still differ from fp32.
  const ModelConfig c = Bf16ModelConfig();
  std::vector<float> params = Params(c, 41);
  const auto tokens = Tokens(c, 3, 43);
  ThreadPool pool(2);
  const LossAndGrad fp32 = ForwardBackward(c, Precision::kFp32, params, tokens, 3, pool);
  const LossAndGrad bf16 = ForwardBackward(c, Precision::kBf16, params, tokens, 3, pool);
  EXPECT_NEAR(bf16.loss, fp32.loss, 0.005 * std::fabs(fp32.loss));
  EXPECT_NE(bf16.loss, fp32.loss);
  for (const TensorInfo& t : ParameterTensors(c)) {
    double diff = 0.0, norm = 0.0;
    for (int64_t i = t.offset; i < t.offset + t.size; ++i) {
      diff += std::pow(double(bf16.grad[i]) - fp32.grad[i], 2);
      norm += std::pow(double(fp32.grad[i]), 2);
    }
    EXPECT_LE(std::sqrt(diff), 0.04 * std::sqrt(norm) + 1e-12) << t.name;
  }
}

// Two micro-batches of one step on one Model, the second reusing the first's packed weights
// (reuse_packed_weights), summed into one gradient.
LossAndGrad TwoMicroBatches(const ModelConfig& c, const std::vector<float>& params, const std::vector<int32_t>& t1,
                            const std::vector<int32_t>& t2, int B, bool reuse, ThreadPool& pool) {
  Model model(c, B, Precision::kBf16);
  LossAndGrad r{0.0f, std::vector<float>(params.size(), 0.0f)};
  r.loss = model.Forward(params.data(), t1.data(), B, pool);
  model.Backward(params.data(), t1.data(), B, r.grad.data(), pool);
  r.loss += model.Forward(params.data(), t2.data(), B, pool, /*hooks=*/nullptr, reuse);
  model.Backward(params.data(), t2.data(), B, r.grad.data(), pool);
  return r;
}

TEST(ModelBf16Test, WeightsPackedOncePerStepEqualPackingPerMicroBatch) {
  const ModelConfig c = Bf16ModelConfig();
  std::vector<float> params = Params(c, 41);
  const auto t1 = Tokens(c, 2, 43), t2 = Tokens(c, 2, 47);
  ThreadPool pool(2);
  const LossAndGrad once = TwoMicroBatches(c, params, t1, t2, 2, /*reuse=*/true, pool);
  const LossAndGrad each = TwoMicroBatches(c, params, t1, t2, 2, /*reuse=*/false, pool);
  EXPECT_TRUE(op_test::BitEqual({once.loss}, {each.loss})) << once.loss << " vs " << each.loss;
  EXPECT_TRUE(op_test::BitEqual(once.grad, each.grad));
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& p) {
    LossAndGrad r = TwoMicroBatches(c, params, t1, t2, 2, /*reuse=*/true, p);
    return std::vector<std::vector<float>>{{r.loss}, r.grad};
  });
}

TEST(ModelBf16Test, ChangedWeightsArePackedAgain) {
  // Without the reuse promise a Forward packs the weights it is given: after an update in place
  // (same block, new values) the Model computes what a fresh Model computes on the new values.
  const ModelConfig c = Bf16ModelConfig();
  const std::vector<float> updated = Params(c, 67);
  std::vector<float> block = Params(c, 53);
  const auto tokens = Tokens(c, 2, 59);
  ThreadPool pool(2);
  Model stale(c, 2, Precision::kBf16);
  stale.Forward(block.data(), tokens.data(), 2, pool);
  std::copy(updated.begin(), updated.end(), block.begin());
  const float again = stale.Forward(block.data(), tokens.data(), 2, pool);
  const float fresh = ForwardBackward(c, Precision::kBf16, updated, tokens, 2, pool).loss;
  EXPECT_TRUE(op_test::BitEqual({again}, {fresh})) << again << " vs " << fresh;
}

TEST(ModelBf16Test, StreamedParametersArePackedOnlyOnceReady) {
  // A streaming worker's block fills up during Forward (ModelStreamHooks): each layer's weights
  // must be rounded and packed after params_ready says they arrived, never before.
  const ModelConfig c = Bf16ModelConfig();
  const std::vector<float> params = Params(c, 71);
  const auto tokens = Tokens(c, 2, 73);
  ThreadPool pool(2);
  std::vector<float> streamed(params.size(), 0.0f);
  ModelStreamHooks hooks;
  hooks.params_ready = [&](int64_t end) {
    std::copy(params.begin(), params.begin() + end, streamed.begin());
    return true;
  };
  Model model(c, 2, Precision::kBf16);
  LossAndGrad got{model.Forward(streamed.data(), tokens.data(), 2, pool, &hooks),
                  std::vector<float>(params.size(), 0.0f)};
  model.Backward(streamed.data(), tokens.data(), 2, got.grad.data(), pool);
  const LossAndGrad want = ForwardBackward(c, Precision::kBf16, params, tokens, 2, pool);
  EXPECT_TRUE(op_test::BitEqual({got.loss}, {want.loss})) << got.loss << " vs " << want.loss;
  EXPECT_TRUE(op_test::BitEqual(got.grad, want.grad));
}

}  // namespace
}  // namespace lanlm::engine
