// Next-token sampling: greedy, or softmax(logits / temperature) cut to the top-k tokens, then to
// the smallest prefix whose probability reaches top_p, drawn with CounterRng(seed, index).
// Order of tokens everywhere: larger weight first, then smaller id (deterministic ties).
// Non-finite logits (NaN, +Inf, -Inf; tested on the bit pattern because of -ffast-math) are
// excluded: such a token has probability 0 and is never chosen. When no logit is finite the
// result is id 0 (<pad>, which ends a generation) with probability 0.
#include "engine/generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "engine/base/float_bits.h"
#include "engine/base/number_text.h"
#include "engine/model/model_config.h"
#include "engine/base/random.h"

namespace lanlm::engine {
namespace {

constexpr float kMaxTemperature = 100.0f;
constexpr uint64_t kSamplingDomain = 0x73616d706c696e67ull;  // "sampling": separates this stream

// exp(x) for x <= 0, exactly 0 far below the float range (also for x = -inf).
float ExpNonPositive(double x) { return x < -745.0 ? 0.0f : static_cast<float>(std::exp(x)); }

// The support size m: the first m tokens in (weight desc, id asc) order after the top-k cut
// to n tokens and the top-p cut. Leaves sorted[0, m) holding the m largest weights in
// descending order (sorted[m - 1] is the threshold), when there is a cut.
//   w: [vocab] weights; sorted: [vocab] a copy of w, reordered here.
int SupportSize(const float* w, float* sorted, int vocab, int n, float top_p) {
  int m = n;
  if (top_p < 1.0f) {
    // Only the candidates need sorting. Without top-k, tokens lighter than
    // tau = (1 - top_p) * total / vocab can never reach the top-p prefix: all of them together
    // weigh less than (1 - top_p) * total, so the heavier ones (which come first) reach top_p.
    int candidates = n;
    double top_k_sum = 0.0;
    if (n == vocab) {
      for (int i = 0; i < vocab; ++i) top_k_sum += w[i];
      const auto tau = static_cast<float>((1.0 - top_p) * top_k_sum / vocab);
      candidates = 0;
      for (int i = 0; i < vocab; ++i) {
        if (w[i] >= tau) sorted[candidates++] = w[i];
      }
      std::sort(sorted, sorted + candidates, std::greater<float>());
    } else {
      std::partial_sort(sorted, sorted + n, sorted + vocab, std::greater<float>());
      for (int j = 0; j < n; ++j) top_k_sum += sorted[j];
    }
    m = candidates;  // also when rounding keeps the sum just short of top_p
    double cumulative = 0.0;
    for (int j = 0; j < candidates; ++j) {
      cumulative += sorted[j];
      if (cumulative >= top_p * top_k_sum) {
        m = j + 1;
        break;
      }
    }
  } else if (n < vocab) {
    std::nth_element(sorted, sorted + (n - 1), sorted + vocab, std::greater<float>());
  }
  return m;
}

}  // namespace

Status SamplingOptions::Validate() const {
  if (!IsFiniteBits(temperature) || !(temperature >= 0.0f && temperature <= kMaxTemperature)) {
    return InvalidArgumentError("temperature = " + NumberText(temperature) + " is outside [0, " + NumberText(kMaxTemperature) + "]");
  }
  if (top_k < 0) return InvalidArgumentError("top_k = " + std::to_string(top_k) + " is below 0 (0 = no limit)");
  if (top_k > kMaxVocab) {
    return InvalidArgumentError("top_k = " + std::to_string(top_k) +
                                " exceeds kMaxVocab = " + std::to_string(kMaxVocab));
  }
  if (!IsFiniteBits(top_p) || !(top_p > 0.0f && top_p <= 1.0f)) {
    return InvalidArgumentError("top_p = " + NumberText(top_p) + " is outside (0, 1]");
  }
  return OkStatus();
}

SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options, uint64_t index,
                         std::vector<float>& scratch) {
  LANLM_CHECK(vocab > 0, "SampleToken needs vocab > 0");
  int best = -1;
  double max_logit = 0.0;
  for (int i = 0; i < vocab; ++i) {
    if (IsFiniteBits(logits[i]) && (best < 0 || logits[i] > max_logit)) {
      best = i;
      max_logit = logits[i];
    }
  }
  SampledToken result;
  if (best < 0) return result;  // nothing finite: id 0 (<pad>), probability 0
  // Softmax at temperature 1 (what probability and the confidence rule report).
  double z1 = 0.0;
  for (int i = 0; i < vocab; ++i) {
    if (IsFiniteBits(logits[i])) z1 += std::exp(static_cast<double>(logits[i]) - max_logit);
  }
  auto finish = [&](int id) {
    result.id = id;
    result.probability = static_cast<float>(std::exp(static_cast<double>(logits[id]) - max_logit) / z1);
    result.top_probability = static_cast<float>(1.0 / z1);
    return result;
  };
  const float temperature = IsFiniteBits(options.temperature) ? options.temperature : 0.0f;
  if (!(temperature > 0.0f) || options.top_k == 1) return finish(best);

  // Weights at the temperature, relative to the largest (which gets 1).
  scratch.resize(2 * static_cast<size_t>(vocab));
  float* w = scratch.data();
  float* sorted = w + vocab;
  for (int i = 0; i < vocab; ++i) {
    w[i] = IsFiniteBits(logits[i]) ? ExpNonPositive((static_cast<double>(logits[i]) - max_logit) / temperature) : 0.0f;
    sorted[i] = w[i];
  }
  const int n = options.top_k > 0 && options.top_k < vocab ? options.top_k : vocab;
  const float top_p = IsFiniteBits(options.top_p) && options.top_p > 0.0f ? std::min(options.top_p, 1.0f) : 1.0f;
  const int m = SupportSize(w, sorted, vocab, n, top_p);
  // The support is every token whose weight exceeds the m-th largest, plus as many tokens equal
  // to it (lowest ids first) as fill m places.
  const float threshold = m < vocab || top_p < 1.0f ? sorted[m - 1] : 0.0f;
  int equal_slots = m;
  for (int j = 0; j < m; ++j) equal_slots -= sorted[j] > threshold ? 1 : 0;
  if (m == vocab && top_p >= 1.0f) equal_slots = vocab;  // no cut at all
  auto for_each_in_support = [&](auto&& f) {
    int equal_left = equal_slots;
    for (int i = 0; i < vocab; ++i) {
      if (w[i] > threshold || (w[i] == threshold && equal_left-- > 0)) {
        if (!f(i)) return;
      }
    }
  };
  double support_sum = 0.0;
  for_each_in_support([&](int i) {
    support_sum += w[i];
    return true;
  });
  const double target = CounterRng::Uniform(CounterRng::Mix(options.seed, kSamplingDomain), index) * support_sum;
  int chosen = best;
  double cumulative = 0.0;
  for_each_in_support([&](int i) {
    if (w[i] <= 0.0f) return true;
    cumulative += w[i];
    chosen = i;  // also the fallback when rounding leaves target == support_sum
    return !(target < cumulative);
  });
  return finish(chosen);
}

}  // namespace lanlm::engine
