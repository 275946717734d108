#!/usr/bin/env bash
# deploy/check.sh's race pass (docs/TESTING.md): builds the engine, coordinator, worker and integration test
# binaries with ThreadSanitizer (-DLANLM_TSAN=ON: -O1 -g -fsanitize=thread, no LTO) in
# build-tsan/ and runs the coordinator, worker and Generate tests, the engine's threaded
# tests (the unit ones; Slow* stay out to keep the pass to a few minutes on 2 cores) and
# three in-process cluster tests. Any
# TSan report fails the pass (exit code 66). deploy/tsan.supp holds the suppressions, each
# one inside the uninstrumented gRPC/protobuf libraries, with its reason.
#   LANLM_TSAN_FILTER  overrides the engine tests' --gtest_filter
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build-tsan "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DLANLM_TSAN=ON -DLANLM_WERROR=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target lanlm_engine_tests lanlm_coordinator_tests lanlm_worker_tests \
  lanlm_integration_tests

# history_size=4: deeper per-thread history so both stacks of a report resolve.
export TSAN_OPTIONS="suppressions=$PWD/deploy/tsan.supp exitcode=66 halt_on_error=0 second_deadlock_stack=1 history_size=4 ${TSAN_OPTIONS:-}"
# Kernels with more mmap randomisation than TSan's shadow layout allows (vm.mmap_rnd_bits > 28)
# make it abort with "unexpected memory mapping": run without address randomisation there.
prefix=()
if [[ $(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28) -gt 28 ]] && command -v setarch >/dev/null; then
  prefix=(setarch "$(uname -m)" -R)
fi
# The engine's tests that run on more than one thread (thread pool, gradient tree, the
# 1-vs-N-thread checks of the ops, trainer, local steps, decoding, the pooled token draw).
engine_filter=${LANLM_TSAN_FILTER:-ThreadPool*:GradientTree*:Trainer*:LocalSteps*:Matmul*:Attention*:Decoder*:Generation*:Model*:Gemv*:Sampling*}
status=0
run() {
  local binary=$1 filter=$2 start=$SECONDS
  echo "-- $binary --gtest_filter=$filter"
  if ! "${prefix[@]}" "build-tsan/tests/$binary" --gtest_brief=1 --gtest_filter="$filter"; then
    echo "tsan.sh: $binary FAILED" >&2
    status=1
  fi
  echo "-- $binary: $((SECONDS - start)) s"
}
run lanlm_coordinator_tests '-Slow*'
run lanlm_worker_tests '-Slow*'
run lanlm_engine_tests "$engine_filter:-Slow*"
# A coordinator and in-process workers training together (step loop, Work streams, leases,
# bad input, a broken stream, the worker's overlapped compute and gradient-sender threads, and the
# parameter relay's fetch thread and Relay server);
# the other multi-worker ones take minutes under TSan and stay out.
run lanlm_integration_tests ClusterTest.OneWorkerMatchesLocalTrainer:ClusterTest.BadInputGetsItsCodeAndTrainingGoesOn:ClusterTest.BrokenStreamReturnsItsLeaseAtOnce:ClusterOverlapTest.StreamingWorkersMatchWithMultiShardLeasesInBothWireFormats:ClusterOverlapTest.WorkerGoneWithItsGradientHalfSentIsRecomputedInFull:ClusterRelayTest.*:RelayServiceTest.*
exit $status
