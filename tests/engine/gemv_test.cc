// Decoding GEMV kernels (gemv.h): fp32 and bf16 (native VDPBF16PS and the emulation) equal to
// their plain C++ chain bit for bit and near a double-precision reference, bf16 within its
// rounding of fp32, the panel layouts' round trip, q8 quantization error bounds per group,
// every fast q8 kernel of the build equal to the plain C++ reference bit for bit, q8 weights
// stored offset by 128, and every block slot and batch row computing the same bits.
#include "engine/ops/gemv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/base/random.h"
#include "engine/ops/bf16.h"
#include "engine/ops/matmul.h"

namespace lanlm::engine {
namespace {

std::vector<float> Random(int64_t n, uint64_t seed, float scale) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(2.0 * CounterRng::Uniform(seed, i) - 1.0);
  return v;
}

// Activations (signed int8) or weights in their stored layout (q + 128, uint8).
template <typename T>
struct Q8Of {
  std::vector<T> q;
  std::vector<float> s;
};
template <typename T, void (*kQuantize)(const float*, int64_t, T*, float*)>
Q8Of<T> QuantizeWith(const std::vector<float>& x) {
  Q8Of<T> out{std::vector<T>(x.size()), std::vector<float>(x.size() / kQ8Group)};
  kQuantize(x.data(), static_cast<int64_t>(x.size()), out.q.data(), out.s.data());
  return out;
}
using Q8 = Q8Of<int8_t>;
using Q8W = Q8Of<uint8_t>;
Q8 Quantize(const std::vector<float>& x) { return QuantizeWith<int8_t, QuantizeQ8>(x); }
Q8W QuantizeWeights(const std::vector<float>& w) { return QuantizeWith<uint8_t, QuantizeQ8Weights>(w); }

// fp32 and bf16 matrices in their panel layouts (gemv.h), owning the storage.
struct Paneled {
  AlignedVector<float> f32;
  AlignedVector<uint32_t> bf16;
  WeightMatrix F32(int64_t rows, int64_t cols) const { return {WeightFormat::kF32, rows, cols, f32.data()}; }
  WeightMatrix Bf16(int64_t rows, int64_t cols) const {
    return {WeightFormat::kBf16, rows, cols, nullptr, bf16.data()};
  }
};
Paneled Pack(const std::vector<float>& w, int64_t rows, int64_t cols) {
  Paneled p{AlignedVector<float>(PanelElements(rows, cols), -7.0f),
            AlignedVector<uint32_t>(Bf16PanelWords(rows, cols), 0xdeadbeefu)};
  PackPanels(w.data(), rows, cols, p.f32.data());
  PackPanels(w.data(), rows, cols, p.bf16.data());
  return p;
}

// n activation rows of `cols` values with their bf16 pair words, owning the storage.
struct Input {
  std::vector<float> x;
  AlignedVector<uint32_t> xp;
  int64_t n;
  GemvInput Get() const { return {x.data(), nullptr, nullptr, n, xp.data()}; }
};
Input Activations(std::vector<float> x, int64_t n, int64_t cols) {
  Input in{std::move(x), AlignedVector<uint32_t>(n * ((cols + 1) / 2)), n};
  PackBf16Activations(in.x.data(), n, cols, in.xp.data());
  return in;
}

std::vector<float> RunBlocks(const WeightMatrix& w, const GemvInput& in, bool reference = false);

// A bf16 matrix's y (n, rows) from each bf16 kernel this CPU has: the emulation always, native
// where AVX512_BF16 exists.
std::vector<std::pair<const char*, std::vector<float>>> RunBf16Kernels(const WeightMatrix& w, const GemvInput& in) {
  std::vector<std::pair<const char*, std::vector<float>>> out;
  for (const char* kernel : {"emulated", "native"}) {
    if (SelectBf16Kernel(kernel)) out.emplace_back(kernel, RunBlocks(w, in));
  }
  SelectBf16Kernel("auto");
  return out;
}

// y (n, rows) over all blocks.
std::vector<float> RunBlocks(const WeightMatrix& w, const GemvInput& in, bool reference) {
  std::vector<float> y(in.n * w.rows, -1.0f);
  for (int64_t b = 0; b < w.blocks(); ++b) {
    if (reference) {
      GemvBlockQ8Reference(w, in, b, y.data(), w.rows);
    } else {
      GemvBlock(w, in, b, y.data(), w.rows);
    }
  }
  return y;
}

TEST(GemvTest, Fp32AndBf16MatchDoubleReferenceAndBf16StaysWithinItsRounding) {
  for (int64_t cols : {5, 8, 37, 64, 288}) {
    const int64_t rows = 11, n = 3;
    const auto wf = Random(rows * cols, 1 + cols, 1.0f);
    const Input in = Activations(Random(n * cols, 2 + cols, 1.0f), n, cols);
    const std::vector<float>& x = in.x;
    const Paneled p = Pack(wf, rows, cols);
    const auto y = RunBlocks(p.F32(rows, cols), in.Get());
    for (const auto& [kernel, yb] : RunBf16Kernels(p.Bf16(rows, cols), in.Get())) {
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t o = 0; o < rows; ++o) {
          double want = 0.0, want_rounded = 0.0, mag = 0.0;
          for (int64_t i = 0; i < cols; ++i) {
            const float wi = wf[o * cols + i], xi = x[r * cols + i];
            want += double{wi} * xi;
            want_rounded += double{RoundToBf16(wi)} * RoundToBf16(xi);
            mag += std::abs(double{wi} * xi);
          }
          const size_t at = static_cast<size_t>(r * rows + o);
          // One chain of `cols` roundings: at most cols * 2^-24 of the sum of magnitudes.
          EXPECT_NEAR(y[at], want, static_cast<double>(cols) * 0x1p-24 * mag + 1e-30) << cols << " " << r << " " << o;
          const float chain = GemvReference(&wf[o * cols], &x[r * cols], cols);
          EXPECT_EQ(0, std::memcmp(&y[at], &chain, sizeof(float))) << cols << " " << r << " " << o;
          // bf16: the same chain on the rounded values (products exact), and each rounding of a
          // weight or an activation moves its product by at most 2^-8 of its magnitude.
          EXPECT_NEAR(yb[at], want_rounded, static_cast<double>(cols) * 0x1p-23 * mag + 1e-30) << kernel << " " << cols;
          EXPECT_NEAR(yb[at], want, (0x1p-8 + static_cast<double>(cols) * 0x1p-23) * mag + 1e-30) << kernel << " " << cols;
        }
      }
    }
  }
}

