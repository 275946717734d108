// Model: forward loss and logits against an independent double-precision reference of
// DESIGN.md §2, a central-difference check of the gradient of every parameter tensor (on the
// double reference), the accumulate contract, and 1 thread == N threads bit for bit.
#include "engine/model/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/model/parameters.h"
#include "engine/base/random.h"
#include "tests/support/tiny.h"

namespace lanlm::engine {
namespace {

// This suite's model sizes (tests/support/tiny.h).
constexpr test_support::TinySizes kSizes = {.context = 5};

// Parameters large enough that every nonlinearity matters; norm weights around 1.
std::vector<float> RandomParams(const ModelConfig& c, uint64_t seed, float std) {
  std::vector<float> p(ParameterCount(c));
  InitParameters(c, seed, std, p.data());
  for (const TensorInfo& t : ParameterTensors(c)) {
    if (t.shape.size() != 1) continue;
    for (int64_t i = 0; i < t.size; ++i) {
      p[t.offset + i] = 1.0f + 0.3f * static_cast<float>(CounterRng::Normal(seed + 99, t.offset + i));
    }
  }
  return p;
}

std::vector<int32_t> RandomTokens(const ModelConfig& c, int B, uint64_t seed) {
  std::vector<int32_t> tokens(static_cast<size_t>(B) * (c.context + 1));
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(CounterRng::Below(seed, i, c.vocab_size));
  }
  return tokens;
}

// ---- Independent double-precision reference of the model (straight from DESIGN.md §2). ----
using Mat = std::vector<double>;  // row-major

// y (R, O) = x (R, I) · W(O, I)ᵀ
Mat Linear(const Mat& x, const double* w, int R, int I, int O) {
  Mat y(static_cast<size_t>(R) * O, 0.0);
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) {
      double s = 0.0;
      for (int i = 0; i < I; ++i) s += x[r * I + i] * w[o * I + i];
      y[r * O + o] = s;
    }
  return y;
}

Mat RmsNorm(const Mat& x, const double* weight, int R, int C, double eps) {
  Mat y(x.size());
  for (int r = 0; r < R; ++r) {
    double ss = 0.0;
    for (int i = 0; i < C; ++i) ss += x[r * C + i] * x[r * C + i];
    const double rstd = 1.0 / std::sqrt(ss / C + eps);
    for (int i = 0; i < C; ++i) y[r * C + i] = x[r * C + i] * rstd * weight[i];
  }
  return y;
}

void Rope(Mat& x, int T, int NH, int D, double theta) {
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < NH; ++h)
      for (int i = 0; i < D / 2; ++i) {
        const double angle = t * std::pow(theta, -2.0 * i / D);
        double* p = &x[(t * NH + h) * D + 2 * i];
        const double a = p[0], b = p[1];
        p[0] = a * std::cos(angle) - b * std::sin(angle);
        p[1] = a * std::sin(angle) + b * std::cos(angle);
      }
}

// Mean cross-entropy over B*T positions; logits (B*T, V) written when asked.
double ReferenceLoss(const ModelConfig& c, const std::vector<double>& params, const std::vector<int32_t>& tokens,
                     int B, Mat* all_logits = nullptr) {
  const int T = c.context, C = c.dim, F = c.ffn_hidden, V = c.vocab_size, NH = c.n_heads, D = c.head_dim();
  const std::vector<TensorInfo> info = ParameterTensors(c);
  auto P = [&](const std::string& name) {
    for (const TensorInfo& t : info)
      if (t.name == name) return params.data() + t.offset;
    ADD_FAILURE() << name;
    return params.data();
  };
  double total = 0.0;
  if (all_logits) all_logits->assign(static_cast<size_t>(B) * T * V, 0.0);
  for (int b = 0; b < B; ++b) {
    const int32_t* tok = tokens.data() + b * (T + 1);
    Mat x(static_cast<size_t>(T) * C);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < C; ++i) x[t * C + i] = P("tok_embeddings.weight")[tok[t] * C + i];
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + ".";
      Mat n = RmsNorm(x, P(p + "attention_norm.weight"), T, C, c.norm_eps);
      Mat q = Linear(n, P(p + "attention.wq.weight"), T, C, C);
      Mat k = Linear(n, P(p + "attention.wk.weight"), T, C, C);
      Mat v = Linear(n, P(p + "attention.wv.weight"), T, C, C);
      Rope(q, T, NH, D, c.rope_theta);
      Rope(k, T, NH, D, c.rope_theta);
      Mat att(static_cast<size_t>(T) * C, 0.0);
      for (int h = 0; h < NH; ++h)
        for (int t = 0; t < T; ++t) {
          std::vector<double> s(t + 1);
          double mx = -1e300;
          for (int j = 0; j <= t; ++j) {
            double d = 0.0;
            for (int e = 0; e < D; ++e) d += q[t * C + h * D + e] * k[j * C + h * D + e];
            s[j] = d / std::sqrt(static_cast<double>(D));
            mx = std::max(mx, s[j]);
          }
          double z = 0.0;
          for (int j = 0; j <= t; ++j) z += (s[j] = std::exp(s[j] - mx));
          for (int j = 0; j <= t; ++j)
            for (int e = 0; e < D; ++e) att[t * C + h * D + e] += s[j] / z * v[j * C + h * D + e];
        }
      Mat o = Linear(att, P(p + "attention.wo.weight"), T, C, C);
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
      Mat m = RmsNorm(x, P(p + "ffn_norm.weight"), T, C, c.norm_eps);
      Mat a = Linear(m, P(p + "feed_forward.w1.weight"), T, C, F);
      Mat g = Linear(m, P(p + "feed_forward.w3.weight"), T, C, F);
      for (size_t i = 0; i < g.size(); ++i) g[i] *= a[i] / (1.0 + std::exp(-a[i]));
      Mat f = Linear(g, P(p + "feed_forward.w2.weight"), T, F, C);
      for (size_t i = 0; i < x.size(); ++i) x[i] += f[i];
    }
    Mat xf = RmsNorm(x, P("norm.weight"), T, C, c.norm_eps);
    Mat logits = Linear(xf, P("output.weight"), T, C, V);
    for (int t = 0; t < T; ++t) {
      double mx = -1e300;
      for (int i = 0; i < V; ++i) mx = std::max(mx, logits[t * V + i]);
      double z = 0.0;
      for (int i = 0; i < V; ++i) z += std::exp(logits[t * V + i] - mx);
      total += std::log(z) + mx - logits[t * V + tok[t + 1]];
    }
    if (all_logits) std::copy(logits.begin(), logits.end(), all_logits->begin() + static_cast<size_t>(b) * T * V);
  }
  return total / (B * T);
}

