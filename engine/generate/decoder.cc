// KV-cached incremental forward. Feed computes all new positions of one session with
// matmuls over n rows (prefill) and writes keys/values straight into the cache; FeedBatch
// stacks one new token of many sessions into one set of matmuls, so the weights are read
// once per layer for all of them. Attention runs per query against the cache.
#include "engine/generate/decoder.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "engine/ops/attention.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/rms_norm.h"
#include "engine/ops/swiglu.h"
#include "engine/model/parameters.h"

namespace lanlm::engine {
namespace {

// A pool without threads, for ops called from inside another ParallelFor: its ParallelFor
// always runs inline and touches no shared state, so concurrent use is safe.
ThreadPool& InlinePool() {
  static ThreadPool pool(1);
  return pool;
}

Status CheckToken(int32_t token, int vocab) {
  if (token < 0 || token >= vocab) {
    return InvalidArgumentError("token = " + std::to_string(token) + " is outside [0, " + std::to_string(vocab) + ")");
  }
  return OkStatus();
}

Status CheckCache(const KvCache& cache, const ModelConfig& config) {
  if (cache.capacity != config.context || cache.row != config.dim ||
      cache.k.size() != static_cast<size_t>(config.n_layers) * config.context * config.dim ||
      cache.v.size() != cache.k.size() || cache.length < 0 || cache.length > cache.capacity) {
    return InvalidArgumentError("KV cache does not match the model config " + config.ToString());
  }
  return OkStatus();
}

}  // namespace

KvCache::KvCache(const ModelConfig& config)
    : capacity(config.context),
      row(config.dim),
      k(static_cast<size_t>(config.n_layers) * config.context * config.dim),
      v(static_cast<size_t>(config.n_layers) * config.context * config.dim) {}

Decoder::Decoder(const ModelConfig& config)
    : config_(config), rope_(MakeRopeTable(config.context, config.head_dim(), config.rope_theta)) {}

// Layout of scratch_ for `rows` rows: x, xn, q, att, tmp (rows, C); a, b, g (rows, F);
// g (rows, F); rstd (rows); attention scores (rows, NH, T).
namespace {
struct Scratch {
  float* x;
  float* xn;
  float* q;
  float* att;
  float* tmp;
  float* a;
  float* b;
  float* g;
  float* rstd;
  float* scores;
};

Scratch CarveScratch(std::vector<float>& s, const ModelConfig& c, int64_t rows) {
  const int64_t C = c.dim, F = c.ffn_hidden, T = c.context, NH = c.n_heads;
  const int64_t need = rows * (5 * C + 3 * F + 1 + NH * T);
  if (static_cast<int64_t>(s.size()) < need) s.resize(need);
  float* p = s.data();
  auto take = [&](int64_t n) {
    float* r = p;
    p += n;
    return r;
  };
  Scratch out;
  out.x = take(rows * C);
  out.xn = take(rows * C);
  out.q = take(rows * C);
  out.att = take(rows * C);
  out.tmp = take(rows * C);
  out.a = take(rows * F);
  out.b = take(rows * F);
  out.g = take(rows * F);
  out.rstd = take(rows);
  out.scores = take(rows * NH * T);
  return out;
}
}  // namespace

Status Decoder::Feed(const float* params, const int32_t* tokens, int64_t n, KvCache& cache, float* logits,
                     ThreadPool& pool) {
  const ModelConfig& c = config_;
  LANLM_RETURN_IF_ERROR(CheckCache(cache, c));
  if (n <= 0) return InvalidArgumentError("token count n = " + std::to_string(n) + " must be positive");
  if (cache.length + n > cache.capacity) {
    return OutOfRangeError("cached " + std::to_string(cache.length) + " + new " + std::to_string(n) +
                           " tokens exceeds context = " + std::to_string(cache.capacity));
  }
  for (int64_t i = 0; i < n; ++i) LANLM_RETURN_IF_ERROR(CheckToken(tokens[i], c.vocab_size));

  const int64_t T = c.context, C = c.dim, F = c.ffn_hidden, V = c.vocab_size, NH = c.n_heads, D = c.head_dim();
  const int64_t pos = cache.length;
  const ModelWeights w = BindWeights(c, const_cast<float*>(params));
  Scratch s = CarveScratch(scratch_, c, n);

  EmbeddingForward(tokens, w.tok_embeddings, n, C, s.x, pool);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    float* kc = cache.k.data() + l * T * C;
    float* vc = cache.v.data() + l * T * C;
    RmsNormForward(s.x, lw.attention_norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
    MatmulForward(s.xn, lw.wq, n, C, C, s.q, pool);
    MatmulForward(s.xn, lw.wk, n, C, C, kc + pos * C, pool);
    MatmulForward(s.xn, lw.wv, n, C, C, vc + pos * C, pool);
    RopeForward(s.q, rope_, n, n, pos, NH, s.q, pool);
    RopeForward(kc + pos * C, rope_, n, n, pos, NH, kc + pos * C, pool);
    if (n == 1) {
      AttentionDecode(s.q, kc, vc, pos + 1, NH, D, s.att, s.scores, pool);
    } else {
      // A prompt: all its queries at once on the training forward's GEMM path (each row equals
      // AttentionDecode of that position bit for bit); scores holds the (NH, n, pos + n)
      // probabilities, not needed later.
      AttentionPrefill(s.q, kc, vc, pos, n, NH, D, s.scores, s.att, pool);
    }
    MatmulForward(s.att, lw.wo, n, C, C, s.tmp, pool);
    AddInPlace(s.x, s.tmp, n * C, pool);
    RmsNormForward(s.x, lw.ffn_norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
    MatmulForward(s.xn, lw.w1, n, C, F, s.a, pool);
    MatmulForward(s.xn, lw.w3, n, C, F, s.b, pool);
    SwiGluForward(s.a, s.b, n * F, s.g, pool);
    MatmulForward(s.g, lw.w2, n, F, C, s.tmp, pool);
    AddInPlace(s.x, s.tmp, n * C, pool);
  }
  // Only the last position's logits are needed.
  const float* x_last = s.x + (n - 1) * C;
  RmsNormForward(x_last, w.norm, 1, C, c.norm_eps, s.xn, s.rstd, pool);
  MatmulForward(s.xn, w.output, 1, C, V, logits, pool);
  cache.length += n;
  return OkStatus();
}

Status Decoder::FeedBatch(const float* params, const std::vector<KvCache*>& caches, const int32_t* tokens,
                          float* logits, ThreadPool& pool) {
  const ModelConfig& c = config_;
  const int64_t n = static_cast<int64_t>(caches.size());
  if (n == 0) return InvalidArgumentError("FeedBatch needs at least one session");
  for (int64_t i = 0; i < n; ++i) {
    if (caches[i] == nullptr) return InvalidArgumentError("session " + std::to_string(i) + " has no KV cache");
    LANLM_RETURN_IF_ERROR(CheckCache(*caches[i], c));
    if (caches[i]->length + 1 > caches[i]->capacity) {
      return OutOfRangeError("session " + std::to_string(i) + ": cached " + std::to_string(caches[i]->length) +
                             " + new 1 tokens exceeds context = " + std::to_string(caches[i]->capacity));
    }
    LANLM_RETURN_IF_ERROR(CheckToken(tokens[i], c.vocab_size));
    for (int64_t j = 0; j < i; ++j) {
      if (caches[j] == caches[i]) {
        return InvalidArgumentError("sessions " + std::to_string(j) + " and " + std::to_string(i) +
                                    " share one KV cache");
      }
    }
  }

  const int64_t T = c.context, C = c.dim, F = c.ffn_hidden, V = c.vocab_size, NH = c.n_heads, D = c.head_dim();
  const ModelWeights w = BindWeights(c, const_cast<float*>(params));
  Scratch s = CarveScratch(scratch_, c, n);
  // Keys and values of the new rows are computed together, then copied into each cache.
  float* knew = s.tmp;
  float* vnew = s.att;

  EmbeddingForward(tokens, w.tok_embeddings, n, C, s.x, pool);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    RmsNormForward(s.x, lw.attention_norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
    MatmulForward(s.xn, lw.wq, n, C, C, s.q, pool);
    MatmulForward(s.xn, lw.wk, n, C, C, knew, pool);
    MatmulForward(s.xn, lw.wv, n, C, C, vnew, pool);
    for (int64_t i = 0; i < n; ++i) {
      KvCache& cache = *caches[i];
      const int64_t pos = cache.length;
      float* kc = cache.k.data() + (l * T + pos) * C;
      RopeForward(s.q + i * C, rope_, 1, 1, pos, NH, s.q + i * C, InlinePool());
      RopeForward(knew + i * C, rope_, 1, 1, pos, NH, kc, InlinePool());
      std::memcpy(cache.v.data() + (l * T + pos) * C, vnew + i * C, C * sizeof(float));
    }
    // vnew (= s.att) is free again: attention output goes there.
    if (n == 1) {
      AttentionDecode(s.q, caches[0]->k.data() + l * T * C, caches[0]->v.data() + l * T * C, caches[0]->length + 1, NH,
                      D, s.att, s.scores, pool);
    } else {
      pool.ParallelFor(n, 4 * T * C, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const KvCache& cache = *caches[i];
          AttentionDecode(s.q + i * C, cache.k.data() + l * T * C, cache.v.data() + l * T * C, cache.length + 1, NH, D,
                          s.att + i * C, s.scores + i * NH * T, InlinePool());
        }
      });
    }
    MatmulForward(s.att, lw.wo, n, C, C, s.tmp, pool);
    AddInPlace(s.x, s.tmp, n * C, pool);
    RmsNormForward(s.x, lw.ffn_norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
    MatmulForward(s.xn, lw.w1, n, C, F, s.a, pool);
    MatmulForward(s.xn, lw.w3, n, C, F, s.b, pool);
    SwiGluForward(s.a, s.b, n * F, s.g, pool);
    MatmulForward(s.g, lw.w2, n, F, C, s.tmp, pool);
    AddInPlace(s.x, s.tmp, n * C, pool);
  }
  RmsNormForward(s.x, w.norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
  MatmulForward(s.xn, w.output, n, C, V, logits, pool);
  for (KvCache* cache : caches) cache->length += 1;
  return OkStatus();
}

}  // namespace lanlm::engine
