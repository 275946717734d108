// Internal to engine/ops: a portable float vector type over GCC vector extensions. Its width
// follows the build's -march (16 lanes with AVX-512, 8 with AVX2, else 4 = SSE), so the same
// kernels compile for the portable x86-64-v2 build. Not a general SIMD library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__FMA__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace lanlm::engine::simd {

#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
#elif defined(__AVX2__)
inline constexpr int kLanes = 8;
#else
inline constexpr int kLanes = 4;
#endif

typedef float VecF __attribute__((vector_size(kLanes * sizeof(float))));

inline VecF LoadU(const float* p) {
  VecF v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void StoreU(float* p, VecF v) { __builtin_memcpy(p, &v, sizeof(v)); }
inline VecF Splat(float x) { return VecF{} + x; }

// acc + a * b per lane as one fused multiply-add, through the instruction's intrinsic where
// the build has one. Written as `acc += a * b`, -ffast-math may contract it or not, and may
// reassociate an unrolled chain of them ((acc + a0·b0) + a1·b1 into acc + (a0·b0 + a1·b1)),
// differently in each function: that made AVX2 decoding differ from the training forward in
// the last bits while AVX-512 builds happened to agree. Every dot-product chain whose bits
// must match another function's (GEMM micro-kernel, attention decode) goes through Fma.
inline VecF Fma(VecF acc, VecF a, VecF b) {
#if defined(__AVX512F__)
  return reinterpret_cast<VecF>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                                reinterpret_cast<__m512>(acc)));
#elif defined(__FMA__) && defined(__AVX2__)
  return reinterpret_cast<VecF>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b),
                                                reinterpret_cast<__m256>(acc)));
#elif defined(__FMA__)
  return reinterpret_cast<VecF>(_mm_fmadd_ps(reinterpret_cast<__m128>(a), reinterpret_cast<__m128>(b),
                                             reinterpret_cast<__m128>(acc)));
#else
  return acc + a * b;
#endif
}

typedef int32_t VecI __attribute__((vector_size(kLanes * sizeof(int32_t))));

// The first n (< kLanes) floats at p, zeros after; and the matching partial store. Tails go
// through these so every element runs the same vector code wherever it sits in an array:
// auto-vectorised loops peel and split by address alignment and (with -ffast-math) may use a
// different exp in the vector body and the scalar remainder, which would make results depend
// on allocation addresses and on how work is split.
// With AVX-512 they are one masked load or store (the same values; as a memcpy of a variable
// size each was a libc call and a round trip through the stack, most of a short decoding
// attention's time).
inline VecF LoadPartial(const float* p, int64_t n) {
#if defined(__AVX512F__)
  return reinterpret_cast<VecF>(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p));
#else
  VecF v{};
  __builtin_memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
  return v;
#endif
}
inline void StorePartial(float* p, VecF v, int64_t n) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), reinterpret_cast<__m512>(v));
#else
  __builtin_memcpy(p, &v, static_cast<size_t>(n) * sizeof(float));
#endif
}
// Lanes [0, n) all ones, the rest zero.
// The first min(n, kLanes) lanes of v to p; nothing when n <= 0 (a tile's rows past its end).
inline void StoreUpTo(float* p, VecF v, int64_t n) {
  if (n >= kLanes) {
    StoreU(p, v);
  } else if (n > 0) {
    StorePartial(p, v, n);
  }
}
inline VecI LaneMask(int64_t n) {
  VecI idx;
  for (int i = 0; i < kLanes; ++i) idx[i] = i;
  return idx < static_cast<int32_t>(n);
}
inline VecF Select(VecI mask, VecF a, VecF b) { return mask ? a : b; }

// Sum of the lanes in a fixed order (pairwise halves), so it does not depend on the caller.
inline float ReduceAdd(VecF v) {
  float lanes[kLanes];
  StoreU(lanes, v);
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int i = 0; i < width; ++i) lanes[i] += lanes[i + width];
  }
  return lanes[0];
}

