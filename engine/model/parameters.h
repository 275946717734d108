// Parameter layout: every tensor of the model lives in one contiguous float block, in the
// order and with the names of DESIGN.md §2. Gradients and AdamW moments use the same
// layout, so one offset table serves all four blocks (llm.c's single parameter block).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/model_config.h"

namespace lanlm::engine {

struct TensorInfo {
  std::string name;            // e.g. "layers.0.attention.wq.weight"
  std::vector<int64_t> shape;  // e.g. {C, C}
  int64_t offset = 0;          // in floats, from the start of the block
  int64_t size = 0;            // element count
  bool decay = true;           // AdamW weight decay applies (false for norm weights)
};

// The tensors of `config` in block order: tok_embeddings, then per layer attention_norm, wq,
// wk, wv, wo, ffn_norm, w1, w2, w3, then norm, output.
std::vector<TensorInfo> ParameterTensors(const ModelConfig& config);
int64_t ParameterCount(const ModelConfig& config);

// Typed views into one block (parameters, gradients or moments). Shapes in comments.
struct LayerWeights {
  float* attention_norm;  // (C)
  float* wq;              // (C, C)  [out, in]
  float* wk;              // (C, C)
  float* wv;              // (C, C)
  float* wo;              // (C, C)
  float* ffn_norm;        // (C)
  float* w1;              // (F, C)
  float* w2;              // (C, F)
  float* w3;              // (F, C)
};

struct ModelWeights {
  float* tok_embeddings;  // (V, C)
  std::vector<LayerWeights> layers;
  float* norm;            // (C)
  float* output;          // (V, C)
};

// Binds views into `block`, which must hold ParameterCount(config) floats.
ModelWeights BindWeights(const ModelConfig& config, float* block);

// Fills a parameter block the way torch_ref.py does: matrices ~ N(0, std^2) from a counter
// based generator keyed by `seed` (any thread count gives the same bits), norm weights 1.
void InitParameters(const ModelConfig& config, uint64_t seed, float std, float* block);

}  // namespace lanlm::engine
