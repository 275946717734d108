// The bf16 number format of `--precision bf16` and its numerics contract (docs/TRAINING.md):
// every large matmul rounds both inputs to bf16 (this file's rounding), multiplies exactly and
// accumulates in fp32 in the order VDPBF16PS does (per output: for each pair of reduction
// indices (2p, 2p+1), acc += a[2p+1]·b[2p+1] then acc += a[2p]·b[2p], each a fused multiply-add
// rounded to nearest even, denormals flushed); everything else stays fp32.
// bf16 = the top 16 bits of an fp32 (1 sign, 8 exponent, 7 mantissa bits), so a product of two
// bf16 numbers is exact in fp32 and the contract can be computed by fp32 FMAs on any x86 CPU.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace lanlm::engine {

// Arithmetic of the large matmuls. Part of a run (checkpoints, config hash, cluster Join).
enum class Precision { kFp32, kBf16 };

const char* PrecisionName(Precision p);  // "fp32" | "bf16"
// false (out untouched) unless name is "fp32" or "bf16".
bool ParsePrecision(std::string_view name, Precision* out);

// fp32 -> bf16 bits exactly as VCVTNEPS2BF16 converts (it ignores MXCSR): round to nearest
// even; zeros and denormals become a zero of the same sign; Inf stays Inf; NaN stays a quiet
// NaN (top mantissa bit set); finite values that round past the largest bf16 become Inf.
inline uint16_t Bf16FromFloat(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7F800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float FloatFromBf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

inline float RoundToBf16(float x) { return FloatFromBf16(Bf16FromFloat(x)); }

// Two consecutive reduction elements (k = 2p in the low half, 2p + 1 in the high half) in one
// 32-bit word: the operand layout VDPBF16PS reads.
inline uint32_t Bf16Pair(float even, float odd) {
  return static_cast<uint32_t>(Bf16FromFloat(even)) | (static_cast<uint32_t>(Bf16FromFloat(odd)) << 16);
}

}  // namespace lanlm::engine
