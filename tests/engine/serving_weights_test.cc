// Serving weight formats (serving_weights.h) through the Decoder: each format's decoding
// equals the fp32 training forward on its dequantized weights (bf16: to fp32 rounding, it
// multiplies the widened weights exactly; q8: to the error of quantizing the activations),
// its KV-cached decoding equals its own full-prompt Feed, 1 thread == N threads bit for bit,
// and bad format names or unconvertible models get clear errors.
#include "engine/generate/serving_weights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/generate/decoder.h"
#include "engine/model/model.h"
#include "engine/model/parameters.h"
#include "engine/base/random.h"
#include "tests/engine/feed_chunks.h"
#include "tests/support/tiny.h"

namespace lanlm::engine {
namespace {

ModelConfig Config(int context = 12) {
  return test_support::TinyConfig({.vocab = 50, .dim = 64, .heads = 4, .ffn = 96, .context = context});
}

std::vector<float> Params(const ModelConfig& c, uint64_t seed) {
  std::vector<float> p(ParameterCount(c));
  InitParameters(c, seed, 0.2f, p.data());
  return p;
}

std::vector<int32_t> Tokens(const ModelConfig& c, uint64_t seed) {
  std::vector<int32_t> t(c.context + 1);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(CounterRng::Below(seed, i, c.vocab_size));
  return t;
}

std::vector<float> FullLogits(const ModelConfig& c, const std::vector<float>& params,
                              const std::vector<int32_t>& tokens) {
  ThreadPool pool(1);
  Model model(c, 1);
  model.Forward(params.data(), tokens.data(), 1, pool);
  return std::vector<float>(model.logits(), model.logits() + static_cast<size_t>(c.context) * c.vocab_size);
}

// Largest |got - want| over a row, relative to the row's largest |want|.
float RelativeError(const float* got, const float* want, int n) {
  float scale = 0.0f, err = 0.0f;
  for (int i = 0; i < n; ++i) scale = std::max(scale, std::abs(want[i]));
  for (int i = 0; i < n; ++i) err = std::max(err, std::abs(got[i] - want[i]));
  return err / scale;
}

// Logits after every position, token by token.
std::vector<float> Decode(const ServingWeights& w, const std::vector<int32_t>& tokens, int threads) {
  const ModelConfig& c = w.config();
  ThreadPool pool(threads);
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<float> out(static_cast<size_t>(c.context) * c.vocab_size);
  for (int t = 0; t < c.context; ++t) {
    Status s = decoder.Feed(w, &tokens[t], 1, cache, &out[static_cast<size_t>(t) * c.vocab_size], pool);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return out;
}

TEST(ServingWeightsTest, EachFormatDecodesLikeTheFp32ForwardOnItsDequantizedWeights) {
  const ModelConfig c = Config();
  const auto params = Params(c, 1);
  const auto tokens = Tokens(c, 2);
  // bf16 also rounds every projection's input to bf16 (8 significant bits, as `--precision
  // bf16` training does), and q8 quantizes it to 8 bits per group: in this small random model
  // (weights of std 0.2) that moves logits by up to 3.4% (bf16) and ~6% (q8) of the largest
  // one. Quality on a trained model is measured as perplexity (BENCHMARKS.md).
  for (auto [format, tolerance] : {std::pair{WeightFormat::kF32, 1e-5f}, {WeightFormat::kBf16, 0.06f},
                                   {WeightFormat::kQ8, 0.1f}}) {
    auto w = ServingWeights::Convert(c, params.data(), format);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    const auto full = FullLogits(c, w->Dequantized(), tokens);
    const auto got = Decode(*w, tokens, 2);
    for (int t = 0; t < c.context; ++t) {
      const size_t at = static_cast<size_t>(t) * c.vocab_size;
      EXPECT_LE(RelativeError(&got[at], &full[at], c.vocab_size), tolerance)
          << WeightFormatName(format) << " position " << t;
    }
  }
}

TEST(ServingWeightsTest, PromptsInAnyChunksEqualTokenByTokenAndThreadsAgreeBitForBit) {
  const ModelConfig c = Config(72);  // a 72-token prompt: 12 tiles of 6 rows per panel group
  const auto params = Params(c, 3);
  const auto tokens = Tokens(c, 4);
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16, WeightFormat::kQ8}) {
    auto w = ServingWeights::Convert(c, params.data(), format);
    ASSERT_TRUE(w.ok());
    const auto one = Decode(*w, tokens, 1);
    for (int threads : {2, 3}) {
      const auto many = Decode(*w, tokens, threads);
      EXPECT_EQ(0, std::memcmp(one.data(), many.data(), one.size() * sizeof(float)))
          << WeightFormatName(format) << " threads " << threads;
    }
    // A prompt fed whole, or in chunks of any sizes (attention and projections over many rows),
    // gives token-by-token decoding's logits at each chunk's last position bit for bit: the
    // projections run each row's decoding arithmetic whatever the row count.
    for (const std::vector<int>& chunks : {std::vector<int>{72}, {7, 1, 30, 34}, {1, 70, 1}}) {
      const auto got = test_support_chunks::FeedInChunks(c, *w, tokens.data(), chunks, 3);
      int at = 0;
      for (size_t i = 0; i < chunks.size(); ++i) {
        at += chunks[i];
        const size_t last = static_cast<size_t>(at - 1) * c.vocab_size;
        EXPECT_EQ(0, std::memcmp(got[i].data(), &one[last], c.vocab_size * sizeof(float)))
            << WeightFormatName(format) << " chunk ending at " << at;
      }
    }
  }
}

TEST(ServingWeightsTest, BatchedSessionsEqualSingleSessionDecoding) {
  const ModelConfig c = Config();
  const auto params = Params(c, 5);
  const auto tokens = Tokens(c, 6);
  for (WeightFormat format : {WeightFormat::kBf16, WeightFormat::kQ8}) {
    auto w = ServingWeights::Convert(c, params.data(), format);
    ASSERT_TRUE(w.ok());
    const auto single = Decode(*w, tokens, 1);
    ThreadPool pool(2);
    Decoder decoder(c);
    std::vector<KvCache> caches(3, KvCache(c));
    std::vector<float> logits(3 * c.vocab_size);
    for (int t = 0; t < c.context; ++t) {
      const int32_t next[] = {tokens[t], tokens[t], tokens[t]};
      ASSERT_TRUE(decoder.FeedBatch(*w, {&caches[0], &caches[1], &caches[2]}, next, logits.data(), pool).ok());
      for (int s = 0; s < 3; ++s) {
        EXPECT_EQ(0, std::memcmp(&logits[s * c.vocab_size], &single[static_cast<size_t>(t) * c.vocab_size],
                                 c.vocab_size * sizeof(float)))
            << WeightFormatName(format) << " session " << s << " position " << t;
      }
    }
  }
}

TEST(ServingWeightsTest, BadFormatsAndUnconvertibleModelsGetClearErrors) {
  auto bad = ParseWeightFormat("int4");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "--weights = 'int4' is not one of: fp32, bf16, q8");
  ASSERT_TRUE(ParseWeightFormat("q8").ok());
  EXPECT_EQ(*ParseWeightFormat("bf16"), WeightFormat::kBf16);

