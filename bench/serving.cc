// lanlm-bench's serving modes: KV-cached decoding (batch 1 or several sessions stepping
// together) and prefill, on random weights in the --weights format.
#include "bench/serving.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "engine/base/check.h"
#include "engine/generate/decoder.h"
#include "engine/generate/sampling.h"
#include "engine/generate/serving_weights.h"
#include "engine/model/parameters.h"

namespace lanlm::engine {
namespace {

// CPU seconds of this process, all threads: on a shared machine its tokens per CPU-second
// move much less with the load than the wall-clock rate does.
double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The random weights of the config in the --weights format; the fp32 block stays alive in
// `params` (embedding and norms are read from it).
ServingWeights Weights(const Options& o, const ModelConfig& c, std::vector<float>& params) {
  params.assign(ParameterCount(c), 0.0f);
  InitParameters(c, o.seed, 0.02f, params.data());
  auto format = ParseWeightFormat(o.weights);
  LANLM_CHECK(format.ok(), format.status().ToString());
  auto w = ServingWeights::Convert(c, params.data(), *format);
  LANLM_CHECK(w.ok(), w.status().ToString());
  return std::move(w).value();
}

std::string WeightsText(const ServingWeights& w) {
  char text[128];
  const bool q8 = w.format() == WeightFormat::kQ8, bf16 = w.format() == WeightFormat::kBf16;
  std::snprintf(text, sizeof(text), "weights=%s%s%s matrix_MB=%.1f", WeightFormatName(w.format()),
                q8 ? " q8_kernel=" : bf16 ? " bf16_kernel=" : "", q8 ? Q8KernelName() : bf16 ? Bf16GemvKernelName() : "",
                w.MatrixBytes() / 1e6);
  return text;
}

// The --temperature, --top-k and --top-p flags, seeded with --seed.
SamplingOptions Sampling(const Options& o) {
  SamplingOptions s;
  s.temperature = o.temperature;
  s.top_k = o.top_k;
  s.top_p = o.top_p;
  s.seed = o.seed;
  return s;
}

std::string SamplingText(const SamplingOptions& s) {
  if (!(s.temperature > 0.0f) || s.top_k == 1) return "sampling=greedy";
  char text[96];
  std::snprintf(text, sizeof(text), "sampling=temperature:%g,top_k:%d,top_p:%g", s.temperature, s.top_k, s.top_p);
  return text;
}

}  // namespace

int BenchDecode(const Options& o, const ModelConfig& c, ThreadPool& pool) {
  std::vector<float> params;
  const ServingWeights w = Weights(o, c, params);
  const int S = o.sessions;
  Decoder decoder(c);
  std::vector<KvCache> caches(S, KvCache(c));
  std::vector<KvCache*> ptrs;
  for (KvCache& cache : caches) ptrs.push_back(&cache);
  std::vector<float> logits(static_cast<size_t>(S) * c.vocab_size);
  const int n = std::min<int>(o.tokens, c.context);
  std::vector<int32_t> generated;  // session 0's tokens
  // Each next token is drawn as the server draws it (SampleToken, part of the timed step).
  const SamplingOptions sampling = Sampling(o);
  std::vector<float> scratch;
  auto run = [&](int count) {
    for (KvCache& cache : caches) cache.length = 0;
    generated.clear();
    std::vector<int32_t> next(S);
    for (int s = 0; s < S; ++s) next[s] = 1 + s;
    for (int i = 0; i < count; ++i) {
      Status st = S == 1 ? decoder.Feed(w, next.data(), 1, caches[0], logits.data(), pool)
                         : decoder.FeedBatch(w, ptrs, next.data(), logits.data(), pool);
      LANLM_CHECK(st.ok(), st.ToString());
      for (int s = 0; s < S; ++s) {
        const float* row = logits.data() + static_cast<size_t>(s) * c.vocab_size;
        // Batch 1 spreads the draw over the pool, as the server's batch of one does.
        next[s] = SampleToken(row, c.vocab_size, sampling, static_cast<uint64_t>(i), scratch, S == 1 ? &pool : nullptr).id;
      }
      generated.push_back(next[0]);
    }
  };
  run(8);  // warm-up
  std::vector<double> rates, cpu_rates;
  for (int r = 0; r < o.runs; ++r) {
    const auto t0 = Clock::now();
    const double c0 = CpuSeconds();
    run(n);
    rates.push_back(static_cast<double>(S) * n / Seconds(t0, Clock::now()));
    cpu_rates.push_back(static_cast<double>(S) * n / (CpuSeconds() - c0));
  }
  const double med = Median(rates);
  double flops = 0.0;
  for (int p = 0; p < n; ++p) flops += DecodeFlopsPerToken(c, p);
  const double gflops = flops / n * med / 1e9;
  char text[448], json[320];
  std::snprintf(text, sizeof(text),
                "sessions=%d tokens=%d runs=%d min=%.1f max=%.1f cpu_tokens/s=%.1f first_tokens=%d,%d,%d,%d %s %s", S,
                n, o.runs, *std::min_element(rates.begin(), rates.end()), *std::max_element(rates.begin(), rates.end()),
                Median(cpu_rates), generated[0], generated[1], generated[2], generated[3], WeightsText(w).c_str(),
                SamplingText(sampling).c_str());
  std::snprintf(json, sizeof(json),
                ",\"sessions\":%d,\"tokens\":%d,\"runs\":%d,\"weights\":\"%s\",\"cpu_tokens_per_s\":%.2f"
                ",\"temperature\":%g,\"top_k\":%d,\"top_p\":%g",
                S, n, o.runs, WeightFormatName(w.format()), Median(cpu_rates), sampling.temperature, sampling.top_k,
                sampling.top_p);
  Report(o, pool.size(), med, gflops, text, json);
  return 0;
}

int BenchPrefill(const Options& o, const ModelConfig& c, ThreadPool& pool) {
  std::vector<float> params;
  const ServingWeights w = Weights(o, c, params);
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<float> logits(c.vocab_size);
  const int cached = std::min<int>(o.cached, c.context - 1);
  const int n = std::min<int>(o.tokens, c.context - cached);
  std::vector<int32_t> prompt(static_cast<size_t>(cached + n));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 1) % c.vocab_size);
  if (cached > 0) {  // the earlier turns, once; each run rewinds to here
    Status s = decoder.Feed(w, prompt.data(), cached, cache, logits.data(), pool);
    LANLM_CHECK(s.ok(), s.ToString());
  }
  auto run = [&] {
    cache.length = cached;
    Status s = decoder.Feed(w, prompt.data() + cached, n, cache, logits.data(), pool);
    LANLM_CHECK(s.ok(), s.ToString());
  };
  run();  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < o.runs; ++r) {
    const auto t0 = Clock::now();
    run();
    rates.push_back(n / Seconds(t0, Clock::now()));
  }
  const double med = Median(rates);
  // Every position goes through the blocks; only the last one through the output layer.
  const double output = 2.0 * c.vocab_size * c.dim;
  double flops = output;
  for (int p = cached; p < cached + n; ++p) flops += DecodeFlopsPerToken(c, p) - output;
  const double gflops = flops / n * med / 1e9;
  char text[256], json[256];
  std::snprintf(text, sizeof(text), "prompt_tokens=%d cached=%d runs=%d min=%.1f max=%.1f %s", n, cached, o.runs,
                *std::min_element(rates.begin(), rates.end()), *std::max_element(rates.begin(), rates.end()),
                WeightsText(w).c_str());
  std::snprintf(json, sizeof(json), ",\"prompt_tokens\":%d,\"cached\":%d,\"runs\":%d", n, cached, o.runs);
  Report(o, pool.size(), med, gflops, text, json);
  return 0;
}