TEST(GemvTest, EachRowGetsTheSameBitsInAnySlotOrBatch) {
  const int64_t rows = 9, cols = 96;
  const auto w = Random(rows * cols, 3, 1.0f);
  const auto x = Random(2 * cols, 4, 1.0f);
  const Q8W wq = QuantizeWeights(w);
  const Q8 xq = Quantize(x);
  const Paneled p = Pack(w, rows, cols);
  const std::vector<float> row5(w.begin() + 5 * cols, w.begin() + 6 * cols);
  const Paneled p5 = Pack(row5, 1, cols);
  for (WeightFormat f : {WeightFormat::kF32, WeightFormat::kQ8}) {
    WeightMatrix m{f, rows, cols, p.f32.data(), nullptr, wq.q.data(), wq.s.data()};
    const auto both = RunBlocks(m, {x.data(), xq.q.data(), xq.s.data(), 2});
    const auto second = RunBlocks(m, {x.data() + cols, xq.q.data() + cols, xq.s.data() + cols / kQ8Group, 1});
    EXPECT_EQ(0, std::memcmp(both.data() + rows, second.data(), rows * sizeof(float)));
    // Row 5 alone (a one-row matrix) equals row 5 inside a block of four.
    WeightMatrix one{f, 1, cols, p5.f32.data(), nullptr, wq.q.data() + 5 * cols,
                     wq.s.data() + 5 * cols / kQ8Group};
    const auto alone = RunBlocks(one, {x.data(), xq.q.data(), xq.s.data(), 1});
    EXPECT_EQ(0, std::memcmp(&alone[0], &both[5], sizeof(float))) << WeightFormatName(f);
  }
}

