// AddInPlace: exact sums (a float add is exact to compare) and bit-identity across threads.
#include "engine/ops/elementwise.h"

#include <gtest/gtest.h>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

TEST(ElementwiseTest, AddInPlaceAddsEachElementOnce) {
  ThreadPool pool(3);
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{100003}}) {
    const auto x = op_test::RandomVector(n, 1);
    auto y = op_test::RandomVector(n, 2);
    const auto y0 = y;
    AddInPlace(y.data(), x.data(), n, pool);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] + x[i]) << i;
  }
}

TEST(ElementwiseTest, BitIdenticalAcrossThreadCounts) {
  const int64_t n = 70001;
  const auto x = op_test::RandomVector(n, 3);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    auto y = op_test::RandomVector(n, 4);
    AddInPlace(y.data(), x.data(), n, pool);
    return std::vector<std::vector<float>>{y};
  });
}

}  // namespace
}  // namespace lanlm::engine
