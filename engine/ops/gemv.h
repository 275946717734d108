// Decoding matrix-vector products over weights in a serving format (fp32, bf16 or q8). Work is
// cut into blocks of weight rows fixed by the shape and the format (WeightMatrix::block_rows);
// a block reads its rows once and multiplies them with every activation row given (batched
// decoding), so a caller's ParallelFor over blocks is bit-identical for any thread count. Each
// output's arithmetic is the same whichever block slot or batch it sits in.
//
// Formats (the layout of llama2.c's runq / GGUF Q8_0 for q8):
//   fp32: panels of kPanelRows (16) rows, input-major: w[o, i] at
//         ((o / 16) * cols + i) * 16 + o % 16, the last panel padded with zeros. Each output is
//         one fma chain in input order, y = fma(w[o, cols-1], x[cols-1], ... fma(w[o, 0], x[0],
//         0)), computed 16 outputs per vector by broadcasting x[i]: no horizontal sums, and a
//         tile of 4 panels x 6 activation rows loads 10 vectors per 24 fmas. Row-major dot
//         products (two 16-lane accumulators, then a horizontal sum per output) ran 2.5-3x
//         slower batched and 1.3-1.8x slower at batch 1 in a micro-benchmark (BENCHMARKS.md,
//         issue 11, tenth session).
//   bf16: panels of 16 rows of bf16 pair words (bf16.h's Bf16Pair, VDPBF16PS's operand): for
//         each pair of inputs p (cols rounded up to even, the padding zero), 16 words, row
//         o % 16's word holding w[o, 2p] in its low and w[o, 2p + 1] in its high half, at
//         ((o / 16) * pairs + p) * 16 + o % 16. The activations are rounded to bf16 pairs
//         too (PackBf16Activations), and each output is the bf16 contract's chain (bf16.h,
//         the arithmetic of `--precision bf16` training): per pair, acc += w_odd * x_odd,
//         then acc += w_even * x_even, each product exact and each sum rounded once, from 0.
//         One VDPBF16PS does a pair for 16 rows where AVX512_BF16 exists; two FMAs per pair
//         compute the same bits on any other CPU (GemvReferenceBf16 is the plain C++ form).
//         Rounding the activations measured 1.4-1.6x the weights per second of widening bf16
//         weights into fp32 FMAs (BENCHMARKS.md, issue 11, fourteenth session).
//   q8:   per row, in / 32 groups of 32 int8 in [-127, 127] with one fp32 scale each
//         (w ≈ q * scale, scale = max|w| / 127), stored offset by 128 as uint8 (q + 128 in
//         [1, 255]): VNNI's vpdpbusd takes its first operand unsigned, so the kernel multiplies
//         the stored bytes directly and subtracts 128 * (sum of the activations), instead of
//         moving the signs onto the activation per weight vector. The activation is quantized
//         the same way (signed, no offset) on the fly and each group's product is summed in
//         integers, exactly.
#pragma once

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace lanlm::engine {

enum class WeightFormat { kF32, kBf16, kQ8 };
const char* WeightFormatName(WeightFormat format);  // "fp32", "bf16", "q8"

inline constexpr int64_t kGemvRows = 4;    // q8: weight rows per block
inline constexpr int64_t kPanelRows = 16;  // fp32 and bf16: weight rows per panel (= per block)

// Weights and activations the kernels read start on a cache line: a 32-byte vector load
// that straddles two lines costs two, and with std::vector's 16-byte alignment every other
// load of a row did (measured: an in-cache 768 x 288 batched GEMV ran 1.3x faster aligned).
inline constexpr size_t kGemvAlign = 64;
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}  // NOLINT: rebinding, as std::allocator
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kGemvAlign})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{kGemvAlign}); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
};
template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;
inline constexpr int64_t kQ8Group = 32;   // q8 values per scale

struct WeightMatrix {
  WeightFormat format = WeightFormat::kF32;
  int64_t rows = 0;  // out
  int64_t cols = 0;  // in (a multiple of kQ8Group for q8)
  const float* f32 = nullptr;      // fp32: PanelElements(rows, cols), panels
  const uint32_t* bf16 = nullptr;  // bf16: Bf16PanelWords(rows, cols) pair words, panels
  const uint8_t* q8 = nullptr;     // q8: (rows, cols), q + 128
  const float* scale = nullptr;    // q8: (rows, cols / kQ8Group)
  int64_t block_rows() const { return format == WeightFormat::kQ8 ? kGemvRows : kPanelRows; }
  int64_t blocks() const { return (rows + block_rows() - 1) / block_rows(); }
};

