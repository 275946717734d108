// Generation loop, stopping rules and the UTF-8 / stop-string-safe text streamer.
#include "engine/generate/generation.h"

#include <algorithm>
#include <string>

#include "engine/base/float_bits.h"

namespace lanlm::engine {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStopString:
      return "stop string";
    case FinishReason::kLowConfidence:
      return "low confidence";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kEvicted:
      return "evicted";
  }
  return "";
}

Status StopOptions::Validate() const {
  if (max_new_tokens < 1) {
    return InvalidArgumentError("max_new_tokens = " + std::to_string(max_new_tokens) + " must be >= 1");
  }
  if (static_cast<int>(stop.size()) > kMaxStopStrings) {
    return InvalidArgumentError("stop has " + std::to_string(stop.size()) + " strings, at most " +
                                std::to_string(kMaxStopStrings) + " allowed");
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty() || static_cast<int>(stop[i].size()) > kMaxStopBytes) {
      return InvalidArgumentError("stop[" + std::to_string(i) + "] is " + std::to_string(stop[i].size()) +
                                  " bytes, must be 1.." + std::to_string(kMaxStopBytes));
    }
  }
  // -ffast-math may fold NaN comparisons away: test the bits first.
  if (!IsFiniteBits(confidence_threshold) || confidence_threshold < 0.0f || confidence_threshold >= 1.0f) {
    return InvalidArgumentError("confidence_threshold = " + std::to_string(confidence_threshold) +
                                " is outside [0, 1)");
  }
  if (confidence_run < 1) {
    return InvalidArgumentError("confidence_run = " + std::to_string(confidence_run) + " must be >= 1");
  }
  return OkStatus();
}

namespace {

// Length of the UTF-8 sequence led by byte b, or 0 when b cannot lead one.
int SequenceLength(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether byte index k (1-based) of a sequence led by `lead` may be c (rejects overlong
// forms, surrogates and code points above U+10FFFF).
bool ValidContinuation(unsigned char lead, int k, unsigned char c) {
  if ((c & 0xC0) != 0x80) return false;
  if (k != 1) return true;
  if (lead == 0xE0) return c >= 0xA0;
  if (lead == 0xED) return c <= 0x9F;
  if (lead == 0xF0) return c >= 0x90;
  if (lead == 0xF4) return c <= 0x8F;
  return true;
}

// Start of an incomplete but still completable sequence at the end of s[0, end), or end.
size_t IncompleteTailStart(std::string_view s, size_t end) {
  const size_t lowest = end >= 3 ? end - 3 : 0;
  for (size_t i = end; i-- > lowest;) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) == 0x80) continue;
    const int n = SequenceLength(b);
    if (n <= 1 || i + n <= end) return end;  // ASCII, invalid lead, or complete
    for (size_t j = i + 1; j < end; ++j) {
      if (!ValidContinuation(b, static_cast<int>(j - i), static_cast<unsigned char>(s[j]))) return end;
    }
    return i;
  }
  return end;
}

}  // namespace

std::string TextStreamer::Emit(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    const int n = SequenceLength(b);
    int ok = n > 0 ? 1 : 0;
    while (ok > 0 && ok < n && i + ok < bytes.size() &&
           ValidContinuation(b, ok, static_cast<unsigned char>(bytes[i + ok]))) {
      ++ok;
    }
    if (n > 0 && ok == n) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for the maximal invalid subpart
      i += std::max(ok, 1);
    }
  }
  text_ += out;
  return out;
}

