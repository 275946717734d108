// Batched decoding (Decoder::FeedBatch) in every weight format: each session's logits and KV
// cache equal those of the same session decoded alone with Feed, bit for bit (the batched GEMV
// keeps every output's summation order, gemv_f32.cc / gemv_q8_avx2.cc), for session counts
// that fill the kernel's tiles of three sessions and leave one or two over, whatever the
// thread count; and above the prompt GEMM's row threshold (16), where batched steps still use
// the GEMV.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/base/random.h"
#include "engine/generate/decoder.h"
#include "engine/generate/serving_weights.h"
#include "engine/model/parameters.h"
#include "tests/support/tiny.h"

namespace lanlm::engine {
namespace {

std::vector<float> Params(const ModelConfig& c, uint64_t seed) {
  std::vector<float> p(ParameterCount(c));
  InitParameters(c, seed, 0.2f, p.data());
  return p;
}

int32_t TokenAt(const ModelConfig& c, int session, int position) {
  return static_cast<int32_t>(CounterRng::Below(77, static_cast<uint64_t>(session) * 1000 + position, c.vocab_size));
}

// What a decoding run produced: the logits of every step of every session, then every cache.
struct Run {
  std::vector<float> logits;
  std::vector<float> caches;
};

// Session s first takes a prompt of s % 4 + 1 tokens with Feed (so sessions sit at different
// positions), then `steps` single tokens, batched (FeedBatch over all sessions per step) or
// alone (Feed per session).
Run Decode(const ServingWeights& w, int sessions, int steps, bool batched, int threads) {
  const ModelConfig& c = w.config();
  ThreadPool pool(threads);
  Decoder decoder(c);
  std::vector<KvCache> caches(sessions, KvCache(c));
  std::vector<float> logits(static_cast<size_t>(sessions) * c.vocab_size);
  for (int s = 0; s < sessions; ++s) {
    std::vector<int32_t> prompt;
    for (int i = 0; i < s % 4 + 1; ++i) prompt.push_back(TokenAt(c, s, i));
    EXPECT_TRUE(decoder.Feed(w, prompt.data(), static_cast<int64_t>(prompt.size()), caches[s], logits.data(), pool).ok());
  }
  Run run;
  for (int step = 0; step < steps; ++step) {
    std::vector<int32_t> next;
    std::vector<KvCache*> ptrs;
    for (int s = 0; s < sessions; ++s) {
      next.push_back(TokenAt(c, s, static_cast<int>(caches[s].length)));
      ptrs.push_back(&caches[s]);
    }
    if (batched) {
      EXPECT_TRUE(decoder.FeedBatch(w, ptrs, next.data(), logits.data(), pool).ok());
    } else {
      for (int s = 0; s < sessions; ++s) {
        EXPECT_TRUE(decoder.Feed(w, &next[s], 1, caches[s], logits.data() + s * c.vocab_size, pool).ok());
      }
    }
    run.logits.insert(run.logits.end(), logits.begin(), logits.end());
  }
  for (const KvCache& cache : caches) {
    run.caches.insert(run.caches.end(), cache.k.begin(), cache.k.end());
    run.caches.insert(run.caches.end(), cache.v.begin(), cache.v.end());
  }
  return run;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void ExpectBatchedEqualsAlone(const ModelConfig& c, WeightFormat format, int sessions, int steps) {
  const auto params = Params(c, 31);
  auto w = ServingWeights::Convert(c, params.data(), format);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const std::string where = std::string(WeightFormatName(format)) + " sessions " + std::to_string(sessions);
  const Run alone = Decode(*w, sessions, steps, /*batched=*/false, 1);
  for (int threads : {1, 3}) {
    const Run batched = Decode(*w, sessions, steps, /*batched=*/true, threads);
    EXPECT_TRUE(SameBits(batched.logits, alone.logits)) << where << " threads " << threads;
    EXPECT_TRUE(SameBits(batched.caches, alone.caches)) << where << " threads " << threads;
  }
}

// C = 64 and F = 96 (multiples of 32 for q8); V = 301 leaves a partial block of rows.
ModelConfig Config() { return test_support::TinyConfig({.vocab = 301, .dim = 64, .heads = 4, .ffn = 96, .context = 12}); }

TEST(DecoderBatchTest, EverySessionEqualsItselfDecodedAloneBitForBit) {
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16, WeightFormat::kQ8}) {
    for (int sessions : {2, 3, 4, 5, 7}) ExpectBatchedEqualsAlone(Config(), format, sessions, 4);
  }
}

TEST(DecoderBatchTest, RowsThatAreNotWholeVectorsStillMatch) {
  // C = 40 and F = 52: every row ends in a partial vector (and 40 is not a multiple of the
  // four-vector step), so the kernels' tails run. q8 needs multiples of 32, so fp32 and bf16.
  const ModelConfig c = test_support::TinyConfig({.vocab = 45, .dim = 40, .heads = 4, .ffn = 52, .context = 10});
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16}) ExpectBatchedEqualsAlone(c, format, 5, 3);
}

TEST(DecoderBatchTest, ManySessionsStayOnTheSameArithmetic) {
  // 20 sessions: four tiles of 5 activation rows per panel group.
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBf16, WeightFormat::kQ8}) {
    ExpectBatchedEqualsAlone(Config(), format, 20, 2);
  }
}

}  // namespace
}  // namespace lanlm::engine
