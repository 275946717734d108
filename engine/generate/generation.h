// engine/generate/ owns inference: the KV-cache decoder, sampling, and (this file) the generation loop
// shared by `lanlm generate --checkpoint` and the Generate service: stopping rules (length, EOS/PAD, stop
// strings, the seed's confidence rule), a text streamer whose deltas are valid UTF-8 and never show any part
// of a stop string, and a session's continuation state (KV cache, sampler counter, last sampled token). The
// service drives the steps itself to batch them across sessions; RunGeneration drives one request alone.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/generate/decoder.h"
#include "engine/generate/sampling.h"
#include "engine/base/thread_pool.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {

enum class FinishReason { kNone, kLength, kEos, kStopString, kLowConfidence, kCancelled, kEvicted };
// "length", "eos", "stop string", "low confidence", "cancelled", "evicted" ("" for kNone).
const char* FinishReasonName(FinishReason reason);

inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxStopBytes = 256;

struct StopOptions {
  int max_new_tokens = 128;            // >= 1
  std::vector<std::string> stop;       // each 1..kMaxStopBytes bytes, at most kMaxStopStrings
  bool stop_on_eos = true;             // end at <eos> or <pad>
  float confidence_threshold = 0.15f;  // in [0, 1); 0 disables the confidence rule
  int confidence_run = 3;              // consecutive low-confidence tokens that end generation
  Status Validate() const;             // names the field and its limit
};

// Turns token texts into deltas. Holds back the shortest tail that is an incomplete UTF-8
// character or could still become a stop string; invalid bytes become U+FFFD. The
// concatenation of all returned deltas is text(). Not thread-safe.
class TextStreamer {
 public:
  explicit TextStreamer(std::vector<std::string> stop = {}) : stop_(std::move(stop)) {}

  // Appends a piece of generated text; returns what may be shown now. After a stop string
  // appears, stopped() is true, the text before it has been returned, and further pushes
  // return "".
  std::string Push(std::string_view piece);
  // End of generation: returns the held-back tail (an incomplete character becomes U+FFFD).
  std::string Flush();

  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }

 private:
  std::string Emit(std::string_view bytes);  // sanitises, appends to text_

  std::vector<std::string> stop_;
  std::string held_;  // raw bytes not yet emitted
  std::string text_;  // everything emitted
  bool stopped_ = false;
};

// What a session keeps between requests. One per session; not thread-safe.
struct DecodeState {
  explicit DecodeState(const ModelConfig& config) : cache(config) {}
  KvCache cache;
  uint64_t sampled = 0;  // tokens sampled in this session so far: the sampler's counter
  int32_t pending = -1;  // last sampled token, not yet in the cache (fed by the next step)
  // Positions taken: cached plus the pending token.
  int64_t used() const { return cache.length + (pending >= 0 ? 1 : 0); }
};

// One request on one session: sampling, stopping and streaming. Not thread-safe.
class Generation {
 public:
  Generation(const BpeTokenizer& tokenizer, const SamplingOptions& sampling, const StopOptions& stop);

  // The tokens the request feeds before its first sample: the session's pending token, then
  // the prompt. OUT_OF_RANGE when used + prompt + max_new_tokens exceed the context (the
  // message gives every number); INVALID_ARGUMENT when there is nothing to feed.
  static StatusOr<std::vector<int32_t>> PrefillTokens(const DecodeState& state, const std::vector<int32_t>& prompt,
                                                      const StopOptions& stop, int context);

  struct Step {
    int32_t token = 0;
    float probability = 0.0f;                   // of the token, softmax at temperature 1
    float top_probability = 0.0f;               // the confidence
    std::string text;                           // delta (valid UTF-8; may be empty)
    FinishReason finish = FinishReason::kNone;  // set on the last step
  };
  // Samples the next token from the logits after the last fed token, records it as the
  // session's pending token and decides whether to stop. Only while finish() is kNone.
  // Next(logits, vocab, state) == Accept(Sample(logits, vocab, state), state).
  Step Next(const float* logits, int vocab, DecodeState& state);
  // Next's two halves, so that a batch of sessions can draw their tokens in parallel: Sample
  // reads only the logits and the state's step count and writes only this generation's
  // scratch; Accept records the token, streams its text and decides whether to stop. A pool
  // spreads one draw's passes over the vocabulary (SampleToken); the same token either way.
  SampledToken Sample(const float* logits, int vocab, const DecodeState& state, ThreadPool* pool = nullptr);
  Step Accept(const SampledToken& sampled, DecodeState& state);
  // Ends the request for an outside reason (cancel, eviction); returns the held-back text.
  std::string Stop(FinishReason reason);

  FinishReason finish() const { return finish_; }
  int generated() const { return generated_; }
  const std::string& text() const { return streamer_.text(); }

 private:
  const BpeTokenizer& tokenizer_;
  SamplingOptions sampling_;
  StopOptions stop_;
  TextStreamer streamer_;
  ConfidenceStop confidence_;
  std::vector<float> scratch_;
  int generated_ = 0;
  FinishReason finish_ = FinishReason::kNone;
};

struct GenerationResult {
  FinishReason finish = FinishReason::kNone;
  int64_t prompt_tokens = 0;  // fed by this request (pending token + prompt)
  int64_t cached_tokens = 0;  // in the cache before this request
  int generated = 0;
  std::string text;  // concatenation of every step's text
};

// Runs one request to its end on one session with Decoder::Feed: prompt tokens at once, then
// one token per step. on_step sees every step (its text is the delta); returning false
// cancels (finish kCancelled, the held-back text goes to the result only).
StatusOr<GenerationResult> RunGeneration(Decoder& decoder, const ServingWeights& weights,
                                         const BpeTokenizer& tokenizer, DecodeState& state,
                                         const std::vector<int32_t>& prompt, const SamplingOptions& sampling,
                                         const StopOptions& stop,
                                         const std::function<bool(const Generation::Step&)>& on_step, ThreadPool& pool);
// The same on fp32 weights viewed in the parameter block of `config`.
StatusOr<GenerationResult> RunGeneration(Decoder& decoder, const float* params, const ModelConfig& config,
                                         const BpeTokenizer& tokenizer, DecodeState& state,
                                         const std::vector<int32_t>& prompt, const SamplingOptions& sampling,
                                         const StopOptions& stop,
                                         const std::function<bool(const Generation::Step&)>& on_step, ThreadPool& pool);

}  // namespace lanlm::engine
