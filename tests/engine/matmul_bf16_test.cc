// Matmul under --precision bf16: the rounding against the conversion instruction's definition,
// every product bit for bit against a scalar statement of the contract (bf16.h), against a
// double reference with bf16's error bound, accumulate-twice, bit-identity across thread counts
// and between the native (AVX512_BF16) and emulated kernels, and the claim the emulation rests
// on: VDPBF16PS equals two FMAs (odd index first) with FTZ/DAZ. The native halves skip with a
// message on CPUs without AVX512_BF16.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <immintrin.h>

#include "engine/ops/bf16.h"
#include "engine/ops/gemm_bf16.h"
#include "engine/ops/matmul.h"
#include "tests/engine/op_test_util.h"

namespace lanlm::engine {
namespace {

using op_test::RandomVector;

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}
float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}
bool SameBitsOrBothNan(float a, float b) {
  const bool na = (Bits(a) & 0x7FFFFFFFu) > 0x7F800000u, nb = (Bits(b) & 0x7FFFFFFFu) > 0x7F800000u;
  return na ? nb : Bits(a) == Bits(b);
}

// MXCSR FTZ + DAZ for the scope (the contract's denormal rule).
struct ScopedFlush {
  unsigned saved = _mm_getcsr();
  ScopedFlush() { _mm_setcsr(saved | 0x8040u); }
  ~ScopedFlush() { _mm_setcsr(saved); }
};

TEST(Bf16Test, RoundingFollowsTheConversionInstruction) {
  struct Case {
    uint32_t in;
    uint16_t out;
  };
  for (Case c : {Case{0x3F800000u, 0x3F80}, Case{0x3F808000u, 0x3F80},  // tie: to even (down)
                 Case{0x3F818000u, 0x3F82},                             // tie: to even (up)
                 Case{0x3F808001u, 0x3F81}, Case{0xBF80FFFFu, 0xBF81}, Case{0x00000000u, 0x0000},
                 Case{0x80000000u, 0x8000}, Case{0x00000001u, 0x0000},  // denormals: signed zero
                 Case{0x807FFFFFu, 0x8000}, Case{0x00800000u, 0x0080},  // smallest normal stays
                 Case{0x7F800000u, 0x7F80}, Case{0xFF800000u, 0xFF80},  // Inf
                 Case{0x7F7FFFFFu, 0x7F80},                             // max float rounds to Inf
                 Case{0x7FC00000u, 0x7FC0}, Case{0x7F800001u, 0x7FC0},  // NaN: quiet, kept NaN
                 Case{0xFFFFFFFFu, 0xFFFF}}) {
    EXPECT_EQ(Bf16FromFloat(FromBits(c.in)), c.out) << std::hex << c.in;
  }
  Precision p = Precision::kFp32;
  EXPECT_TRUE(ParsePrecision("bf16", &p));
  EXPECT_EQ(p, Precision::kBf16);
  EXPECT_FALSE(ParsePrecision("fp16", &p));
  EXPECT_STREQ(PrecisionName(p), "bf16");
}

struct Shape {
  int64_t rows, in, out;
};

// The contract for one output: pairs (2p, 2p + 1) of the reduction, index 2p + 1 first, each an
// FMA on bf16-rounded inputs, FTZ/DAZ; an index past n counts as 0 · 0.
float ContractDot(const float* a, int64_t sa, const float* b, int64_t sb, int64_t n) {
  auto at = [](const float* p, int64_t s, int64_t k, int64_t n) { return k < n ? RoundToBf16(p[k * s]) : 0.0f; };
  float acc = 0.0f;
  for (int64_t k = 0; k < n; k += 2) {
    acc = std::fma(at(a, sa, k + 1, n), at(b, sb, k + 1, n), acc);
    acc = std::fma(at(a, sa, k, n), at(b, sb, k, n), acc);
  }
  return acc;
}

// Forward and both backward products, by the contract, one output at a time.
void ContractMatmul(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy, Shape s,
                    std::vector<float>* y, std::vector<float>* dx, std::vector<float>* dw) {
  const ScopedFlush flush;
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t o = 0; o < s.out; ++o) (*y)[r * s.out + o] = ContractDot(&x[r * s.in], 1, &w[o * s.in], 1, s.in);
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t i = 0; i < s.in; ++i)
      (*dx)[r * s.in + i] += ContractDot(&dy[r * s.out], 1, &w[i], s.in, s.out);
  for (int64_t o = 0; o < s.out; ++o)
    for (int64_t i = 0; i < s.in; ++i)
      (*dw)[o * s.in + i] += ContractDot(&dy[o], s.out, &x[i], s.in, s.rows);
}

