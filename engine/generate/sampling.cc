// Next-token sampling: greedy, or softmax(logits / temperature) cut to the top-k tokens, then to
// the smallest prefix whose probability reaches top_p, drawn with CounterRng(seed, index).
// Order of tokens everywhere: larger weight first, then smaller id (deterministic ties).
// Non-finite logits (NaN, +Inf, -Inf; tested on the bit pattern because of -ffast-math) are
// excluded: such a token has probability 0 and is never chosen. When no logit is finite the
// result is id 0 (<pad>, which ends a generation) with probability 0.
#include "engine/generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "engine/base/float_bits.h"
#include "engine/base/number_text.h"
#include "engine/base/random.h"
#include "engine/generate/vocab_passes.h"
#include "engine/model/model_config.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::VecF;
using simd::VecI;
using vocab::AnyLane;
using vocab::ForEachVector;
using vocab::kBlock;
using vocab::LoadUpTo;
using vocab::SumLanes;
using vocab::VecD;

constexpr float kMaxTemperature = 100.0f;
constexpr uint64_t kSamplingDomain = 0x73616d706c696e67ull;  // "sampling": separates this stream

// Copies the w[i] >= bound, in id order, to out; returns how many. Vectors wholly below the
// bound (most of them) cost one compare.
int CopyAtLeast(const float* w, int n, float bound, float* out) {
  int count = 0;
  int64_t i = 0;
#if defined(__AVX512F__)
  // One compressing store a vector (a flat distribution keeps most of them).
  for (; i + kLanes <= n; i += kLanes) {
    const __m512 v = _mm512_loadu_ps(w + i);
    const __mmask16 in = _mm512_cmp_ps_mask(v, _mm512_set1_ps(bound), _CMP_GE_OQ);
    _mm512_mask_compressstoreu_ps(out + count, in, v);
    count += __builtin_popcount(in);
  }
#endif
  for (; i < n; i += kLanes) {
    if (!AnyLane(LoadUpTo(w + i, n - i) >= simd::Splat(bound))) continue;
    for (int64_t k = i; k < std::min<int64_t>(n, i + kLanes); ++k) {
      if (w[k] >= bound) out[count++] = w[k];
    }
  }
  return count;
}

// sum_i w[i] in double lanes (a fixed order: depends only on the data).
double SumInDouble(const float* w, int n) {
  VecD total{};
  ForEachVector(w, n, [&](int64_t, VecF v, VecI) { total += __builtin_convertvector(v, VecD); });
  return SumLanes(total);
}

// sorted[0, count) = every weight >= the n-th largest (n <= blocks): the n-th largest block
// maximum bounds it from below, since n blocks each hold a weight at least that large.
// Returns count (>= n). block_max is reordered.
int TopCandidates(const float* w, int vocab, float* block_max, int blocks, int n, float* sorted) {
  std::nth_element(block_max, block_max + (n - 1), block_max + blocks, std::greater<float>());
  return CopyAtLeast(w, vocab, block_max[n - 1], sorted);
}

// Puts sorted[0, count) (all >= 0) into descending order only as far as the running sum, in
// that order, reaches `target`; returns that prefix's length m (sorted[0, m) then descends), or
// count when the sum never reaches it. The values go into buckets by their top 16 bits
// (non-negative floats order as their bits; a bucket spans 2^-7 of its values' size), and the
// buckets, from the top, are each sorted only when reached, so the sum adds the same values in
// the same order as a full sort would, at O(count) plus the sorts of the buckets it reaches.
// tmp: [count] scratch.
int SortedPrefixReaching(float* sorted, int count, double target, float* tmp) {
  auto key = [](float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    return bits >> 16;
  };
  uint32_t lo = key(sorted[0]), hi = lo;
  for (int i = 1; i < count; ++i) {
    lo = std::min(lo, key(sorted[i]));
    hi = std::max(hi, key(sorted[i]));
  }
  // Bucket b holds key hi - b; its values go to tmp[start[b], start[b + 1]).
  std::vector<int> start(hi - lo + 2, 0);
  for (int i = 0; i < count; ++i) ++start[hi - key(sorted[i]) + 1];
  for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  std::vector<int> next(start.begin(), start.end() - 1);
  for (int i = 0; i < count; ++i) tmp[next[hi - key(sorted[i])]++] = sorted[i];
  double cumulative = 0.0;
  int m = count;
  for (size_t b = 0; b + 1 < start.size() && m == count; ++b) {
    std::sort(tmp + start[b], tmp + start[b + 1], std::greater<float>());
    for (int j = start[b]; j < start[b + 1]; ++j) {
      cumulative += tmp[j];
      if (cumulative >= target) {
        m = j + 1;
        break;
      }
    }
  }
  std::copy(tmp, tmp + m, sorted);
  return m;
}

