// Model: training forward pass with every activation cached per layer (the seed's LayerCache)
// and the hand-written backward pass in the seed's order. All buffers are allocated once in
// the constructor; Forward and Backward only run ops over them.
#include "engine/model/model.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "engine/base/check.h"
#include "engine/ops/attention.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/rms_norm.h"
#include "engine/ops/rope.h"
#include "engine/ops/swiglu.h"

namespace lanlm::engine {

// Shapes use N = B*T rows (position-major within each sequence); sizes are for max_batch.
struct LayerCache {
  std::vector<float> rstd_att;  // (N)     attention_norm's 1/rms
  std::vector<float> xn;        // (N, C)  RMSNorm(x; attention_norm)
  std::vector<float> q;         // (N, C)  after RoPE
  std::vector<float> k;         // (N, C)  after RoPE
  std::vector<float> v;         // (N, C)
  std::vector<float> probs;     // (B, NH, T, T) softmax rows
  std::vector<float> att;       // (N, C)  attention output before wo
  std::vector<float> h;         // (N, C)  x + wo·att
  std::vector<float> rstd_ffn;  // (N)
  std::vector<float> hn;        // (N, C)  RMSNorm(h; ffn_norm)
  std::vector<float> a;         // (N, F)  w1·hn
  std::vector<float> b;         // (N, F)  w3·hn
  std::vector<float> g;         // (N, F)  SiLU(a) ⊙ b
};

struct Activations {
  std::vector<int32_t> inputs;     // (N) tokens[b, t]
  std::vector<int32_t> targets;    // (N) tokens[b, t+1]
  std::vector<float> x;            // (L+1, N, C) residual stream: x[0] embeddings, x[l+1] layer l out
  std::vector<LayerCache> layers;  // (L)
  std::vector<float> rstd_final;   // (N)
  std::vector<float> xf;           // (N, C)  RMSNorm(x[L]; norm)
  std::vector<float> logits;       // (N, V)  (Backward turns it into dlogits in place)
  std::vector<float> losses;       // (N)
  // Backward scratch.
  std::vector<float> dx;   // (N, C) gradient of the residual stream
  std::vector<float> dn;   // (N, C) gradient of a norm output (xf, hn or xn)
  std::vector<float> datt; // (N, C)
  std::vector<float> dq;   // (N, C) after RoPE
  std::vector<float> dk;   // (N, C) after RoPE
  std::vector<float> dv;   // (N, C)
  std::vector<float> dqp;  // (N, C) before RoPE
  std::vector<float> dkp;  // (N, C) before RoPE
  std::vector<float> dg;   // (N, F)
  std::vector<float> da;   // (N, F)
  std::vector<float> db;   // (N, F)
  // bf16: the matmul weights rounded and packed (per layer wq, wk, wv, wo, w1, w2, w3, then
  // output), from the parameter block packed_from, by the last Forward that packed.
  std::vector<Bf16PackedWeight> packed;
  const float* packed_from = nullptr;
};

namespace {

void Zero(std::vector<float>& v, int64_t n) { std::memset(v.data(), 0, static_cast<size_t>(n) * sizeof(float)); }

enum PackedIndex { kWq, kWk, kWv, kWo, kW1, kW2, kW3, kPerLayer };

// Rounds and packs layer weights lw once (both layouts, PackBf16Weight) into p[kWq..kW3].
void PackLayer(const ModelConfig& c, const LayerWeights& lw, Bf16PackedWeight* p, ThreadPool& pool) {
  const int64_t C = c.dim, F = c.ffn_hidden;
  PackBf16Weight(lw.wq, C, C, p + kWq, pool);
  PackBf16Weight(lw.wk, C, C, p + kWk, pool);
  PackBf16Weight(lw.wv, C, C, p + kWv, pool);
  PackBf16Weight(lw.wo, C, C, p + kWo, pool);
  PackBf16Weight(lw.w1, C, F, p + kW1, pool);
  PackBf16Weight(lw.w2, F, C, p + kW2, pool);
  PackBf16Weight(lw.w3, C, F, p + kW3, pool);
}

}  // namespace

Model::Model(const ModelConfig& config, int max_batch, Precision precision)
    : config_(config),
      max_batch_(max_batch),
      precision_(precision),
      rope_(MakeRopeTable(config.context, config.head_dim(), config.rope_theta)),
      acts_(std::make_unique<Activations>()) {
  LANLM_CHECK(config.Validate().ok(), "Model built from an invalid config");
  LANLM_CHECK(max_batch >= 1, "max_batch must be positive");
  const int64_t N = int64_t{max_batch} * config.context, C = config.dim, F = config.ffn_hidden,
                V = config.vocab_size, T = config.context, NH = config.n_heads, L = config.n_layers;
  Activations& a = *acts_;
  a.inputs.resize(N);
  a.targets.resize(N);
  a.x.resize((L + 1) * N * C);
  a.layers.resize(L);
  for (LayerCache& c : a.layers) {
    c.rstd_att.resize(N);
    c.xn.resize(N * C);
    c.q.resize(N * C);
    c.k.resize(N * C);
    c.v.resize(N * C);
    c.probs.resize(int64_t{max_batch} * NH * T * T);
    c.att.resize(N * C);
    c.h.resize(N * C);
    c.rstd_ffn.resize(N);
    c.hn.resize(N * C);
    c.a.resize(N * F);
    c.b.resize(N * F);
    c.g.resize(N * F);
  }
  a.rstd_final.resize(N);
  a.xf.resize(N * C);
  a.logits.resize(N * V);
  a.losses.resize(N);
  for (auto* v : {&a.dx, &a.dn, &a.datt, &a.dq, &a.dk, &a.dv, &a.dqp, &a.dkp}) v->resize(N * C);
  for (auto* v : {&a.dg, &a.da, &a.db}) v->resize(N * F);
}

Model::~Model() = default;

const float* Model::logits() const { return acts_->logits.data(); }

namespace {

// Offset of p in the block starting at base, in floats.
int64_t At(const float* base, const float* p) { return static_cast<int64_t>(p - base); }

}  // namespace

float Model::Forward(const float* params, const int32_t* tokens, int B, ThreadPool& pool,
                     const ModelStreamHooks* hooks, bool reuse_packed_weights) {
  LANLM_CHECK(B >= 1 && B <= max_batch_, "batch outside [1, max_batch]");
  const ModelConfig& c = config_;
  const int64_t T = c.context, C = c.dim, F = c.ffn_hidden, V = c.vocab_size, NH = c.n_heads, D = c.head_dim();
  const int64_t N = int64_t{B} * T;
  // Parameters are only read; BindWeights wants a mutable block.
  const ModelWeights w = BindWeights(c, const_cast<float*>(params));
  Activations& a = *acts_;
  // bf16: pack each layer's weights once they are ready, unless this packing can be reused.
  const bool pack = precision_ == Precision::kBf16 && !(reuse_packed_weights && a.packed_from == params);
  if (pack) {
    a.packed.resize(static_cast<size_t>(c.n_layers) * kPerLayer + 1);
    a.packed_from = nullptr;  // until the classifier is packed too
  }
  // The packed weight i of layer l (nullptr in fp32: the matmuls pack nothing ahead).
  auto pw = [&](int l, int i) { return precision_ == Precision::kBf16 ? &a.packed[l * kPerLayer + i] : nullptr; };
  const Bf16PackedWeight* p_out = precision_ == Precision::kBf16 ? &a.packed.back() : nullptr;

  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(a.inputs.data() + b * T, tokens + b * (T + 1), T * sizeof(int32_t));
    std::memcpy(a.targets.data() + b * T, tokens + b * (T + 1) + 1, T * sizeof(int32_t));
  }
  // Waits until params[0, end) have arrived (a streaming worker); nothing without the hook.
  const auto ready = [&](int64_t end) { return hooks == nullptr || !hooks->params_ready || hooks->params_ready(end); };
  constexpr float kAbandoned = std::numeric_limits<float>::quiet_NaN();
  if (!ready(V * C)) return kAbandoned;
  EmbeddingForward(a.inputs.data(), w.tok_embeddings, N, C, a.x.data(), pool);

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    LayerCache& lc = a.layers[l];
    if (!ready(At(params, lw.w3) + F * C)) return kAbandoned;  // w3 ends the layer's tensors
    if (pack) PackLayer(c, lw, a.packed.data() + l * kPerLayer, pool);
    const float* x = a.x.data() + l * N * C;
    float* x_next = a.x.data() + (l + 1) * N * C;
    // Attention block: h = x + wo · Attention(RoPE(wq·n), RoPE(wk·n), wv·n), n = RMSNorm(x).
    RmsNormForward(x, lw.attention_norm, N, C, c.norm_eps, lc.xn.data(), lc.rstd_att.data(), pool);
    MatmulForward(lc.xn.data(), lw.wq, N, C, C, lc.q.data(), pool, precision_, pw(l, kWq));
    MatmulForward(lc.xn.data(), lw.wk, N, C, C, lc.k.data(), pool, precision_, pw(l, kWk));
    MatmulForward(lc.xn.data(), lw.wv, N, C, C, lc.v.data(), pool, precision_, pw(l, kWv));
    RopeForward(lc.q.data(), rope_, N, T, 0, NH, lc.q.data(), pool);
    RopeForward(lc.k.data(), rope_, N, T, 0, NH, lc.k.data(), pool);
    AttentionForward(lc.q.data(), lc.k.data(), lc.v.data(), B, T, NH, D, lc.probs.data(), lc.att.data(), pool);
    MatmulForward(lc.att.data(), lw.wo, N, C, C, lc.h.data(), pool, precision_, pw(l, kWo));
    AddInPlace(lc.h.data(), x, N * C, pool);
    // FFN block: x' = h + w2 · (SiLU(w1·m) ⊙ (w3·m)), m = RMSNorm(h).
    RmsNormForward(lc.h.data(), lw.ffn_norm, N, C, c.norm_eps, lc.hn.data(), lc.rstd_ffn.data(), pool);
    MatmulForward(lc.hn.data(), lw.w1, N, C, F, lc.a.data(), pool, precision_, pw(l, kW1));
    MatmulForward(lc.hn.data(), lw.w3, N, C, F, lc.b.data(), pool, precision_, pw(l, kW3));
    SwiGluForward(lc.a.data(), lc.b.data(), N * F, lc.g.data(), pool);
    MatmulForward(lc.g.data(), lw.w2, N, F, C, x_next, pool, precision_, pw(l, kW2));
    AddInPlace(x_next, lc.h.data(), N * C, pool);
  }

  const float* x_last = a.x.data() + int64_t{c.n_layers} * N * C;
  if (!ready(At(params, w.norm) + C)) return kAbandoned;
  RmsNormForward(x_last, w.norm, N, C, c.norm_eps, a.xf.data(), a.rstd_final.data(), pool);
  if (!ready(At(params, w.output) + V * C)) return kAbandoned;
  if (pack) {
    PackBf16Weight(w.output, C, V, &a.packed.back(), pool);
    a.packed_from = params;  // complete: a later Forward may reuse it
  }
  MatmulForward(a.xf.data(), w.output, N, C, V, a.logits.data(), pool, precision_, p_out);
  return CrossEntropyForward(a.logits.data(), a.targets.data(), N, V, a.losses.data(), pool);
}

