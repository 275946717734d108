// Engine generation types <-> lanlm.v1 Generate messages (protos/generate.proto): finish
// reasons both ways, and the sampling and stopping parameters of a request, validated with
// errors that name the request field. The coordinator's Generate service and the `lanlm`
// client both convert here.
#pragma once

#include <string>

#include "engine/base/status.h"
#include "engine/generate/generation.h"
#include "engine/generate/sampling.h"
#include "protos/generate.pb.h"

namespace lanlm::protos {

v1::FinishReason ToProto(engine::FinishReason reason);
// FINISH_REASON_UNSPECIFIED and values this build does not know: kNone.
engine::FinishReason FromProto(v1::FinishReason reason);

// Unset fields keep the engine's defaults. INVALID_ARGUMENT naming `field` (e.g.
// "start.sampling") and the value for anything out of range.
StatusOr<engine::SamplingOptions> FromProto(const v1::SamplingParams& params, const std::string& field);
StatusOr<engine::StopOptions> FromProto(const v1::StoppingParams& params, const std::string& field);

}  // namespace lanlm::protos