// The support size m: the first m tokens in (weight desc, id asc) order after the top-k cut
// to n tokens and the top-p cut. When there is a cut, leaves sorted[0, m) holding the m
// largest weights (in descending order when top_p < 1), sorted[m - 1] the m-th largest: the
// threshold.
//   w: [vocab] weights; block_max: [blocks] their block maxima (reordered here);
//   sorted, tmp: [vocab] scratch.
int SupportSize(const float* w, int vocab, float* block_max, int blocks, int n, float top_p, float* sorted,
                float* tmp) {
  if (n == vocab && top_p >= 1.0f) return vocab;
  if (n == vocab) {
    // Tokens lighter than tau = (1 - top_p) * total / vocab can never reach the top-p prefix:
    // all of them together weigh less than (1 - top_p) * total, so the heavier ones (which
    // come first) reach top_p.
    const double total = SumInDouble(w, vocab);
    const auto tau = static_cast<float>((1.0 - top_p) * total / vocab);
    // At least the largest weight (1 >= tau) is a candidate.
    const int candidates = CopyAtLeast(w, vocab, tau, sorted);
    return SortedPrefixReaching(sorted, candidates, top_p * total, tmp);
  }
  // Top-k: the candidates, then the n largest of them in descending order.
  int count = vocab;
  if (n <= blocks) {
    count = TopCandidates(w, vocab, block_max, blocks, n, sorted);
  } else {
    std::copy(w, w + vocab, sorted);
  }
  if (top_p >= 1.0f) {  // only the n-th largest is needed (the threshold)
    std::nth_element(sorted, sorted + (n - 1), sorted + count, std::greater<float>());
    return n;
  }
  std::partial_sort(sorted, sorted + n, sorted + count, std::greater<float>());
  double top_k_sum = 0.0;
  for (int j = 0; j < n; ++j) top_k_sum += sorted[j];
  double cumulative = 0.0;
  for (int j = 0; j < n; ++j) {  // also when rounding keeps the sum just short of top_p
    cumulative += sorted[j];
    if (cumulative >= top_p * top_k_sum) return j + 1;
  }
  return n;
}

}  // namespace

Status SamplingOptions::Validate() const {
  if (!IsFiniteBits(temperature) || !(temperature >= 0.0f && temperature <= kMaxTemperature)) {
    return InvalidArgumentError("temperature = " + NumberText(temperature) + " is outside [0, " + NumberText(kMaxTemperature) + "]");
  }
  if (top_k < 0) return InvalidArgumentError("top_k = " + std::to_string(top_k) + " is below 0 (0 = no limit)");
  if (top_k > kMaxVocab) {
    return InvalidArgumentError("top_k = " + std::to_string(top_k) +
                                " exceeds kMaxVocab = " + std::to_string(kMaxVocab));
  }
  if (!IsFiniteBits(top_p) || !(top_p > 0.0f && top_p <= 1.0f)) {
    return InvalidArgumentError("top_p = " + NumberText(top_p) + " is outside (0, 1]");
  }
  return OkStatus();
}

SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options, uint64_t index,
                         std::vector<float>& scratch, ThreadPool* pool) {
  LANLM_CHECK(vocab > 0, "SampleToken needs vocab > 0");
  float max_logit = 0.0f;
  const int best = vocab::FiniteArgmaxOn(pool, logits, vocab, max_logit);
  SampledToken result;
  if (best < 0) return result;  // nothing finite: id 0 (<pad>), probability 0
  // Scratch: [3 * vocab] weights, sorted and tmp (sampling only), then [blocks] block maxima,
  // then [blocks * kLanes] block sums.
  const int blocks = (vocab + kBlock - 1) / kBlock;
  const bool sampled = IsFiniteBits(options.temperature) && options.temperature > 0.0f && options.top_k != 1;
  const size_t weights_size = sampled ? 3 * static_cast<size_t>(vocab) : 0;
  scratch.resize(weights_size + static_cast<size_t>(blocks) * (1 + kLanes));
  // Softmax at temperature 1 (what probability and the confidence rule report).
  const double z1 = vocab::Partition(pool, logits, vocab, max_logit, scratch.data() + weights_size + blocks);
  auto finish = [&](int id) {
    result.id = id;
    result.probability =
        static_cast<float>(std::exp(static_cast<double>(logits[id]) - static_cast<double>(max_logit)) / z1);
    result.top_probability = static_cast<float>(1.0 / z1);
    return result;
  };
  if (!sampled) return finish(best);  // greedy

  // Weights at the temperature, relative to the largest (which gets 1).
  const float temperature = options.temperature;
  float* w = scratch.data();
  float* sorted = w + vocab;
  float* tmp = sorted + vocab;
  float* block_max = tmp + vocab;
  vocab::TemperatureWeights(pool, logits, vocab, max_logit, temperature, w, block_max);
  const int n = options.top_k > 0 && options.top_k < vocab ? options.top_k : vocab;
  const float top_p = IsFiniteBits(options.top_p) && options.top_p > 0.0f ? std::min(options.top_p, 1.0f) : 1.0f;
  const int m = SupportSize(w, vocab, block_max, blocks, n, top_p, sorted, tmp);
  // The support is every token whose weight exceeds the m-th largest, plus as many tokens equal
  // to it (lowest ids first) as fill m places.
  const float threshold = m < vocab || top_p < 1.0f ? sorted[m - 1] : 0.0f;
  int equal_slots = m;
  for (int j = 0; j < m; ++j) equal_slots -= sorted[j] > threshold ? 1 : 0;
  if (m == vocab && top_p >= 1.0f) equal_slots = vocab;  // no cut at all
  // Visits the support in id order; whole vectors below the threshold are skipped.
  auto for_each_in_support = [&](auto&& f) {
    int equal_left = equal_slots;
    const VecF bound = simd::Splat(threshold);
    for (int64_t i = 0; i < vocab; i += kLanes) {
      if (!AnyLane(LoadUpTo(w + i, vocab - i) >= bound)) continue;
      for (int64_t k = i; k < std::min<int64_t>(vocab, i + kLanes); ++k) {
        if (w[k] > threshold || (w[k] == threshold && equal_left-- > 0)) {
          if (!f(static_cast<int>(k))) return;
        }
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

}  // namespace lanlm::engine
