// Embedding: lookup, scatter-add gradient with repeated tokens against a double reference,
// gradient check of the table, accumulate-twice, and bit-identity across thread counts.
#include "engine/ops/embedding.h"

#include <gtest/gtest.h>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

TEST(EmbeddingTest, ForwardCopiesRows) {
  ThreadPool pool(2);
  const int64_t V = 11, C = 70, N = 300;
  const auto table = RandomVector(V * C, 1);
  const auto tokens = op_test::RandomTokens(N, V, 2);
  std::vector<float> out(N * C);
  EmbeddingForward(tokens.data(), table.data(), N, C, out.data(), pool);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(out[t * C + c], table[tokens[t] * C + c]);
}

TEST(EmbeddingTest, BackwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const int64_t V = 7, C = 70, N = 100;  // many repeats per token
  const auto tokens = op_test::RandomTokens(N, V, 3);
  const auto dout = RandomVector(N * C, 4);
  std::vector<float> dtable(V * C, 0.0f);
  EmbeddingBackward(dout.data(), tokens.data(), N, C, dtable.data(), pool);
  std::vector<double> ref(V * C, 0.0);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t c = 0; c < C; ++c) ref[tokens[t] * C + c] += dout[t * C + c];
  EXPECT_LE(op_test::WorstRelativeError(dtable, ref, 1e-6, 1e-5), 1.0);
}

TEST(EmbeddingTest, GradientCheck) {
  ThreadPool pool(1);
  const int64_t V = 6, C = 9, N = 20;
  auto table = RandomVector(V * C, 5);
  const auto tokens = op_test::RandomTokens(N, V, 6);
  const auto dy = RandomVector(N * C, 7);
  std::vector<float> out(N * C);
  auto loss = [&] {
    EmbeddingForward(tokens.data(), table.data(), N, C, out.data(), pool);
    return op_test::DotDouble(dy, out);
  };
  std::vector<float> dtable(V * C, 0.0f);
  EmbeddingBackward(dy.data(), tokens.data(), N, C, dtable.data(), pool);
  op_test::ExpectGradientMatches("dtable", table, dtable, loss, 1e-2f, 1e-4, 1e-3);
}

TEST(EmbeddingTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const int64_t V = 5, C = 130, N = 64;
  const auto tokens = op_test::RandomTokens(N, V, 8);
  const auto dout = RandomVector(N * C, 9);
  std::vector<float> d1(V * C, 0.0f), d2(V * C, 0.0f);
  EmbeddingBackward(dout.data(), tokens.data(), N, C, d1.data(), pool);
  for (int rep = 0; rep < 2; ++rep) EmbeddingBackward(dout.data(), tokens.data(), N, C, d2.data(), pool);
  op_test::ExpectTwiceIsDouble("dtable", d1, d2);
}

TEST(EmbeddingTest, BitIdenticalAcrossThreadCounts) {
  const int64_t V = 50, C = 290, N = 1000;
  const auto tokens = op_test::RandomTokens(N, V, 10);
  const auto table = RandomVector(V * C, 11);
  const auto dout = RandomVector(N * C, 12);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    std::vector<float> out(N * C), dtable(V * C, 0.125f);
    EmbeddingForward(tokens.data(), table.data(), N, C, out.data(), pool);
    EmbeddingBackward(dout.data(), tokens.data(), N, C, dtable.data(), pool);
    return std::vector<std::vector<float>>{out, dtable};
  });
}

}  // namespace
}  // namespace lanlm::engine
