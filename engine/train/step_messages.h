// What a distributed training step exchanges between the coordinator's step loop and a
// worker, as plain structs (DESIGN.md §6): the lease of a block of shards with its tokens, a
// gradient chunk, the commit that closes a lease. protos/convert turns them into the
// lanlm.v1 messages and back; the step loop (coordinator/training_run.h) sees only these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/float_chunks.h"

namespace lanlm::engine {

// Shards [shard, shard + shard_count) of step `step`, leased to one worker until the deadline.
struct ShardLease {
  int64_t step = 0;
  int64_t shard = 0;
  int64_t lease_id = 0;          // unique for the coordinator's lifetime, > 0
  int64_t timeout_ms = 0;        // the deadline as a duration from issue
  int64_t deadline_unix_ms = 0;  // the same deadline on the wall clock (informational)
  int micro_batch = 0;           // B
  int shard_count = 1;
  int local_steps = 0;           // 0: synchronous; H > 0: a DiLoCo round (engine/train/local_steps.h)
  std::vector<int32_t> tokens;   // (max(1, local_steps), shard_count, B, T+1) token ids, row-major
  std::string param_source;      // non-empty: a peer's relay address to fetch version `step` from
};

// One chunk of the gradient of a lease.
struct GradientChunk {
  int64_t lease_id = 0;
  FloatChunk chunk;
};

// Closes a lease: the gradient's size and commit checksum (ChunkAssembler::crc32c) and the
// shards' mean losses.
struct ShardCommit {
  int64_t lease_id = 0;
  int64_t floats = 0;
  uint32_t crc32c = 0;
  float loss = 0.0f;                // the first shard's (the only one when shard_count = 1)
  std::vector<float> shard_losses;  // one per shard when shard_count > 1
  double compute_ms = 0.0;
};

}  // namespace lanlm::engine
