// GradientTree: the fixed pairwise summation order of shard gradients (DESIGN.md §3 step 3).
// Node (j, k) covers shards [k·2^j, (k+1)·2^j) ∩ [0, S); it equals node (j-1, 2k) plus node
// (j-1, 2k+1), or node (j-1, 2k) alone when the right child lies past S. The root is (J, 0)
// with 2^J the smallest power of two >= S. Float addition is commutative, so a node's bits
// do not depend on which child arrived first.
#include "engine/train/gradient_tree.h"

#include <algorithm>
#include <string>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

constexpr int64_t kBlock = 8192;

// a[i] += b[i]
void AddInto(float* a, const float* b, int64_t n, ThreadPool& pool) {
  pool.ParallelFor((n + kBlock - 1) / kBlock, kBlock, [&](int64_t bb, int64_t be) {
    const int64_t end = std::min(n, be * kBlock);
    for (int64_t i = bb * kBlock; i < end; ++i) a[i] += b[i];
  });
}

int TopLevel(int64_t num_shards) {
  int j = 0;
  while ((int64_t{1} << j) < num_shards) ++j;
  return j;
}

}  // namespace

GradientTree::GradientTree(int64_t num_shards, int64_t size)
    : num_shards_(num_shards), size_(size), added_(static_cast<size_t>(num_shards), false) {
  LANLM_CHECK(num_shards >= 1 && size >= 0, "GradientTree needs at least one shard");
}

Status GradientTree::Add(int64_t first, int64_t count, std::vector<float> grad, ThreadPool& pool) {
  if (static_cast<int64_t>(grad.size()) != size_) {
    return InvalidArgumentError("gradient has " + std::to_string(grad.size()) + " floats, expected " +
                                std::to_string(size_));
  }
  const int top = TopLevel(num_shards_);
  if (count < 1 || (count & (count - 1)) != 0 || count > (int64_t{1} << top)) {
    return InvalidArgumentError("block count = " + std::to_string(count) + " is not a power of two in [1, " +
                                std::to_string(int64_t{1} << top) + "]");
  }
  if (first < 0 || first >= num_shards_ || first % count != 0) {
    return InvalidArgumentError("block [" + std::to_string(first) + ", " + std::to_string(first + count) +
                                ") is not aligned to its size or starts outside [0, " +
                                std::to_string(num_shards_) + ")");
  }
  const int64_t last = std::min(first + count, num_shards_);
  for (int64_t s = first; s < last; ++s) {
    if (added_[s]) {
      return Status(StatusCode::kAlreadyExists, "shard " + std::to_string(s) + " was already added");
    }
  }
  for (int64_t s = first; s < last; ++s) added_[s] = true;

  int level = 0;
  while ((int64_t{1} << level) < count) ++level;
  int64_t index = first / count;
  // Climb while the sibling is present (combine) or absent by construction (carry).
  while (level < top) {
    const int64_t sibling = index ^ 1;
    if ((sibling << level) >= num_shards_) {
      index /= 2;
      ++level;
      continue;
    }
    auto it = nodes_.find({level, sibling});
    if (it == nodes_.end()) break;
    AddInto(grad.data(), it->second.data(), size_, pool);
    nodes_.erase(it);
    index /= 2;
    ++level;
  }
  nodes_[{level, index}] = std::move(grad);
  return OkStatus();
}

bool GradientTree::Complete() const { return nodes_.count({TopLevel(num_shards_), 0}) == 1; }

void GradientTree::Finish(float* out, ThreadPool& pool) {
  LANLM_CHECK(Complete(), "GradientTree::Finish before every shard was added");
  const float* root = nodes_.at({TopLevel(num_shards_), 0}).data();
  // Multiplication by the float reciprocal: under -ffast-math a division may be compiled
  // either as a true division or as this product, so the product is written out to keep the
  // bits the same in every build and caller. Opaque: clang folds x * (1 / S) back into x / S.
  const float inv = simd::Opaque(1.0f / static_cast<float>(num_shards_));
  const int64_t n = size_;
  pool.ParallelFor((n + kBlock - 1) / kBlock, kBlock, [&](int64_t bb, int64_t be) {
    const int64_t end = std::min(n, be * kBlock);
    for (int64_t i = bb * kBlock; i < end; ++i) out[i] = root[i] * inv;
  });
}

void GradientTree::Reset() {
  nodes_.clear();
  added_.assign(static_cast<size_t>(num_shards_), false);
}

std::vector<float> GradientTree::SumBlock(std::vector<std::vector<float>> shards, ThreadPool& pool) {
  LANLM_CHECK(!shards.empty(), "SumBlock needs at least one shard");
  for (const auto& s : shards) LANLM_CHECK(s.size() == shards[0].size(), "SumBlock shards differ in size");
  const int64_t size = static_cast<int64_t>(shards[0].size());
  // Level by level: pairs (2i, 2i+1) combine, an odd last node is carried up unchanged.
  size_t n = shards.size();
  while (n > 1) {
    for (size_t i = 0; 2 * i + 1 < n; ++i) {
      AddInto(shards[2 * i].data(), shards[2 * i + 1].data(), size, pool);
      if (i > 0) shards[i] = std::move(shards[2 * i]);
    }
    if (n % 2 == 1) shards[n / 2] = std::move(shards[n - 1]);
    n = (n + 1) / 2;
  }
  return std::move(shards[0]);
}

void GradientTree::SumBlockRange(const std::vector<float*>& shards, int64_t begin, int64_t end, ThreadPool& pool) {
  LANLM_CHECK(!shards.empty() && 0 <= begin && begin <= end, "SumBlockRange needs shards and a range");
  std::vector<float*> nodes = shards;
  size_t n = nodes.size();
  while (n > 1) {  // the pairing of SumBlock; nodes[0] stays shards[0]
    for (size_t i = 0; 2 * i + 1 < n; ++i) {
      AddInto(nodes[2 * i] + begin, nodes[2 * i + 1] + begin, end - begin, pool);
      nodes[i] = nodes[2 * i];
    }
    if (n % 2 == 1) nodes[n / 2] = nodes[n - 1];
    n = (n + 1) / 2;
  }
}

}  // namespace lanlm::engine
