// KV-cached incremental forward over ServingWeights. Feed computes all new positions of one
// session (one decoded token, or a prompt) and writes keys/values straight into the cache;
// FeedBatch stacks one new token of many sessions into the same projections, so the weights
// are read once per layer for all of them. The projections (decoder_steps.h) run as GEMV
// blocks for any number of rows; attention runs per query against the cache.
#include "engine/generate/decoder.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "engine/base/check.h"
#include "engine/ops/attention.h"
#include "engine/ops/embedding.h"
#include "engine/ops/rms_norm.h"
#include "engine/model/parameters.h"

namespace lanlm::engine {
namespace {

using decode::InlinePool;

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

Status CheckWeights(const ServingWeights& w, const ModelConfig& config) {
  // The shapes ToString names, compared as numbers: two strings built per token cost 2 us.
  const ModelConfig& a = w.config();
  if (a.vocab_size != config.vocab_size || a.dim != config.dim || a.n_layers != config.n_layers ||
      a.n_heads != config.n_heads || a.ffn_hidden != config.ffn_hidden || a.context != config.context) {
    return InvalidArgumentError("weights of config " + w.config().ToString() + " given to a decoder of " +
                                config.ToString());
  }
  return OkStatus();
}

// Layout of the scratch for `rows` rows: x, xn, q, att, tmp, k, v (rows, C); a, b, g
// (rows, F); rstd (rows); attention scores (rows, NH, T).
struct Scratch {
  float* x;
  float* xn;
  float* q;
  float* att;
  float* tmp;
  float* k;
  float* v;
  float* a;
  float* b;
  float* g;
  float* rstd;
  float* scores;
};

Scratch CarveScratch(AlignedVector<float>& s, const ModelConfig& c, int64_t rows) {
  const int64_t C = c.dim, F = c.ffn_hidden, T = c.context, NH = c.n_heads;
  const int64_t need = rows * (7 * C + 3 * F + 1 + NH * T);
  if (static_cast<int64_t>(s.size()) < need) s.resize(need);
  float* p = s.data();
  auto take = [&](int64_t n) {
    float* r = p;
    p += n;
    return r;
  };
  Scratch out;
  for (float** f : {&out.x, &out.xn, &out.q, &out.att, &out.tmp, &out.k, &out.v}) *f = take(rows * C);
  for (float** f : {&out.a, &out.b, &out.g}) *f = take(rows * F);
  out.rstd = take(rows);
  out.scores = take(rows * NH * T);
  return out;
}

// The feed-forward half of a block: x += W2 · SwiGLU(W1 · norm(x), W3 · norm(x)).
void FeedForward(const ServingLayer& lw, const ModelConfig& c, int64_t n, Scratch& s, decode::Work& work,
                 ThreadPool& pool) {
  RmsNormForward(s.x, lw.ffn_norm, n, c.dim, c.norm_eps, s.xn, s.rstd, pool);
  decode::GatedFfn(lw, s.xn, n, s.a, s.b, s.g, work, pool);
  decode::AddLinear(lw.w2, s.g, n, s.x, s.tmp, work, pool);
}

}  // namespace

KvCache::KvCache(const ModelConfig& config)
    : capacity(config.context),
      row(config.dim),
      k(static_cast<size_t>(config.n_layers) * config.context * config.dim),
      v(static_cast<size_t>(config.n_layers) * config.context * config.dim) {}

Decoder::Decoder(const ModelConfig& config)
    : config_(config), rope_(MakeRopeTable(config.context, config.head_dim(), config.rope_theta)) {}

const ServingWeights& Decoder::Fp32(const float* params) {
  auto w = ServingWeights::Convert(config_, params, WeightFormat::kF32);
  LANLM_CHECK(w.ok(), w.status().ToString());  // fp32 takes every valid config and any values
  fp32_ = std::make_unique<ServingWeights>(std::move(w).value());
  return *fp32_;
}

Status Decoder::Feed(const float* params, const int32_t* tokens, int64_t n, KvCache& cache, float* logits,
                     ThreadPool& pool) {
  return Feed(Fp32(params), tokens, n, cache, logits, pool);
}

Status Decoder::FeedBatch(const float* params, const std::vector<KvCache*>& caches, const int32_t* tokens,
                          float* logits, ThreadPool& pool) {
  return FeedBatch(Fp32(params), caches, tokens, logits, pool);
}

Status Decoder::Feed(const ServingWeights& w, const int32_t* tokens, int64_t n, KvCache& cache, float* logits,
                     ThreadPool& pool) {
  const ModelConfig& c = config_;
  LANLM_RETURN_IF_ERROR(CheckWeights(w, c));
  LANLM_RETURN_IF_ERROR(CheckCache(cache, c));
  if (n <= 0) return InvalidArgumentError("token count n = " + std::to_string(n) + " must be positive");
  if (cache.length + n > cache.capacity) {
    return OutOfRangeError("cached " + std::to_string(cache.length) + " + new " + std::to_string(n) +
                           " tokens exceeds context = " + std::to_string(cache.capacity));
  }
  for (int64_t i = 0; i < n; ++i) LANLM_RETURN_IF_ERROR(CheckToken(tokens[i], c.vocab_size));

  const int64_t T = c.context, C = c.dim, NH = c.n_heads, D = c.head_dim();
  const int64_t pos = cache.length;
  Scratch s = CarveScratch(scratch_, c, n);

  EmbeddingForward(tokens, w.tok_embeddings(), n, C, s.x, pool);
  for (int l = 0; l < c.n_layers; ++l) {
    const ServingLayer& lw = w.layers()[l];
    float* kt = cache.k.data() + l * T * C;
    float* vc = cache.v.data() + l * T * C;
    RmsNormForward(s.x, lw.attention_norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
    decode::ProjectQkv(lw, s.xn, n, s.q, s.k, vc + pos * C, work_, pool);
    RopeForward(s.q, rope_, n, n, pos, NH, s.q, pool);
    RopeForward(s.k, rope_, n, n, pos, NH, s.k, pool);
    StoreKeys(s.k, n, pos, C, T, kt);
    if (n == 1) {
      AttentionDecodeKt(s.q, kt, T, vc, pos + 1, NH, D, s.att, s.scores, pool);
    } else {
      // A prompt: all its queries at once on the training forward's GEMM path (each row equals
      // AttentionDecode of that position bit for bit); scores holds the (NH, n, pos + n)
      // probabilities, not needed later.
      AttentionPrefill(s.q, kt, T, vc, pos, n, NH, D, s.scores, s.att, pool);
    }
    decode::AddLinear(lw.wo, s.att, n, s.x, s.tmp, work_, pool);
    FeedForward(lw, c, n, s, work_, pool);
  }
  // Only the last position's logits are needed.
  RmsNormForward(s.x + (n - 1) * C, w.norm(), 1, C, c.norm_eps, s.xn, s.rstd, pool);
  decode::Linear(w.output(), s.xn, 1, logits, work_, pool);
  cache.length += n;
  return OkStatus();
}

Status Decoder::FeedBatch(const ServingWeights& w, const std::vector<KvCache*>& caches, const int32_t* tokens,
                          float* logits, ThreadPool& pool) {
  const ModelConfig& c = config_;
  LANLM_RETURN_IF_ERROR(CheckWeights(w, c));
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

  const int64_t T = c.context, C = c.dim, NH = c.n_heads, D = c.head_dim();
  Scratch s = CarveScratch(scratch_, c, n);
  EmbeddingForward(tokens, w.tok_embeddings(), n, C, s.x, pool);
  for (int l = 0; l < c.n_layers; ++l) {
    const ServingLayer& lw = w.layers()[l];
    RmsNormForward(s.x, lw.attention_norm, n, C, c.norm_eps, s.xn, s.rstd, pool);
    // Keys and values of the new rows are computed together, then copied into each cache.
    decode::ProjectQkv(lw, s.xn, n, s.q, s.k, s.v, work_, pool);
    for (int64_t i = 0; i < n; ++i) {
      KvCache& cache = *caches[i];
      const int64_t pos = cache.length;
      RopeForward(s.q + i * C, rope_, 1, 1, pos, NH, s.q + i * C, InlinePool());
      RopeForward(s.k + i * C, rope_, 1, 1, pos, NH, s.k + i * C, InlinePool());
      StoreKeys(s.k + i * C, 1, pos, C, T, cache.k.data() + l * T * C);
      std::memcpy(cache.v.data() + (l * T + pos) * C, s.v + i * C, C * sizeof(float));
    }
    if (n == 1) {
      AttentionDecodeKt(s.q, caches[0]->k.data() + l * T * C, T, caches[0]->v.data() + l * T * C,
                        caches[0]->length + 1, NH, D, s.att, s.scores, pool);
    } else {
      pool.ParallelFor(n, 4 * T * C, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const KvCache& cache = *caches[i];
          AttentionDecodeKt(s.q + i * C, cache.k.data() + l * T * C, T, cache.v.data() + l * T * C, cache.length + 1,
                            NH, D, s.att + i * C, s.scores + i * NH * T, InlinePool());
        }
      });
    }
    decode::AddLinear(lw.wo, s.att, n, s.x, s.tmp, work_, pool);
    FeedForward(lw, c, n, s, work_, pool);
  }
  RmsNormForward(s.x, w.norm(), n, C, c.norm_eps, s.xn, s.rstd, pool);
  decode::Linear(w.output(), s.xn, n, logits, work_, pool);
  for (KvCache* cache : caches) cache->length += 1;
  return OkStatus();
}

}  // namespace lanlm::engine