TEST(ModelTest, ForwardMatchesDoubleReference) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const int B = 2;
  const std::vector<float> params = RandomParams(c, 7, 0.4f);
  const std::vector<int32_t> tokens = RandomTokens(c, B, 3);
  ThreadPool pool(1);
  Model model(c, B);
  const float loss = model.Forward(params.data(), tokens.data(), B, pool);
  Mat ref_logits;
  const double ref = ReferenceLoss(c, std::vector<double>(params.begin(), params.end()), tokens, B, &ref_logits);
  EXPECT_NEAR(loss, ref, 2e-6 * std::abs(ref));
  for (size_t i = 0; i < ref_logits.size(); ++i) {
    ASSERT_NEAR(model.logits()[i], ref_logits[i], 1e-5 * (1.0 + std::abs(ref_logits[i]))) << i;
  }
}

TEST(ModelTest, GradientOfEveryTensorMatchesCentralDifferences) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const int B = 2;
  const std::vector<float> params = RandomParams(c, 11, 0.4f);
  const std::vector<int32_t> tokens = RandomTokens(c, B, 5);
  ThreadPool pool(2);
  Model model(c, B);
  std::vector<float> grads(params.size(), 0.0f);
  model.Forward(params.data(), tokens.data(), B, pool);
  model.Backward(params.data(), tokens.data(), B, grads.data(), pool);

  std::vector<double> p(params.begin(), params.end());
  const double h = 1e-4;
  double worst = 0.0;  // largest error as a fraction of its tolerance
  for (const TensorInfo& t : ParameterTensors(c)) {
    // Every element of small tensors, 12 sampled elements of the others.
    std::vector<int64_t> idx;
    if (t.size <= 16) {
      for (int64_t i = 0; i < t.size; ++i) idx.push_back(i);
    } else {
      for (int s = 0; s < 12; ++s) idx.push_back(static_cast<int64_t>(CounterRng::Below(t.offset, s, t.size)));
    }
    double max_abs = 0.0;
    for (int64_t i : idx) {
      const int64_t at = t.offset + i;
      const double saved = p[at];
      p[at] = saved + h;
      const double up = ReferenceLoss(c, p, tokens, B);
      p[at] = saved - h;
      const double down = ReferenceLoss(c, p, tokens, B);
      p[at] = saved;
      const double numeric = (up - down) / (2 * h);
      max_abs = std::max(max_abs, std::abs(numeric));
      // Float backward against a double reference: a few ulps of float over O(1) terms.
      const double tol = 5e-4 * std::abs(numeric) + 5e-6;
      worst = std::max(worst, std::abs(grads[at] - numeric) / tol);
      EXPECT_NEAR(grads[at], numeric, tol) << t.name << "[" << i << "]";
    }
    // The sample must exercise the tensor (tok_embeddings rows of unused tokens are zero).
    EXPECT_GT(max_abs, 1e-4) << t.name;
  }
  RecordProperty("worst_error_over_tolerance", std::to_string(worst));
  std::printf("worst gradient error / tolerance = %.3f\n", worst);
}

TEST(ModelTest, BackwardAccumulatesIntoGrads) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const std::vector<float> params = RandomParams(c, 13, 0.3f);
  const std::vector<int32_t> tokens = RandomTokens(c, 2, 9);
  ThreadPool pool(1);
  Model model(c, 2);
  std::vector<float> once(params.size(), 0.0f), twice(params.size(), 0.0f);
  model.Forward(params.data(), tokens.data(), 2, pool);
  model.Backward(params.data(), tokens.data(), 2, once.data(), pool);
  for (int k = 0; k < 2; ++k) {
    model.Forward(params.data(), tokens.data(), 2, pool);
    model.Backward(params.data(), tokens.data(), 2, twice.data(), pool);
  }
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(twice[i], 2.0f * once[i], 1e-6f + 1e-5f * std::abs(once[i]));
}

