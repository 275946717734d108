// FNV-1a, CRC32C (SSE4.2 instruction where compiled in, table otherwise) and the parameter
// fingerprint.
#include "engine/base/hash.h"

#include <array>
#include <cstdio>
#include <cstring>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace lanlm::engine {

uint64_t Fnv1a64(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {

std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

}  // namespace

uint32_t Crc32cTable(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = MakeCrc32cTable();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

#if defined(__SSE4_2__)

// The crc32 instruction computes the same reflected Castagnoli CRC as the table (without the
// pre/post inversion): 8 bytes per instruction, then the tail byte by byte. Unaligned 8-byte
// loads are fine on x86.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  for (; size >= 8; p += 8, size -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; size > 0; ++p, --size) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}

bool Crc32cIsHardware() { return true; }

#else

uint32_t Crc32c(const void* data, size_t size, uint32_t crc) { return Crc32cTable(data, size, crc); }

bool Crc32cIsHardware() { return false; }

#endif

uint64_t Fingerprint(const float* data, int64_t n) {
  // A multiply-xorshift mix over 64-bit words, then the tail; order-sensitive.
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  const size_t size = static_cast<size_t>(n) * sizeof(float);
  uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes + i, 8);
    h ^= w * 0xbf58476d1ce4e5b9ull;
    h = (h << 27 | h >> 37) * 0x94d049bb133111ebull;
  }
  for (; i < size; ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
  h ^= h >> 31;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

std::string Hex16(uint64_t x) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

}  // namespace lanlm::engine
