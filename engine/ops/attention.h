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

// Decoding caches keep keys transposed per head: k_t (NH, D, ldt) holds key dimension d of
// position j of head h at k_t[(h * D + d) * ldt + j] (ldt >= the positions held, e.g. the
// context); values stay rows v_cache (positions, NH*D). A new key is appended once per token,
// and scores read it in place, vectorised across positions (no per-step packing).

// n new queries per head (positions pos..pos+n-1) against the cache's first pos + n positions,
// the new ones included (a prompt fed into a KV cache). q, out (n, NH*D); k_t as above;
// v_cache (pos + n, NH*D); probs is scratch of NH * n * (pos + n) floats. Row i equals
// AttentionDecode of that query over pos + i + 1 positions bit for bit, and for pos = 0 the
// rows of AttentionForward.
void AttentionPrefill(const float* q, const float* k_t, int64_t ldt, const float* v_cache, int64_t pos, int64_t n,
                      int64_t NH, int64_t D, float* probs, float* out, ThreadPool& pool);

// One new query per head against `len` cached positions, keys as rows (the plain reference:
// packs each head's keys transposed per call). q (NH, D); k_cache, v_cache (len, NH*D) rows of
// past keys/values (position 0 first); out (NH, D); scratch holds at least NH * len floats.
void AttentionDecode(const float* q, const float* k_cache, const float* v_cache, int64_t len, int64_t NH, int64_t D,
                     float* out, float* scratch, ThreadPool& pool);

// The same on the transposed-key cache (k_t as above, v_cache (len, NH*D)), without packing:
// equals AttentionDecode bit for bit. Reads positions [0, len) only.
void AttentionDecodeKt(const float* q, const float* k_t, int64_t ldt, const float* v_cache, int64_t len, int64_t NH,
                       int64_t D, float* out, float* scratch, ThreadPool& pool);

}  // namespace lanlm::engine