// e^x per lane (Cephes expf: x = n ln2 + r, degree-6 polynomial in r, scale by 2^n through the
// exponent bits), input clamped to [-87, 88] like FastExp: never inf, never denormal.
// Relative error about 2e-7.
inline VecF Exp(VecF x) {
  x = Select(x < -87.0f, Splat(-87.0f), x);
  x = Select(x > 88.0f, Splat(88.0f), x);
  VecF t = x * 1.44269504088896341f;
  t += Select(t >= 0.0f, Splat(0.5f), Splat(-0.5f));
  const VecI n = __builtin_convertvector(t, VecI);  // round half away from zero
  const VecF nf = __builtin_convertvector(n, VecF);
  VecF r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  VecF p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const VecI bits = (n + 127) << 23;
  VecF scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// sum_i a[i] * b[i] with four vector accumulators and fixed-order reductions: the result
// depends only on n and the data.
inline float Dot(const float* a, const float* b, int64_t n) {
  VecF acc0{}, acc1{}, acc2{}, acc3{};
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    acc0 += LoadU(a + i) * LoadU(b + i);
    acc1 += LoadU(a + i + kLanes) * LoadU(b + i + kLanes);
    acc2 += LoadU(a + i + 2 * kLanes) * LoadU(b + i + 2 * kLanes);
    acc3 += LoadU(a + i + 3 * kLanes) * LoadU(b + i + 3 * kLanes);
  }
  for (; i + kLanes <= n; i += kLanes) acc0 += LoadU(a + i) * LoadU(b + i);
  if (i < n) acc1 += LoadPartial(a + i, n - i) * LoadPartial(b + i, n - i);
  return ReduceAdd((acc0 + acc1) + (acc2 + acc3));
}

// sum_i x[i], same scheme as Dot.
inline float Sum(const float* x, int64_t n) {
  VecF acc0{}, acc1{};
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 += LoadU(x + i);
    acc1 += LoadU(x + i + kLanes);
  }
  for (; i + kLanes <= n; i += kLanes) acc0 += LoadU(x + i);
  if (i < n) acc1 += LoadPartial(x + i, n - i);
  return ReduceAdd(acc0 + acc1);
}

// max_i x[i] (exact in any order).
inline float Max(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// y[i] = exp(x[i] - shift) * mul (y may alias x; skipped when y is null); returns
// sum_i exp(x[i] - shift) (before the multiplication), accumulated as Sum would.
inline float ExpShiftScale(const float* x, float shift, float mul, int64_t n, float* y) {
  VecF acc0{}, acc1{};
  const VecF vs = Splat(shift);
  const VecF vm = Splat(mul);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const VecF e = Exp(LoadU(x + i) - vs);
    acc0 += e;
    if (y != nullptr) StoreU(y + i, e * vm);
  }
  if (i < n) {
    const VecF e = Select(LaneMask(n - i), Exp(LoadPartial(x + i, n - i) - vs), VecF{});
    acc1 += e;
    if (y != nullptr) StorePartial(y + i, e * vm, n - i);
  }
  return ReduceAdd(acc0 + acc1);
}

// y[i] *= alpha.
inline void Scale(float alpha, int64_t n, float* y) {
  const VecF va = Splat(alpha);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) StoreU(y + i, LoadU(y + i) * va);
  if (i < n) StorePartial(y + i, LoadPartial(y + i, n - i) * va, n - i);
}

// y[i] += alpha * x[i].
inline void Axpy(float alpha, const float* x, int64_t n, float* y) {
  const VecF va = Splat(alpha);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) StoreU(y + i, LoadU(y + i) + va * LoadU(x + i));
  if (i < n) StorePartial(y + i, LoadPartial(y + i, n - i) + va * LoadPartial(x + i, n - i), n - i);
}

// dst[i] += src[i]. Backward ops compute a gradient into scratch first and add it with this,
// so -ffast-math cannot fuse the accumulator into the gradient's products: one call then adds
// exactly one rounded value per element, and two calls give exactly twice one.
inline void AddTo(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// Hides how x was computed from the optimiser (same purpose as AddTo, for a single value).
inline float Opaque(float x) {
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(x));
#else
  asm volatile("" : "+r"(x));
#endif
  return x;
}

// Per-thread scratch that grows once and is reused: ops never allocate in their hot loops.
inline float* Scratch(std::vector<float>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

}  // namespace lanlm::engine::simd
