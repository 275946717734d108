// Non-cryptographic hashes and checksums used for fingerprints and integrity checks:
// FNV-1a 64 (config and tokenizer hashes), a parameter fingerprint, and CRC32C (wire chunks,
// checkpoint data sections).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lanlm::engine {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;

uint64_t Fnv1a64(const void* data, size_t size, uint64_t seed = kFnvOffset);

// CRC32C (Castagnoli), software table implementation; `crc` chains calls.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

// 64-bit fingerprint of a float block's exact bytes: what trainers print as fingerprint=
// (16 hex digits). Processes 8 bytes per step, so it is fast enough for every checkpoint.
uint64_t Fingerprint(const float* data, int64_t n);

}  // namespace lanlm::engine
