// SampleToken against the straightforward implementation it replaced (kept here as the
// reference): scalar passes over the vocabulary, exp in double, full sorts. The vectorised one
// must draw the same token and report the same probabilities (to float rounding, since its
// exp is a float polynomial) for every option mix, vocabulary size, tie and non-finite logit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/base/float_bits.h"
#include "engine/base/random.h"
#include "engine/base/thread_pool.h"
#include "engine/generate/sampling.h"

namespace lanlm::engine {
namespace {

constexpr uint64_t kSamplingDomain = 0x73616d706c696e67ull;  // as in sampling.cc

uint32_t FloatBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

// exp(x) for x <= 0, exactly 0 far below the float range (also for x = -inf).
float ExpNonPositive(double x) { return x < -745.0 ? 0.0f : static_cast<float>(std::exp(x)); }

// The support size m: the first m tokens in (weight desc, id asc) order after the top-k cut
// to n tokens and the top-p cut. Leaves sorted[0, m) holding the m largest weights in
// descending order (sorted[m - 1] is the threshold), when there is a cut.
//   w: [vocab] weights; sorted: [vocab] a copy of w, reordered here.
int ReferenceSupportSize(const float* w, float* sorted, int vocab, int n, float top_p) {
  int m = n;
  if (top_p < 1.0f) {
    // Only the candidates need sorting. Without top-k, tokens lighter than
    // tau = (1 - top_p) * total / vocab can never reach the top-p prefix: all of them together
    // weigh less than (1 - top_p) * total, so the heavier ones (which come first) reach top_p.
    int candidates = n;
    double top_k_sum = 0.0;
    if (n == vocab) {
      for (int i = 0; i < vocab; ++i) top_k_sum += w[i];
      const auto tau = static_cast<float>((1.0 - top_p) * top_k_sum / vocab);
      candidates = 0;
      for (int i = 0; i < vocab; ++i) {
        if (w[i] >= tau) sorted[candidates++] = w[i];
      }
      std::sort(sorted, sorted + candidates, std::greater<float>());
    } else {
      std::partial_sort(sorted, sorted + n, sorted + vocab, std::greater<float>());
      for (int j = 0; j < n; ++j) top_k_sum += sorted[j];
    }
    m = candidates;  // also when rounding keeps the sum just short of top_p
    double cumulative = 0.0;
    for (int j = 0; j < candidates; ++j) {
      cumulative += sorted[j];
      if (cumulative >= top_p * top_k_sum) {
        m = j + 1;
        break;
      }
    }
  } else if (n < vocab) {
    std::nth_element(sorted, sorted + (n - 1), sorted + vocab, std::greater<float>());
  }
  return m;
}

SampledToken ReferenceSampleToken(const float* logits, int vocab, const SamplingOptions& options, uint64_t index,
                         std::vector<float>& scratch) {
  LANLM_CHECK(vocab > 0, "SampleToken needs vocab > 0");
  int best = -1;
  double max_logit = 0.0;
  for (int i = 0; i < vocab; ++i) {
    if (IsFiniteBits(logits[i]) && (best < 0 || logits[i] > max_logit)) {
      best = i;
      max_logit = logits[i];
    }
  }
  SampledToken result;
  if (best < 0) return result;  // nothing finite: id 0 (<pad>), probability 0
  // Softmax at temperature 1 (what probability and the confidence rule report).
  double z1 = 0.0;
  for (int i = 0; i < vocab; ++i) {
    if (IsFiniteBits(logits[i])) z1 += std::exp(static_cast<double>(logits[i]) - max_logit);
  }
  auto finish = [&](int id) {
    result.id = id;
    result.probability = static_cast<float>(std::exp(static_cast<double>(logits[id]) - max_logit) / z1);
    result.top_probability = static_cast<float>(1.0 / z1);
    return result;
  };
  const float temperature = IsFiniteBits(options.temperature) ? options.temperature : 0.0f;
  if (!(temperature > 0.0f) || options.top_k == 1) return finish(best);

  // Weights at the temperature, relative to the largest (which gets 1).
  scratch.resize(2 * static_cast<size_t>(vocab));
  float* w = scratch.data();
  float* sorted = w + vocab;
  for (int i = 0; i < vocab; ++i) {
    w[i] = IsFiniteBits(logits[i]) ? ExpNonPositive((static_cast<double>(logits[i]) - max_logit) / temperature) : 0.0f;
    sorted[i] = w[i];
  }
  const int n = options.top_k > 0 && options.top_k < vocab ? options.top_k : vocab;
  const float top_p = IsFiniteBits(options.top_p) && options.top_p > 0.0f ? std::min(options.top_p, 1.0f) : 1.0f;
  const int m = ReferenceSupportSize(w, sorted, vocab, n, top_p);
  // The support is every token whose weight exceeds the m-th largest, plus as many tokens equal
  // to it (lowest ids first) as fill m places.
  const float threshold = m < vocab || top_p < 1.0f ? sorted[m - 1] : 0.0f;
  int equal_slots = m;
  for (int j = 0; j < m; ++j) equal_slots -= sorted[j] > threshold ? 1 : 0;
  if (m == vocab && top_p >= 1.0f) equal_slots = vocab;  // no cut at all
  auto for_each_in_support = [&](auto&& f) {
    int equal_left = equal_slots;
    for (int i = 0; i < vocab; ++i) {
      if (w[i] > threshold || (w[i] == threshold && equal_left-- > 0)) {
        if (!f(i)) return;
      }
    }
  };
  double support_sum = 0.0;
  for_each_in_support([&](int i) {
    support_sum += w[i];
    return true;
  });
  const double target = CounterRng::Uniform(CounterRng::Mix(options.seed, kSamplingDomain), index) * support_sum;
  int chosen = best;
  double cumulative = 0.0;
  for_each_in_support([&](int i) {
    if (w[i] <= 0.0f) return true;
    cumulative += w[i];
    chosen = i;  // also the fallback when rounding leaves target == support_sum
    return !(target < cumulative);
  });
  return finish(chosen);
}


// Random logits: normal with a random spread, some rounded to a coarse grid (ties), some
// non-finite.
std::vector<float> RandomLogits(std::mt19937& rng, int vocab) {
  std::normal_distribution<float> normal(0.0f, 1.0f + static_cast<float>(rng() % 8));
  const bool ties = rng() % 3 == 0, non_finite = rng() % 4 == 0;
  std::vector<float> logits(vocab);
  for (float& l : logits) {
    l = normal(rng);
    if (ties) l = std::round(l * 2.0f) / 2.0f;
  }
  if (non_finite) {
    const float bad[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity()};
    for (int j = 0; j < 1 + vocab / 50; ++j) logits[rng() % vocab] = bad[rng() % 3];
  }
  return logits;
}

TEST(SamplingReferenceTest, DrawsTheReferenceTokenWithItsProbabilities) {
  std::mt19937 rng(2026);
  std::vector<float> scratch, reference_scratch;
  int compared = 0, sampled = 0;
  for (int trial = 0; trial < 400; ++trial) {
    // Sizes around the vector width and the 64-wide blocks, and a real vocabulary.
    const int vocab = std::vector<int>{1, 7, 16, 17, 63, 64, 65, 1000, 4099, 32000}[trial % 10];
    const std::vector<float> logits = RandomLogits(rng, vocab);
    const float temperature = std::vector<float>{0.0f, 0.3f, 0.8f, 1.0f, 2.5f}[rng() % 5];
    const int top_k = std::vector<int>{0, 1, 2, 40, 100, 5000}[rng() % 6];
    const float top_p = std::vector<float>{1.0f, 0.95f, 0.9f, 0.5f, 0.05f}[rng() % 5];
    for (uint64_t index = 0; index < 8; ++index) {
      const SamplingOptions o{temperature, top_k, top_p, static_cast<uint64_t>(trial)};
      const SampledToken fast = SampleToken(logits.data(), vocab, o, index, scratch);
      const SampledToken reference = ReferenceSampleToken(logits.data(), vocab, o, index, reference_scratch);
      ASSERT_EQ(fast.id, reference.id) << "trial " << trial << " vocab " << vocab << " T " << temperature << " k "
                                       << top_k << " p " << top_p << " index " << index;
      EXPECT_NEAR(fast.probability, reference.probability, 2e-6 * reference.probability + 1e-12) << trial;
      EXPECT_NEAR(fast.top_probability, reference.top_probability, 2e-6 * reference.top_probability + 1e-12)
          << trial;
      ++compared;
      sampled += temperature > 0.0f && top_k != 1 ? 1 : 0;
    }
  }
  EXPECT_EQ(compared, 3200);
  EXPECT_GT(sampled, 1500);  // most comparisons went through the sampling path, not greedy
}

// A pool spreads a draw's passes over the vocabulary (argmax by parts, the partition's block
// sums, the weights per block): the same token and the same probabilities, bit for bit, as on
// one thread, for every option mix, with 2 and 3 threads (parts of unequal size), including a
// largest logit repeated in different parts (the first id must win) and no finite logit.
TEST(SamplingReferenceTest, PooledDrawEqualsTheDrawOnOneThreadBitForBit) {
  std::mt19937 rng(1205);
  std::vector<float> scratch, pooled_scratch;
  int spread = 0;
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (int trial = 0; trial < 120; ++trial) {
      // Small sizes run inline; from about 1,400 tokens the passes go to the pool.
      const int vocab = std::vector<int>{1, 65, 1500, 8192, 9001, 32000}[trial % 6];
      std::vector<float> logits = RandomLogits(rng, vocab);
      if (trial % 5 == 1 && vocab > 1) {  // the largest logit twice, in the first and second half
        logits[rng() % (vocab / 2)] = 50.0f;
        logits[vocab / 2 + rng() % (vocab - vocab / 2)] = 50.0f;
      }
      if (trial % 17 == 3) std::fill(logits.begin(), logits.end(), std::numeric_limits<float>::quiet_NaN());
      const float temperature = std::vector<float>{0.0f, 0.8f, 1.0f, 2.5f}[rng() % 4];
      const int top_k = std::vector<int>{0, 1, 40, 5000}[rng() % 4];
      const float top_p = std::vector<float>{1.0f, 0.95f, 0.5f}[rng() % 3];
      for (uint64_t index = 0; index < 4; ++index) {
        const SamplingOptions o{temperature, top_k, top_p, static_cast<uint64_t>(trial)};
        const SampledToken alone = SampleToken(logits.data(), vocab, o, index, scratch);
        const SampledToken pooled = SampleToken(logits.data(), vocab, o, index, pooled_scratch, &pool);
        const std::string where = "threads " + std::to_string(threads) + " trial " + std::to_string(trial) +
                                  " vocab " + std::to_string(vocab) + " index " + std::to_string(index);
        ASSERT_EQ(pooled.id, alone.id) << where;
        ASSERT_EQ(FloatBits(pooled.probability), FloatBits(alone.probability)) << where;
        ASSERT_EQ(FloatBits(pooled.top_probability), FloatBits(alone.top_probability)) << where;
      }
      spread += vocab >= 8192 ? 1 : 0;
    }
  }
  EXPECT_GT(spread, 100);  // most trials ran their passes on the pool
}

}  // namespace
}  // namespace lanlm::engine
