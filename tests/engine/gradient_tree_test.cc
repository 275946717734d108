// GradientTree: bit-identical sums for every arrival order and for pre-summed aligned blocks,
// against an independent recursive definition of the tree; error codes for bad adds.
#include "engine/train/gradient_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "engine/base/random.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

constexpr int64_t kSize = 10007;

std::vector<std::vector<float>> Shards(int64_t S) {
  std::vector<std::vector<float>> g(S, std::vector<float>(kSize));
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < kSize; ++i) g[s][i] = static_cast<float>(CounterRng::Normal(s + 1, i) * (1 + s));
  return g;
}

// Node covering shards [lo, lo + width) ∩ [0, S), width a power of two, by the definition:
// left half + right half, or the left half alone when the right half starts at or past S.
std::vector<float> Node(const std::vector<std::vector<float>>& g, int64_t lo, int64_t width) {
  if (width == 1) return g[lo];
  std::vector<float> left = Node(g, lo, width / 2);
  if (lo + width / 2 >= static_cast<int64_t>(g.size())) return left;
  const std::vector<float> right = Node(g, lo + width / 2, width / 2);
  for (int64_t i = 0; i < kSize; ++i) left[i] = left[i] + right[i];
  return left;
}

std::vector<float> Reference(const std::vector<std::vector<float>>& g) {
  int64_t width = 1;
  while (width < static_cast<int64_t>(g.size())) width *= 2;
  std::vector<float> root = Node(g, 0, width);
  const float inv = simd::Opaque(1.0f / static_cast<float>(g.size()));  // the product, not x / S
  for (float& x : root) x = x * inv;
  return root;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(GradientTreeTest, EveryArrivalOrderGivesTheReferenceBits) {
  ThreadPool pool(2);
  for (int64_t S : {1, 2, 3, 5, 7, 8}) {
    const auto g = Shards(S);
    const auto ref = Reference(g);
    std::vector<int64_t> order(S);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 rng(static_cast<unsigned>(S));
    for (int trial = 0; trial < 12; ++trial) {
      GradientTree tree(S, kSize);
      for (int64_t k = 0; k < S; ++k) {
        EXPECT_FALSE(tree.Complete());
        ASSERT_TRUE(tree.Add(order[k], 1, g[order[k]], pool).ok());
      }
      ASSERT_TRUE(tree.Complete());
      std::vector<float> out(kSize);
      tree.Finish(out.data(), pool);
      EXPECT_TRUE(SameBits(out, ref)) << "S=" << S << " trial " << trial;
      std::shuffle(order.begin(), order.end(), rng);
    }
  }
}

TEST(GradientTreeTest, TreeOrderDiffersFromASequentialSum) {
  // Guards the reference itself: a left-to-right sum gives other bits for these shards.
  const auto g = Shards(7);
  std::vector<float> seq(kSize, 0.0f);
  for (const auto& s : g)
    for (int64_t i = 0; i < kSize; ++i) seq[i] += s[i];
  for (float& x : seq) x *= 1.0f / 7.0f;
  EXPECT_FALSE(SameBits(seq, Reference(g)));
}

TEST(GradientTreeTest, PreSummedAlignedBlocksGiveTheSameBits) {
  ThreadPool pool(3);
  const int64_t S = 7;
  const auto g = Shards(S);
  const auto ref = Reference(g);
  // Blocks [0,4), [4,6), [6,7) and [4,8) clipped to [4,7), added in several orders.
  for (int variant = 0; variant < 3; ++variant) {
    GradientTree tree(S, kSize);
    auto block = [&](int64_t first, int64_t count) {
      std::vector<std::vector<float>> part(g.begin() + first, g.begin() + std::min(S, first + count));
      return GradientTree::SumBlock(part, pool);
    };
    if (variant == 0) {
      ASSERT_TRUE(tree.Add(6, 1, g[6], pool).ok());
      ASSERT_TRUE(tree.Add(0, 4, block(0, 4), pool).ok());
      ASSERT_TRUE(tree.Add(4, 2, block(4, 2), pool).ok());
    } else if (variant == 1) {
      ASSERT_TRUE(tree.Add(4, 4, block(4, 4), pool).ok());
      ASSERT_TRUE(tree.Add(2, 2, block(2, 2), pool).ok());
      ASSERT_TRUE(tree.Add(1, 1, g[1], pool).ok());
      ASSERT_TRUE(tree.Add(0, 1, g[0], pool).ok());
    } else {
      ASSERT_TRUE(tree.Add(0, 8, block(0, 8), pool).ok());
    }
    ASSERT_TRUE(tree.Complete());
    std::vector<float> out(kSize);
    tree.Finish(out.data(), pool);
    EXPECT_TRUE(SameBits(out, ref)) << "variant " << variant;
  }
}

TEST(GradientTreeTest, RejectsBadAddsWithTheRightCodes) {
  ThreadPool pool(1);
  const auto g = Shards(1);
  GradientTree tree(6, kSize);
  EXPECT_EQ(tree.Add(1, 2, g[0], pool).code(), StatusCode::kInvalidArgument);  // misaligned
  EXPECT_EQ(tree.Add(0, 3, g[0], pool).code(), StatusCode::kInvalidArgument);  // not a power of two
  EXPECT_EQ(tree.Add(0, 16, g[0], pool).code(), StatusCode::kInvalidArgument);  // larger than the tree
  EXPECT_EQ(tree.Add(6, 1, g[0], pool).code(), StatusCode::kInvalidArgument);  // past the last shard
  EXPECT_EQ(tree.Add(-2, 2, g[0], pool).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Add(0, 1, std::vector<float>(kSize - 1), pool).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(tree.Add(5, 1, g[0], pool).ok());
  EXPECT_EQ(tree.Add(5, 1, g[0], pool).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(tree.Add(4, 2, g[0], pool).code(), StatusCode::kAlreadyExists);  // block holding shard 5
  EXPECT_FALSE(tree.Complete());
  tree.Reset();
  EXPECT_TRUE(tree.Add(5, 1, g[0], pool).ok());  // a fresh step accepts it again
}

}  // namespace
}  // namespace lanlm::engine

namespace lanlm::engine {
namespace {

// A worker streams a block's sum range by range as the last shard's backward pass finishes
// each: the result must be SumBlock's, bit for bit, for every block size and any ranges.
TEST(GradientTreeTest, SumBlockRangeByRangeGivesSumBlockBits) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 3, 4, 5, 8}) {
    const auto g = Shards(n);
    const std::vector<float> whole = GradientTree::SumBlock(g, pool);
    std::vector<std::vector<float>> copy = g;
    std::vector<float*> block;
    for (auto& s : copy) block.push_back(s.data());
    // Backward's order: the end of the block first, in uneven ranges.
    for (int64_t end = kSize; end > 0;) {
      const int64_t begin = std::max<int64_t>(0, end - 1 - end / 3);
      GradientTree::SumBlockRange(block, begin, end, pool);
      end = begin;
    }
    EXPECT_EQ(0, std::memcmp(copy[0].data(), whole.data(), kSize * sizeof(float))) << n << " shards";
  }
}

}  // namespace
}  // namespace lanlm::engine
