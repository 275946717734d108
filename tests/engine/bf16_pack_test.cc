// bf16 pair packing (engine/ops/bf16_pack.h): the vector paths against the word-by-word
// reference, bit for bit, on both source layouts the matmuls produce, full tiles and ragged
// edges (odd K, K not a multiple of 16, fewer valid lanes than the tile width), with NaN, Inf,
// signed zeros, denormals and rounding ties in the data.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "engine/ops/bf16.h"
#include "engine/ops/bf16_pack.h"
#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

std::vector<float> SpecialVector(size_t n, uint64_t seed) {
  auto v = op_test::RandomVector(n, seed);
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x7F800000u,
                               0xFF800000u, 0x7FC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x7F7FFFFFu,
                               0x3F808000u, 0x3F818000u, 0xBF80FFFFu, 0x00800000u};
  const size_t count = sizeof(specials) / sizeof(specials[0]);
  for (size_t i = 0; i < n; i += 5) v[i] = FromBits(specials[(i / 5) % count]);
  return v;
}

TEST(Bf16PackTest, VectorPathsEqualTheScalarReferenceBitForBit) {
  const int64_t kRows = 40, kCols = 70;  // source (kRows x kCols), row-major
  const auto src = SpecialVector(kRows * kCols, 31);
  for (int w : {6, 12, 16, 32}) {
    for (int64_t K : {1, 2, 7, 15, 16, 17, 33, 40}) {
      for (int valid : {1, 5, w}) {
        // Lanes contiguous (pairs across rows): X(lane, k) = src[k * kCols + lane].
        // Reduction contiguous (pairs adjacent): X(lane, k) = src[lane * kCols + k].
        for (bool lanes_contiguous : {true, false}) {
          const gemm_bf16::PackSource x{src.data() + 3, lanes_contiguous ? 1 : kCols, lanes_contiguous ? kCols : 1,
                                        valid};
          const size_t words = static_cast<size_t>((K + 1) / 2) * w;
          std::vector<uint32_t> got(words, 0xDEADBEEFu), want(words, 0x12345678u);
          gemm_bf16::PackPairs(x, K, w, got.data());
          gemm_bf16::PackPairsScalar(x, K, w, want.data());
          ASSERT_EQ(got, want) << "w=" << w << " K=" << K << " valid=" << valid
                               << " lanes_contiguous=" << lanes_contiguous;
        }
      }
    }
  }
}

TEST(Bf16PackTest, ReferenceIsBf16Pair) {
  const float src[] = {1.0f, FromBits(0x3F808000u), -0.0f, FromBits(0x7FC00000u), 3.0f};
  uint32_t d[3];
  gemm_bf16::PackPairsScalar({src, 1, 1, 1}, 5, 1, d);  // one lane, K = 5: the last pair's odd half is 0
  EXPECT_EQ(d[0], Bf16Pair(src[0], src[1]));
  EXPECT_EQ(d[1], Bf16Pair(src[2], src[3]));
  EXPECT_EQ(d[2], Bf16Pair(src[4], 0.0f));
}

}  // namespace
}  // namespace lanlm::engine
