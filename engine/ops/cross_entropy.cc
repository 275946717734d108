// Softmax cross-entropy forward/backward, parallel over rows; each row is one call of a
// non-inlined row function (one compiled body, so the bits never depend on the split), and
// every exp goes through simd::Exp (the same code for every element, whatever its address).
#include "engine/ops/cross_entropy.h"

#include <cmath>
#include <vector>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

[[gnu::noipa]] float RowLoss(const float* lr, int32_t target, int64_t vocab) {
  const float m = simd::Max(lr, vocab);
  const float sum = simd::ExpShiftScale(lr, m, 1.0f, vocab, nullptr);
  return m + std::log(sum) - lr[target];
}

// g = scale * (softmax(lr) - onehot(target)) written into g (g may alias lr).
[[gnu::noipa]] void RowGradient(const float* lr, int32_t target, int64_t vocab, float scale, float* g) {
  const float m = simd::Max(lr, vocab);
  const float sum = simd::ExpShiftScale(lr, m, 1.0f, vocab, nullptr);
  simd::ExpShiftScale(lr, m, scale / sum, vocab, g);
  g[target] = g[target] - scale;
}

}  // namespace

float CrossEntropyForward(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                          float* losses, ThreadPool& pool) {
  pool.ParallelFor(rows, 8 * vocab, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) losses[r] = RowLoss(logits + r * vocab, targets[r], vocab);
  });
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += losses[r];
  return rows > 0 ? static_cast<float>(total / static_cast<double>(rows)) : 0.0f;
}

void CrossEntropyBackward(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab, float scale,
                          float* dlogits, ThreadPool& pool) {
  const bool in_place = dlogits == logits;
  pool.ParallelFor(rows, 12 * vocab, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* g = in_place ? nullptr : simd::Scratch(buf, vocab);
    for (int64_t r = begin; r < end; ++r) {
      if (in_place) {
        RowGradient(logits + r * vocab, targets[r], vocab, scale, dlogits + r * vocab);
      } else {
        RowGradient(logits + r * vocab, targets[r], vocab, scale, g);
        simd::AddTo(dlogits + r * vocab, g, vocab);
      }
    }
  });
}

}  // namespace lanlm::engine
