// Checkpoints: one safetensors file (8-byte little-endian header length, JSON header, raw
// little-endian float32 data), DESIGN.md §5. Tensors use the names of parameters.h; AdamW
// moments are "optim.m.<name>" and "optim.v.<name>". __metadata__ carries the format version,
// model config, training options, step, seed, shards, tokenizer, corpus hash (optional: files
// written before it existed load with 0), parameter fingerprint and a CRC32C of the data section. Writes are atomic (temp file, fsync, rename, fsync dir).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model_config.h"

namespace lanlm::engine {

struct Checkpoint {
  ModelConfig config;
  int64_t step = 0;                         // optimizer steps taken (= parameter version)
  uint64_t seed = 0;
  uint64_t corpus_hash = 0;                 // Corpus::hash of the text trained on; 0 = not recorded
  std::map<std::string, std::string> training;  // training options as strings ("lr" -> "0.001", "shards" -> "4", ...)
  std::string tokenizer;                    // BpeTokenizer::Serialize()
  std::vector<float> params;                // ParameterCount(config)
  std::vector<float> adam_m;                // same size as params, or empty (inference-only)
  std::vector<float> adam_v;                // same size as params, or empty
};

Status SaveCheckpoint(const std::string& path, const Checkpoint& checkpoint);
// Validates header size, JSON, names, dtypes, shapes, offsets, data checksum, config and
// tokenizer before allocating from any number read from the file; errors name what is wrong.
StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace lanlm::engine