// Random values with a few hostile ones: signed zeros, denormals, products that underflow or
// sit near fp32's largest exponents.
std::vector<float> HostileVector(size_t n, uint64_t seed) {
  auto v = RandomVector(n, seed);
  const float specials[] = {0.0f, -0.0f, 1e-39f, -3e-40f, 1e-20f, -2e-21f, 3e18f, -1e19f, 7.0f, -0.5f};
  for (size_t i = 0; i < n; i += 7) v[i] = specials[(i / 7) % 10];
  return v;
}

void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    if (!SameBitsOrBothNan(got[i], want[i])) {
      ADD_FAILURE() << what << "[" << i << "] " << got[i] << " != contract " << want[i];
      ++bad;
    }
  }
}

void RunBf16(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy, Shape s,
             ThreadPool& pool, std::vector<float>* y, std::vector<float>* dx, std::vector<float>* dw) {
  MatmulForward(x.data(), w.data(), s.rows, s.in, s.out, y->data(), pool, Precision::kBf16);
  MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx->data(), dw->data(), pool, Precision::kBf16);
}

const Shape kShapes[] = {{1, 64, 40}, {3, 17, 5}, {15, 33, 70}, {37, 29, 45}, {64, 128, 96}, {13, 1, 2}};

// The kernels this CPU can run, each forced for the scope of one check.
std::vector<gemm_bf16::Kernel> AvailableKernels() {
  std::vector<gemm_bf16::Kernel> out;
  for (auto k : {gemm_bf16::Kernel::kNative, gemm_bf16::Kernel::kEmulated, gemm_bf16::Kernel::kEmulatedAvx2}) {
    if (gemm_bf16::KernelAvailable(k)) out.push_back(k);
  }
  return out;
}

class ScopedKernel {
 public:
  explicit ScopedKernel(gemm_bf16::Kernel k) { EXPECT_TRUE(gemm_bf16::ForceKernel(k)); }
  ~ScopedKernel() { gemm_bf16::UnforceKernel(); }
  ScopedKernel(const ScopedKernel&) = delete;
  ScopedKernel& operator=(const ScopedKernel&) = delete;
};

// Every kernel the CPU has (on an AVX-512 machine also the AVX2 one that AVX2-only machines of a
// mixed LAN run) against the scalar statement of the contract.
TEST(MatmulBf16Test, EveryProductEqualsTheContractBitForBit) {
  ThreadPool pool(2);
  for (gemm_bf16::Kernel kernel : AvailableKernels()) {
    const ScopedKernel scoped(kernel);
    for (Shape s : kShapes) {
      const auto x = HostileVector(s.rows * s.in, 1);
      const auto w = HostileVector(s.out * s.in, 2);
      const auto dy = HostileVector(s.rows * s.out, 3);
      std::vector<float> y(s.rows * s.out), dx(x.size(), 0.25f), dw(w.size(), -0.5f);
      std::vector<float> ry(y.size()), rdx(dx), rdw(dw);
      RunBf16(x, w, dy, s, pool, &y, &dx, &dw);
      ContractMatmul(x, w, dy, s, &ry, &rdx, &rdw);
      SCOPED_TRACE(testing::Message() << s.rows << "x" << s.in << "x" << s.out << " kernel " << Bf16KernelPath());
      ExpectSameBits(y, ry, "y");
      ExpectSameBits(dx, rdx, "dx");
      ExpectSameBits(dw, rdw, "dw");
    }
  }
}

TEST(MatmulBf16Test, AvailableKernelsAreNamed) {
  for (gemm_bf16::Kernel kernel : AvailableKernels()) {
    const ScopedKernel scoped(kernel);
    const std::string name = Bf16KernelPath();
    EXPECT_TRUE(name == "avx512bf16" || name == "emulated-avx512f" || name == "emulated-avx2-fma") << name;
    EXPECT_EQ(name == "avx512bf16", kernel == gemm_bf16::Kernel::kNative);
  }
  EXPECT_FALSE(SelectBf16Kernel("fastest"));
  EXPECT_TRUE(SelectBf16Kernel("auto"));
  EXPECT_EQ(std::string(Bf16KernelPath()) == "avx512bf16", gemm_bf16::NativeAvailable());
}

