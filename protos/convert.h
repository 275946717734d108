// The one place where engine types become wire messages and back (DESIGN.md §1, §6):
// Status <-> grpc::Status, ModelConfig <-> message, float blocks <-> CRC-checked chunks,
// and lease tokens. Everything read from a message is validated here before use.
// Not the place for protocol logic (leases, versions): that lives in coordinator/ and worker/.
#pragma once

#include <grpcpp/grpcpp.h>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model_config.h"
#include "engine/train/optimizer.h"
#include "protos/cluster.pb.h"

namespace lanlm::protos {

// Largest FloatChunk.data, bytes (DESIGN.md §6: chunks of at most 4 MiB).
inline constexpr int64_t kMaxChunkBytes = int64_t{4} << 20;
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

// Wire formats (cluster.proto WireFormat). Bytes per float: 4 (fp32), 2 (bf16), 0 (unknown).
int WireBytes(int format);
// "fp32" or "bf16" ("wire format N" for an unknown value), for flags and messages.
std::string WireName(int format);
// The --wire flag: "fp32" or "bf16"; INVALID_ARGUMENT naming the value otherwise.
StatusOr<v1::WireFormat> ParseWireFormat(const std::string& name);

// bfloat16: the upper 16 bits of a float32, rounded to nearest even (a tie goes to the even
// mantissa), so encoding is a pure function of the bits. Overflow rounds to infinity; a NaN
// stays a (quiet) NaN. FromBf16 is exact.
inline uint16_t ToBf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float FromBf16(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// The run's AdamW for local-steps rounds (InnerOptimizer), both ways. FromProto validates
// (AdamWOptions::Validate, 1 <= local_steps <= kMaxLocalSteps): INVALID_ARGUMENT otherwise.
inline constexpr int kMaxLocalSteps = 100000;
void ToProto(const engine::AdamWOptions& adamw, int local_steps, v1::InnerOptimizer* out);
StatusOr<engine::AdamWOptions> FromProto(const v1::InnerOptimizer& message);

// Splits block[0, n) into FloatChunks in `format` of at most max_chunk_bytes (a positive
// multiple of 4) of data, each with its CRC32C. n = 0 gives no chunks.
std::vector<v1::FloatChunk> MakeChunks(const float* block, int64_t n, int64_t max_chunk_bytes = kMaxChunkBytes,
                                       v1::WireFormat format = v1::WIRE_FORMAT_FP32);

// Reassembles one float block from chunks that arrive in offset order, checking each chunk
// before copying (and, for bf16, widening) it. Keeps the commit checksum of the chunks seen
// (see ChunksCrc32c). Not thread-safe.
class ChunkAssembler {
 public:
  // expected_total: the block size the receiver expects, floats; format: the run's.
  explicit ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes = kMaxChunkBytes,
                          v1::WireFormat format = v1::WIRE_FORMAT_FP32);

  // INVALID_ARGUMENT: a format other than the run's, total != expected_total, offset !=
  // floats received so far (gap, overlap or reordering), empty or oversized data, data
  // length not a multiple of the format's bytes per float, or the chunk runs past total.
  // DATA_LOSS: the chunk's CRC32C does not match its data.
  // After any error the assembler stays failed (every later Add returns the first error).
  Status Add(const v1::FloatChunk& chunk);

  bool complete() const { return status_.ok() && received_ == total_; }
  int64_t received() const { return received_; }
  // ChunksCrc32c of the chunks accepted so far.
  uint32_t crc32c() const { return crc_; }
  // The block; valid once complete().
  std::vector<float>& block() { return block_; }
  std::vector<float> Take() { return std::move(block_); }

 private:
  int64_t total_;
  int64_t max_chunk_bytes_;
  v1::WireFormat format_;
  int64_t received_ = 0;
  uint32_t crc_ = 0;
  Status status_;
  std::vector<float> block_;
};

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
