// The shared pieces of the checkpoint format; see checkpoint_format.h.
#include "engine/io/checkpoint_format.h"

#include <algorithm>
#include <cstdio>

#include "engine/base/hash.h"
#include "engine/base/number_text.h"

namespace lanlm::engine::checkpoint_format {

std::string Hex(uint64_t x, int digits) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%0*llx", digits, static_cast<unsigned long long>(x));
  return buf;
}

std::string FloatText(float x) {
  return NumberText(x, 9);  // 9 digits round-trip a float
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

uint32_t MetadataCrc(const std::map<std::string, std::string>& meta) {
  uint32_t crc = 0;
  auto add = [&](const std::string& s) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(s.size()) >> (8 * i));
    crc = Crc32c(len, 8, crc);
    crc = Crc32c(s.data(), s.size(), crc);
  };
  for (const auto& [k, v] : meta) {
    if (k == "metadata_crc32c") continue;
    add(k);
    add(v);
  }
  return crc;
}

uint32_t TableCrc(std::vector<TableRow> rows) {
  std::sort(rows.begin(), rows.end(), [](const TableRow& a, const TableRow& b) { return a.name < b.name; });
  uint32_t crc = 0;
  auto u64 = [&](uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    crc = Crc32c(b, 8, crc);
  };
  for (const TableRow& r : rows) {
    u64(r.name.size());
    crc = Crc32c(r.name.data(), r.name.size(), crc);
    crc = Crc32c("F32", 3, crc);
    u64(r.shape.size());
    for (int64_t d : r.shape) u64(static_cast<uint64_t>(d));
    u64(r.begin);
    u64(r.end);
  }
  return crc;
}

}  // namespace lanlm::engine::checkpoint_format