TEST(MatmulBf16Test, WithinBf16ErrorOfTheExactProduct) {
  // Against double on the unrounded inputs: each input is off by at most 2^-9 relative, so each
  // product by about 2^-8, plus fp32 accumulation: |err| <= 2^-7 · sum |a_k b_k| is generous.
  ThreadPool pool(2);
  const Shape s{37, 129, 45};
  const auto x = RandomVector(s.rows * s.in, 4);
  const auto w = RandomVector(s.out * s.in, 5);
  std::vector<float> y(s.rows * s.out);
  MatmulForward(x.data(), w.data(), s.rows, s.in, s.out, y.data(), pool, Precision::kBf16);
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t o = 0; o < s.out; ++o) {
      double exact = 0.0, magnitude = 0.0;
      for (int64_t i = 0; i < s.in; ++i) {
        exact += double(x[r * s.in + i]) * w[o * s.in + i];
        magnitude += std::fabs(double(x[r * s.in + i]) * w[o * s.in + i]);
      }
      ASSERT_LE(std::fabs(y[r * s.out + o] - exact), magnitude / 128.0) << r << "," << o;
    }
}

TEST(MatmulBf16Test, BackwardAccumulatesExactlyTwice) {
  ThreadPool pool(2);
  const Shape s{37, 29, 45};
  const auto x = RandomVector(s.rows * s.in, 9);
  const auto w = RandomVector(s.out * s.in, 10);
  const auto dy = RandomVector(s.rows * s.out, 11);
  std::vector<float> dx1(x.size(), 0.0f), dw1(w.size(), 0.0f), dx2(x.size(), 0.0f), dw2(w.size(), 0.0f);
  MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx1.data(), dw1.data(), pool, Precision::kBf16);
  for (int rep = 0; rep < 2; ++rep)
    MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, dx2.data(), dw2.data(), pool,
                   Precision::kBf16);
  op_test::ExpectTwiceIsDouble("dx", dx1, dx2);
  op_test::ExpectTwiceIsDouble("dw", dw1, dw2);
}

TEST(MatmulBf16Test, BitIdenticalAcrossThreadCounts) {
  for (Shape s : {Shape{203, 77, 70}, Shape{9, 130, 300}}) {
    const auto x = RandomVector(s.rows * s.in, 12);
    const auto w = RandomVector(s.out * s.in, 13);
    const auto dy = RandomVector(s.rows * s.out, 14);
    op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& pool) {
      std::vector<float> y(s.rows * s.out), dx(x.size(), 0.5f), dw(w.size(), 0.25f);
      RunBf16(x, w, dy, s, pool, &y, &dx, &dw);
      return std::vector<std::vector<float>>{y, dx, dw};
    });
  }
}

TEST(MatmulBf16Test, WeightPackedOnceEqualsPackingPerCall) {
  // A weight packed once (PackBf16Weight) and reused by the forward and the backward dx
  // product gives the bits of packing it in every call, at 1, 2 and 3 threads.
  for (Shape s : kShapes) {
    const auto x = HostileVector(s.rows * s.in, 61);
    const auto w = HostileVector(s.out * s.in, 62);
    const auto dy = HostileVector(s.rows * s.out, 63);
    ThreadPool pool(2);
    std::vector<float> y(s.rows * s.out), dx(x.size(), 0.25f), dw(w.size(), -0.5f);
    RunBf16(x, w, dy, s, pool, &y, &dx, &dw);
    op_test::ExpectSameBitsForThreadCounts([&](ThreadPool& p) {
      Bf16PackedWeight packed;
      PackBf16Weight(w.data(), s.in, s.out, &packed, p);
      std::vector<float> py(y.size()), pdx(x.size(), 0.25f), pdw(w.size(), -0.5f);
      MatmulForward(x.data(), w.data(), s.rows, s.in, s.out, py.data(), p, Precision::kBf16, &packed);
      MatmulBackward(dy.data(), x.data(), w.data(), s.rows, s.in, s.out, pdx.data(), pdw.data(), p, Precision::kBf16,
                     &packed);
      SCOPED_TRACE(testing::Message() << s.rows << "x" << s.in << "x" << s.out << " threads " << p.size());
      ExpectSameBits(py, y, "y");
      ExpectSameBits(pdx, dx, "dx");
      ExpectSameBits(pdw, dw, "dw");
      return std::vector<std::vector<float>>{py, pdx, pdw};
    });
  }
}

