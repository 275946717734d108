// Serving-format quality: teacher-forced loss and argmax agreement, free-running greedy
// agreement; see serving_eval.h.
#include "client/serving_eval.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "engine/generate/decoder.h"

namespace lanlm::client {
namespace {

int64_t Argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

// -log softmax(logits)[target], in double.
double CrossEntropy(const float* logits, int64_t V, int32_t target) {
  const double top = logits[Argmax(logits, V)];
  double sum = 0.0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(logits[j]) - top);
  return std::log(sum) + top - static_cast<double>(logits[target]);
}

// Windows [first, first + count) of T+1 tokens, one position at a time for all of them: adds
// the loss of both weight sets and the argmax agreements to r.
Status ScoreWindows(const engine::ServingWeights& w, const engine::ServingWeights& fp32, const int32_t* tokens,
                    int64_t first, int count, engine::Decoder& decoder, engine::ThreadPool& pool,
                    ServingEvalResult& r, int64_t& agree) {
  const engine::ModelConfig& c = w.config();
  const int64_t T = c.context, V = c.vocab_size;
  std::vector<std::unique_ptr<engine::KvCache>> kv[2];
  std::vector<engine::KvCache*> caches[2];
  for (int s = 0; s < 2; ++s) {
    for (int i = 0; i < count; ++i) {
      kv[s].push_back(std::make_unique<engine::KvCache>(c));
      caches[s].push_back(kv[s].back().get());
    }
  }
  std::vector<int32_t> step(static_cast<size_t>(count));
  std::vector<float> logits[2] = {std::vector<float>(count * V), std::vector<float>(count * V)};
  for (int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < count; ++i) step[i] = tokens[(first + i) * T + t];
    LANLM_RETURN_IF_ERROR(decoder.FeedBatch(w, caches[0], step.data(), logits[0].data(), pool));
    LANLM_RETURN_IF_ERROR(decoder.FeedBatch(fp32, caches[1], step.data(), logits[1].data(), pool));
    for (int i = 0; i < count; ++i) {
      const int32_t target = tokens[(first + i) * T + t + 1];
      r.loss += CrossEntropy(&logits[0][i * V], V, target);
      r.fp32_loss += CrossEntropy(&logits[1][i * V], V, target);
      agree += Argmax(&logits[0][i * V], V) == Argmax(&logits[1][i * V], V);
    }
  }
  r.predictions += count * T;
  return OkStatus();
}

// The greedy continuation of prompt[0, prompt_len) for new_tokens tokens.
StatusOr<std::vector<int64_t>> Greedy(const engine::ServingWeights& w, const int32_t* prompt, int prompt_len,
                                      int new_tokens, engine::Decoder& decoder, engine::ThreadPool& pool) {
  engine::KvCache cache(w.config());
  const int64_t V = w.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(V));
  LANLM_RETURN_IF_ERROR(decoder.Feed(w, prompt, prompt_len, cache, logits.data(), pool));
  std::vector<int64_t> out;
  for (int i = 0; i < new_tokens; ++i) {
    out.push_back(Argmax(logits.data(), V));
    if (i + 1 == new_tokens) break;
    const auto next = static_cast<int32_t>(out.back());
    LANLM_RETURN_IF_ERROR(decoder.Feed(w, &next, 1, cache, logits.data(), pool));
  }
  return out;
}

}  // namespace

StatusOr<ServingEvalResult> EvaluateServing(const engine::ServingWeights& weights, const engine::ServingWeights& fp32,
                                            const std::vector<int32_t>& tokens, int64_t max_windows, int batch,
                                            int prompts, int prompt_len, int new_tokens, engine::ThreadPool& pool) {
  const engine::ModelConfig& c = weights.config();
  const int64_t T = c.context;
  if (prompt_len < 1 || new_tokens < 1 || prompt_len + new_tokens > T) {
    return InvalidArgumentError("greedy prompt of " + std::to_string(prompt_len) + " tokens + " +
                                std::to_string(new_tokens) + " new tokens must fit the context T = " +
                                std::to_string(T) + " (each at least 1)");
  }
  int64_t windows = (static_cast<int64_t>(tokens.size()) - 1) / T;
  if (max_windows > 0) windows = std::min(windows, max_windows);
  if (windows < 1) return InvalidArgumentError("the text holds no window of T + 1 = " + std::to_string(T + 1) + " tokens");
  engine::Decoder decoder(c);
  ServingEvalResult r;
  int64_t agree = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    const int count = static_cast<int>(std::min<int64_t>(batch, windows - first));
    LANLM_RETURN_IF_ERROR(ScoreWindows(weights, fp32, tokens.data(), first, count, decoder, pool, r, agree));
  }
  r.loss /= static_cast<double>(r.predictions);
  r.fp32_loss /= static_cast<double>(r.predictions);
  r.top1_agreement = static_cast<double>(agree) / static_cast<double>(r.predictions);
  int64_t same = 0;
  for (int p = 0; p < prompts && p < windows; ++p) {
    const int32_t* prompt = tokens.data() + p * T;
    LANLM_ASSIGN_OR_RETURN(std::vector<int64_t> a, Greedy(weights, prompt, prompt_len, new_tokens, decoder, pool));
    LANLM_ASSIGN_OR_RETURN(std::vector<int64_t> b, Greedy(fp32, prompt, prompt_len, new_tokens, decoder, pool));
    for (int i = 0; i < new_tokens; ++i) same += a[i] == b[i];
    r.greedy_tokens += new_tokens;
  }
  r.greedy_agreement = r.greedy_tokens > 0 ? static_cast<double>(same) / static_cast<double>(r.greedy_tokens) : 0.0;
  return r;
}

}  // namespace lanlm::client
