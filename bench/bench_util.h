// lanlm-bench's shared pieces: options, timing, FLOP counts and the one-line report.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/model/model_config.h"

namespace lanlm::engine {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline int64_t MatmulParams(const ModelConfig& c) {
  const int64_t C = c.dim, F = c.ffn_hidden, V = c.vocab_size;
  return int64_t{c.n_layers} * (4 * C * C + 3 * C * F) + C * V;
}

inline double TrainFlopsPerToken(const ModelConfig& c) {
  return 6.0 * static_cast<double>(MatmulParams(c)) + 12.0 * c.n_layers * c.context * c.dim;
}

inline double DecodeFlopsPerToken(const ModelConfig& c, int64_t pos) {
  return 2.0 * static_cast<double>(MatmulParams(c)) + 4.0 * c.n_layers * c.dim * (pos + 1);
}

struct Options {
  std::string config = "S";
  std::string mode = "train";
  int threads = 0;
  int steps = 10;
  int warmup = 3;
  int cached = 0;
  int tokens = 200;
  int runs = 5;
  int vocab_size = 0;
  int sessions = 1;
  float temperature = 0.0f;  // decode: how each next token is drawn (SampleToken, as the server)
  int top_k = 40;
  float top_p = 0.95f;
  std::string weights = "fp32";
  std::string precision = "fp32";
  std::string bf16_kernel = "auto";
  std::string corpus;
  std::string checkpoint;
  bool json = false;
  uint64_t seed = 1234;
};

inline void Report(const Options& o, int threads, double tokens_per_s, double gflops, const std::string& extra_text,
            const std::string& extra_json) {
  if (o.json) {
    std::printf("{\"config\":\"%s\",\"mode\":\"%s\",\"threads\":%d,\"tokens_per_s\":%.2f,\"gflops\":%.3f%s}\n",
                o.config.c_str(), o.mode.c_str(), threads, tokens_per_s, gflops, extra_json.c_str());
  } else {
    std::printf("%s config=%s threads=%d tokens/s=%.1f GFLOP/s=%.2f %s\n", o.mode.c_str(), o.config.c_str(), threads,
                tokens_per_s, gflops, extra_text.c_str());
  }
}

}  // namespace lanlm::engine
