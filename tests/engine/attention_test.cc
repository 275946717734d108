// Attention: forward (outputs and saved probabilities) and backward against naive double
// references, gradient check of q, k and v, accumulate-twice, bit-identity across thread counts, and
// decoding over a KV cache (rows or key blocks) equal to the last row of the training forward.
#include "engine/ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

struct Dims {
  int64_t B, T, NH, D;
  int64_t size() const { return B * T * NH * D; }
};

TEST(AttentionTest, ForwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const Dims d{2, 70, 3, 5};  // rows of 1 to 70 keys: every mix of full and partial key blocks
  const auto q = RandomVector(d.size(), 1, -2.0f, 2.0f);
  const auto k = RandomVector(d.size(), 2, -2.0f, 2.0f);
  const auto v = RandomVector(d.size(), 3);
  std::vector<float> probs(d.B * d.NH * d.T * d.T, -1.0f), out(d.size());
  AttentionForward(q.data(), k.data(), v.data(), d.B, d.T, d.NH, d.D, probs.data(), out.data(), pool);
  std::vector<double> ref_out(d.size(), 0.0), ref_probs(probs.size(), 0.0);
  auto at = [&](int64_t b, int64_t t, int64_t h) { return ((b * d.T + t) * d.NH + h) * d.D; };
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.NH; ++h)
      for (int64_t i = 0; i < d.T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < d.D; ++c) dot += double(q[at(b, i, h) + c]) * k[at(b, j, h) + c];
          s[j] = dot / std::sqrt(double(d.D));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(s[j] - mx);
        for (int64_t j = 0; j <= i; ++j) {
          const double p = std::exp(s[j] - mx) / sum;
          ref_probs[((b * d.NH + h) * d.T + i) * d.T + j] = p;
          for (int64_t c = 0; c < d.D; ++c) ref_out[at(b, i, h) + c] += p * v[at(b, j, h) + c];
        }
      }
  EXPECT_LE(op_test::WorstRelativeError(out, ref_out, 1e-6, 1e-5), 1.0);
  EXPECT_LE(op_test::WorstRelativeError(probs, ref_probs, 1e-7, 1e-5), 1.0);  // zeros above the diagonal too
}

TEST(AttentionTest, GradientCheck) {
  ThreadPool pool(1);
  const Dims d{2, 5, 2, 4};
  auto q = RandomVector(d.size(), 4);
  auto k = RandomVector(d.size(), 5);
  auto v = RandomVector(d.size(), 6);
  const auto dy = RandomVector(d.size(), 7);
  std::vector<float> probs(d.B * d.NH * d.T * d.T), out(d.size());
  auto loss = [&] {
    AttentionForward(q.data(), k.data(), v.data(), d.B, d.T, d.NH, d.D, probs.data(), out.data(), pool);
    return op_test::DotDouble(dy, out);
  };
  loss();
  std::vector<float> dq(d.size(), 0.0f), dk(d.size(), 0.0f), dv(d.size(), 0.0f);
  AttentionBackward(dy.data(), q.data(), k.data(), v.data(), probs.data(), d.B, d.T, d.NH, d.D, dq.data(), dk.data(),
                    dv.data(), pool);
  op_test::ExpectGradientMatches("dq", q, dq, loss, 1e-2f, 1e-4, 2e-3);
  op_test::ExpectGradientMatches("dk", k, dk, loss, 1e-2f, 1e-4, 2e-3);
  op_test::ExpectGradientMatches("dv", v, dv, loss, 1e-2f, 1e-4, 2e-3);
}

