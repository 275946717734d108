// Vector passes over a vocabulary's logits, shared by the token draw (sampling.cc): the finite
// argmax, the softmax partition and the weights at a temperature, each on the pool or on this
// thread with the same result bit for bit (contiguous parts and per-block sums, combined in a
// fixed order), plus the lane helpers they and the draw's own passes use.
// Non-finite logits (NaN, +Inf, -Inf) are tested on the bit pattern (-ffast-math) and excluded.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/ops/simd.h"

namespace lanlm::engine {
class ThreadPool;
}

namespace lanlm::engine::vocab {

using simd::kLanes;
using simd::VecF;
using simd::VecI;
typedef double VecD __attribute__((vector_size(kLanes * sizeof(double))));

// The passes work on blocks of this many logits (top-k also looks for its candidates through
// the blocks' maxima).
constexpr int kBlock = 64;
// The smallest temperature used in arithmetic: 1 / it stays finite, so (l - max) / T never
// meets 0 * inf (smaller temperatures are greedy in effect: every other weight is 0).
constexpr float kMinTemperature = 1e-30f;

// fn(i, v, finite) for the vectors of x[0, n) from i = 0 in steps of kLanes: v holds
// x[i, i + kLanes) (zeros past n), finite the lanes inside [0, n) holding a finite value
// (tested on the bits). Whole vectors first, then the tail, so the loop has one path and its
// accumulators stay in registers.
template <typename Fn>
[[gnu::always_inline]] inline void ForEachVector(const float* x, int64_t n, Fn&& fn) {
  auto finite_lanes = [](VecF v) {
    VecI bits;
    std::memcpy(&bits, &v, sizeof(bits));
    return VecI((bits & 0x7f800000) != 0x7f800000);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const VecF v = simd::LoadU(x + i);
    fn(i, v, finite_lanes(v));
  }
  if (i < n) {
    const VecF v = simd::LoadPartial(x + i, n - i);
    fn(i, v, VecI(finite_lanes(v) & simd::LaneMask(n - i)));
  }
}
inline VecF LoadUpTo(const float* p, int64_t n) { return n >= kLanes ? simd::LoadU(p) : simd::LoadPartial(p, n); }
inline bool AnyLane(VecI mask) {  // one test instruction, not kLanes extractions
  uint64_t words[sizeof(VecI) / sizeof(uint64_t)];
  std::memcpy(words, &mask, sizeof(words));
  uint64_t any = 0;
  for (uint64_t word : words) any |= word;
  return any != 0;
}

// The largest lane. Through an array: subscripting the vector itself made GCC keep it in
// memory inside the loop that built it (a store-forwarding chain, 40 cycles a vector).
inline float ReduceMax(VecF v) {
  float lanes[kLanes];
  simd::StoreU(lanes, v);
  float m = lanes[0];
  for (int j = 1; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  return m;
}

// The lanes' sum, in lane order.
inline double SumLanes(const VecD& v) {  // by reference: no 128-byte vector in the call ABI
  double lanes[kLanes];
  std::memcpy(lanes, &v, sizeof(lanes));
  double sum = 0.0;
  for (double lane : lanes) sum += lane;
  return sum;
}

// The largest finite logit of x[0, n) and its first id (max set); -1 when no logit is finite.
// With a pool, contiguous parts are searched on it: the largest of the parts' maxima, first in
// id order on ties, is the same logit and id whatever the parts.
int FiniteArgmaxOn(ThreadPool* pool, const float* x, int n, float& max);

// sum_i e^(x[i] - max) over the finite logits (softmax's denominator at temperature 1): in
// float lanes within blocks of kBlock logits (on the pool when not null; block_sums:
// [blocks * kLanes]), widened to double lanes across blocks in block order (a fixed order: the
// sum depends only on the data, not on the threads).
double Partition(ThreadPool* pool, const float* x, int n, float max, float* block_sums);

// w[i] = e^((x[i] - max) / temperature) (0 for non-finite logits; the largest weight is 1) and
// block_max[b] = the largest of block b's kBlock weights, for every block (on the pool when
// not null). w: [n]; block_max: [blocks].
void TemperatureWeights(ThreadPool* pool, const float* x, int n, float max, float temperature, float* w,
                        float* block_max);

}  // namespace lanlm::engine::vocab