// Elements of a paneled matrix: rows rounded up to whole panels, times cols.
inline int64_t PanelElements(int64_t rows, int64_t cols) {
  return (rows + kPanelRows - 1) / kPanelRows * kPanelRows * cols;
}
// Pair words of a bf16 matrix's panels: rows rounded up to whole panels, times cols / 2
// rounded up.
inline int64_t Bf16PanelWords(int64_t rows, int64_t cols) {
  return (rows + kPanelRows - 1) / kPanelRows * kPanelRows * ((cols + 1) / 2);
}
// Row-major w (rows, cols) into panels (PanelElements values, or Bf16PanelWords pair words
// with each value rounded as bf16.h's Bf16FromFloat; padding zeroed). And back: rows
// [r0, r1) of any format widened into dst (r1 - r0, cols) (q8: dequantized).
void PackPanels(const float* w, int64_t rows, int64_t cols, float* panels);
void PackPanels(const float* w, int64_t rows, int64_t cols, uint32_t* panels);
void WidenRows(const WeightMatrix& w, int64_t r0, int64_t r1, float* dst);

// Activation rows prepared for one matrix shape: the fp32 values and, for q8 weights, their
// per-group int8 quantization, for bf16 weights their bf16 pairs. n rows of `cols` values each.
struct GemvInput {
  const float* x = nullptr;     // (n, cols)
  const int8_t* xq = nullptr;   // (n, cols), q8 only
  const float* xs = nullptr;    // (n, cols / kQ8Group), q8 only
  int64_t n = 0;
  const uint32_t* xp = nullptr;  // (n, (cols + 1) / 2) pair words, bf16 only
};
// x (n, cols) as bf16 pair words xp (n, (cols + 1) / 2), rounded as Bf16FromFloat, the odd
// tail's high half zero.
void PackBf16Activations(const float* x, int64_t n, int64_t cols, uint32_t* xp);

// y[r * ldy + o] = w[o, :] · x[r, :] for the rows o of `block` and every activation row r.
// fp32: GemvReference's chain, bf16: GemvReferenceBf16's, bit for bit.
void GemvBlock(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy);
// GemvBlock for each block in [begin, end), the same bits; batched q8 on AVX-512 runs two whole
// blocks per pass over each activation row (the activation loads and the accumulator starts of
// each pair of groups serve 8 rows instead of 4).
void GemvBlocks(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy);

// The fp32 arithmetic in plain C++ (std::fma in input order from 0; a product and a sum in
// builds without FMA, as simd::Fma), one output at a time from row-major fp32 weights: what the
// kernels equal bit for bit.
float GemvReference(const float* w_row, const float* x, int64_t cols);
// The bf16 chain in plain C++ from fp32 values: w and x rounded as Bf16FromFloat, then per pair
// p (a missing odd element is 0) acc = fma(w[2p + 1], x[2p + 1], acc), acc = fma(w[2p], x[2p],
// acc), from 0 (the products are exact, so a product and a sum where FMA is missing).
float GemvReferenceBf16(const float* w_row, const float* x, int64_t cols);
// The bf16 GEMV kernel GemvBlock runs: "avx512bf16" (VDPBF16PS) or "emulated-fma" / "emulated".
const char* Bf16GemvKernelName();

// q8 blocks: GemvBlock's q8 case, the best kernel this build has, and the plain C++ reference
// every fast q8 kernel equals bit for bit. All define a row's result the same way: for each
// group g, eight exact integer partial sums p[l] of four consecutive products (l < 8); of 16
// fp32 lanes, lane 8 * (g % 2) + l accumulates fma(float(p[l]), ws[g] * xs[g]) in group order
// (even groups in lanes 0-7, odd groups in lanes 8-15: one 512-bit vector holds two
// consecutive groups); the 16 lanes are summed pairwise (l + 8, then + 4, + 2, + 1).
void GemvBlockQ8(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy);
void GemvBlockQ8Reference(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy);
void GemvBlocksQ8(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy);
// GemvBlocks' bf16 case (engine/ops/gemv_bf16.cc).
void GemvBlocksBf16(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy);
using GemvBlockFn = void (*)(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy);
struct Q8Kernel {
  const char* name;  // "avx512-vnni", "avx2-vnni", "avx2"
  GemvBlockFn fn;
};
// The fast q8 kernels this build compiled, widest first (GemvBlockQ8 runs the 512-bit one for
// batched steps and the 256-bit one for a single row; a build for an older -march runs only
// the latter), all callable so tests check each against the reference here.
std::vector<Q8Kernel> Q8Kernels();
// Which q8 kernels GemvBlock uses in this build ("avx512-vnni,avx2-vnni-at-batch-1",
// "avx2-vnni", "avx2" or "generic").
const char* Q8KernelName();

// Quantizes n values (n a multiple of kQ8Group) into q (n) and scale (n / kQ8Group):
// scale = max|x| / 127 per group, q = round(x / scale) (0 for an all-zero group).
void QuantizeQ8(const float* x, int64_t n, int8_t* q, float* scale);
void DequantizeQ8(const int8_t* q, const float* scale, int64_t n, float* x);
// The weights' layout: QuantizeQ8 with each value stored as q + 128, and back.
void QuantizeQ8Weights(const float* w, int64_t n, uint8_t* q, float* scale);
void DequantizeQ8Weights(const uint8_t* q, const float* scale, int64_t n, float* w);
inline constexpr int32_t kQ8WeightOffset = 128;

}  // namespace lanlm::engine
