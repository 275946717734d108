// Non-cryptographic hashes and checksums used for fingerprints and integrity checks:
// FNV-1a 64 (config and tokenizer hashes), a parameter fingerprint, and CRC32C (wire chunks,
// checkpoint data sections).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lanlm::engine {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;

uint64_t Fnv1a64(const void* data, size_t size, uint64_t seed = kFnvOffset);

// CRC32C (Castagnoli); `crc` chains calls. Uses the SSE4.2 crc32 instruction when compiled
// with it (__SSE4_2__: -march=native on such a CPU, or LANLM_PORTABLE's x86-64-v2), otherwise
// Crc32cTable.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);
// The byte-at-a-time table implementation: the fallback, and the reference Crc32c is tested
// against. Same results as Crc32c.
uint32_t Crc32cTable(const void* data, size_t size, uint32_t crc = 0);
// True when Crc32c runs on the crc32 instruction rather than the table.
bool Crc32cIsHardware();

// 64-bit fingerprint of a float block's exact bytes: what trainers print as fingerprint=
// (16 hex digits). Processes 8 bytes per step, so it is fast enough for every checkpoint.
uint64_t Fingerprint(const float* data, int64_t n);

// x as 16 lower-case hex digits, zero-padded: how fingerprints, hashes and ids are shown.
std::string Hex16(uint64_t x);

}  // namespace lanlm::engine
