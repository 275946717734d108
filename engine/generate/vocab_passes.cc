// The pooled vocabulary passes: see vocab_passes.h.
#include "engine/generate/vocab_passes.h"

#include <algorithm>
#include <limits>

#include "engine/base/float_bits.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine::vocab {
namespace {

// The largest finite logit of x[0, n) and its first id; -1 when no logit is finite.
int FiniteArgmax(const float* x, int n, float& max) {
  VecF m = simd::Splat(-std::numeric_limits<float>::max());
  VecI seen{};
  ForEachVector(x, n, [&](int64_t, VecF v, VecI finite) {
    seen |= finite;
    m = simd::Select(finite & (v > m), v, m);
  });
  if (!AnyLane(seen)) return -1;
  max = ReduceMax(m);
  int first = -1;
  for (int64_t i = 0; i < n && first < 0; i += kLanes) {  // the vector holding it, then its lane
    const int64_t end = std::min<int64_t>(n, i + kLanes);
    if (!AnyLane(LoadUpTo(x + i, end - i) == simd::Splat(max))) continue;
    for (int64_t k = i; k < end && first < 0; ++k) {
      if (IsFiniteBits(x[k]) && x[k] == max) first = static_cast<int>(k);
    }
  }
  return first;
}

// At most this many parts of the vocabulary are searched for the argmax at once.
constexpr int kMaxParts = 64;

// fn(begin, end) over the blocks [0, blocks) of kBlock logits: on the pool, or on this thread
// when pool is null. cost: rough flops per block (ThreadPool's inline rule).
template <typename Fn>
void ForBlocks(ThreadPool* pool, int64_t blocks, int64_t cost, Fn&& fn) {
  if (pool == nullptr) {
    fn(int64_t{0}, blocks);
  } else {
    pool->ParallelForAffine(blocks, cost, fn);
  }
}

// e^((x[i] - max) / temperature) per lane: 0 for non-finite logits and below e^-87 (where the
// float result would be denormal, flushed to 0 under -ffast-math anyway). simd::Exp's relative
// error is about 2e-7, against a double exp rounded to float before.
VecF Weights(VecF v, VecI finite, float max, float inv_temperature) {
  const VecF x = (v - simd::Splat(max)) * inv_temperature;  // <= 0; -inf where it overflows
  return simd::Select(finite & (x >= simd::Splat(-87.0f)), simd::Exp(x), VecF{});
}

// w[i] = the weight of token i at the temperature (largest 1) for the block of kBlock tokens
// starting at b; block_max[b / kBlock] = the largest of them.
void TemperatureBlock(const float* x, int n, int64_t b, float max, float inv, float* w, float* block_max) {
  const int64_t len = std::min<int64_t>(kBlock, n - b);
  VecF m{};
  ForEachVector(x + b, len, [&](int64_t i, VecF v, VecI finite) {
    const VecF e = Weights(v, finite, max, inv);
    if (i + kLanes <= len) {
      simd::StoreU(w + b + i, e);
    } else {
      simd::StorePartial(w + b + i, e, len - i);
    }
    m = simd::Select(e > m, e, m);
  });
  block_max[b / kBlock] = ReduceMax(m);
}

}  // namespace

int FiniteArgmaxOn(ThreadPool* pool, const float* x, int n, float& max) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int parts = pool == nullptr ? 1 : static_cast<int>(std::min<int64_t>({pool->size(), kMaxParts, blocks}));
  if (parts <= 1) return FiniteArgmax(x, n, max);
  float part_max[kMaxParts];
  int part_first[kMaxParts];
  auto edge = [&](int64_t p) { return std::min<int64_t>(n, blocks * p / parts * kBlock); };
  pool->ParallelForAffine(parts, 4 * (n / parts), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int first = FiniteArgmax(x + edge(p), static_cast<int>(edge(p + 1) - edge(p)), part_max[p]);
      part_first[p] = first < 0 ? -1 : static_cast<int>(edge(p)) + first;
    }
  });
  int best = -1;
  for (int p = 0; p < parts; ++p) {
    if (part_first[p] >= 0 && (best < 0 || part_max[p] > max)) {
      best = part_first[p];
      max = part_max[p];
    }
  }
  return best;
}

double Partition(ThreadPool* pool, const float* x, int n, float max, float* block_sums) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  ForBlocks(pool, blocks, 24 * kBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      VecF acc{};
      ForEachVector(x + b * kBlock, std::min<int64_t>(kBlock, n - b * kBlock),
                    [&](int64_t, VecF v, VecI finite) { acc += Weights(v, finite, max, 1.0f); });
      simd::StoreU(block_sums + b * kLanes, acc);
    }
  });
  VecD total{};
  for (int64_t b = 0; b < blocks; ++b) total += __builtin_convertvector(simd::LoadU(block_sums + b * kLanes), VecD);
  return SumLanes(total);
}

// Each block's values depend only on it, so the pool may split the blocks any way.
void TemperatureWeights(ThreadPool* pool, const float* x, int n, float max, float temperature, float* w,
                        float* block_max) {
  const float inv = 1.0f / std::max(temperature, kMinTemperature);
  ForBlocks(pool, (n + kBlock - 1) / kBlock, 24 * kBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) TemperatureBlock(x, n, b * kBlock, max, inv, w, block_max);
  });
}

}  // namespace lanlm::engine::vocab
