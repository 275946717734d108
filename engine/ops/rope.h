// Rotary position embeddings (Su et al. 2021), llama convention: within each head, the pair
// (x[2i], x[2i+1]) rotates by angle pos * theta^(-2i/D). Backward is the inverse rotation.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// cos/sin tables, (context, D/2) each, computed once per model.
struct RopeTable {
  int64_t context = 0;
  int64_t head_dim = 0;
  std::vector<float> cos;
  std::vector<float> sin;
};
RopeTable MakeRopeTable(int64_t context, int64_t head_dim, float theta);

// x, y (rows, NH, D); row r is at position pos_offset + r % seq_len (a batch of sequences of
// length seq_len, or a single decoded position with seq_len = 1). y may alias x.
void RopeForward(const float* x, const RopeTable& table, int64_t rows, int64_t seq_len, int64_t pos_offset,
                 int64_t n_heads, float* y, ThreadPool& pool);

// dx += R(pos)ᵀ dy (rotation by -angle). dx may not alias dy.
void RopeBackward(const float* dy, const RopeTable& table, int64_t rows, int64_t seq_len, int64_t pos_offset,
                  int64_t n_heads, float* dx, ThreadPool& pool);

}  // namespace lanlm::engine
