// Internal to engine/ops: packing fp32 operands into the bf16 pair words that the bf16 GEMM and
// the serving GEMV read (gemm_bf16.h, gemv.h), and the FTZ/DAZ scope of their emulated kernels.
// A block of w lanes (rows of A, columns of B, weight rows of a panel) over a reduction of K becomes
// dst[p][lane] = Bf16Pair(X(lane, 2p), X(lane, 2p + 1)) for p < (K + 1) / 2, with zeros past K
// and for lanes past the valid ones. Every word equals bf16.h's scalar Bf16Pair bit for bit;
// on AVX2 CPUs full runs of 8 words are rounded and packed with vector integer ops (no
// per-element branch), and only the ragged edge (odd K, a run shorter than 8) goes word by word.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace lanlm::engine::gemm_bf16 {

// X(lane, k) = base[lane * s_lane + k * s_k] for lane < valid (<= w) and k < K.
struct PackSource {
  const float* base;
  int64_t s_lane;
  int64_t s_k;
  int valid;
};

// dst (k2 x w words, k2 = (K + 1) / 2) as described above.
void PackPairs(PackSource x, int64_t K, int w, uint32_t* dst);

// The same, word by word with Bf16Pair (the reference the vector path is tested against).
void PackPairsScalar(PackSource x, int64_t K, int w, uint32_t* dst);

// MXCSR flush-to-zero and denormals-are-zero for the scope, as VDPBF16PS always applies them
// (it ignores MXCSR), so the emulated FMAs and the final store agree with it on denormals.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_;
};

}  // namespace lanlm::engine::gemm_bf16
