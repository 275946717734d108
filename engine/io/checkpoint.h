// engine/io/ owns file formats and bytes on disk or wire: atomic files, float chunks, the JSON reader, and
// checkpoints (this file): one safetensors file (8-byte LE header length, JSON header, raw LE float32 data),
// DESIGN.md §5. Tensors use parameters.h names; AdamW moments are "optim.m.<name>" and "optim.v.<name>",
// a --local-steps run's outer momentum "optim.outer_m.<name>".
// __metadata__: format version, config, training options, step, seed, shards, tokenizer, corpus hash and
// run id (0 / "" if absent), fingerprint, a CRC32C of the data section and one of the tensor table (names,
// shapes, dtypes, offsets; older files lack it, see table_checksummed). Writes are atomic (temp, fsync,
// rename, fsync dir).
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
  std::string run_id;                       // NewRunId() of the training run; "" = not recorded
  bool table_checksummed = false;           // loaded: the file's tensors_crc32c bound its tensor table
                                            // (false: an older file without it; saved files always have it)
  std::map<std::string, std::string> training;  // training options as strings ("lr" -> "0.001", "shards" -> "4", ...)
  std::string tokenizer;                    // BpeTokenizer::Serialize()
  std::vector<float> params;                // ParameterCount(config)
  std::vector<float> adam_m;                // same size as params, or empty (inference-only)
  std::vector<float> adam_v;                // same size as params, or empty
  // A --local-steps (DiLoCo) run's outer Nesterov momentum ("optim.outer_m.<name>"), same size
  // as params, or empty; `outer` holds the round settings it belongs to ("local_steps", "lr",
  // "momentum", metadata "outer.<key>"), present exactly when outer_m is.
  std::vector<float> outer_m;
  std::map<std::string, std::string> outer;
};

// A fresh random 128-bit training-run identity as 32 lowercase hex digits (std::random_device):
// it tells apart two runs that share a seed, step numbers and port, and is kept across resume.
std::string NewRunId();
// True when s is 32 lowercase hex digits (the NewRunId form).
bool IsRunId(const std::string& s);

Status SaveCheckpoint(const std::string& path, const Checkpoint& checkpoint);
// Validates header size, JSON, names, dtypes, shapes, offsets, data checksum, config and
// tokenizer before allocating from any number read from the file; errors name what is wrong.
StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace lanlm::engine
