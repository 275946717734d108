// lanlm-bench --mode quality: what serving a trained checkpoint in bf16 or q8 costs in quality
// against fp32. Perplexity: the last --windows windows of T + 1 tokens of --corpus (the tail
// of a text, where the trainer's validation split lies), each decoded token by token with
// Decoder::Feed from an empty cache, mean negative log-likelihood of every next token in
// double. Greedy agreement: --prompts prompts (8 tokens taken from the same tail, 16 tokens
// apart), 32 greedy tokens each, fp32 and the format each from their own history; the share of
// positions where the format's token equals fp32's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/serving.h"
#include "engine/base/check.h"
#include "engine/data/corpus.h"
#include "engine/generate/decoder.h"
#include "engine/generate/serving_weights.h"
#include "engine/io/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {
namespace {

constexpr int kPromptTokens = 8;
constexpr int kGreedyTokens = 32;

// -log softmax(logits)[target], in double.
double Nll(const float* logits, int vocab, int32_t target) {
  double max = logits[0];
  for (int i = 1; i < vocab; ++i) max = std::max<double>(max, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  return std::log(sum) + max - static_cast<double>(logits[target]);
}

double Perplexity(const ServingWeights& w, const std::vector<int32_t>& tail, int windows, ThreadPool& pool) {
  const ModelConfig& c = w.config();
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<float> logits(c.vocab_size);
  double nll = 0.0;
  int64_t count = 0;
  for (int win = 0; win < windows; ++win) {
    const int32_t* t = tail.data() + static_cast<size_t>(win) * (c.context + 1);
    cache.length = 0;
    for (int i = 0; i < c.context; ++i) {
      Status s = decoder.Feed(w, t + i, 1, cache, logits.data(), pool);
      LANLM_CHECK(s.ok(), s.ToString());
      nll += Nll(logits.data(), c.vocab_size, t[i + 1]);
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

// kGreedyTokens greedy tokens after each prompt, all prompts one after another.
std::vector<int32_t> Greedy(const ServingWeights& w, const std::vector<int32_t>& tail, int prompts, ThreadPool& pool) {
  const ModelConfig& c = w.config();
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<float> logits(c.vocab_size);
  std::vector<int32_t> out;
  for (int p = 0; p < prompts; ++p) {
    cache.length = 0;
    Status s = decoder.Feed(w, tail.data() + static_cast<size_t>(p) * 2 * kPromptTokens, kPromptTokens, cache,
                            logits.data(), pool);
    LANLM_CHECK(s.ok(), s.ToString());
    for (int i = 0; i < kGreedyTokens; ++i) {
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(next);
      if (i + 1 < kGreedyTokens) {
        s = decoder.Feed(w, &next, 1, cache, logits.data(), pool);
        LANLM_CHECK(s.ok(), s.ToString());
      }
    }
  }
  return out;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  return 1;
}

}  // namespace

int BenchQuality(const Options& o, ThreadPool& pool) {
  auto ckpt = LoadCheckpoint(o.checkpoint);
  if (!ckpt.ok()) return Fail(ckpt.status().ToString());
  auto tokenizer = BpeTokenizer::Deserialize(ckpt->tokenizer);
  if (!tokenizer.ok()) return Fail("--checkpoint tokenizer: " + tokenizer.status().ToString());
  auto text = ReadTextFile(o.corpus);
  if (!text.ok()) return Fail(text.status().ToString());
  const ModelConfig& c = ckpt->config;
  const std::vector<int32_t> tokens = tokenizer->Encode(*text);
  const int64_t need = std::max<int64_t>(int64_t{o.windows} * (c.context + 1), int64_t{o.prompts} * 2 * kPromptTokens);
  if (static_cast<int64_t>(tokens.size()) < need || c.context < kPromptTokens + kGreedyTokens) {
    std::fprintf(stderr, "--corpus = '%s' encodes to %zu tokens; --windows %d and --prompts %d need %lld (and T >= %d)\n",
                 o.corpus.c_str(), tokens.size(), o.windows, o.prompts, static_cast<long long>(need),
                 kPromptTokens + kGreedyTokens);
    return 1;
  }
  const std::vector<int32_t> tail(tokens.end() - need, tokens.end());
  auto fp32 = ServingWeights::Convert(c, ckpt->params.data(), WeightFormat::kF32);
  LANLM_CHECK(fp32.ok(), fp32.status().ToString());
  const double ppl_fp32 = Perplexity(*fp32, tail, o.windows, pool);
  const std::vector<int32_t> greedy_fp32 = Greedy(*fp32, tail, o.prompts, pool);
  std::printf("quality config=%s windows=%d prompts=%d fp32 ppl=%.4f\n", c.ToString().c_str(), o.windows, o.prompts,
              ppl_fp32);
  for (WeightFormat f : {WeightFormat::kBf16, WeightFormat::kQ8}) {
    auto w = ServingWeights::Convert(c, ckpt->params.data(), f);
    if (!w.ok()) return Fail(w.status().ToString());
    const double ppl = Perplexity(*w, tail, o.windows, pool);
    const std::vector<int32_t> greedy = Greedy(*w, tail, o.prompts, pool);
    int64_t same = 0;
    for (size_t i = 0; i < greedy.size(); ++i) same += greedy[i] == greedy_fp32[i];
    std::printf("quality %s ppl=%.4f vs_fp32=%+.3f%% greedy_equal=%lld/%zu (%.1f%%)\n", WeightFormatName(f), ppl,
                100.0 * (ppl / ppl_fp32 - 1.0), static_cast<long long>(same), greedy.size(),
                100.0 * static_cast<double>(same) / static_cast<double>(greedy.size()));
  }
  return 0;
}

}  // namespace lanlm::engine
