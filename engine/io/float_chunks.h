// Float blocks in CRC-checked chunks (DESIGN.md §6): how parameters and gradients travel.
// FloatChunk is the plain form of one slice (protos/convert turns it into the wire message);
// ChunkAssembler rebuilds a block from chunks that arrive in order, checking each first.
#pragma once

#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

// Largest chunk data, bytes (chunks of at most 4 MiB).
inline constexpr int64_t kMaxFloatChunkBytes = int64_t{4} << 20;

// How chunk data encodes its floats (the values of cluster.proto WireFormat). One per run.
enum class WireFormat : int { kFp32 = 0, kBf16 = 1 };
// Bytes per float: 4 (fp32), 2 (bf16), 0 (an unknown value).
int WireBytes(int format);
// "fp32", "bf16" or "wire format N", for flags and messages.
std::string WireName(int format);
// The --wire flag: "fp32" or "bf16"; INVALID_ARGUMENT naming the value otherwise.
StatusOr<WireFormat> ParseWireFormat(const std::string& name);

// bfloat16: the upper 16 bits of a float32, rounded to nearest even (a tie goes to the even
// mantissa), so encoding is a pure function of the bits. Overflow rounds to infinity; a NaN
// stays a (quiet) NaN. FromBf16 is exact.
inline uint16_t ToBf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float FromBf16(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// One slice [offset, offset + data.size() / WireBytes(format)) of a block of `total` floats.
struct FloatChunk {
  int64_t offset = 0;   // floats
  int64_t total = 0;    // floats in the whole block
  std::string data;     // little-endian float32s (or bf16s)
  uint32_t crc32c = 0;  // Crc32c of data
  WireFormat format = WireFormat::kFp32;
};

// Whether a block's chunks must arrive in offset order (parameters) or may arrive in any
// order, each range once (gradients streamed as the backward pass finishes them).
enum class ChunkOrder { kInOrder, kAnyOrder };

// Reassembles one float block from chunks, checking each chunk before copying it. Keeps the
// commit checksum of the chunks seen: CRC32C over the chunks' crc32c values in arrival order,
// each as 4 little-endian bytes. Not thread-safe.
class ChunkAssembler {
 public:
  // expected_total: the block size the receiver expects, floats; format: the run's (bf16
  // chunks are widened exactly to float32). The block is allocated here, so block().data()
  // stays put while chunks arrive.
  explicit ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes = kMaxFloatChunkBytes,
                          WireFormat format = WireFormat::kFp32, ChunkOrder order = ChunkOrder::kInOrder);

  // INVALID_ARGUMENT: a format other than the run's (the message names both), total !=
  // expected_total, empty or oversized data, data length not a multiple of the format's
  // bytes per float, the chunk runs past total, or (kInOrder) offset != floats received so far
  // (gap, overlap or reordering), or (kAnyOrder) the chunk overlaps one received before (the
  // message names both ranges). DATA_LOSS: the chunk's CRC32C does not match its data.
  // After any error the assembler stays failed (every later Add returns the first error).
  Status Add(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c, int format = 0);
  // What Add would return, without adding the chunk or failing the assembler (for chunks from
  // a source the receiver may drop and replace, such as a relaying peer).
  Status Check(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c, int format = 0) const;
  Status Add(const FloatChunk& chunk) {
    return Add(chunk.offset, chunk.total, chunk.data, chunk.crc32c, static_cast<int>(chunk.format));
  }

  bool complete() const { return status_.ok() && received_ == total_; }
  int64_t received() const { return received_; }
  // The first float not yet received (total when complete): where a gap starts.
  int64_t FirstMissing() const;
  // The commit checksum of the chunks accepted so far.
  uint32_t crc32c() const { return crc_; }
  // The block; valid once complete().
  std::vector<float>& block() { return block_; }
  std::vector<float> Take() { return std::move(block_); }

 private:
  int64_t total_;
  int64_t max_chunk_bytes_;
  WireFormat format_;
  ChunkOrder order_;
  void Insert(int64_t begin, int64_t end);  // into ranges_
  std::map<int64_t, int64_t> ranges_;  // kAnyOrder: begin -> end of the ranges received (merged)
  int64_t received_ = 0;
  uint32_t crc_ = 0;
  Status status_;
  std::vector<float> block_;
};

}  // namespace lanlm::engine