TEST(MatmulBf16Test, NativeKernelEqualsEmulatedKernel) {
  if (!gemm_bf16::NativeAvailable()) {
    GTEST_SKIP() << "this CPU has no AVX512_BF16: only the emulated kernel (" << Bf16KernelPath()
                 << ") can run here; the native half runs on Zen 4+, Cooper Lake, Sapphire Rapids+";
  }
  ThreadPool pool(2);
  for (Shape s : kShapes) {
    const auto x = HostileVector(s.rows * s.in, 21);
    const auto w = HostileVector(s.out * s.in, 22);
    const auto dy = HostileVector(s.rows * s.out, 23);
    std::vector<std::vector<float>> want;
    for (gemm_bf16::Kernel kernel : AvailableKernels()) {  // native first, then each emulation
      const ScopedKernel scoped(kernel);
      std::vector<float> y(s.rows * s.out), dx(x.size(), 0.25f), dw(w.size(), -0.5f);
      RunBf16(x, w, dy, s, pool, &y, &dx, &dw);
      if (want.empty()) {
        want = {y, dx, dw};
        continue;
      }
      SCOPED_TRACE(testing::Message() << "native vs " << Bf16KernelPath());
      ExpectSameBits(y, want[0], "y");
      ExpectSameBits(dx, want[1], "dx");
      ExpectSameBits(dw, want[2], "dw");
    }
  }
}

#if defined(__x86_64__)
// One VDPBF16PS on 16 lanes of pair words.
[[gnu::noipa]] __attribute__((target("avx512f,avx512bf16"))) void Vdpbf16ps(const uint32_t* a, const uint32_t* b,
                                                                            float* acc) {
  const __m512 r = _mm512_dpbf16_ps(_mm512_loadu_ps(acc), (__m512bh)_mm512_loadu_si512(a),
                                    (__m512bh)_mm512_loadu_si512(b));
  _mm512_storeu_ps(acc, r);
}
#endif

TEST(Bf16Test, Vdpbf16psIsTwoFmasWithFlushedDenormals) {
  if (!gemm_bf16::NativeAvailable()) {
    GTEST_SKIP() << "this CPU has no AVX512_BF16: the claim that VDPBF16PS equals two FMAs (index 2p+1 first, "
                    "FTZ/DAZ) is verified on CPUs that have it";
  }
#if defined(__x86_64__)
  // bf16 values with every exponent class: zeros, denormals, tiny and huge normals, Inf, NaN.
  const uint16_t specials[] = {0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x0C00, 0x3F80, 0xBFC0,
                               0x5F00, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x2000, 0xA000};
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  auto half = [&] { return next() % 3 == 0 ? specials[next() % 16] : static_cast<uint16_t>(next()); };
  int mismatches = 0;
  for (int round = 0; round < 20000 && mismatches < 5; ++round) {
    uint32_t a[16], b[16];
    float acc[16], want[16];
    for (int i = 0; i < 16; ++i) {
      a[i] = half() | (uint32_t{half()} << 16);
      b[i] = half() | (uint32_t{half()} << 16);
      acc[i] = next() % 4 == 0 ? FloatFromBf16(half()) : FromBits(next());
    }
    {
      const ScopedFlush flush;
      for (int i = 0; i < 16; ++i) {
        float s = std::fma(FloatFromBf16(a[i] >> 16), FloatFromBf16(b[i] >> 16), acc[i]);
        want[i] = std::fma(FloatFromBf16(a[i] & 0xFFFF), FloatFromBf16(b[i] & 0xFFFF), s);
      }
    }
    Vdpbf16ps(a, b, acc);
    for (int i = 0; i < 16; ++i) {
      if (!SameBitsOrBothNan(acc[i], want[i])) {
        ADD_FAILURE() << std::hex << "a=" << a[i] << " b=" << b[i] << " got " << Bits(acc[i]) << " want "
                      << Bits(want[i]);
        ++mismatches;
      }
    }
  }
#endif
}

}  // namespace
}  // namespace lanlm::engine
