// GradientTree: sums S shard gradients in one fixed pairwise order that does not depend on
// who computed which shard or when it arrived (DESIGN.md §3 step 3): g0+g1, g2+g3, ..., then
// their sums; an odd node is carried up unchanged. Nodes combine as soon as both children
// are present, so at most about log2(S) partial sums are held at once.
// A worker holding an aligned block of shards [k·2^j, (k+1)·2^j) may add its block sum
// (computed with SumBlock) instead; the result is bit-identical. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "engine/base/status.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine {

class GradientTree {
 public:
  GradientTree(int64_t num_shards, int64_t size);

  // Adds the (pre-summed) gradient of shards [first, first + count). count must be a power of
  // two with first % count == 0, clipped at num_shards. INVALID_ARGUMENT for a misaligned or
  // out-of-range block or a wrong size; ALREADY_EXISTS when any of those shards was added.
  Status Add(int64_t first, int64_t count, std::vector<float> grad, ThreadPool& pool);

  bool Complete() const;
  // Writes the full tree sum times the float 1/num_shards into out (size floats). Requires
  // Complete().
  void Finish(float* out, ThreadPool& pool);
  // Forgets everything, ready for the next step.
  void Reset();

  // The tree sum of consecutive shard gradients shards[0..n) forming an aligned block, as a
  // worker pre-sums them (same bits as the tree's node for that block).
  static std::vector<float> SumBlock(std::vector<std::vector<float>> shards, ThreadPool& pool);
  // SumBlock restricted to the elements [begin, end), written into shards[0][begin, end) (the
  // other shards' ranges are used as scratch). Elementwise with SumBlock's pairing, so summing
  // a block range by range gives SumBlock's bits (a worker streams each range as it is final).
  static void SumBlockRange(const std::vector<float*>& shards, int64_t begin, int64_t end, ThreadPool& pool);

 private:
  int64_t num_shards_;
  int64_t size_;
  std::map<std::pair<int64_t, int64_t>, std::vector<float>> nodes_;  // (level, index) -> partial sum
  std::vector<bool> added_;
};

}  // namespace lanlm::engine