TEST(GemvTest, Q8QuantizeDequantizeErrorIsAtMostHalfAScalePerGroup) {
  auto x = Random(4 * kQ8Group, 5, 3.0f);
  for (int64_t i = kQ8Group; i < 2 * kQ8Group; ++i) x[i] = 0.0f;  // an all-zero group
  x[2 * kQ8Group + 7] = 1e4f;                                   // an outlier only hurts its group
  const Q8 q = Quantize(x);
  std::vector<float> back(x.size());
  DequantizeQ8(q.q.data(), q.s.data(), static_cast<int64_t>(x.size()), back.data());
  for (int64_t g = 0; g < 4; ++g) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < kQ8Group; ++i) max_abs = std::max(max_abs, std::abs(x[g * kQ8Group + i]));
    EXPECT_FLOAT_EQ(q.s[g], max_abs / 127.0f);
    for (int64_t i = 0; i < kQ8Group; ++i) {
      const int64_t at = g * kQ8Group + i;
      EXPECT_LE(std::abs(back[at] - x[at]), 0.5f * q.s[g] * (1.0f + 1e-6f)) << at;
      EXPECT_GE(q.q[at], -127);
    }
  }
  EXPECT_EQ(back[kQ8Group + 3], 0.0f);
  EXPECT_LE(std::abs(back[3 * kQ8Group + 1] - x[3 * kQ8Group + 1]), 3.0f / 254.0f * (1.0f + 1e-6f));
}

TEST(GemvTest, Q8WeightsAreStoredOffsetBy128) {
  auto w = Random(3 * kQ8Group, 8, 1.0f);
  w[5] = 0.0f;
  const Q8 signed_q = Quantize(w);
  const Q8W stored = QuantizeWeights(w);
  EXPECT_EQ(signed_q.s, stored.s);
  for (size_t i = 0; i < w.size(); ++i) {
    ASSERT_EQ(int32_t{stored.q[i]}, int32_t{signed_q.q[i]} + 128) << i;
    ASSERT_GE(stored.q[i], 1) << i;  // q in [-127, 127]
  }
  std::vector<float> a(w.size()), b(w.size());
  DequantizeQ8(signed_q.q.data(), signed_q.s.data(), static_cast<int64_t>(w.size()), a.data());
  DequantizeQ8Weights(stored.q.data(), stored.s.data(), static_cast<int64_t>(w.size()), b.data());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

// Every q8 kernel this build compiled (the one GemvBlock runs and the narrower ones a build for
// an older -march would run) equals the reference bit for bit: odd and even group counts
// (1, 3, 9, 24), activations at the int8 extremes, and several activation rows.
TEST(GemvTest, FastQ8KernelsEqualReferenceBitForBit) {
  const auto kernels = Q8Kernels();
  if (kernels.empty()) GTEST_SKIP() << "no fast q8 kernel in this build (" << Q8KernelName() << ")";
  for (int64_t cols : {32, 96, 288, 768}) {
    const int64_t rows = 7, n = 3;
    const auto w = Random(rows * cols, 6 + cols, 0.1f);
    auto x = Random(n * cols, 7 + cols, 2.0f);
    x[1] = 4.0f;   // the first group's extremes: +127 and -127 after quantization
    x[2] = -4.0f;
    const Q8W wq = QuantizeWeights(w);
    const Q8 xq = Quantize(x);
    const WeightMatrix m{WeightFormat::kQ8, rows, cols, nullptr, nullptr, wq.q.data(), wq.s.data()};
    const GemvInput in{x.data(), xq.q.data(), xq.s.data(), n};
    const auto ref = RunBlocks(m, in, /*reference=*/true);
    EXPECT_EQ(0, std::memcmp(RunBlocks(m, in).data(), ref.data(), ref.size() * sizeof(float))) << cols;
    for (const Q8Kernel& k : kernels) {
      std::vector<float> y(ref.size(), -1.0f);
      for (int64_t b = 0; b < m.blocks(); ++b) k.fn(m, in, b, y.data(), rows);
      EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), ref.size() * sizeof(float))) << cols << " " << k.name;
    }
    // And the reference is the dot product of the dequantized values (to rounding).
    for (int64_t o = 0; o < rows; ++o) {
      double want = 0.0, mag = 0.0;
      for (int64_t i = 0; i < cols; ++i) {
        const double a = static_cast<double>(int32_t{wq.q[o * cols + i]} - 128) * wq.s[(o * cols + i) / kQ8Group];
        const double b = static_cast<double>(xq.q[i]) * xq.s[i / kQ8Group];
        want += a * b;
        mag += std::abs(a * b);
      }
      EXPECT_NEAR(ref[o], want, 1e-6 * mag) << cols << " " << o;
    }
  }
}