TEST(ModelTest, SmallerBatchThanCapacityUsesOnlyItsRows) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const std::vector<float> params = RandomParams(c, 17, 0.3f);
  const std::vector<int32_t> tokens = RandomTokens(c, 3, 19);
  ThreadPool pool(1);
  Model big(c, 3), small(c, 1);
  // The first sequence alone, through a model sized for three.
  EXPECT_EQ(big.Forward(params.data(), tokens.data(), 1, pool), small.Forward(params.data(), tokens.data(), 1, pool));
}

TEST(ModelTest, OneThreadEqualsManyThreadsBitForBit) {
  ModelConfig c;
  c.vocab_size = 96;
  c.dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.ffn_hidden = 72;
  c.context = 24;
  const int B = 3;
  const std::vector<float> params = RandomParams(c, 23, 0.1f);
  const std::vector<int32_t> tokens = RandomTokens(c, B, 29);
  std::vector<float> reference;
  float reference_loss = 0.0f;
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    Model model(c, B);
    std::vector<float> grads(params.size(), 0.0f);
    const float loss = model.Forward(params.data(), tokens.data(), B, pool);
    model.Backward(params.data(), tokens.data(), B, grads.data(), pool);
    if (threads == 1) {
      reference = grads;
      reference_loss = loss;
      continue;
    }
    EXPECT_EQ(loss, reference_loss) << threads;
    EXPECT_EQ(0, std::memcmp(grads.data(), reference.data(), grads.size() * sizeof(float))) << threads;
  }
}

// The streaming hooks (a cluster worker overlapping transfers with compute): the forward pass
// asks for growing prefixes of the block that end with the whole block, the backward pass
// reports disjoint final ranges covering it, last tensors first, and the results are the
// hook-less ones bit for bit; at each report the range already holds its final value.
TEST(ModelTest, StreamHooksSeeForwardPrefixesAndFinalGradientRanges) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const std::vector<float> params = RandomParams(c, 31, 0.3f);
  const std::vector<int32_t> tokens = RandomTokens(c, 2, 37);
  const int64_t n = ParameterCount(c);
  ThreadPool pool(2);
  Model model(c, 2);
  std::vector<float> plain(params.size(), 0.0f), hooked(params.size(), 0.0f);
  const float plain_loss = model.Forward(params.data(), tokens.data(), 2, pool);
  model.Backward(params.data(), tokens.data(), 2, plain.data(), pool);

  std::vector<int64_t> asked;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<float> snapshot(params.size(), 0.0f);
  ModelStreamHooks hooks;
  hooks.params_ready = [&](int64_t end) {
    asked.push_back(end);
    return true;
  };
  hooks.grads_final = [&](int64_t begin, int64_t end) {
    ranges.emplace_back(begin, end);
    std::copy(hooked.begin() + begin, hooked.begin() + end, snapshot.begin() + begin);
  };
  EXPECT_EQ(model.Forward(params.data(), tokens.data(), 2, pool, &hooks), plain_loss);
  model.Backward(params.data(), tokens.data(), 2, hooked.data(), pool, &hooks);
  EXPECT_EQ(0, std::memcmp(plain.data(), hooked.data(), n * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(plain.data(), snapshot.data(), n * sizeof(float)));  // final when reported

  ASSERT_EQ(asked.size(), static_cast<size_t>(c.n_layers + 3));  // embedding, layers, norm, output
  EXPECT_TRUE(std::is_sorted(asked.begin(), asked.end()));
  EXPECT_EQ(asked.back(), n);
  ASSERT_EQ(ranges.size(), static_cast<size_t>(c.n_layers + 3));
  EXPECT_EQ(ranges.front().second, n);  // the classifier first
  EXPECT_EQ(ranges.back().first, 0);    // the embedding last
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_EQ(ranges[i].second, ranges[i - 1].first) << i;
}

TEST(ModelTest, AbandonedForwardStopsAndReturnsNan) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const std::vector<float> params = RandomParams(c, 41, 0.3f);
  const std::vector<int32_t> tokens = RandomTokens(c, 1, 43);
  ThreadPool pool(1);
  Model model(c, 1);
  int calls = 0;
  ModelStreamHooks hooks;
  hooks.params_ready = [&](int64_t) { return ++calls < 2; };  // the first layer never arrives
  const float loss = model.Forward(params.data(), tokens.data(), 1, pool, &hooks);
  EXPECT_EQ(calls, 2);
  uint32_t bits = 0;
  std::memcpy(&bits, &loss, 4);
  EXPECT_EQ(bits & 0x7fc00000u, 0x7fc00000u) << "not a quiet NaN";  // (not std::isnan: -ffast-math)
}

}  // namespace
}  // namespace lanlm::engine