int BenchSample(const Options& o, const ModelConfig& c, ThreadPool& pool) {
  const SamplingOptions sampling = Sampling(o);
  // Two spreads of normal logits: 2 (flat: at temperature 0.8 a top-p of 0.9 needs thousands
  // of tokens) and 6 (peaked, more like a trained model's).
  for (const float spread : {2.0f, 6.0f}) {
    std::vector<float> logits(c.vocab_size), scratch;
    std::mt19937 rng(static_cast<uint32_t>(o.seed));
    std::normal_distribution<float> normal(0.0f, spread);
    for (float& l : logits) l = normal(rng);
    const int draws = std::max(1, o.tokens);
    std::vector<double> rates;
    int64_t ids = 0;
    for (int r = 0; r < o.runs; ++r) {
      const auto t0 = Clock::now();
      for (int i = 0; i < draws; ++i) ids += SampleToken(logits.data(), c.vocab_size, sampling, i, scratch, &pool).id;
      rates.push_back(draws / Seconds(t0, Clock::now()));
    }
    const double med = Median(rates);
    char text[256], json[256];
    std::snprintf(text, sizeof(text), "vocab=%d logit_std=%g us_per_draw=%.2f draws=%d runs=%d id_sum=%lld %s",
                  c.vocab_size, spread, 1e6 / med, draws, o.runs, static_cast<long long>(ids),
                  SamplingText(sampling).c_str());
    std::snprintf(json, sizeof(json), ",\"vocab\":%d,\"logit_std\":%g,\"us_per_draw\":%.3f,\"temperature\":%g,"
                  "\"top_k\":%d,\"top_p\":%g", c.vocab_size, spread, 1e6 / med, sampling.temperature, sampling.top_k,
                  sampling.top_p);
    Report(o, pool.size(), med, 0.0, text, json);
  }
  return 0;
}

}  // namespace lanlm::engine
