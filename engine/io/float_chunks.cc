// Chunk reassembly; see float_chunks.h. Floats are copied as raw bytes (little-endian hosts).
#include "engine/io/float_chunks.h"

#include <bit>
#include <cstring>
#include <iterator>

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

ChunkAssembler::ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes, WireFormat format, ChunkOrder order)
    : total_(expected_total), max_chunk_bytes_(max_chunk_bytes), format_(format), order_(order) {
  LANLM_CHECK(expected_total >= 0, "negative block size");
  LANLM_CHECK(WireBytes(static_cast<int>(format)) > 0, "unknown wire format");
  block_.resize(static_cast<size_t>(total_));
}

void ChunkAssembler::Insert(int64_t begin, int64_t end) {
  // Adjacent ranges merge, so the map stays as small as the number of gaps.
  auto next = ranges_.find(end);
  if (next != ranges_.end()) {
    end = next->second;
    ranges_.erase(next);
  }
  auto it = ranges_.lower_bound(begin);
  if (it != ranges_.begin() && std::prev(it)->second == begin) {
    std::prev(it)->second = end;
    return;
  }
  ranges_[begin] = end;
}

int64_t ChunkAssembler::FirstMissing() const {
  if (order_ == ChunkOrder::kInOrder) return received_;
  int64_t at = 0;
  for (const auto& [begin, end] : ranges_) {
    if (begin != at) return at;
    at = end;
  }
  return at;
}

namespace {

std::string Range(int64_t begin, int64_t end) {
  std::string text(1, '[');  // (built by appends: GCC 12 warns falsely on "[" + std::string)
  text += std::to_string(begin);
  text += ", ";
  text += std::to_string(end);
  text += ')';
  return text;
}

// kAnyOrder: the range received before that [begin, end) overlaps, as text; "" when none.
std::string Overlap(const std::map<int64_t, int64_t>& ranges, int64_t begin, int64_t end) {
  auto next = ranges.lower_bound(begin);
  if (next != ranges.end() && next->first < end) return Range(next->first, next->second);
  if (next != ranges.begin() && std::prev(next)->second > begin) {
    return Range(std::prev(next)->first, std::prev(next)->second);
  }
  return "";
}

}  // namespace

Status ChunkAssembler::Check(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c,
                             int format) const {
  if (!status_.ok()) return status_;
  const int64_t bytes = static_cast<int64_t>(data.size());
  const int width = WireBytes(static_cast<int>(format_));
  Status status;
  if (format != static_cast<int>(format_)) {
    status = InvalidArgumentError("chunk format " + WireName(format) + ", but this run uses " +
                                  WireName(static_cast<int>(format_)));
  } else if (total != total_) {
    status = InvalidArgumentError("chunk total = " + std::to_string(total) + " floats, expected " +
                                   std::to_string(total_));
  } else if (order_ == ChunkOrder::kInOrder && offset != received_) {
    status = InvalidArgumentError("chunk offset = " + std::to_string(offset) + ", expected " +
                                   std::to_string(received_) + " (chunks must arrive in order without gaps)");
  } else if (offset < 0 || offset > total_) {
    status = InvalidArgumentError("chunk offset = " + std::to_string(offset) + " is outside [0, " +
                                   std::to_string(total_) + "]");
  } else if (bytes == 0 || bytes > max_chunk_bytes_ || bytes % width != 0) {
    status = InvalidArgumentError("chunk data = " + std::to_string(bytes) + " bytes; must be a positive multiple of " +
                                   std::to_string(width) + " up to " + std::to_string(max_chunk_bytes_));
  } else if (bytes / width > total_ - offset) {
    status = InvalidArgumentError("chunk at offset " + std::to_string(offset) + " with " +
                                   std::to_string(bytes / width) + " floats runs past total = " +
                                   std::to_string(total_));
  } else if (Crc32c(data.data(), data.size()) != crc32c) {
    status = DataLossError("chunk at offset " + std::to_string(offset) + " fails its CRC32C check");
  } else if (order_ == ChunkOrder::kAnyOrder) {
    if (std::string other = Overlap(ranges_, offset, offset + bytes / width); !other.empty()) {
      status = InvalidArgumentError("chunk " + Range(offset, offset + bytes / width) + " overlaps " + other +
                                     " received before (each range of a gradient is sent once)");
    }
  }
  return status;
}

Status ChunkAssembler::Add(int64_t offset, int64_t total, std::string_view data, uint32_t crc32c, int format) {
  status_ = Check(offset, total, data, crc32c, format);
  if (!status_.ok()) return status_;
  const int64_t bytes = static_cast<int64_t>(data.size());
  const int width = WireBytes(static_cast<int>(format_));
  const int64_t floats = bytes / width;
  if (order_ == ChunkOrder::kAnyOrder) Insert(offset, offset + floats);
  if (format_ == WireFormat::kBf16) {
    for (int64_t i = 0; i < floats; ++i) {
      uint16_t h;
      std::memcpy(&h, data.data() + 2 * i, 2);
      block_[static_cast<size_t>(offset + i)] = FromBf16(h);
    }
  } else {
    std::memcpy(block_.data() + offset, data.data(), static_cast<size_t>(bytes));
  }
  crc_ = Crc32c(&crc32c, 4, crc_);
  received_ += floats;
  return OkStatus();
}

}  // namespace lanlm::engine
