// The parts of the checkpoint format (DESIGN.md §5, checkpoint.h) that writing (checkpoint.cc)
// and reading (checkpoint_reader.cc) share: its name, version and header limit, the two
// checksums that bind the metadata and the tensor table, and the text of metadata values.
// Internal to engine/io.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"

namespace lanlm::engine::checkpoint_format {

inline constexpr const char* kFormatName = "lanlm.checkpoint";
inline constexpr int kFormatVersion = 1;
// The header holds ~10 entries per layer plus the tokenizer text; 256 MiB is far above any
// real one and keeps a hostile length from turning into a huge allocation.
inline constexpr uint64_t kMaxHeaderBytes = 256ull << 20;

// x as `digits` lowercase hex digits, zero-padded (8: CRC32C values, 16: hashes).
std::string Hex(uint64_t x, int digits);
// The shortest-safe text of a float metadata value: 9 significant digits round-trip it.
std::string FloatText(float x);
// "[8,8]": a shape in error messages.
std::string ShapeText(const std::vector<int64_t>& shape);

// CRC32C over every metadata entry except metadata_crc32c itself, in key order, each as
// (u64 key length, key, u64 value length, value): any change to a key or value shows, while the
// tensor entries are fully determined by the config and checked field by field.
uint32_t MetadataCrc(const std::map<std::string, std::string>& meta);

// One row of the tensor table, as TableCrc binds it.
struct TableRow {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // data_offsets
  const TensorInfo* info = nullptr;  // when saving
};

// CRC32C over the tensor table in name order, each row as (u64 name length, name, "F32", u64
// rank, u64 dims, u64 begin, u64 end): with tensors_crc32c in the checksummed metadata, a
// swapped, moved or renamed tensor is refused even where its shape and size still fit.
uint32_t TableCrc(std::vector<TableRow> rows);

// Reads and validates the checkpoint in the open file `fd` of `file_size` bytes (checkpoint_reader.cc).
// Errors do not name the file: LoadCheckpoint prefixes the path.
StatusOr<Checkpoint> ReadCheckpoint(int fd, uint64_t file_size);

}  // namespace lanlm::engine::checkpoint_format
