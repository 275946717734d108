// SampleShard: a pure function of (seed, step, shard) whose rows are windows of the training
// split; a too-short split is FAILED_PRECONDITION.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "engine/data/corpus.h"

namespace lanlm::engine {
namespace {

std::vector<int32_t> Ramp(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = i;  // token value = its offset, so windows are visible
  return t;
}

std::vector<int32_t> Sample(const std::vector<int32_t>& train, uint64_t seed, int64_t step, int64_t shard, int B,
                            int T) {
  std::vector<int32_t> out(static_cast<size_t>(B) * (T + 1), -1);
  EXPECT_TRUE(SampleShard(train, seed, step, shard, B, T, out.data()).ok());
  return out;
}

TEST(ShardSamplerTest, RowsAreWindowsOfTheTrainingSplit) {
  const auto train = Ramp(300);
  const int B = 6, T = 10;
  const auto tokens = Sample(train, 1, 2, 3, B, T);
  std::set<int32_t> offsets;
  for (int b = 0; b < B; ++b) {
    const int32_t o = tokens[b * (T + 1)];
    ASSERT_GE(o, 0);
    ASSERT_LE(o + T, 299);
    for (int i = 0; i <= T; ++i) ASSERT_EQ(tokens[b * (T + 1) + i], o + i);
    offsets.insert(o);
  }
  EXPECT_GT(offsets.size(), 1u);
}

TEST(ShardSamplerTest, PureFunctionOfSeedStepAndShard) {
  const auto train = Ramp(1000);
  const auto a = Sample(train, 7, 3, 1, 4, 16);
  // Other calls in between change nothing (no hidden state).
  Sample(train, 7, 4, 1, 4, 16);
  Sample(train, 8, 3, 1, 4, 16);
  EXPECT_EQ(Sample(train, 7, 3, 1, 4, 16), a);
  EXPECT_NE(Sample(train, 7, 4, 1, 4, 16), a);
  EXPECT_NE(Sample(train, 7, 3, 2, 4, 16), a);
  EXPECT_NE(Sample(train, 8, 3, 1, 4, 16), a);
  // Row b does not depend on B: a larger shard starts with the same rows.
  const auto wide = Sample(train, 7, 3, 1, 8, 16);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), wide.begin()));
}

TEST(ShardSamplerTest, EveryOffsetIsReachableIncludingTheLast) {
  const int T = 4;
  const auto train = Ramp(T + 3);  // offsets 0, 1, 2
  std::set<int32_t> seen;
  for (int64_t step = 0; step < 200; ++step) seen.insert(Sample(train, 1, step, 0, 1, T)[0]);
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1, 2}));
}

TEST(ShardSamplerTest, RejectsATooShortCorpus) {
  std::vector<int32_t> out(2 * 11);
  Status s = SampleShard(Ramp(11), 1, 0, 0, 2, 10, out.data());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("11"), std::string::npos) << s.message();
  EXPECT_TRUE(SampleShard(Ramp(12), 1, 0, 0, 2, 10, out.data()).ok());
  EXPECT_EQ(SampleShard(Ramp(100), 1, 0, 0, 0, 10, out.data()).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lanlm::engine
