// Causal multi-head scaled dot-product attention on RoPE'd q and k.
// Training: parallel over (batch, head) in the forward and in the backward (so dk/dv sums stay
// on one thread). Decoding: one query against a KV cache, bit-identical to the corresponding
// row of the training forward.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// q, k, v, out (B, T, NH, D); probs (B, NH, T, T), row i holds softmax over j <= i of
// q_i·k_j / sqrt(D) and zeros above the diagonal (saved for the backward pass).
void AttentionForward(const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH, int64_t D,
                      float* probs, float* out, ThreadPool& pool);

// Accumulates (+=) into dq, dk, dv (B, T, NH, D). Softmax backward per the seed:
// dscore_j = p_j (dp_j - sum_k p_k dp_k).
void AttentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* probs, int64_t B,
                       int64_t T, int64_t NH, int64_t D, float* dq, float* dk, float* dv, ThreadPool& pool);

// Decoding caches hold keys in blocks of kKeyBlock positions, each block transposed: with
// C = NH * D and w = min(kKeyBlock, capacity - b * kKeyBlock) the width of block b, element
// c = h * D + d of the key at position j (in block b = j / kKeyBlock) sits at
// k_blocks[KeyIndex(j, c, C, capacity)] = b * kKeyBlock * C + c * w + j % kKeyBlock. The same
// size as (capacity, C) rows. A new key is written once (StoreKeys); a step's scores read each
// block's D x w keys of a head contiguously, vectorised across positions, without packing.
// Values stay rows v_cache (positions, C).
inline constexpr int64_t kKeyBlock = 16;
inline int64_t KeyBlockWidth(int64_t b, int64_t capacity) {
  return capacity - b * kKeyBlock < kKeyBlock ? capacity - b * kKeyBlock : kKeyBlock;
}
inline int64_t KeyIndex(int64_t j, int64_t c, int64_t C, int64_t capacity) {
  const int64_t b = j / kKeyBlock;
  return b * kKeyBlock * C + c * KeyBlockWidth(b, capacity) + j % kKeyBlock;
}

// Writes key rows k (n, C) as positions pos..pos+n-1 of k_blocks (the layout above).
void StoreKeys(const float* k, int64_t n, int64_t pos, int64_t C, int64_t capacity, float* k_blocks);

// n new queries per head (positions pos..pos+n-1) against the cache's first pos + n positions,
// the new ones included (a prompt fed into a KV cache). q, out (n, C); k_blocks as above;
// v_cache (pos + n, C); probs is scratch of NH * n * (pos + n) floats. Row i equals
// AttentionDecode of that query over pos + i + 1 positions bit for bit, and for pos = 0 the
// rows of AttentionForward.
void AttentionPrefill(const float* q, const float* k_blocks, int64_t capacity, const float* v_cache, int64_t pos,
                      int64_t n, int64_t NH, int64_t D, float* probs, float* out, ThreadPool& pool);

// One new query per head against `len` cached positions, keys as rows (the plain reference:
// packs each head's keys transposed per call). q (NH, D); k_cache, v_cache (len, NH*D) rows of
// past keys/values (position 0 first); out (NH, D); scratch holds at least NH * len floats.
void AttentionDecode(const float* q, const float* k_cache, const float* v_cache, int64_t len, int64_t NH, int64_t D,
                     float* out, float* scratch, ThreadPool& pool);

// The same on the block cache (k_blocks as above, v_cache (len, C)), without packing: equals
// AttentionDecode bit for bit. Reads positions [0, len) only.
void AttentionDecodeKt(const float* q, const float* k_blocks, int64_t capacity, const float* v_cache, int64_t len,
                       int64_t NH, int64_t D, float* out, float* scratch, ThreadPool& pool);

}  // namespace lanlm::engine
