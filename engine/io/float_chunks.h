// Float blocks in CRC-checked chunks (DESIGN.md §6): how parameters and gradients travel.
// FloatChunk is the plain form of one slice (protos/convert turns it into the wire message);
// ChunkAssembler rebuilds a block from chunks that arrive in order, checking each first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

// Largest chunk data, bytes (chunks of at most 4 MiB).
inline constexpr int64_t kMaxFloatChunkBytes = int64_t{4} << 20;

// One slice [offset, offset + data.size() / 4) of a block of `total` floats.
struct FloatChunk {
  int64_t offset = 0;   // floats
  int64_t total = 0;    // floats in the whole block
  std::string data;     // little-endian float32s
  uint32_t crc32c = 0;  // Crc32c of data
};

// Reassembles one float block from chunks that arrive in offset order, checking each chunk
// before copying it. Keeps the commit checksum of the chunks seen: CRC32C over the chunks'
// crc32c values in order, each as 4 little-endian bytes. Not thread-safe.
class ChunkAssembler {
 public:
  // expected_total: the block size the receiver expects, floats.
  explicit ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes = kMaxFloatChunkBytes);

  // INVALID_ARGUMENT: total != expected_total, offset != floats received so far (gap,
  // overlap or reordering), empty or oversized data, data length not a multiple of 4, or
  // the chunk runs past total. DATA_LOSS: the chunk's CRC32C does not match its data.
  // After any error the assembler stays failed (every later Add returns the first error).
  Status Add(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c);
  Status Add(const FloatChunk& chunk) { return Add(chunk.offset, chunk.total, chunk.data, chunk.crc32c); }

  bool complete() const { return status_.ok() && received_ == total_; }
  int64_t received() const { return received_; }
  // The commit checksum of the chunks accepted so far.
  uint32_t crc32c() const { return crc_; }
  // The block; valid once complete().
  std::vector<float>& block() { return block_; }
  std::vector<float> Take() { return std::move(block_); }

 private:
  int64_t total_;
  int64_t max_chunk_bytes_;
  int64_t received_ = 0;
  uint32_t crc_ = 0;
  Status status_;
  std::vector<float> block_;
};

}  // namespace lanlm::engine
