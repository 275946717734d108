// ParamSnapshot: an immutable copy of the parameters at one version, shared by Generate
// sessions (each pins the snapshot it started with) while training moves on.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/model/model_config.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::coordinator {

struct ParamSnapshot {
  engine::ModelConfig config;
  std::vector<float> params;  // ParameterCount(config) floats
  int64_t version = 0;        // optimizer steps applied
  std::shared_ptr<const engine::BpeTokenizer> tokenizer;
};

// Returns the newest snapshot; thread-safe. The trainer publishes a new one after each step
// (or lazily, when asked); a server without training returns the checkpoint's.
using SnapshotSource = std::function<std::shared_ptr<const ParamSnapshot>()>;

}  // namespace lanlm::coordinator
