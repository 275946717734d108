// Chunk reassembly; see float_chunks.h. Floats are copied as raw bytes (little-endian hosts).
#include "engine/io/float_chunks.h"

#include <bit>
#include <cstring>

#include "engine/base/check.h"
#include "engine/base/hash.h"

namespace lanlm::engine {

static_assert(std::endian::native == std::endian::little, "chunks hold little-endian float32 or bf16");

int WireBytes(int format) {
  switch (format) {
    case static_cast<int>(WireFormat::kFp32):
      return 4;
    case static_cast<int>(WireFormat::kBf16):
      return 2;
    default:
      return 0;
  }
}

std::string WireName(int format) {
  switch (format) {
    case static_cast<int>(WireFormat::kFp32):
      return "fp32";
    case static_cast<int>(WireFormat::kBf16):
      return "bf16";
    default:
      return "wire format " + std::to_string(format);
  }
}

StatusOr<WireFormat> ParseWireFormat(const std::string& name) {
  if (name == "fp32") return WireFormat::kFp32;
  if (name == "bf16") return WireFormat::kBf16;
  return InvalidArgumentError("--wire '" + name + "': expected fp32 or bf16");
}

ChunkAssembler::ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes, WireFormat format)
    : total_(expected_total), max_chunk_bytes_(max_chunk_bytes), format_(format) {
  LANLM_CHECK(expected_total >= 0, "negative block size");
  LANLM_CHECK(WireBytes(static_cast<int>(format)) > 0, "unknown wire format");
}

Status ChunkAssembler::Add(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c, int format) {
  if (!status_.ok()) return status_;
  const int64_t bytes = static_cast<int64_t>(data.size());
  const int width = WireBytes(static_cast<int>(format_));
  if (format != static_cast<int>(format_)) {
    status_ = InvalidArgumentError("chunk format " + WireName(format) + ", but this run uses " +
                                   WireName(static_cast<int>(format_)));
  } else if (total != total_) {
    status_ = InvalidArgumentError("chunk total = " + std::to_string(total) + " floats, expected " +
                                   std::to_string(total_));
  } else if (offset != received_) {
    status_ = InvalidArgumentError("chunk offset = " + std::to_string(offset) + ", expected " +
                                   std::to_string(received_) + " (chunks must arrive in order without gaps)");
  } else if (bytes == 0 || bytes > max_chunk_bytes_ || bytes % width != 0) {
    status_ = InvalidArgumentError("chunk data = " + std::to_string(bytes) + " bytes; must be a positive multiple of " +
                                   std::to_string(width) + " up to " + std::to_string(max_chunk_bytes_));
  } else if (bytes / width > total_ - received_) {
    status_ = InvalidArgumentError("chunk at offset " + std::to_string(offset) + " with " +
                                   std::to_string(bytes / width) + " floats runs past total = " +
                                   std::to_string(total_));
  } else if (Crc32c(data.data(), data.size()) != crc32c) {
    status_ = DataLossError("chunk at offset " + std::to_string(offset) + " fails its CRC32C check");
  }
  if (!status_.ok()) return status_;
  if (block_.empty()) block_.resize(static_cast<size_t>(total_));
  const int64_t floats = bytes / width;
  if (format_ == WireFormat::kBf16) {
    for (int64_t i = 0; i < floats; ++i) {
      uint16_t h;
      std::memcpy(&h, data.data() + 2 * i, 2);
      block_[static_cast<size_t>(received_ + i)] = FromBf16(h);
    }
  } else {
    std::memcpy(block_.data() + received_, data.data(), static_cast<size_t>(bytes));
  }
  crc_ = Crc32c(&crc32c, 4, crc_);
  received_ += floats;
  return OkStatus();
}

}  // namespace lanlm::engine