// GemvBlocks on any range of blocks gives GemvBlock's bits (q8: the reference's) for exactly the
// rows of that range: ranges starting on odd blocks, groups of 4, 2 and 1 panels, pairs of whole
// q8 blocks, a partial last block, and more activation rows than one tile holds.
TEST(GemvTest, BlockRangesEqualSingleBlocksBitForBit) {
  const int64_t rows = 71;  // q8: 17 whole blocks and one of 3 rows; panels: 4 whole and one of 7
  for (int64_t cols : {96, 288}) {
    for (int64_t n : {1, 2, 5, 13}) {
      const auto w = Random(rows * cols, 11 + cols, 0.1f);
      const Input xin = Activations(Random(n * cols, 12 + cols, 2.0f), n, cols);
      const Q8W wq = QuantizeWeights(w);
      const Q8 xq = Quantize(xin.x);
      const Paneled p = Pack(w, rows, cols);
      const WeightMatrix mats[3] = {p.F32(rows, cols), p.Bf16(rows, cols),
                                    {WeightFormat::kQ8, rows, cols, nullptr, nullptr, wq.q.data(), wq.s.data()}};
      const GemvInput in{xin.x.data(), xq.q.data(), xq.s.data(), n, xin.xp.data()};
      for (const WeightMatrix& m : mats) {
        const auto want = RunBlocks(m, in, /*reference=*/m.format == WeightFormat::kQ8);
        for (int64_t begin = 0; begin < m.blocks(); ++begin) {
          for (int64_t end = begin + 1; end <= m.blocks(); ++end) {
            std::vector<float> y(n * rows, -1.0f);
            GemvBlocks(m, in, begin, end, y.data(), rows);
            for (int64_t r = 0; r < n; ++r) {
              for (int64_t o = 0; o < rows; ++o) {
                const bool in_range = o >= begin * m.block_rows() && o < end * m.block_rows();
                const float expect = in_range ? want[r * rows + o] : -1.0f;
                ASSERT_EQ(0, std::memcmp(&y[r * rows + o], &expect, sizeof(float)))
                    << WeightFormatName(m.format) << " cols " << cols << " n " << n << " blocks [" << begin << ", "
                    << end << ") row " << r << " out " << o;
              }
            }
          }
        }
      }
    }
  }
}