  ModelConfig c = Config();
  c.ffn_hidden = 40;  // not a multiple of 32
  auto params = Params(c, 7);
  auto q8 = ServingWeights::Convert(c, params.data(), WeightFormat::kQ8);
  ASSERT_FALSE(q8.ok());
  EXPECT_NE(q8.status().message().find("ffn_hidden = 40"), std::string::npos) << q8.status().message();
  EXPECT_TRUE(ServingWeights::Convert(c, params.data(), WeightFormat::kBf16).ok());

  const ModelConfig good = Config();
  params = Params(good, 8);
  params[ParameterCount(good) - 3] = std::numeric_limits<float>::infinity();  // in output.weight
  auto inf = ServingWeights::Convert(good, params.data(), WeightFormat::kBf16);
  ASSERT_FALSE(inf.ok());
  EXPECT_NE(inf.status().message().find("output.weight"), std::string::npos) << inf.status().message();
}

bool Aligned64(const float* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

TEST(ServingWeightsTest, PanelsAreAlignedWhateverTheBlockAndHoldTheValuesAtConversion) {
  const ModelConfig c = Config();
  const auto values = Params(c, 11);
  const int64_t n = ParameterCount(c);
  AlignedVector<float> aligned(values.begin(), values.end());
  AlignedVector<float> block(n + 1);
  float* shifted = block.data() + 1;  // 4 bytes off a cache line, as a std::vector's data may be
  std::copy(values.begin(), values.end(), shifted);

  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16}) {
    auto a = ServingWeights::Convert(c, aligned.data(), format);
    auto b = ServingWeights::Convert(c, shifted, format);
    ASSERT_TRUE(a.ok() && b.ok());
    for (const ServingWeights* w : {&*a, &*b}) {
      const WeightMatrix& out = w->output();
      EXPECT_TRUE(Aligned64(format == WeightFormat::kF32 ? out.f32 : reinterpret_cast<const float*>(out.bf16)));
      for (const ServingLayer& l : w->layers()) {
        for (const WeightMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3}) {
          EXPECT_TRUE(Aligned64(format == WeightFormat::kF32 ? m->f32 : reinterpret_cast<const float*>(m->bf16)));
        }
      }
    }

    const auto tokens = Tokens(c, 12);
    const auto want = Decode(*a, tokens, 2);
    const auto got = Decode(*b, tokens, 2);
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << WeightFormatName(format);
    // Decoding reads the panels, which hold the values at conversion time.
    std::vector<float> saved(shifted + n - c.vocab_size * c.dim, shifted + n);
    std::fill(shifted + n - c.vocab_size * c.dim, shifted + n, 0.0f);
    const auto again = Decode(*b, tokens, 1);
    EXPECT_EQ(0, std::memcmp(want.data(), again.data(), want.size() * sizeof(float))) << WeightFormatName(format);
    std::copy(saved.begin(), saved.end(), shifted + n - c.vocab_size * c.dim);
  }
}

TEST(ServingWeightsTest, MatrixBytesFollowTheFormat) {
  const ModelConfig c = Config();
  const auto params = Params(c, 9);
  const int64_t n = 2 * (4 * 64 * 64 + 3 * 64 * 96) + 50 * 64;
  const int64_t paneled = n + 14 * 64;  // the 50 output rows take 4 panels of 16
  EXPECT_EQ(ServingWeights::Convert(c, params.data(), WeightFormat::kF32)->MatrixBytes(), 4 * paneled);
  EXPECT_EQ(ServingWeights::Convert(c, params.data(), WeightFormat::kBf16)->MatrixBytes(), 2 * paneled);
  EXPECT_EQ(ServingWeights::Convert(c, params.data(), WeightFormat::kQ8)->MatrixBytes(), n + n / 32 * 4);
}

}  // namespace
}  // namespace lanlm::engine
