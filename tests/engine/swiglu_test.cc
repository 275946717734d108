// SwiGLU gate: forward against a double reference, gradient check of a and b,
// accumulate-twice, and bit-identity across thread counts.
#include "engine/ops/swiglu.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

TEST(SwiGluTest, ForwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const int64_t n = 5001;
  const auto a = RandomVector(n, 1, -8.0f, 8.0f);
  const auto b = RandomVector(n, 2, -2.0f, 2.0f);
  std::vector<float> h(n);
  SwiGluForward(a.data(), b.data(), n, h.data(), pool);
  std::vector<double> ref(n);
  for (int64_t i = 0; i < n; ++i) ref[i] = a[i] / (1.0 + std::exp(-double(a[i]))) * b[i];
  EXPECT_LE(op_test::WorstRelativeError(h, ref, 1e-6, 1e-5), 1.0);
}

TEST(SwiGluTest, GradientCheck) {
  ThreadPool pool(1);
  const int64_t n = 200;
  auto a = RandomVector(n, 3, -5.0f, 5.0f);
  auto b = RandomVector(n, 4, -2.0f, 2.0f);
  const auto dh = RandomVector(n, 5);
  std::vector<float> h(n);
  auto loss = [&] {
    SwiGluForward(a.data(), b.data(), n, h.data(), pool);
    return op_test::DotDouble(dh, h);
  };
  std::vector<float> da(n, 0.0f), db(n, 0.0f);
  SwiGluBackward(dh.data(), a.data(), b.data(), n, da.data(), db.data(), pool);
  op_test::ExpectGradientMatches("da", a, da, loss, 1e-2f, 2e-4, 2e-3);
  op_test::ExpectGradientMatches("db", b, db, loss, 1e-2f, 2e-4, 2e-3);
}

TEST(SwiGluTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const int64_t n = 3000;
  const auto a = RandomVector(n, 6, -6.0f, 6.0f);
  const auto b = RandomVector(n, 7);
  const auto dh = RandomVector(n, 8);
  std::vector<float> da1(n, 0.0f), db1(n, 0.0f), da2(n, 0.0f), db2(n, 0.0f);
  SwiGluBackward(dh.data(), a.data(), b.data(), n, da1.data(), db1.data(), pool);
  for (int rep = 0; rep < 2; ++rep) SwiGluBackward(dh.data(), a.data(), b.data(), n, da2.data(), db2.data(), pool);
  op_test::ExpectTwiceIsDouble("da", da1, da2);
  op_test::ExpectTwiceIsDouble("db", db1, db2);
}

TEST(SwiGluTest, BitIdenticalAcrossThreadCounts) {
  const int64_t n = 40001;
  const auto a = RandomVector(n, 9, -6.0f, 6.0f);
  const auto b = RandomVector(n, 10);
  const auto dh = RandomVector(n, 11);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    std::vector<float> h(n), da(n, 0.0f), db(n, 0.0f);
    SwiGluForward(a.data(), b.data(), n, h.data(), pool);
    SwiGluBackward(dh.data(), a.data(), b.data(), n, da.data(), db.data(), pool);
    return std::vector<std::vector<float>>{h, da, db};
  });
}

TEST(SwiGluTest, BitsDoNotDependOnAlignment) {
  ThreadPool pool(2);
  const int64_t n = 1000;
  const auto a = RandomVector(n, 12, -6.0f, 6.0f);
  const auto b = RandomVector(n, 13);
  const auto dh = RandomVector(n, 14);
  std::vector<std::vector<float>> ref;
  for (int shift : {0, 1, 2, 3}) {
    op_test::Shifted sa(a, shift), sb(b, 3 - shift), sdh(dh, shift), h(std::vector<float>(n), (shift + 1) % 4);
    op_test::Shifted da(std::vector<float>(n), 3 - shift), db(std::vector<float>(n), shift);
    SwiGluForward(sa.data, sb.data, n, h.data, pool);
    SwiGluBackward(sdh.data, sa.data, sb.data, n, da.data, db.data, pool);
    std::vector<std::vector<float>> got{h.Get(n), da.Get(n), db.Get(n)};
    if (ref.empty()) ref = got;
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(op_test::BitEqual(got[i], ref[i])) << "shift " << shift;
  }
}

}  // namespace
}  // namespace lanlm::engine
