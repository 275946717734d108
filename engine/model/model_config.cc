// ModelConfig validation, formatting, hashing and the named configs.
#include "engine/model/model_config.h"

#include <cstring>

#include "engine/base/hash.h"

namespace lanlm::engine {
namespace {

Status CheckRange(const char* name, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return InvalidArgumentError(std::string(name) + " = " + std::to_string(value) +
                                " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return OkStatus();
}

}  // namespace

Status ModelConfig::Validate() const {
  LANLM_RETURN_IF_ERROR(CheckRange("vocab_size", vocab_size, 8, kMaxVocab));
  LANLM_RETURN_IF_ERROR(CheckRange("dim", dim, 2, kMaxDim));
  LANLM_RETURN_IF_ERROR(CheckRange("n_layers", n_layers, 1, kMaxLayers));
  LANLM_RETURN_IF_ERROR(CheckRange("n_heads", n_heads, 1, dim));
  LANLM_RETURN_IF_ERROR(CheckRange("ffn_hidden", ffn_hidden, 1, 4 * kMaxDim));
  LANLM_RETURN_IF_ERROR(CheckRange("context", context, 2, kMaxContext));
  if (dim % n_heads != 0) {
    return InvalidArgumentError("dim = " + std::to_string(dim) + " is not a multiple of n_heads = " +
                                std::to_string(n_heads));
  }
  if (head_dim() % 2 != 0) {
    return InvalidArgumentError("head dim = dim / n_heads = " + std::to_string(head_dim()) +
                                " must be even for RoPE");
  }
  if (!(norm_eps > 0.0f && norm_eps < 1.0f)) {
    return InvalidArgumentError("norm_eps = " + std::to_string(norm_eps) + " is outside (0, 1)");
  }
  if (!(rope_theta > 1.0f && rope_theta < 1e9f)) {
    return InvalidArgumentError("rope_theta = " + std::to_string(rope_theta) + " is outside (1, 1e9)");
  }
  return OkStatus();
}

std::string ModelConfig::ToString() const {
  return "V=" + std::to_string(vocab_size) + " C=" + std::to_string(dim) + " L=" + std::to_string(n_layers) +
         " NH=" + std::to_string(n_heads) + " F=" + std::to_string(ffn_hidden) + " T=" + std::to_string(context);
}

uint64_t ModelConfig::Hash() const {
  uint64_t h = Fnv1a64("lanlm.ModelConfig.v1", 20);
  const int64_t ints[] = {vocab_size, dim, n_layers, n_heads, ffn_hidden, context};
  h = Fnv1a64(ints, sizeof(ints), h);
  h = Fnv1a64(&norm_eps, sizeof(norm_eps), h);
  h = Fnv1a64(&rope_theta, sizeof(rope_theta), h);
  return h;
}

StatusOr<ModelConfig> NamedConfig(const std::string& name) {
  ModelConfig c;
  if (name == "S") {
    c = {1024, 128, 4, 4, 352, 128};
  } else if (name == "M") {
    c = {4096, 288, 6, 6, 768, 256};
  } else if (name == "INF15M") {
    c = {32000, 288, 6, 6, 768, 256};
  } else {
    return InvalidArgumentError("unknown config '" + name + "' (known: S, M, INF15M)");
  }
  return c;
}

int NamedMicroBatch(const std::string& name) { return name == "INF15M" ? 1 : 8; }

}  // namespace lanlm::engine
