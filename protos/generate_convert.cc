// Generate conversions; see generate_convert.h.
#include "protos/generate_convert.h"


#include "engine/base/float_bits.h"
#include "engine/base/number_text.h"

namespace lanlm::protos {
using engine::NumberText;

v1::FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case engine::FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case engine::FinishReason::kStopString:
      return v1::FINISH_REASON_STOP_STRING;
    case engine::FinishReason::kLowConfidence:
      return v1::FINISH_REASON_LOW_CONFIDENCE;
    case engine::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case engine::FinishReason::kEvicted:
      return v1::FINISH_REASON_EVICTED;
    case engine::FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

engine::FinishReason FromProto(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH:
      return engine::FinishReason::kLength;
    case v1::FINISH_REASON_EOS:
      return engine::FinishReason::kEos;
    case v1::FINISH_REASON_STOP_STRING:
      return engine::FinishReason::kStopString;
    case v1::FINISH_REASON_LOW_CONFIDENCE:
      return engine::FinishReason::kLowConfidence;
    case v1::FINISH_REASON_CANCELLED:
      return engine::FinishReason::kCancelled;
    case v1::FINISH_REASON_EVICTED:
      return engine::FinishReason::kEvicted;
    default:
      return engine::FinishReason::kNone;
  }
}

StatusOr<engine::SamplingOptions> FromProto(const v1::SamplingParams& p, const std::string& field) {
  engine::SamplingOptions o;
  if (p.has_temperature()) {
    if (!IsFiniteBits(p.temperature()) || p.temperature() < 0.0f || p.temperature() > 1000.0f) {
      return InvalidArgumentError(field + ".temperature = " + NumberText(p.temperature()) + " is outside [0, 1000]");
    }
    o.temperature = p.temperature();
  }
  if (p.has_top_k()) {
    if (p.top_k() < 0) return InvalidArgumentError(field + ".top_k = " + std::to_string(p.top_k()) + " must be >= 0");
    o.top_k = p.top_k();
  }
  if (p.has_top_p()) {
    if (!IsFiniteBits(p.top_p()) || p.top_p() <= 0.0f || p.top_p() > 1.0f) {
      return InvalidArgumentError(field + ".top_p = " + NumberText(p.top_p()) + " is outside (0, 1]");
    }
    o.top_p = p.top_p();
  }
  o.seed = p.seed();
  const Status status = o.Validate();
  if (!status.ok()) return InvalidArgumentError(field + ": " + status.message());
  return o;
}

StatusOr<engine::StopOptions> FromProto(const v1::StoppingParams& p, const std::string& field) {
  engine::StopOptions o;
  if (p.has_max_new_tokens()) {
    if (p.max_new_tokens() < 1) {
      return InvalidArgumentError(field + ".max_new_tokens = " + std::to_string(p.max_new_tokens()) + " must be >= 1");
    }
    o.max_new_tokens = p.max_new_tokens();
  }
  o.stop.assign(p.stop().begin(), p.stop().end());
  if (p.has_stop_on_eos()) o.stop_on_eos = p.stop_on_eos();
  if (p.has_confidence_threshold()) o.confidence_threshold = p.confidence_threshold();
  if (p.has_confidence_run()) o.confidence_run = p.confidence_run();
  const Status status = o.Validate();
  if (!status.ok()) return InvalidArgumentError(field + "." + status.message());
  return o;
}

}  // namespace lanlm::protos
