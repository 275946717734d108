// Parameter layout and initialisation.
#include "engine/model/parameters.h"

#include <cmath>

#include "engine/base/random.h"

namespace lanlm::engine {

std::vector<TensorInfo> ParameterTensors(const ModelConfig& c) {
  const int64_t V = c.vocab_size, C = c.dim, F = c.ffn_hidden;
  std::vector<TensorInfo> out;
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay) {
    int64_t size = 1;
    for (int64_t d : shape) size *= d;
    out.push_back({std::move(name), std::move(shape), offset, size, decay});
    offset += size;
  };
  add("tok_embeddings.weight", {V, C}, true);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attention_norm.weight", {C}, false);
    add(p + "attention.wq.weight", {C, C}, true);
    add(p + "attention.wk.weight", {C, C}, true);
    add(p + "attention.wv.weight", {C, C}, true);
    add(p + "attention.wo.weight", {C, C}, true);
    add(p + "ffn_norm.weight", {C}, false);
    add(p + "feed_forward.w1.weight", {F, C}, true);
    add(p + "feed_forward.w2.weight", {C, F}, true);
    add(p + "feed_forward.w3.weight", {F, C}, true);
  }
  add("norm.weight", {C}, false);
  add("output.weight", {V, C}, true);
  return out;
}

int64_t ParameterCount(const ModelConfig& c) {
  const int64_t V = c.vocab_size, C = c.dim, F = c.ffn_hidden;
  return 2 * V * C + C + c.n_layers * (2 * C + 4 * C * C + 3 * F * C);
}

ModelWeights BindWeights(const ModelConfig& c, float* block) {
  const int64_t V = c.vocab_size, C = c.dim, F = c.ffn_hidden;
  ModelWeights w;
  float* p = block;
  auto take = [&](int64_t n) { float* r = p; p += n; return r; };
  w.tok_embeddings = take(V * C);
  w.layers.resize(c.n_layers);
  for (auto& l : w.layers) {
    l.attention_norm = take(C);
    l.wq = take(C * C);
    l.wk = take(C * C);
    l.wv = take(C * C);
    l.wo = take(C * C);
    l.ffn_norm = take(C);
    l.w1 = take(F * C);
    l.w2 = take(C * F);
    l.w3 = take(F * C);
  }
  w.norm = take(C);
  w.output = take(V * C);
  return w;
}

void InitParameters(const ModelConfig& config, uint64_t seed, float std, float* block) {
  for (const TensorInfo& t : ParameterTensors(config)) {
    float* x = block + t.offset;
    if (t.shape.size() == 1) {
      for (int64_t i = 0; i < t.size; ++i) x[i] = 1.0f;
      continue;
    }
    const uint64_t key = CounterRng::Mix(seed, static_cast<uint64_t>(t.offset));
    for (int64_t i = 0; i < t.size; ++i) {
      x[i] = std * static_cast<float>(CounterRng::Normal(key, static_cast<uint64_t>(i)));
    }
  }
}

}  // namespace lanlm::engine
