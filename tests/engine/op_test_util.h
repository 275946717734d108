// Shared helpers for the op tests: seeded random data, a double-precision loss, a
// central-difference gradient checker, and bit-identity checks across thread counts.
// Test-only; the naive references themselves live in each op's test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/base/thread_pool.h"

namespace lanlm::engine::op_test {

inline std::vector<float> RandomVector(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<int32_t> RandomTokens(size_t n, int32_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (int32_t& t : v) t = dist(rng);
  return v;
}

// sum_i a[i] * b[i] in double: the projected loss sum(dy * f(inputs)).
inline double DotDouble(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

// Central differences of loss() with respect to every element of param (perturbed in place
// and restored), compared with the analytic gradient:
//   |numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|).
// The step actually applied ((x+h) - (x-h) in float) is the denominator.
inline void ExpectGradientMatches(const std::string& name, std::vector<float>& param,
                                  const std::vector<float>& analytic, const std::function<double()>& loss,
                                  float step, double atol, double rtol) {
  ASSERT_EQ(param.size(), analytic.size()) << name;
  double worst = 0.0;
  size_t worst_i = 0;
  int failures = 0;
  for (size_t i = 0; i < param.size(); ++i) {
    const float orig = param[i];
    const float plus = orig + step;
    const float minus = orig - step;
    param[i] = plus;
    const double lp = loss();
    param[i] = minus;
    const double lm = loss();
    param[i] = orig;
    const double numeric = (lp - lm) / (static_cast<double>(plus) - static_cast<double>(minus));
    const double a = analytic[i];
    const double err = std::fabs(numeric - a);
    const double bound = atol + rtol * std::max(std::fabs(numeric), std::fabs(a));
    if (err / bound > worst) {
      worst = err / bound;
      worst_i = i;
    }
    if (err > bound && ++failures <= 5) {
      ADD_FAILURE() << name << "[" << i << "]: numeric " << numeric << " analytic " << a << " err " << err
                    << " > bound " << bound;
    }
  }
  // Shown on failure only; also guards against a vacuous check.
  EXPECT_GT(param.size(), 0u) << name;
  if (failures > 0) ADD_FAILURE() << name << ": " << failures << " failures, worst err/bound " << worst << " at " << worst_i;
}

inline bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// Runs run(pool) with pools of 1, 2 and 3 threads; every returned buffer must be bit-identical
// to the 1-thread result.
inline void ExpectSameBitsForThreadCounts(const std::function<std::vector<std::vector<float>>(ThreadPool&)>& run) {
  ThreadPool one(1);
  const std::vector<std::vector<float>> ref = run(one);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    const std::vector<std::vector<float>> got = run(pool);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_TRUE(BitEqual(got[i], ref[i])) << "output " << i << " differs at " << threads << " threads";
    }
  }
}

// Asserts that 2x of the one-call gradient equals the two-call gradient bit for bit.
inline void ExpectTwiceIsDouble(const std::string& name, const std::vector<float>& once,
                                const std::vector<float>& twice) {
  ASSERT_EQ(once.size(), twice.size()) << name;
  int bad = 0;
  for (size_t i = 0; i < once.size(); ++i) {
    if (twice[i] != 2.0f * once[i] && ++bad <= 5) {
      ADD_FAILURE() << name << "[" << i << "]: twice " << twice[i] << " != 2 * " << once[i];
    }
  }
}

// Largest |a - b| / (atol + rtol * |b|) over elements; <= 1 means within tolerance.
inline double WorstRelativeError(const std::vector<float>& a, const std::vector<double>& b, double atol,
                                 double rtol) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i])));
  }
  return worst;
}

// v copied into a fresh buffer starting `shift` floats in, for tests that results do not
// depend on array alignment (another process allocates differently, DESIGN.md §3).
struct Shifted {
  Shifted(const std::vector<float>& v, int shift) : buf(v.size() + 16, 0.0f), data(buf.data() + shift) {
    std::copy(v.begin(), v.end(), data);
  }
  std::vector<float> Get(size_t n) const { return std::vector<float>(data, data + n); }
  std::vector<float> buf;
  float* data;
};

}  // namespace lanlm::engine::op_test