std::string TextStreamer::Push(std::string_view piece) {
  if (stopped_) return "";
  held_.append(piece);
  // A complete stop string: emit what precedes the earliest one and stop.
  size_t first = std::string::npos;
  for (const std::string& s : stop_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = Emit(std::string_view(held_).substr(0, first));
    held_.clear();
    return out;
  }
  // Hold back the longest tail that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    const size_t max_k = std::min(s.size() - 1, held_.size());
    for (size_t k = max_k; k > hold; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  const size_t cut = IncompleteTailStart(held_, held_.size() - hold);
  std::string out = Emit(std::string_view(held_).substr(0, cut));
  held_.erase(0, cut);
  return out;
}

std::string TextStreamer::Flush() {
  std::string out = Emit(held_);
  held_.clear();
  return out;
}

Generation::Generation(const BpeTokenizer& tokenizer, const SamplingOptions& sampling, const StopOptions& stop)
    : tokenizer_(tokenizer),
      sampling_(sampling),
      stop_(stop),
      streamer_(stop.stop),
      confidence_(stop.confidence_threshold, stop.confidence_run) {}

StatusOr<std::vector<int32_t>> Generation::PrefillTokens(const DecodeState& state, const std::vector<int32_t>& prompt,
                                                         const StopOptions& stop, int context) {
  std::vector<int32_t> feed;
  feed.reserve(prompt.size() + 1);
  if (state.pending >= 0) feed.push_back(state.pending);
  feed.insert(feed.end(), prompt.begin(), prompt.end());
  if (feed.empty()) return InvalidArgumentError("prompt is empty and the session has no token to continue from");
  const int64_t cached = state.cache.length;
  const int64_t fed = static_cast<int64_t>(feed.size());
  const int64_t total = cached + fed + stop.max_new_tokens;
  if (total > context) {
    std::string message = cached > 0 ? "cached_tokens + prompt_tokens + max_new_tokens = " + std::to_string(cached) +
                                           " + " + std::to_string(fed) + " + "
                                     : "prompt_tokens + max_new_tokens = " + std::to_string(fed) + " + ";
    message += std::to_string(stop.max_new_tokens) + " = " + std::to_string(total) +
               " exceeds context = " + std::to_string(context);
    return OutOfRangeError(message);
  }
  return feed;
}

Generation::Step Generation::Next(const float* logits, int vocab, DecodeState& state) {
  return Accept(Sample(logits, vocab, state), state);
}

SampledToken Generation::Sample(const float* logits, int vocab, const DecodeState& state, ThreadPool* pool) {
  LANLM_CHECK(finish_ == FinishReason::kNone, "Generation::Sample after the generation finished");
  return SampleToken(logits, vocab, sampling_, state.sampled, scratch_, pool);
}

Generation::Step Generation::Accept(const SampledToken& sampled, DecodeState& state) {
  LANLM_CHECK(finish_ == FinishReason::kNone, "Generation::Accept after the generation finished");
  ++state.sampled;
  state.pending = sampled.id;
  ++generated_;
  Step step;
  step.token = sampled.id;
  step.probability = sampled.probability;
  step.top_probability = sampled.top_probability;
  if (stop_.stop_on_eos && (sampled.id == kEosId || sampled.id == kPadId)) {
    finish_ = FinishReason::kEos;
    step.text = streamer_.Flush();
  } else {
    step.text = streamer_.Push(tokenizer_.TokenText(sampled.id));
    if (streamer_.stopped()) {
      finish_ = FinishReason::kStopString;
    } else if (confidence_.Update(sampled.top_probability)) {
      finish_ = FinishReason::kLowConfidence;
    } else if (generated_ >= stop_.max_new_tokens) {
      finish_ = FinishReason::kLength;
    }
    if (finish_ != FinishReason::kNone && finish_ != FinishReason::kStopString) step.text += streamer_.Flush();
  }
  step.finish = finish_;
  return step;
}

std::string Generation::Stop(FinishReason reason) {
  if (finish_ != FinishReason::kNone) return "";
  finish_ = reason;
  return streamer_.Flush();
}

StatusOr<GenerationResult> RunGeneration(Decoder& decoder, const float* params, const ModelConfig& config,
                                         const BpeTokenizer& tokenizer, DecodeState& state,
                                         const std::vector<int32_t>& prompt, const SamplingOptions& sampling,
                                         const StopOptions& stop,
                                         const std::function<bool(const Generation::Step&)>& on_step,
                                         ThreadPool& pool) {
  LANLM_ASSIGN_OR_RETURN(ServingWeights weights, ServingWeights::Convert(config, params, WeightFormat::kF32));
  return RunGeneration(decoder, weights, tokenizer, state, prompt, sampling, stop, on_step, pool);
}

StatusOr<GenerationResult> RunGeneration(Decoder& decoder, const ServingWeights& weights,
                                         const BpeTokenizer& tokenizer, DecodeState& state,
                                         const std::vector<int32_t>& prompt, const SamplingOptions& sampling,
                                         const StopOptions& stop,
                                         const std::function<bool(const Generation::Step&)>& on_step,
                                         ThreadPool& pool) {
  const ModelConfig& config = weights.config();
  LANLM_RETURN_IF_ERROR(sampling.Validate());
  LANLM_RETURN_IF_ERROR(stop.Validate());
  LANLM_ASSIGN_OR_RETURN(std::vector<int32_t> feed, Generation::PrefillTokens(state, prompt, stop, config.context));
  GenerationResult result;
  result.cached_tokens = state.cache.length;
  result.prompt_tokens = static_cast<int64_t>(feed.size());
  std::vector<float> logits(static_cast<size_t>(config.vocab_size));
  LANLM_RETURN_IF_ERROR(
      decoder.Feed(weights, feed.data(), static_cast<int64_t>(feed.size()), state.cache, logits.data(), pool));
  state.pending = -1;
  Generation generation(tokenizer, sampling, stop);
  while (true) {
    const Generation::Step step = generation.Next(logits.data(), config.vocab_size, state);
    const bool keep_going = !on_step || on_step(step);
    if (generation.finish() != FinishReason::kNone) break;
    if (!keep_going) {
      generation.Stop(FinishReason::kCancelled);
      break;
    }
    const int32_t token = state.pending;
    LANLM_RETURN_IF_ERROR(decoder.Feed(weights, &token, 1, state.cache, logits.data(), pool));
    state.pending = -1;
  }
  result.finish = generation.finish();
  result.generated = generation.generated();
  result.text = generation.text();
  return result;
}

}  // namespace lanlm::engine
