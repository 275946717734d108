// CounterRng: stateless random numbers as a pure function of (key, counter), so data
// sampling, initialisation and token sampling never depend on call order or thread count.
// SplitMix64 finaliser over a keyed counter: fast and statistically sound for this use.
#pragma once

#include <cmath>
#include <cstdint>

namespace lanlm::engine {

struct CounterRng {
  static uint64_t SplitMix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  // Combines a key with another value into a new key (e.g. seed, step, shard).
  static uint64_t Mix(uint64_t key, uint64_t value) { return SplitMix(key ^ SplitMix(value + 0x632be59bd9b4e019ull)); }
  static uint64_t Bits(uint64_t key, uint64_t counter) { return SplitMix(key + SplitMix(counter)); }
  // Uniform in [0, 1) with 53 random bits.
  static double Uniform(uint64_t key, uint64_t counter) {
    return static_cast<double>(Bits(key, counter) >> 11) * 0x1.0p-53;
  }
  // Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-32 for n < 2^32).
  static uint64_t Below(uint64_t key, uint64_t counter, uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Bits(key, counter)) * n) >> 64);
  }
  // Standard normal by Box-Muller on two uniforms derived from the counter.
  static double Normal(uint64_t key, uint64_t counter) {
    const double u1 = (static_cast<double>(Bits(key, 2 * counter) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = Uniform(key, 2 * counter + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace lanlm::engine
