// Matmul: forward and both backward products against a naive double reference (tile path,
// ragged tiles, and the small-row decoding path), gradient check, accumulate-twice, and
// bit-identity across thread counts.
#include "engine/ops/matmul.h"

#include <gtest/gtest.h>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

struct Shape {
  int64_t rows, in, out;
};

std::vector<double> NaiveForward(const std::vector<float>& x, const std::vector<float>& w, Shape s) {
  std::vector<double> y(s.rows * s.out, 0.0);
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t i = 0; i < s.in; ++i) y[r * s.out + o] += double(x[r * s.in + i]) * w[o * s.in + i];
  return y;
}

TEST(MatmulTest, ForwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  for (Shape s : {Shape{1, 64, 40}, Shape{3, 17, 5}, Shape{15, 33, 70}, Shape{16, 32, 32}, Shape{37, 29, 45},
                  Shape{64, 128, 96}}) {
    const auto x = RandomVector(s.rows * s.in, 1);
    const auto w = RandomVector(s.out * s.in, 2);
    std::vector<float> y(s.rows * s.out, -7.0f);
    MatmulForward(x.data(), w.data(), s.rows, s.in, s.out, y.data(), pool);
    EXPECT_LE(op_test::WorstRelativeError(y, NaiveForward(x, w, s), 1e-5, 1e-5), 1.0)
        << s.rows << "x" << s.in << "x" << s.out;
  }
}

TEST(MatmulTest, BackwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  for (Shape s : {Shape{3, 17, 5}, Shape{37, 29, 45}, Shape{64, 128, 96}}) {
    const auto x = RandomVector(s.rows * s.in, 3);
    const auto w = RandomVector(s.out * s.in, 4);
    const auto dy = RandomVector(s.rows * s.out, 5);
    std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
    MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx.data(), dw.data(), pool);
    std::vector<double> rdx(dx.size(), 0.0), rdw(dw.size(), 0.0);
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t o = 0; o < s.out; ++o)
        for (int64_t i = 0; i < s.in; ++i) {
          rdx[r * s.in + i] += double(dy[r * s.out + o]) * w[o * s.in + i];
          rdw[o * s.in + i] += double(dy[r * s.out + o]) * x[r * s.in + i];
        }
    EXPECT_LE(op_test::WorstRelativeError(dx, rdx, 1e-5, 1e-5), 1.0);
    EXPECT_LE(op_test::WorstRelativeError(dw, rdw, 1e-5, 1e-5), 1.0);
    // Null outputs are skipped.
    std::vector<float> dx_only(x.size(), 0.0f);
    MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx_only.data(), nullptr, pool);
    EXPECT_TRUE(op_test::BitEqual(dx_only, dx));
  }
}

TEST(MatmulTest, GradientCheck) {
  ThreadPool pool(1);
  for (Shape s : {Shape{18, 7, 35}, Shape{4, 9, 6}}) {
    auto x = RandomVector(s.rows * s.in, 6);
    auto w = RandomVector(s.out * s.in, 7);
    const auto dy = RandomVector(s.rows * s.out, 8);
    std::vector<float> y(s.rows * s.out);
    auto loss = [&] {
      MatmulForward(x.data(), w.data(), s.rows, s.in, s.out, y.data(), pool);
      return op_test::DotDouble(dy, y);
    };
    std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
    MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx.data(), dw.data(), pool);
    op_test::ExpectGradientMatches("dx", x, dx, loss, 1e-2f, 1e-4, 1e-3);
    op_test::ExpectGradientMatches("dw", w, dw, loss, 1e-2f, 1e-4, 1e-3);
  }
}

TEST(MatmulTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const Shape s{37, 29, 45};
  const auto x = RandomVector(s.rows * s.in, 9);
  const auto w = RandomVector(s.out * s.in, 10);
  const auto dy = RandomVector(s.rows * s.out, 11);
  std::vector<float> dx1(x.size(), 0.0f), dw1(w.size(), 0.0f), dx2(x.size(), 0.0f), dw2(w.size(), 0.0f);
  MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx1.data(), dw1.data(), pool);
  for (int rep = 0; rep < 2; ++rep)
    MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx2.data(), dw2.data(), pool);
  op_test::ExpectTwiceIsDouble("dx", dx1, dx2);
  op_test::ExpectTwiceIsDouble("dw", dw1, dw2);
}

TEST(MatmulTest, BitIdenticalAcrossThreadCounts) {
  // Ragged in every dimension, and the small-row path.
  for (Shape s : {Shape{203, 77, 70}, Shape{9, 130, 300}}) {
    const auto x = RandomVector(s.rows * s.in, 12);
    const auto w = RandomVector(s.out * s.in, 13);
    const auto dy = RandomVector(s.rows * s.out, 14);
    op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
      std::vector<float> y(s.rows * s.out), dx(x.size(), 0.5f), dw(w.size(), 0.25f);
      MatmulForward(x.data(), w.data(), s.rows, s.in, s.out, y.data(), pool);
      MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx.data(), dw.data(), pool);
      return std::vector<std::vector<float>>{y, dx, dw};
    });
  }
}

TEST(MatmulTest, BitsDoNotDependOnAlignment) {
  ThreadPool pool(2);
  const Shape s{37, 29, 45};
  const auto x = RandomVector(s.rows * s.in, 15);
  const auto w = RandomVector(s.out * s.in, 16);
  const auto dy = RandomVector(s.rows * s.out, 17);
  std::vector<std::vector<float>> ref;
  for (int shift : {0, 1, 2, 3, 5}) {
    op_test::Shifted sx(x, shift), sw(w, (shift + 1) % 4), sdy(dy, shift), y(std::vector<float>(s.rows * s.out), shift);
    op_test::Shifted dx(std::vector<float>(x.size()), 3 - shift % 4), dw(std::vector<float>(w.size()), shift);
    MatmulForward(sx.data, sw.data, s.rows, s.in, s.out, y.data, pool);
    MatmulBackward(sdy.data, sx.data, sw.data, s.rows, s.in, s.out, dx.data, dw.data, pool);
    std::vector<std::vector<float>> got{y.Get(s.rows * s.out), dx.Get(x.size()), dw.Get(w.size())};
    if (ref.empty()) ref = got;
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(op_test::BitEqual(got[i], ref[i])) << "shift " << shift;
  }
}

}  // namespace
}  // namespace lanlm::engine