// The backward against a naive double computation of the same chain rule, at a size with
// several 12-row blocks, a partial 32-key panel and a partial head-dimension panel, and a
// non-zero starting gradient (the op accumulates).
TEST(AttentionTest, BackwardMatchesNaiveDouble) {
  ThreadPool pool(2);
  const Dims d{2, 70, 2, 40};
  const auto q = RandomVector(d.size(), 23, -2.0f, 2.0f);
  const auto k = RandomVector(d.size(), 24, -2.0f, 2.0f);
  const auto v = RandomVector(d.size(), 25);
  const auto dy = RandomVector(d.size(), 26);
  const auto start = RandomVector(d.size(), 27);
  std::vector<float> probs(d.B * d.NH * d.T * d.T), out(d.size());
  AttentionForward(q.data(), k.data(), v.data(), d.B, d.T, d.NH, d.D, probs.data(), out.data(), pool);
  std::vector<float> dq = start, dk = start, dv = start;
  AttentionBackward(dy.data(), q.data(), k.data(), v.data(), probs.data(), d.B, d.T, d.NH, d.D, dq.data(), dk.data(),
                    dv.data(), pool);
  std::vector<double> rq(start.begin(), start.end()), rk = rq, rv = rq;
  auto at = [&](int64_t b, int64_t t, int64_t h) { return ((b * d.T + t) * d.NH + h) * d.D; };
  const double scale = 1.0 / std::sqrt(double(d.D));
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.NH; ++h)
      for (int64_t i = 0; i < d.T; ++i) {
        std::vector<double> p(i + 1), dp(i + 1);
        double mx = -1e300, sum = 0.0, pdp = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < d.D; ++c) dot += double(q[at(b, i, h) + c]) * k[at(b, j, h) + c];
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(p[j] - mx);
        for (int64_t j = 0; j <= i; ++j) {
          p[j] = std::exp(p[j] - mx) / sum;
          dp[j] = 0.0;
          for (int64_t c = 0; c < d.D; ++c) dp[j] += double(dy[at(b, i, h) + c]) * v[at(b, j, h) + c];
          pdp += p[j] * dp[j];
        }
        for (int64_t j = 0; j <= i; ++j) {
          const double ds = p[j] * (dp[j] - pdp) * scale;
          for (int64_t c = 0; c < d.D; ++c) {
            rq[at(b, i, h) + c] += ds * k[at(b, j, h) + c];
            rk[at(b, j, h) + c] += ds * q[at(b, i, h) + c];
            rv[at(b, j, h) + c] += p[j] * dy[at(b, i, h) + c];
          }
        }
      }
  EXPECT_LE(op_test::WorstRelativeError(dq, rq, 1e-5, 1e-4), 1.0);
  EXPECT_LE(op_test::WorstRelativeError(dk, rk, 1e-5, 1e-4), 1.0);
  EXPECT_LE(op_test::WorstRelativeError(dv, rv, 1e-5, 1e-4), 1.0);
}

TEST(AttentionTest, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const Dims d{2, 16, 3, 8};
  const auto q = RandomVector(d.size(), 8);
  const auto k = RandomVector(d.size(), 9);
  const auto v = RandomVector(d.size(), 10);
  const auto dy = RandomVector(d.size(), 11);
  std::vector<float> probs(d.B * d.NH * d.T * d.T), out(d.size());
  AttentionForward(q.data(), k.data(), v.data(), d.B, d.T, d.NH, d.D, probs.data(), out.data(), pool);
  std::vector<float> g1[3], g2[3];
  for (auto& g : g1) g.assign(d.size(), 0.0f);
  for (auto& g : g2) g.assign(d.size(), 0.0f);
  AttentionBackward(dy.data(), q.data(), k.data(), v.data(), probs.data(), d.B, d.T, d.NH, d.D, g1[0].data(),
                    g1[1].data(), g1[2].data(), pool);
  for (int rep = 0; rep < 2; ++rep)
    AttentionBackward(dy.data(), q.data(), k.data(), v.data(), probs.data(), d.B, d.T, d.NH, d.D, g2[0].data(),
                      g2[1].data(), g2[2].data(), pool);
  op_test::ExpectTwiceIsDouble("dq", g1[0], g2[0]);
  op_test::ExpectTwiceIsDouble("dk", g1[1], g2[1]);
  op_test::ExpectTwiceIsDouble("dv", g1[2], g2[2]);
}

