// The one place where engine types become wire messages and back (DESIGN.md §1, §6):
// Status <-> grpc::Status, ModelConfig <-> message, float blocks <-> CRC-checked chunks,
// the step messages (engine/train/step_messages.h: lease, gradient chunk, commit) and lease
// tokens. Everything read from a message is validated here before use.
// Not the place for protocol logic (leases, versions): that lives in coordinator/ and worker/.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/io/float_chunks.h"
#include "engine/model/model_config.h"
#include "engine/train/optimizer.h"
#include "engine/train/step_messages.h"
#include "protos/cluster.pb.h"

namespace lanlm::protos {

// Largest FloatChunk.data, bytes (DESIGN.md §6: chunks of at most 4 MiB).
inline constexpr int64_t kMaxChunkBytes = engine::kMaxFloatChunkBytes;
// gRPC message size limit for cluster channels: one chunk plus generous framing room.
// Fixed, never unlimited.
inline constexpr int kMaxMessageBytes = static_cast<int>(kMaxChunkBytes + (int64_t{256} << 10));
// Metadata key carrying the cluster token on every cluster call.
inline constexpr char kTokenMetadataKey[] = "lanlm-cluster-token";

grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

void ToProto(const engine::ModelConfig& config, v1::ModelConfig* out);
// INVALID_ARGUMENT (from ModelConfig::Validate) when the message is not a valid config.
StatusOr<engine::ModelConfig> FromProto(const v1::ModelConfig& message);

// Splits block[0, n) into FloatChunks in `format` (engine/io/float_chunks.h: fp32, or bf16
// rounded to nearest even) of at most max_chunk_bytes (a positive multiple of 4) of data,
// each with its CRC32C. n = 0 gives no chunks.
std::vector<v1::FloatChunk> MakeChunks(const float* block, int64_t n, int64_t max_chunk_bytes = kMaxChunkBytes,
                                       engine::WireFormat format = engine::WireFormat::kFp32);

// Reassembles a float block from FloatChunk messages (engine::ChunkAssembler, which also
// takes engine::FloatChunk).
class ChunkAssembler : public engine::ChunkAssembler {
 public:
  using engine::ChunkAssembler::Add;
  using engine::ChunkAssembler::Check;
  using engine::ChunkAssembler::ChunkAssembler;
  Status Check(const v1::FloatChunk& chunk) const {
    return Check(chunk.offset(), chunk.total(), chunk.data(), chunk.crc32c(), static_cast<int>(chunk.format()));
  }
  Status Add(const v1::FloatChunk& chunk) {
    return Add(chunk.offset(), chunk.total(), chunk.data(), chunk.crc32c(), static_cast<int>(chunk.format()));
  }
};

// The run's AdamW for local-steps rounds (InnerOptimizer), both ways. FromProto validates
// (AdamWOptions::Validate, 1 <= local_steps <= kMaxLocalSteps): INVALID_ARGUMENT otherwise.
inline constexpr int kMaxLocalSteps = 100000;
void ToProto(const engine::AdamWOptions& adamw, int local_steps, v1::InnerOptimizer* out);
StatusOr<engine::AdamWOptions> FromProto(const v1::InnerOptimizer& message);

void ToProto(const engine::FloatChunk& chunk, v1::FloatChunk* out);
// Takes the message's data without copying it.
engine::FloatChunk FromProto(v1::FloatChunk&& message);
void ToProto(const engine::ShardLease& lease, v1::Lease* out);
// As sent; the step loop validates every field.
engine::ShardCommit FromProto(const v1::Commit& message);

// The checksum a Commit carries: CRC32C over the chunks' CRC32C values in order, each as 4
// little-endian bytes. Every chunk's CRC covers its data, so this covers the whole block and
// catches a lost, repeated or reordered chunk without a second pass over the data.
uint32_t ChunksCrc32c(const std::vector<v1::FloatChunk>& chunks);

// Copies a shard's tokens (B, T+1) into a Lease.
void TokensToProto(const int32_t* tokens, int64_t n, v1::Lease* lease);
// Most shards one lease may cover (keeps a Lease message well under kMaxMessageBytes).
inline constexpr int kMaxShardsPerLease = 64;
// The number of shards a Lease covers (shard_count, where 0 means 1; a clipped last block
// need not be a power of two); INVALID_ARGUMENT when it is outside [1, kMaxShardsPerLease].
StatusOr<int> LeaseShardCount(const v1::Lease& lease);
// Validates a Lease's tokens for a model: count == max(1, local_steps) * shards * micro_batch
// * (context + 1), local_steps in [0, kMaxLocalSteps], and every id in [0, vocab_size);
// INVALID_ARGUMENT naming the first offending value.
StatusOr<std::vector<int32_t>> TokensFromProto(const v1::Lease& lease, const engine::ModelConfig& config,
                                               int micro_batch);

}  // namespace lanlm::protos
