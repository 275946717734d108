// Chunk reassembly; see float_chunks.h. Floats are copied as raw bytes (little-endian hosts).
#include "engine/io/float_chunks.h"

#include <bit>
#include <cstring>

#include "engine/base/check.h"
#include "engine/base/hash.h"

namespace lanlm::engine {

static_assert(std::endian::native == std::endian::little, "chunks hold little-endian float32");

ChunkAssembler::ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes)
    : total_(expected_total), max_chunk_bytes_(max_chunk_bytes) {
  LANLM_CHECK(expected_total >= 0, "negative block size");
}

Status ChunkAssembler::Add(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c) {
  if (!status_.ok()) return status_;
  const int64_t bytes = static_cast<int64_t>(data.size());
  if (total != total_) {
    status_ = InvalidArgumentError("chunk total = " + std::to_string(total) + " floats, expected " +
                                   std::to_string(total_));
  } else if (offset != received_) {
    status_ = InvalidArgumentError("chunk offset = " + std::to_string(offset) + ", expected " +
                                   std::to_string(received_) + " (chunks must arrive in order without gaps)");
  } else if (bytes == 0 || bytes > max_chunk_bytes_ || bytes % 4 != 0) {
    status_ =
        InvalidArgumentError("chunk data = " + std::to_string(bytes) +
                             " bytes; must be a positive multiple of 4 up to " + std::to_string(max_chunk_bytes_));
  } else if (bytes / 4 > total_ - received_) {
    status_ = InvalidArgumentError("chunk at offset " + std::to_string(offset) + " with " +
                                   std::to_string(bytes / 4) + " floats runs past total = " + std::to_string(total_));
  } else if (Crc32c(data.data(), data.size()) != crc32c) {
    status_ = DataLossError("chunk at offset " + std::to_string(offset) + " fails its CRC32C check");
  }
  if (!status_.ok()) return status_;
  if (block_.empty()) block_.resize(static_cast<size_t>(total_));
  std::memcpy(block_.data() + received_, data.data(), static_cast<size_t>(bytes));
  crc_ = Crc32c(&crc32c, 4, crc_);
  received_ += bytes / 4;
  return OkStatus();
}

}  // namespace lanlm::engine