TEST(AttentionTest, BitIdenticalAcrossThreadCounts) {
  const Dims d{2, 67, 3, 20};
  const auto q = RandomVector(d.size(), 12);
  const auto k = RandomVector(d.size(), 13);
  const auto v = RandomVector(d.size(), 14);
  const auto dy = RandomVector(d.size(), 15);
  op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
    std::vector<float> probs(d.B * d.NH * d.T * d.T), out(d.size());
    std::vector<float> dq(d.size(), 0.0f), dk(d.size(), 0.0f), dv(d.size(), 0.0f);
    AttentionForward(q.data(), k.data(), v.data(), d.B, d.T, d.NH, d.D, probs.data(), out.data(), pool);
    AttentionBackward(dy.data(), q.data(), k.data(), v.data(), probs.data(), d.B, d.T, d.NH, d.D, dq.data(), dk.data(),
                      dv.data(), pool);
    return std::vector<std::vector<float>>{probs, out, dq, dk, dv};
  });
}

TEST(AttentionTest, DecodeEqualsEveryRowOfTheForward) {
  const Dims d{1, 37, 4, 24};
  const auto q = RandomVector(d.size(), 16, -2.0f, 2.0f);
  const auto k = RandomVector(d.size(), 17, -2.0f, 2.0f);
  const auto v = RandomVector(d.size(), 18);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    std::vector<float> probs(d.NH * d.T * d.T), out(d.size());
    AttentionForward(q.data(), k.data(), v.data(), d.B, d.T, d.NH, d.D, probs.data(), out.data(), pool);
    const int64_t row = d.NH * d.D;
    std::vector<float> dec(row), scratch(d.NH * d.T);
    for (int64_t len = 1; len <= d.T; ++len) {
      // The cache holds positions [0, len); the query is that of position len - 1.
      AttentionDecode(q.data() + (len - 1) * row, k.data(), v.data(), len, d.NH, d.D, dec.data(), scratch.data(), pool);
      const std::vector<float> want(out.begin() + (len - 1) * row, out.begin() + len * row);
      ASSERT_TRUE(op_test::BitEqual(dec, want)) << "len " << len << " threads " << threads;
    }
  }
}

// k (T, row) rows as a decoding cache's key blocks of `capacity` positions (attention.h);
// positions from T on hold NaN, which no result may touch.
std::vector<float> Blocks(const std::vector<float>& k, int64_t T, int64_t row, int64_t capacity) {
  std::vector<float> kb(row * capacity, std::nanf(""));
  StoreKeys(k.data(), T, 0, row, capacity, kb.data());
  return kb;
}

// The block layout maps (position, element) one to one onto capacity * C floats: the cache
// is exactly as large as plain rows.
TEST(AttentionTest, KeyBlocksFillTheCacheExactlyOnce) {
  for (int64_t C : {3, 48}) {
    for (int64_t capacity : {1, 12, 16, 37, 64}) {
      std::vector<int> hits(C * capacity, 0);
      for (int64_t j = 0; j < capacity; ++j)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = KeyIndex(j, c, C, capacity);
          ASSERT_TRUE(i >= 0 && i < C * capacity) << "C " << C << " capacity " << capacity;
          ++hits[i];
        }
      for (int h : hits) ASSERT_EQ(h, 1) << "C " << C << " capacity " << capacity;
    }
  }
}

// The block cache gives AttentionDecode's bits without packing, at every length (full and
// partial key vectors, a narrower last block), for head sizes with and without a partial
// vector, whatever lies past the filled positions (NaN keys here; values end at the last
// position, so a read past it shows under ASan), at 1 and 3 threads.
TEST(AttentionTest, DecodeOnKeyBlocksEqualsDecodeBitForBit) {
  for (const Dims d : {Dims{1, 45, 3, 20}, Dims{1, 70, 6, 48}, Dims{1, 9, 2, 7}}) {
    const int64_t row = d.NH * d.D, capacity = d.T + 3;  // 48: whole blocks; 73 and 12: a narrower last one
    const auto q = RandomVector(d.size(), 40, -2.0f, 2.0f);
    const auto k = RandomVector(d.size(), 41, -2.0f, 2.0f);
    const auto v = RandomVector(d.size(), 42);
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      std::vector<float> want(row), got(row), scratch(d.NH * d.T);
      for (int64_t len = 1; len <= d.T; ++len) {
        std::vector<float> kl(k.begin(), k.begin() + len * row), vl(v.begin(), v.begin() + len * row);
        AttentionDecode(q.data() + (len - 1) * row, kl.data(), vl.data(), len, d.NH, d.D, want.data(), scratch.data(),
                        pool);
        const auto kb = Blocks(kl, len, row, capacity);
        AttentionDecodeKt(q.data() + (len - 1) * row, kb.data(), capacity, vl.data(), len, d.NH, d.D, got.data(),
                          scratch.data(), pool);
        ASSERT_TRUE(op_test::BitEqual(got, want)) << "D " << d.D << " len " << len << " threads " << threads;
      }
    }
  }
}

