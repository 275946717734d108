// Decoder: KV-cached decoding (token by token, in chunks, and batched over sessions) gives
// the logits of the full training forward at every position; errors leave caches unchanged;
// 1 thread == N threads bit for bit.
#include "engine/generate/decoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/model/model.h"
#include "engine/model/parameters.h"
#include "engine/base/random.h"
#include "tests/engine/feed_chunks.h"
#include "tests/support/tiny.h"

namespace lanlm::engine {
namespace {

// This suite's model sizes (tests/support/tiny.h).
constexpr test_support::TinySizes kSizes = {.vocab = 37, .dim = 32, .heads = 4, .ffn = 40, .context = 12};

std::vector<float> Params(const ModelConfig& c, uint64_t seed) {
  std::vector<float> p(ParameterCount(c));
  InitParameters(c, seed, 0.2f, p.data());
  return p;
}

std::vector<int32_t> Tokens(const ModelConfig& c, int B, uint64_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(B) * (c.context + 1));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(CounterRng::Below(seed, i, c.vocab_size));
  return t;
}

// Full-forward logits (B*T, V) of the training model.
std::vector<float> FullLogits(const ModelConfig& c, const std::vector<float>& params,
                              const std::vector<int32_t>& tokens, int B) {
  ThreadPool pool(1);
  Model model(c, B);
  model.Forward(params.data(), tokens.data(), B, pool);
  return std::vector<float>(model.logits(), model.logits() + static_cast<size_t>(B) * c.context * c.vocab_size);
}

void ExpectClose(const float* got, const float* want, int V, const std::string& where) {
  float scale = 0.0f;
  for (int i = 0; i < V; ++i) scale = std::max(scale, std::abs(want[i]));
  for (int i = 0; i < V; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * scale) << where << " vocab " << i;
}

TEST(DecoderTest, TokenByTokenMatchesFullForwardAtEveryPosition) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const auto params = Params(c, 1);
  const auto tokens = Tokens(c, 1, 2);
  const auto full = FullLogits(c, params, tokens, 1);
  ThreadPool pool(2);
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<float> logits(c.vocab_size);
  for (int t = 0; t < c.context; ++t) {
    ASSERT_TRUE(decoder.Feed(params.data(), &tokens[t], 1, cache, logits.data(), pool).ok());
    EXPECT_EQ(cache.length, t + 1);
    ExpectClose(logits.data(), &full[static_cast<size_t>(t) * c.vocab_size], c.vocab_size,
                "position " + std::to_string(t));
  }
}

TEST(DecoderTest, ChunkedPrefillMatchesFullForward) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const auto params = Params(c, 3);
  const auto tokens = Tokens(c, 1, 4);
  const auto full = FullLogits(c, params, tokens, 1);
  for (const std::vector<int>& chunks : {std::vector<int>{12}, {5, 1, 6}, {1, 4, 7}, {3, 3, 3, 3}}) {
    const auto got = test_support_chunks::FeedInChunks(c, params.data(), tokens.data(), chunks, 3);
    int at = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
      at += chunks[i];
      ExpectClose(got[i].data(), &full[static_cast<size_t>(at - 1) * c.vocab_size], c.vocab_size,
                  "chunk ending at " + std::to_string(at));
    }
  }
}

