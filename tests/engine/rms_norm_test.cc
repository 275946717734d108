// RMSNorm: forward against a double reference, gradient check of x and weight,
// accumulate-twice, and bit-identity across thread counts.
#include "engine/ops/rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;
constexpr float kEps = 1e-5f;

TEST(RmsNormTest, ForwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const int64_t rows = 13, dim = 37;
  const auto x = RandomVector(rows * dim, 1, -2.0f, 2.0f);
  const auto w = RandomVector(dim, 2, 0.5f, 1.5f);
  std::vector<float> y(x.size()), rstd(rows);
  RmsNormForward(x.data(), w.data(), rows, dim, kEps, y.data(), rstd.data(), pool);
  std::vector<double> ref(x.size()), ref_rstd(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    ref_rstd[r] = 1.0 / std::sqrt(ss / dim + kEps);
    for (int64_t i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] * ref_rstd[r] * w[i];
  }
  EXPECT_LE(op_test::WorstRelativeError(y, ref, 1e-6, 1e-5), 1.0);
  EXPECT_LE(op_test::WorstRelativeError(rstd, ref_rstd, 0.0, 1e-5), 1.0);
}

TEST(RmsNormTest, GradientCheck) {
  ThreadPool pool(1);
  const int64_t rows = 5, dim = 19;
  auto x = RandomVector(rows * dim, 3, -2.0f, 2.0f);
  auto w = RandomVector(dim, 4, 0.5f, 1.5f);
  const auto dy = RandomVector(rows * dim, 5);
  std::vector<float> y(x.size()), rstd(rows);
  auto loss = [&] {
    RmsNormForward(x.data(), w.data(), rows, dim, kEps, y.data(), rstd.data(), pool);
    return op_test::DotDouble(dy, y);
  };
  loss();
  std::vector<float> dx(x.size(), 0.0f), dw(dim, 0.0f);
  RmsNormBackward(dy.data(), x.data(), w.data(), rstd.data(), rows, dim, dx.data(), dw.data(), pool);
  op_test::ExpectGradientMatches("dx", x, dx, loss, 1e-2f, 2e-4, 2e-3);
  op_test::ExpectGradientMatches("dweight", w, dw, loss, 1e-2f, 2e-4, 2e-3);
}

TEST(RmsNormTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const int64_t rows = 40, dim = 150;
  const auto x = RandomVector(rows * dim, 6);
  const auto w = RandomVector(dim, 7);
  const auto dy = RandomVector(rows * dim, 8);
  std::vector<float> y(x.size()), rstd(rows);
  RmsNormForward(x.data(), w.data(), rows, dim, kEps, y.data(), rstd.data(), pool);
  std::vector<float> dx1(x.size(), 0.0f), dw1(dim, 0.0f), dx2(x.size(), 0.0f), dw2(dim, 0.0f);
  RmsNormBackward(dy.data(), x.data(), w.data(), rstd.data(), rows, dim, dx1.data(), dw1.data(), pool);
  for (int rep = 0; rep < 2; ++rep)
    RmsNormBackward(dy.data(), x.data(), w.data(), rstd.data(), rows, dim, dx2.data(), dw2.data(), pool);
  op_test::ExpectTwiceIsDouble("dx", dx1, dx2);
  op_test::ExpectTwiceIsDouble("dweight", dw1, dw2);
}

TEST(RmsNormTest, BitIdenticalAcrossThreadCounts) {
  const int64_t rows = 301, dim = 290;  // ragged column blocks, rows split many ways
  const auto x = RandomVector(rows * dim, 9);
  const auto w = RandomVector(dim, 10);
  const auto dy = RandomVector(rows * dim, 11);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    std::vector<float> y(x.size()), rstd(rows), dx(x.size(), 0.0f), dw(dim, 0.0f);
    RmsNormForward(x.data(), w.data(), rows, dim, kEps, y.data(), rstd.data(), pool);
    RmsNormBackward(dy.data(), x.data(), w.data(), rstd.data(), rows, dim, dx.data(), dw.data(), pool);
    return std::vector<std::vector<float>>{y, rstd, dx, dw};
  });
}

TEST(RmsNormTest, BitsDoNotDependOnAlignment) {
  ThreadPool pool(2);
  const int64_t rows = 9, dim = 77;
  const auto x = RandomVector(rows * dim, 12);
  const auto w = RandomVector(dim, 13);
  const auto dy = RandomVector(rows * dim, 14);
  std::vector<std::vector<float>> ref;
  for (int shift : {0, 1, 2, 3}) {
    op_test::Shifted sx(x, shift), sw(w, 3 - shift), sdy(dy, (shift + 1) % 4);
    op_test::Shifted y(std::vector<float>(x.size()), shift), rstd(std::vector<float>(rows), 1);
    op_test::Shifted dx(std::vector<float>(x.size()), 3 - shift), dw(std::vector<float>(dim), shift);
    RmsNormForward(sx.data, sw.data, rows, dim, kEps, y.data, rstd.data, pool);
    RmsNormBackward(sdy.data, sx.data, sw.data, rstd.data, rows, dim, dx.data, dw.data, pool);
    std::vector<std::vector<float>> got{y.Get(x.size()), rstd.Get(rows), dx.Get(x.size()), dw.Get(dim)};
    if (ref.empty()) ref = got;
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(op_test::BitEqual(got[i], ref[i])) << "shift " << shift;
  }
}

}  // namespace
}  // namespace lanlm::engine
