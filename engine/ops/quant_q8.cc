// q8 quantization (groups of kQ8Group int8 values with one fp32 scale, llama2.c runq / GGUF
// Q8_0), the plain C++ reference q8 GEMV block that fast kernels are tested against, and the
// choice of this build's fast kernel.
#include <algorithm>
#include <cmath>

#include "engine/ops/gemv.h"
#include "engine/ops/gemv_q8_kernels.h"

namespace lanlm::engine {

void QuantizeQ8(const float* x, int64_t n, int8_t* q, float* scale) {
  for (int64_t g = 0; g < n / kQ8Group; ++g) {
    const float* xg = x + g * kQ8Group;
    float max_abs = 0.0f;
    for (int64_t i = 0; i < kQ8Group; ++i) max_abs = std::max(max_abs, std::abs(xg[i]));
    const float s = max_abs / 127.0f;
    scale[g] = s;
    for (int64_t i = 0; i < kQ8Group; ++i) {
      const float v = s > 0.0f ? std::round(xg[i] / s) : 0.0f;
      q[g * kQ8Group + i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void DequantizeQ8(const int8_t* q, const float* scale, int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(q[i]) * scale[i / kQ8Group];
}

void QuantizeQ8Weights(const float* w, int64_t n, uint8_t* q, float* scale) {
  constexpr int64_t kChunk = 4096;  // a multiple of kQ8Group, quantized through a small buffer
  int8_t signed_q[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = std::min(kChunk, n - i0);
    QuantizeQ8(w + i0, m, signed_q, scale + i0 / kQ8Group);
    for (int64_t i = 0; i < m; ++i) q[i0 + i] = static_cast<uint8_t>(signed_q[i] + kQ8WeightOffset);
  }
}

void DequantizeQ8Weights(const uint8_t* q, const float* scale, int64_t n, float* w) {
  for (int64_t i = 0; i < n; ++i) {
    w[i] = static_cast<float>(int32_t{q[i]} - kQ8WeightOffset) * scale[i / kQ8Group];
  }
}

namespace {

// One q8 weight row (stored q + 128) times one q8 activation row, in the order gemv.h defines.
float DotQ8Reference(const uint8_t* w, const float* ws, const int8_t* x, const float* xs, int64_t cols) {
  float lanes[16] = {};
  for (int64_t g = 0; g < cols / kQ8Group; ++g) {
    const float s = ws[g] * xs[g];
    for (int l = 0; l < 8; ++l) {
      int32_t p = 0;
      for (int j = 0; j < 4; ++j) {
        const int64_t i = g * kQ8Group + 4 * l + j;
        p += (int32_t{w[i]} - kQ8WeightOffset) * int32_t{x[i]};
      }
      float& lane = lanes[8 * (g % 2) + l];
      lane = std::fma(static_cast<float>(p), s, lane);
    }
  }
  for (int width = 8; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  }
  return lanes[0];
}

}  // namespace

void GemvBlockQ8Reference(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  const int64_t groups = w.cols / kQ8Group;
  const int64_t end = std::min(w.rows, (block + 1) * kGemvRows);
  for (int64_t r = 0; r < x.n; ++r) {
    for (int64_t o = block * kGemvRows; o < end; ++o) {
      y[r * ldy + o] = DotQ8Reference(w.q8 + o * w.cols, w.scale + o * groups, x.xq + r * w.cols, x.xs + r * groups,
                                      w.cols);
    }
  }
}

std::vector<Q8Kernel> Q8Kernels() {
  std::vector<Q8Kernel> kernels;
#if defined(LANLM_Q8_AVX512)
  kernels.push_back({"avx512-vnni", q8_internal::GemvBlockAvx512});
#endif
#if defined(LANLM_Q8_AVX2)
  kernels.push_back({q8_internal::Avx2Name(), q8_internal::GemvBlockAvx2});
#endif
  return kernels;
}

const char* Q8KernelName() {
#if defined(LANLM_Q8_AVX512) && defined(LANLM_Q8_AVX2)
  return "avx512-vnni,avx2-vnni-at-batch-1";
#elif defined(LANLM_Q8_AVX512)
  return "avx512-vnni";
#elif defined(LANLM_Q8_AVX2)
  return q8_internal::Avx2Name();
#else
  return "generic";
#endif
}

// One activation row (batch 1) streams the weights from memory once per token: there the
// 256-bit kernel measured faster (lanlm-bench INF15M q8, 1 thread: the 512-bit kernel at
// 0.5-0.75x, its 64-byte loads of rows 288 bytes apart span two cache lines every other row).
// Several rows (batched decoding) reuse the block from L1, where the 512-bit kernel's fewer
// instructions per weight pay. Both equal the reference bit for bit, so a session's logits
// are the same batched or alone.
void GemvBlockQ8(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
#if defined(LANLM_Q8_AVX512) && defined(LANLM_Q8_AVX2)
  if (x.n == 1) {
    q8_internal::GemvBlockAvx2(w, x, block, y, ldy);
  } else {
    q8_internal::GemvBlockAvx512(w, x, block, y, ldy);
  }
#elif defined(LANLM_Q8_AVX512)
  q8_internal::GemvBlockAvx512(w, x, block, y, ldy);
#elif defined(LANLM_Q8_AVX2)
  q8_internal::GemvBlockAvx2(w, x, block, y, ldy);
#else
  GemvBlockQ8Reference(w, x, block, y, ldy);
#endif
}

void GemvBlocksQ8(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy) {
#if defined(LANLM_Q8_AVX512)
  if (x.n > 1) {
    q8_internal::GemvBlocksAvx512(w, x, begin, end, y, ldy);
    return;
  }
#endif
  for (int64_t b = begin; b < end; ++b) GemvBlockQ8(w, x, b, y, ldy);
}

}  // namespace lanlm::engine