TEST(DecoderTest, FeedBatchMatchesFullForwardForSessionsAtDifferentLengths) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const int S = 3;
  const auto params = Params(c, 5);
  const auto tokens = Tokens(c, S, 6);  // session s decodes row s
  const auto full = FullLogits(c, params, tokens, S);
  const int64_t row = c.context + 1;
  ThreadPool pool(2);
  Decoder decoder(c);
  std::vector<KvCache> caches(S, KvCache(c));
  std::vector<float> logits(static_cast<size_t>(S) * c.vocab_size);
  // Prefill 0, 2 and 4 tokens so sessions sit at different positions.
  for (int s = 1; s < S; ++s) {
    ASSERT_TRUE(decoder.Feed(params.data(), &tokens[s * row], 2 * s, caches[s], logits.data(), pool).ok());
  }
  for (int step = 0; step < c.context - 2 * (S - 1); ++step) {
    std::vector<KvCache*> ptrs;
    std::vector<int32_t> next;
    for (int s = 0; s < S; ++s) {
      ptrs.push_back(&caches[s]);
      next.push_back(tokens[s * row + caches[s].length]);
    }
    ASSERT_TRUE(decoder.FeedBatch(params.data(), ptrs, next.data(), logits.data(), pool).ok());
    for (int s = 0; s < S; ++s) {
      const int64_t pos = caches[s].length - 1;
      ExpectClose(&logits[static_cast<size_t>(s) * c.vocab_size],
                  &full[(static_cast<size_t>(s) * c.context + pos) * c.vocab_size], c.vocab_size,
                  "session " + std::to_string(s) + " position " + std::to_string(pos));
    }
  }
}

TEST(DecoderTest, ErrorsLeaveCachesUnchanged) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const auto params = Params(c, 7);
  const auto tokens = Tokens(c, 1, 8);
  ThreadPool pool(1);
  Decoder decoder(c);
  KvCache cache(c), other(c);
  std::vector<float> logits(2 * c.vocab_size);
  ASSERT_TRUE(decoder.Feed(params.data(), tokens.data(), c.context - 1, cache, logits.data(), pool).ok());
  const std::vector<float> k_before = cache.k;

  Status s = decoder.Feed(params.data(), tokens.data(), 2, cache, logits.data(), pool);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
  EXPECT_NE(s.message().find("context = 12"), std::string::npos) << s.message();
  const int32_t bad[] = {3, c.vocab_size};
  EXPECT_EQ(decoder.Feed(params.data(), bad, 2, other, logits.data(), pool).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decoder.Feed(params.data(), bad, 0, other, logits.data(), pool).code(), StatusCode::kInvalidArgument);
  const int32_t negative = -1;
  EXPECT_EQ(decoder.Feed(params.data(), &negative, 1, other, logits.data(), pool).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.length, c.context - 1);
  EXPECT_EQ(0, std::memcmp(cache.k.data(), k_before.data(), cache.k.size() * sizeof(float)));

  // FeedBatch: a full cache, a bad token or a shared cache anywhere rejects the whole batch.
  ASSERT_TRUE(decoder.Feed(params.data(), tokens.data(), 1, cache, logits.data(), pool).ok());  // now full
  const std::vector<float> k_full = cache.k, v_full = cache.v;
  const int32_t two[] = {1, 2};
  EXPECT_EQ(decoder.FeedBatch(params.data(), {&other, &cache}, two, logits.data(), pool).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(decoder.FeedBatch(params.data(), {&other, &other}, two, logits.data(), pool).code(),
            StatusCode::kInvalidArgument);
  KvCache fresh(c);
  EXPECT_EQ(decoder.FeedBatch(params.data(), {&other, &fresh}, bad, logits.data(), pool).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(other.length, 0);
  EXPECT_EQ(fresh.length, 0);
  EXPECT_EQ(cache.length, c.context);
  EXPECT_EQ(0, std::memcmp(cache.k.data(), k_full.data(), cache.k.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(cache.v.data(), v_full.data(), cache.v.size() * sizeof(float)));
}

// Weights converted for another config are refused, naming both, whichever shape differs.
TEST(DecoderTest, WeightsOfAnotherConfigAreRefused) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  ThreadPool pool(1);
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<float> logits(c.vocab_size);
  const int32_t token = 1;
  for (int field = 0; field < 6; ++field) {
    ModelConfig other = c;
    int* shapes[] = {&other.vocab_size, &other.dim, &other.n_layers, &other.n_heads, &other.ffn_hidden, &other.context};
    *shapes[field] *= 2;
    const auto params = Params(other, 3);
    auto weights = ServingWeights::Convert(other, params.data(), WeightFormat::kF32);
    ASSERT_TRUE(weights.ok()) << weights.status().ToString();
    const Status s = decoder.Feed(*weights, &token, 1, cache, logits.data(), pool);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "field " << field;
    EXPECT_NE(s.message().find(other.ToString()), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(c.ToString()), std::string::npos) << s.message();
    EXPECT_EQ(cache.length, 0);
  }
}

// The cache is 2 * L * T * C floats whatever its layout (the coordinator's admission control
// counts SessionKvBytes with that formula), and a step writes only its own position: keys
// (held transposed) and values of later positions stay zero.
TEST(DecoderTest, CacheSizeIsTwoLTCFloatsAndStepsWriteOnlyTheirPosition) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const auto params = Params(c, 11);
  const auto tokens = Tokens(c, 2, 12);
  KvCache cache(c), other(c);
  EXPECT_EQ(cache.MemoryBytes(),
            2 * static_cast<int64_t>(c.n_layers) * c.context * c.dim * static_cast<int64_t>(sizeof(float)));
  ThreadPool pool(2);
  Decoder decoder(c);
  std::vector<float> logits(2 * c.vocab_size);
  ASSERT_TRUE(decoder.Feed(params.data(), tokens.data(), 3, cache, logits.data(), pool).ok());  // a prompt
  ASSERT_TRUE(decoder.Feed(params.data(), &tokens[3], 1, cache, logits.data(), pool).ok());     // one token
  ASSERT_TRUE(decoder.Feed(params.data(), &tokens[c.context + 1], 2, other, logits.data(), pool).ok());
  const int32_t next[] = {tokens[4], tokens[c.context + 3]};
  ASSERT_TRUE(decoder.FeedBatch(params.data(), {&cache, &other}, next, logits.data(), pool).ok());  // a batch
  for (const KvCache* kv : {&cache, &other}) {
    for (int64_t l = 0; l < c.n_layers; ++l) {
      for (int64_t pos = 0; pos < c.context; ++pos) {
        int64_t nonzero = 0;
        for (int64_t e = 0; e < c.dim; ++e) {
          nonzero += kv->Key(l, pos, e) != 0.0f;
          nonzero += kv->v[(l * c.context + pos) * c.dim + e] != 0.0f;
        }
        if (pos < kv->length) {
          EXPECT_GT(nonzero, c.dim) << "layer " << l << " position " << pos;
        } else {
          EXPECT_EQ(nonzero, 0) << "layer " << l << " position " << pos;
        }
      }
    }
  }
}

