// Internal to engine/ops: the GEMM of `--precision bf16` (contract in bf16.h). Both operands are
// packed once into bf16 pairs (VDPBF16PS's layout: 32-bit words holding reduction indices 2p
// and 2p + 1); two micro-kernels read them:
//   - native: VDPBF16PS on AVX512_BF16 CPUs (Zen 4+, Cooper Lake, Sapphire Rapids+), compiled
//     into every build through a per-function target attribute and chosen at run time;
//   - emulated: two fp32 FMAs per pair in the instruction's order, on the build's vector width
//     (AVX-512F, AVX2+FMA, or SSE), with FTZ/DAZ set for the call as the instruction implies.
// Both give the same bits for every element (each element sums its whole reduction in one
// register lane, in pair order), so a LAN of mixed CPUs trains one model bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/base/thread_pool.h"
#include "engine/ops/gemm_kernel.h"

namespace lanlm::engine::gemm_bf16 {

// kEmulated is the widest emulation the CPU has (AVX-512F, else AVX2 + FMA); kEmulatedAvx2 the
// AVX2 + FMA one even on an AVX-512 CPU, so tests on such a machine also check the kernel that
// AVX2-only machines of a mixed LAN run.
enum class Kernel { kNative, kEmulated, kEmulatedAvx2 };

bool NativeAvailable();  // the CPU has AVX512_BF16 (and AVX-512F)
bool KernelAvailable(Kernel k);
// The CPU can compute the contract exactly: native, or emulated with AVX-512F or AVX2 + FMA.
bool Supported();
// The kernel Gemm uses: native where available, unless ForceKernel chose otherwise.
Kernel ActiveKernel();
// Tests and benchmarks: use k from now on (a kernel the CPU lacks is refused: false).
bool ForceKernel(Kernel k);
// Back to the automatic choice.
void UnforceKernel();
// "avx512bf16" or "emulated-<width>" (e.g. "emulated-avx2-fma"): printed by lanlm-bench,
// lanlm train and the worker's join line.
const char* KernelName(Kernel k);

// C (M x N, stride ldc) (=|+=) A (M x K) · B (K x N) under the bf16 contract, parallel over row
// blocks; bit-identical for any thread count and either kernel.
void Gemm(gemm::Operand a, gemm::Operand b, int64_t M, int64_t N, int64_t K, float* c, int64_t ldc, bool accumulate,
          ThreadPool& pool);

// B (K x N) rounded and packed once for many products (a weight read by every micro-batch of
// a step): the panels Gemm packs per call, [panels][k2][nr] pair words, for the tile width nr
// of the kernel active when packed (native and emulated-avx512f share it).
struct PackedB {
  std::vector<uint32_t> words;
  int64_t K = 0, N = 0;
  int nr = 0;
};
void PackB(gemm::Operand b, int64_t K, int64_t N, PackedB* out, ThreadPool& pool);

// Gemm with B packed by PackB: the same bits as Gemm on the B it was packed from.
void GemmPacked(gemm::Operand a, const PackedB& b, int64_t M, float* c, int64_t ldc, bool accumulate, ThreadPool& pool);

}  // namespace lanlm::engine::gemm_bf16