void Model::Backward(const float* params, const int32_t* tokens, int B, float* grads, ThreadPool& pool,
                     const ModelStreamHooks* hooks) {
  LANLM_CHECK(B >= 1 && B <= max_batch_, "batch outside [1, max_batch]");
  const ModelConfig& c = config_;
  const int64_t T = c.context, C = c.dim, F = c.ffn_hidden, V = c.vocab_size, NH = c.n_heads, D = c.head_dim();
  const int64_t N = int64_t{B} * T;
  const ModelWeights w = BindWeights(c, const_cast<float*>(params));
  const ModelWeights dw = BindWeights(c, grads);
  Activations& a = *acts_;
  LANLM_CHECK(precision_ != Precision::kBf16 || a.packed_from == params, "Backward without Forward on these params");
  auto pw = [&](int l, int i) { return precision_ == Precision::kBf16 ? &a.packed[l * kPerLayer + i] : nullptr; };
  const Bf16PackedWeight* p_out = precision_ == Precision::kBf16 ? &a.packed.back() : nullptr;
  // grads[begin, end) is final (a streaming worker sends it on); nothing without the hook.
  const auto done = [&](const float* begin, const float* end) {
    if (hooks != nullptr && hooks->grads_final) hooks->grads_final(At(grads, begin), At(grads, end));
  };

  // 1. Cross-entropy: dlogits = (softmax - onehot) / N, in place over the logits.
  float* dlogits = a.logits.data();
  CrossEntropyBackward(a.logits.data(), a.targets.data(), N, V, 1.0f / static_cast<float>(N), dlogits, pool);

  // 2. Output projection, 3. final norm: dx = d loss / d x[L].
  Zero(a.dn, N * C);
  MatmulBackward(dlogits, a.xf.data(), w.output, N, C, V, a.dn.data(), dw.output, pool, precision_, p_out);
  done(dw.output, dw.output + V * C);
  Zero(a.dx, N * C);
  const float* x_last = a.x.data() + int64_t{c.n_layers} * N * C;
  RmsNormBackward(a.dn.data(), x_last, w.norm, a.rstd_final.data(), N, C, a.dx.data(), dw.norm, pool);
  done(dw.norm, dw.norm + C);

  // 4. Layers in reverse. dx holds the gradient of the layer's output; the norm backward
  // calls accumulate into it, which adds the residual path's gradient.
  for (int l = c.n_layers - 1; l >= 0; --l) {
    const LayerWeights& lw = w.layers[l];
    const LayerWeights& lg = dw.layers[l];
    LayerCache& lc = a.layers[l];
    const float* x = a.x.data() + l * N * C;

    // FFN: w2 -> SwiGLU -> w1/w3 -> ffn_norm.
    Zero(a.dg, N * F);
    MatmulBackward(a.dx.data(), lc.g.data(), lw.w2, N, F, C, a.dg.data(), lg.w2, pool, precision_, pw(l, kW2));
    Zero(a.da, N * F);
    Zero(a.db, N * F);
    SwiGluBackward(a.dg.data(), lc.a.data(), lc.b.data(), N * F, a.da.data(), a.db.data(), pool);
    Zero(a.dn, N * C);
    MatmulBackward(a.da.data(), lc.hn.data(), lw.w1, N, C, F, a.dn.data(), lg.w1, pool, precision_, pw(l, kW1));
    MatmulBackward(a.db.data(), lc.hn.data(), lw.w3, N, C, F, a.dn.data(), lg.w3, pool, precision_, pw(l, kW3));
    RmsNormBackward(a.dn.data(), lc.h.data(), lw.ffn_norm, lc.rstd_ffn.data(), N, C, a.dx.data(), lg.ffn_norm,
                    pool);

    // Attention: wo -> attention -> RoPE backward -> wq/wk/wv -> attention_norm.
    Zero(a.datt, N * C);
    MatmulBackward(a.dx.data(), lc.att.data(), lw.wo, N, C, C, a.datt.data(), lg.wo, pool, precision_, pw(l, kWo));
    Zero(a.dq, N * C);
    Zero(a.dk, N * C);
    Zero(a.dv, N * C);
    AttentionBackward(a.datt.data(), lc.q.data(), lc.k.data(), lc.v.data(), lc.probs.data(), B, T, NH, D,
                      a.dq.data(), a.dk.data(), a.dv.data(), pool);
    Zero(a.dqp, N * C);
    Zero(a.dkp, N * C);
    RopeBackward(a.dq.data(), rope_, N, T, 0, NH, a.dqp.data(), pool);
    RopeBackward(a.dk.data(), rope_, N, T, 0, NH, a.dkp.data(), pool);
    Zero(a.dn, N * C);
    MatmulBackward(a.dqp.data(), lc.xn.data(), lw.wq, N, C, C, a.dn.data(), lg.wq, pool, precision_, pw(l, kWq));
    MatmulBackward(a.dkp.data(), lc.xn.data(), lw.wk, N, C, C, a.dn.data(), lg.wk, pool, precision_, pw(l, kWk));
    MatmulBackward(a.dv.data(), lc.xn.data(), lw.wv, N, C, C, a.dn.data(), lg.wv, pool, precision_, pw(l, kWv));
    RmsNormBackward(a.dn.data(), x, lw.attention_norm, lc.rstd_att.data(), N, C, a.dx.data(), lg.attention_norm,
                    pool);
    done(lg.attention_norm, lg.w3 + F * C);
  }

  // 5. Embedding: scatter-add the gradient of x[0].
  EmbeddingBackward(a.dx.data(), a.inputs.data(), N, C, dw.tok_embeddings, pool);
  done(dw.tok_embeddings, dw.tok_embeddings + V * C);
}

}  // namespace lanlm::engine