TEST(DecoderTest, OneThreadEqualsManyThreadsBitForBit) {
  ModelConfig c = test_support::TinyConfig(kSizes);
  c.dim = 64;
  c.ffn_hidden = 96;
  c.vocab_size = 300;
  const auto params = Params(c, 9);
  const auto tokens = Tokens(c, 2, 10);
  std::vector<float> reference;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    Decoder decoder(c);
    KvCache a(c), b(c);
    std::vector<float> out;
    std::vector<float> logits(2 * c.vocab_size);
    ASSERT_TRUE(decoder.Feed(params.data(), tokens.data(), 7, a, logits.data(), pool).ok());
    out.insert(out.end(), logits.begin(), logits.begin() + c.vocab_size);
    ASSERT_TRUE(decoder.Feed(params.data(), &tokens[7], 1, a, logits.data(), pool).ok());
    out.insert(out.end(), logits.begin(), logits.begin() + c.vocab_size);
    ASSERT_TRUE(decoder.Feed(params.data(), &tokens[c.context + 1], 1, b, logits.data(), pool).ok());
    const int32_t next[] = {tokens[8], tokens[c.context + 2]};
    ASSERT_TRUE(decoder.FeedBatch(params.data(), {&a, &b}, next, logits.data(), pool).ok());
    out.insert(out.end(), logits.begin(), logits.end());
    if (threads == 1) {
      reference = out;
    } else {
      EXPECT_EQ(0, std::memcmp(out.data(), reference.data(), out.size() * sizeof(float))) << threads;
    }
  }
}

}  // namespace
}  // namespace lanlm::engine