// Panels hold each value once in its slot, padding rows are zeros, and WidenRows gives any
// row range back: fp32 exactly, bf16 as the rounded values, q8 as the dequantized ones.
TEST(GemvTest, PanelsRoundTripAndPadWithZeros) {
  const int64_t rows = 37, cols = 64;  // 2 whole panels and one of 5 rows
  const auto w = Random(rows * cols, 13, 1.0f);
  const Paneled p = Pack(w, rows, cols);
  ASSERT_EQ(PanelElements(rows, cols), 48 * cols);
  for (int64_t j = 5; j < kPanelRows; ++j) {
    for (int64_t i = 0; i < cols; ++i) ASSERT_EQ(p.f32[(2 * cols + i) * kPanelRows + j], 0.0f) << j << " " << i;
  }
  EXPECT_EQ(p.f32[(1 * cols + 3) * kPanelRows + 4], w[20 * cols + 3]);  // row 20 = panel 1, slot 4
  // bf16: the word of pair 1 (inputs 2 and 3) in row 20's slot; padding rows zero.
  const int64_t pairs = cols / 2;
  ASSERT_EQ(Bf16PanelWords(rows, cols), 48 * pairs);
  EXPECT_EQ(p.bf16[(1 * pairs + 1) * kPanelRows + 4], Bf16Pair(w[20 * cols + 2], w[20 * cols + 3]));
  for (int64_t j = 5; j < kPanelRows; ++j) {
    for (int64_t i = 0; i < pairs; ++i) ASSERT_EQ(p.bf16[(2 * pairs + i) * kPanelRows + j], 0u) << j << " " << i;
  }
  const Q8W wq = QuantizeWeights(w);
  const WeightMatrix q8{WeightFormat::kQ8, rows, cols, nullptr, nullptr, wq.q.data(), wq.s.data()};
  for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {3, 19}, {32, 37}, {16, 17}}) {
    std::vector<float> got(static_cast<size_t>((r1 - r0) * cols));
    WidenRows(p.F32(rows, cols), r0, r1, got.data());
    EXPECT_EQ(0, std::memcmp(got.data(), &w[r0 * cols], got.size() * sizeof(float))) << r0;
    WidenRows(p.Bf16(rows, cols), r0, r1, got.data());
    for (int64_t i = 0; i < (r1 - r0) * cols; ++i) ASSERT_EQ(got[i], RoundToBf16(w[r0 * cols + i]));
    WidenRows(q8, r0, r1, got.data());
    std::vector<float> want(got.size());
    DequantizeQ8Weights(wq.q.data() + r0 * cols, wq.s.data() + r0 * cols / kQ8Group, (r1 - r0) * cols, want.data());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << r0;
  }
}

// Every tile shape the panel kernels have (1, 2 and 4 panels; 1-6 activation rows and their
// remainders) equals its chain bit for bit: fp32 GemvReference, bf16 GemvReferenceBf16 on
// both bf16 kernels: rows that end inside a panel and inputs of any length (odd ones end in a
// half-empty pair).
TEST(GemvTest, PanelKernelsEqualTheirChainBitForBit) {
  for (int64_t rows : {1, 15, 16, 17, 70, 129}) {
    for (int64_t cols : {1, 7, 288}) {
      const auto w = Random(rows * cols, 14 + rows + cols, 1.0f);
      const Paneled p = Pack(w, rows, cols);
      for (int64_t n : {1, 4, 6, 11}) {
        const Input in = Activations(Random(n * cols, 15 + n, 1.0f), n, cols);
        const std::vector<float>& x = in.x;
        const auto yf = RunBlocks(p.F32(rows, cols), in.Get());
        for (const auto& [kernel, yb] : RunBf16Kernels(p.Bf16(rows, cols), in.Get())) {
          for (int64_t r = 0; r < n; ++r) {
            for (int64_t o = 0; o < rows; ++o) {
              const float f = GemvReference(&w[o * cols], &x[r * cols], cols);
              const float b = GemvReferenceBf16(&w[o * cols], &x[r * cols], cols);
              ASSERT_EQ(0, std::memcmp(&yf[r * rows + o], &f, sizeof(float))) << rows << " " << cols << " " << n;
              ASSERT_EQ(0, std::memcmp(&yb[r * rows + o], &b, sizeof(float)))
                  << kernel << " " << rows << " " << cols << " " << n;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lanlm::engine
