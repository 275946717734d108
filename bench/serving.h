// lanlm-bench's serving modes (decode, prefill, sample); see main.cc for what they measure.
#pragma once

#include "bench/bench_util.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine {

int BenchDecode(const Options& o, const ModelConfig& c, ThreadPool& pool);
int BenchPrefill(const Options& o, const ModelConfig& c, ThreadPool& pool);
// SampleToken alone at the config's vocabulary with the sampling flags (--tokens draws a run).
int BenchSample(const Options& o, const ModelConfig& c, ThreadPool& pool);

}  // namespace lanlm::engine