// A prompt fed into a cache that already holds pos positions: every row equals decoding that
// position alone, bit for bit, at any thread count (and for pos = 0 the training forward).
TEST(AttentionTest, PrefillRowsEqualDecodeAtEveryOffset) {
  const Dims d{1, 53, 3, 40};  // 53 positions: partial 12-row blocks and 32-key panels
  const auto q = RandomVector(d.size(), 30, -2.0f, 2.0f);
  const auto k = RandomVector(d.size(), 31, -2.0f, 2.0f);
  const auto v = RandomVector(d.size(), 32);
  const int64_t row = d.NH * d.D;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (int64_t pos : {0, 1, 13, 40}) {
      const int64_t n = d.T - pos;
      std::vector<float> probs(d.NH * n * d.T), out(n * row), dec(row), scratch(d.NH * d.T);
      const auto kb = Blocks(k, d.T, row, d.T + 5);  // 58 positions: a last block of 10
      AttentionPrefill(q.data() + pos * row, kb.data(), d.T + 5, v.data(), pos, n, d.NH, d.D, probs.data(), out.data(),
                       pool);
      for (int64_t i = 0; i < n; ++i) {
        AttentionDecode(q.data() + (pos + i) * row, k.data(), v.data(), pos + i + 1, d.NH, d.D, dec.data(),
                        scratch.data(), pool);
        const std::vector<float> got(out.begin() + i * row, out.begin() + (i + 1) * row);
        ASSERT_TRUE(op_test::BitEqual(got, dec)) << "pos " << pos << " row " << i << " threads " << threads;
      }
    }
  }
}

TEST(AttentionTest, BitsDoNotDependOnAlignment) {
  ThreadPool pool(2);
  const Dims d{1, 41, 2, 20};
  const auto q = RandomVector(d.size(), 19);
  const auto k = RandomVector(d.size(), 20);
  const auto v = RandomVector(d.size(), 21);
  const auto dy = RandomVector(d.size(), 22);
  const size_t np = d.B * d.NH * d.T * d.T;
  std::vector<std::vector<float>> ref;
  for (int shift : {0, 1, 2, 3}) {
    op_test::Shifted sq(q, shift), sk(k, 3 - shift), sv(v, shift), sdy(dy, (shift + 2) % 4);
    op_test::Shifted probs(std::vector<float>(np), shift), out(std::vector<float>(d.size()), 3 - shift);
    op_test::Shifted dq(std::vector<float>(d.size()), shift), dk(std::vector<float>(d.size()), 1);
    op_test::Shifted dv(std::vector<float>(d.size()), 3 - shift);
    AttentionForward(sq.data, sk.data, sv.data, d.B, d.T, d.NH, d.D, probs.data, out.data, pool);
    AttentionBackward(sdy.data, sq.data, sk.data, sv.data, probs.data, d.B, d.T, d.NH, d.D, dq.data, dk.data, dv.data,
                      pool);
    std::vector<std::vector<float>> got{probs.Get(np), out.Get(d.size()), dq.Get(d.size()), dk.Get(d.size()),
                                        dv.Get(d.size())};
    if (ref.empty()) ref = got;
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(op_test::BitEqual(got[i], ref[i])) << "shift " << shift;
  }
}

}  // namespace
}  // namespace lanlm::engine
