// ModelConfig: the shape of the llama-style model (DESIGN.md §2) and the named configs
// S, M and INF15M. Pure data plus validation; no parameters live here.
#pragma once

#include <cstdint>
#include <string>

#include "engine/base/status.h"

namespace lanlm::engine {

struct ModelConfig {
  int vocab_size = 1024;  // V
  int dim = 128;          // C
  int n_layers = 4;       // L
  int n_heads = 4;        // NH; head dim D = C / NH
  int ffn_hidden = 352;   // F
  int context = 128;      // T: longest sequence the model sees
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;

  int head_dim() const { return dim / n_heads; }

  // Checks every field against its limit and names the first one that is off.
  Status Validate() const;
  // "V=1024 C=128 L=4 NH=4 F=352 T=128"
  std::string ToString() const;
  // Stable 64-bit hash of every field (compared at cluster join).
  uint64_t Hash() const;

  bool operator==(const ModelConfig&) const = default;
};

// Upper bounds that keep sizes computed from untrusted configs far from overflow.
inline constexpr int kMaxVocab = 1 << 20;
inline constexpr int kMaxDim = 1 << 14;
inline constexpr int kMaxLayers = 256;
inline constexpr int kMaxContext = 1 << 16;

// "S", "M" or "INF15M" (DESIGN.md §2); the micro-batch B of each is NamedMicroBatch().
StatusOr<ModelConfig> NamedConfig(const std::string& name);
int NamedMicroBatch(const std::string& name);

}  // namespace lanlm::engine
