// CRC32C: the published check values (RFC 3720 B.4 and "123456789"), the table version against
// a bit-at-a-time reference, the SSE4.2 version against the table on every length 0..300 at
// every alignment, and chaining.
#include "engine/base/hash.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace lanlm::engine {
namespace {

// The textbook definition: reflected polynomial 0x82F63B78, one bit at a time.
uint32_t BitwiseCrc32c(const unsigned char* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::vector<unsigned char> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

TEST(HashTest, Crc32cCheckValues) {
  const std::string digits = "123456789";
  EXPECT_EQ(Crc32c(digits.data(), digits.size()), 0xE3069283u);
  EXPECT_EQ(Crc32cTable(digits.data(), digits.size()), 0xE3069283u);
  unsigned char zeros[32] = {}, ones[32], up[32], down[32];
  for (int i = 0; i < 32; ++i) {
    ones[i] = 0xFF;
    up[i] = static_cast<unsigned char>(i);
    down[i] = static_cast<unsigned char>(31 - i);
  }
  // RFC 3720 appendix B.4.
  for (auto crc : {Crc32c, Crc32cTable}) {
    EXPECT_EQ(crc(zeros, 32, 0), 0x8A9136AAu);
    EXPECT_EQ(crc(ones, 32, 0), 0x62A8AB43u);
    EXPECT_EQ(crc(up, 32, 0), 0x46DD794Eu);
    EXPECT_EQ(crc(down, 32, 0), 0x113FDB5Cu);
    EXPECT_EQ(crc(digits.data(), 0, 0), 0u);
  }
}

TEST(HashTest, Crc32cTableMatchesTheBitwiseDefinition) {
  const auto bytes = RandomBytes(300, 1);
  for (size_t n = 0; n <= bytes.size(); n += 7) {
    EXPECT_EQ(Crc32cTable(bytes.data(), n), BitwiseCrc32c(bytes.data(), n)) << n;
    EXPECT_EQ(Crc32cTable(bytes.data(), n, 0x12345678u), BitwiseCrc32c(bytes.data(), n, 0x12345678u)) << n;
  }
}

TEST(HashTest, Crc32cEqualsTheTableForEveryLengthAndAlignment) {
#if defined(__SSE4_2__)
  EXPECT_TRUE(Crc32cIsHardware());  // the fast path is what this build runs
#else
  EXPECT_FALSE(Crc32cIsHardware());
#endif
  const auto bytes = RandomBytes(300 + 8, 2);
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n + offset <= bytes.size() && n <= 300; ++n) {
      const unsigned char* p = bytes.data() + offset;
      ASSERT_EQ(Crc32c(p, n), Crc32cTable(p, n)) << "offset " << offset << " length " << n;
      ASSERT_EQ(Crc32c(p, n, 0xDEADBEEFu), Crc32cTable(p, n, 0xDEADBEEFu)) << "offset " << offset << " length " << n;
    }
  }
}

TEST(HashTest, Crc32cChainsAcrossSplits) {
  const auto bytes = RandomBytes(300, 3);
  const uint32_t whole = Crc32c(bytes.data(), bytes.size());
  EXPECT_EQ(whole, BitwiseCrc32c(bytes.data(), bytes.size()));
  for (size_t split : {0, 1, 7, 8, 9, 150, 299, 300}) {
    EXPECT_EQ(Crc32c(bytes.data() + split, bytes.size() - split, Crc32c(bytes.data(), split)), whole) << split;
  }
}

}  // namespace
}  // namespace lanlm::engine
