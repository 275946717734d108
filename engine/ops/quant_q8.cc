// q8 quantization (groups of kQ8Group int8 values with one fp32 scale, llama2.c runq / GGUF
// Q8_0) and the plain C++ reference q8 GEMV block that fast kernels are tested against.
#include <algorithm>
#include <cmath>

#include "engine/ops/gemv.h"

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

namespace {

// One q8 weight row times one q8 activation row, in the order gemv.h defines.
float DotQ8Reference(const int8_t* w, const float* ws, const int8_t* x, const float* xs, int64_t cols) {
  float lanes[8] = {};
  for (int64_t g = 0; g < cols / kQ8Group; ++g) {
    const float s = ws[g] * xs[g];
    for (int l = 0; l < 8; ++l) {
      int32_t p = 0;
      for (int j = 0; j < 4; ++j) {
        const int64_t i = g * kQ8Group + 4 * l + j;
        p += int32_t{w[i]} * int32_t{x[i]};
      }
      lanes[l] = std::fma(static_cast<float>(p), s, lanes[l]);
    }
  }
  for (int width = 4; width >= 1; width /= 2) {
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

}  // namespace lanlm::engine
