// RoPE: table and forward against a double reference (positions from pos_offset + r % seq_len),
// in-place forward, gradient check, accumulate-twice, and bit-identity across thread counts.
#include "engine/ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

TEST(RopeTest, ForwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const int64_t T = 6, NH = 3, D = 8, seqs = 2, rows = seqs * T, offset = 3;
  const RopeTable table = MakeRopeTable(16, D, 10000.0f);
  const auto x = RandomVector(rows * NH * D, 1);
  std::vector<float> y(x.size());
  RopeForward(x.data(), table, rows, T, offset, NH, y.data(), pool);
  std::vector<double> ref(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double pos = offset + r % T;
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t i = 0; i < D / 2; ++i) {
        const double angle = pos * std::pow(10000.0, -2.0 * i / D);
        const int64_t at = (r * NH + h) * D + 2 * i;
        ref[at] = x[at] * std::cos(angle) - x[at + 1] * std::sin(angle);
        ref[at + 1] = x[at] * std::sin(angle) + x[at + 1] * std::cos(angle);
      }
  }
  EXPECT_LE(op_test::WorstRelativeError(y, ref, 1e-6, 1e-5), 1.0);
  // In place gives the same bits.
  auto inplace = x;
  RopeForward(inplace.data(), table, rows, T, offset, NH, inplace.data(), pool);
  EXPECT_TRUE(op_test::BitEqual(inplace, y));
}

TEST(RopeTest, GradientCheck) {
  ThreadPool pool(1);
  const int64_t T = 4, NH = 2, D = 6, rows = 2 * T;
  const RopeTable table = MakeRopeTable(T, D, 10000.0f);
  auto x = RandomVector(rows * NH * D, 2);
  const auto dy = RandomVector(x.size(), 3);
  std::vector<float> y(x.size());
  auto loss = [&] {
    RopeForward(x.data(), table, rows, T, 0, NH, y.data(), pool);
    return op_test::DotDouble(dy, y);
  };
  std::vector<float> dx(x.size(), 0.0f);
  RopeBackward(dy.data(), table, rows, T, 0, NH, dx.data(), pool);
  op_test::ExpectGradientMatches("dx", x, dx, loss, 1e-2f, 1e-4, 1e-3);
}

TEST(RopeTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const int64_t T = 32, NH = 4, D = 16, rows = 2 * T;
  const RopeTable table = MakeRopeTable(T, D, 10000.0f);
  const auto dy = RandomVector(rows * NH * D, 4);
  std::vector<float> d1(dy.size(), 0.0f), d2(dy.size(), 0.0f);
  RopeBackward(dy.data(), table, rows, T, 0, NH, d1.data(), pool);
  for (int rep = 0; rep < 2; ++rep) RopeBackward(dy.data(), table, rows, T, 0, NH, d2.data(), pool);
  op_test::ExpectTwiceIsDouble("dx", d1, d2);
}

TEST(RopeTest, BitIdenticalAcrossThreadCounts) {
  const int64_t T = 100, NH = 6, D = 48, rows = 3 * T;
  const RopeTable table = MakeRopeTable(T, D, 10000.0f);
  const auto x = RandomVector(rows * NH * D, 5);
  const auto dy = RandomVector(x.size(), 6);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    std::vector<float> y(x.size()), dx(x.size(), 0.0f);
    RopeForward(x.data(), table, rows, T, 0, NH, y.data(), pool);
    RopeBackward(dy.data(), table, rows, T, 0, NH, dx.data(), pool);
    return std::vector<std::vector<float>>{y, dx};
  });
}

}  // namespace
}  // namespace lanlm::engine
