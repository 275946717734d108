// RoPE forward/backward, parallel over rows. The tables are computed in double once per model.
#include "engine/ops/rope.h"

#include <cmath>

#include "engine/base/check.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {

RopeTable MakeRopeTable(int64_t context, int64_t head_dim, float theta) {
  LANLM_CHECK(context > 0 && head_dim > 0 && head_dim % 2 == 0, "rope: context > 0 and even head_dim");
  RopeTable t;
  t.context = context;
  t.head_dim = head_dim;
  const int64_t half = head_dim / 2;
  t.cos.resize(static_cast<size_t>(context * half));
  t.sin.resize(static_cast<size_t>(context * half));
  for (int64_t p = 0; p < context; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double freq = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / head_dim);
      const double angle = static_cast<double>(p) * freq;
      t.cos[p * half + i] = static_cast<float>(std::cos(angle));
      t.sin[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

namespace {

// One row: n_heads heads of D values at position pos.
[[gnu::noipa]] void RotateRow(const float* x, const float* c, const float* s, int64_t n_heads, int64_t D,
                                 float* y) {
  const int64_t half = D / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    const float* xh = x + h * D;
    float* yh = y + h * D;
    for (int64_t i = 0; i < half; ++i) {
      const float x0 = xh[2 * i];
      const float x1 = xh[2 * i + 1];
      yh[2 * i] = x0 * c[i] - x1 * s[i];
      yh[2 * i + 1] = x0 * s[i] + x1 * c[i];
    }
  }
}

// dx += R(-angle) dy for one row; tmp is scratch (D).
[[gnu::noipa]] void UnrotateRow(const float* dy, const float* c, const float* s, int64_t n_heads, int64_t D,
                                   float* tmp, float* dx) {
  const int64_t half = D / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    const float* g = dy + h * D;
    for (int64_t i = 0; i < half; ++i) {
      const float g0 = g[2 * i];
      const float g1 = g[2 * i + 1];
      tmp[2 * i] = g0 * c[i] + g1 * s[i];
      tmp[2 * i + 1] = g1 * c[i] - g0 * s[i];
    }
    simd::AddTo(dx + h * D, tmp, D);
  }
}

}  // namespace

void RopeForward(const float* x, const RopeTable& table, int64_t rows, int64_t seq_len, int64_t pos_offset,
                 int64_t n_heads, float* y, ThreadPool& pool) {
  const int64_t D = table.head_dim;
  const int64_t half = D / 2;
  LANLM_CHECK(pos_offset + (rows < seq_len ? rows : seq_len) <= table.context, "rope: position past context");
  pool.ParallelFor(rows, 6 * n_heads * D, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t pos = pos_offset + r % seq_len;
      const float* c = table.cos.data() + pos * half;
      const float* s = table.sin.data() + pos * half;
      RotateRow(x + r * n_heads * D, c, s, n_heads, D, y + r * n_heads * D);
    }
  });
}

void RopeBackward(const float* dy, const RopeTable& table, int64_t rows, int64_t seq_len, int64_t pos_offset,
                  int64_t n_heads, float* dx, ThreadPool& pool) {
  const int64_t D = table.head_dim;
  const int64_t half = D / 2;
  LANLM_CHECK(pos_offset + (rows < seq_len ? rows : seq_len) <= table.context, "rope: position past context");
  pool.ParallelFor(rows, 8 * n_heads * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* tmp = simd::Scratch(buf, D);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t pos = pos_offset + r % seq_len;
      const float* c = table.cos.data() + pos * half;
      const float* s = table.sin.data() + pos * half;
      UnrotateRow(dy + r * n_heads * D, c, s, n_heads, D, tmp, dx + r * n_heads * D);
    }
  });
}

}  // namespace lanlm::engine
