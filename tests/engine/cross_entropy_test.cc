// Cross-entropy: per-row losses and mean against a double reference, gradient check of the
// logits, in-place backward, accumulate-twice, and bit-identity across thread counts.
#include "engine/ops/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

TEST(CrossEntropyTest, ForwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const int64_t R = 9, V = 103;
  const auto logits = RandomVector(R * V, 1, -6.0f, 6.0f);
  const auto targets = op_test::RandomTokens(R, V, 2);
  std::vector<float> losses(R);
  const float mean = CrossEntropyForward(logits.data(), targets.data(), R, V, losses.data(), pool);
  std::vector<double> ref(R);
  double ref_mean = 0.0;
  for (int64_t r = 0; r < R; ++r) {
    double s = 0.0;
    for (int64_t i = 0; i < V; ++i) s += std::exp(double(logits[r * V + i]));
    ref[r] = std::log(s) - logits[r * V + targets[r]];
    ref_mean += ref[r] / R;
  }
  EXPECT_LE(op_test::WorstRelativeError(losses, ref, 1e-5, 1e-5), 1.0);
  EXPECT_NEAR(mean, ref_mean, 1e-5 * ref_mean);
}

TEST(CrossEntropyTest, GradientCheck) {
  ThreadPool pool(1);
  const int64_t R = 4, V = 13;
  auto logits = RandomVector(R * V, 3, -3.0f, 3.0f);
  const auto targets = op_test::RandomTokens(R, V, 4);
  std::vector<float> losses(R);
  auto loss = [&] {
    CrossEntropyForward(logits.data(), targets.data(), R, V, losses.data(), pool);
    double s = 0.0;
    for (float l : losses) s += l;
    return s / R;
  };
  std::vector<float> d(R * V, 0.0f);
  CrossEntropyBackward(logits.data(), targets.data(), R, V, 1.0f / R, d.data(), pool);
  op_test::ExpectGradientMatches("dlogits", logits, d, loss, 1e-2f, 1e-4, 2e-3);
}

TEST(CrossEntropyTest, InPlaceOverwritesWithTheGradient) {
  ThreadPool pool(2);
  const int64_t R = 16, V = 77;
  const auto logits = RandomVector(R * V, 5, -4.0f, 4.0f);
  const auto targets = op_test::RandomTokens(R, V, 6);
  std::vector<float> d(R * V, 0.0f);
  CrossEntropyBackward(logits.data(), targets.data(), R, V, 0.5f, d.data(), pool);
  auto inplace = logits;
  CrossEntropyBackward(inplace.data(), targets.data(), R, V, 0.5f, inplace.data(), pool);
  EXPECT_TRUE(op_test::BitEqual(inplace, d));
}

TEST(CrossEntropyTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const int64_t R = 30, V = 200;
  const auto logits = RandomVector(R * V, 7, -4.0f, 4.0f);
  const auto targets = op_test::RandomTokens(R, V, 8);
  std::vector<float> d1(R * V, 0.0f), d2(R * V, 0.0f);
  CrossEntropyBackward(logits.data(), targets.data(), R, V, 1.0f / R, d1.data(), pool);
  for (int rep = 0; rep < 2; ++rep)
    CrossEntropyBackward(logits.data(), targets.data(), R, V, 1.0f / R, d2.data(), pool);
  op_test::ExpectTwiceIsDouble("dlogits", d1, d2);
}

TEST(CrossEntropyTest, BitIdenticalAcrossThreadCounts) {
  const int64_t R = 67, V = 1031;
  const auto logits = RandomVector(R * V, 9, -5.0f, 5.0f);
  const auto targets = op_test::RandomTokens(R, V, 10);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    std::vector<float> losses(R), d(R * V, 0.0f);
    const float mean = CrossEntropyForward(logits.data(), targets.data(), R, V, losses.data(), pool);
    CrossEntropyBackward(logits.data(), targets.data(), R, V, 1.0f / R, d.data(), pool);
    return std::vector<std::vector<float>>{losses, d, {mean}};
  });
}

TEST(CrossEntropyTest, BitsDoNotDependOnAlignment) {
  ThreadPool pool(2);
  const int64_t R = 7, V = 301;
  const auto logits = RandomVector(R * V, 11, -5.0f, 5.0f);
  const auto targets = op_test::RandomTokens(R, V, 12);
  std::vector<std::vector<float>> ref;
  for (int shift : {0, 1, 2, 3}) {
    op_test::Shifted l(logits, shift), d(std::vector<float>(R * V), 3 - shift), losses(std::vector<float>(R), shift);
    CrossEntropyForward(l.data, targets.data(), R, V, losses.data, pool);
    CrossEntropyBackward(l.data, targets.data(), R, V, 1.0f / R, d.data, pool);
    std::vector<std::vector<float>> got{losses.Get(R), d.Get(R * V)};
    if (ref.empty()) ref = got;
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(op_test::BitEqual(got[i], ref[i])) << "shift " << shift;
  }
}

}  // namespace
}  // namespace lanlm::engine
