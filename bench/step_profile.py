#!/usr/bin/env python3
"""Where a training step's time goes: classify the samples of `perf script` (recorded with
`perf record -g` around `lanlm-bench --mode train`) by op, from the leaf symbol and, for the
GEMM micro-kernels attention shares, by whether an attention frame is on the stack. Samples of
start-up (parameter init, the RNG's log/cos) are left out; percentages are of the rest.
Usage: perf script -i FILE | bench/step_profile.py"""
import collections
import re
import sys

ATTENTION = re.compile(r"Attention|ForwardHead|BackwardHead|SoftmaxRow|AttendRow|ScoreBlocks|WeightedRows|PackHead")
RULES = [  # (category, regex on the leaf symbol), first match wins
    ("startup (excluded)", r"InitParameters|__cos|__ieee754_log|^log@|CounterRng|_dl_|_start"),
    ("matmul: bf16 kernel", r"KernelEmulated|KernelNative"),
    ("matmul: bf16 packing", r"PackLanesContiguous|PackKContiguous|PackPairs|gemm_bf16::Gemm|gemm_bf16::.*Pack"),
    ("matmul: fp32 kernel", r"gemm::MicroKernel"),
    ("matmul: fp32 packing", r"gemm::PackA|gemm::PackBPanel|\(anonymous namespace\)::Gemm|DotColumn"),
    ("rmsnorm", r"RmsNorm|BackwardRow|WeightBlock"),
    ("rope", r"Rope|RotateRow|UnrotateRow"),
    ("swiglu", r"SwiGlu|ForwardBlock|BackwardBlock"),
    ("cross-entropy", r"CrossEntropy|RowGradient|RowLoss|ExpShiftScale"),
    ("residual add", r"AddInPlace|AddBlock"),
    ("embedding", r"Embedding"),
    ("clip + AdamW", r"AdamW|ClipGradients"),
    ("memset / memcpy", r"memset|memmove|memcpy|clear_page"),
    ("thread pool / kernel", r"ThreadPool|pthread|__condvar|\[k\]|futex|sched|_raw_spin|schedule|^0x|unknown"),
]


def classify(stack):
    leaf = stack[0]
    if any(ATTENTION.search(f) for f in stack):
        return "attention (fp32, per head)"
    for name, rx in RULES:
        if re.search(rx, leaf):
            return name
    return "other: " + leaf[:60]


def main():
    counts = collections.Counter()
    stack = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                counts[classify(stack)] += 1
            stack = []
            continue
        if line.startswith((" ", "\t")):
            parts = line.strip().split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            if sym.endswith("([kernel.kallsyms])"):
                sym = "[k] " + sym
            stack.append(re.sub(r"\+0x[0-9a-f]+ \(.*\)$|\s\(.*\)$", "", sym))
    if stack:
        counts[classify(stack)] += 1
    total = sum(v for k, v in counts.items() if not k.startswith("startup"))
    other = 0
    for name, v in counts.most_common():
        if name.startswith("startup"):
            continue
        if 100.0 * v / total < 0.1:
            other += v
            continue
        print(f"{100.0 * v / total:6.1f}%  {name}")
    print(f"{100.0 * other / total:6.1f}%  everything under 0.1% each")
    print(f"({total} samples; {counts['startup (excluded)']} start-up samples left out)")


if __name__ == "__main__":
    main()
