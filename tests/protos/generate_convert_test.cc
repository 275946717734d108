// Generate conversions: finish reasons round-trip, and sampling/stopping parameters keep the
// engine's defaults when unset and name the request field when out of range.
#include "protos/generate_convert.h"

#include <gtest/gtest.h>

namespace lanlm::protos {
namespace {

TEST(GenerateConvertTest, FinishReasonsRoundTrip) {
  using engine::FinishReason;
  for (FinishReason r : {FinishReason::kNone, FinishReason::kLength, FinishReason::kEos, FinishReason::kStopString,
                         FinishReason::kLowConfidence, FinishReason::kCancelled, FinishReason::kEvicted}) {
    EXPECT_EQ(FromProto(ToProto(r)), r) << engine::FinishReasonName(r);
  }
  EXPECT_EQ(ToProto(FinishReason::kNone), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(FromProto(static_cast<v1::FinishReason>(99)), FinishReason::kNone);
}

TEST(GenerateConvertTest, UnsetParametersKeepTheEngineDefaults) {
  auto sampling = FromProto(v1::SamplingParams(), "start.sampling");
  ASSERT_TRUE(sampling.ok()) << sampling.status().ToString();
  EXPECT_EQ(sampling->temperature, engine::SamplingOptions().temperature);
  auto stop = FromProto(v1::StoppingParams(), "start.stopping");
  ASSERT_TRUE(stop.ok()) << stop.status().ToString();
  EXPECT_EQ(stop->max_new_tokens, engine::StopOptions().max_new_tokens);
}

TEST(GenerateConvertTest, OutOfRangeValuesNameTheField) {
  v1::SamplingParams p;
  p.set_temperature(-1.0f);
  EXPECT_EQ(FromProto(p, "start.sampling").status().message(), "start.sampling.temperature = -1 is outside [0, 1000]");
  p.Clear();
  p.set_top_p(0.0f);
  EXPECT_EQ(FromProto(p, "continue_session.sampling").status().code(), StatusCode::kInvalidArgument);
  v1::StoppingParams s;
  s.set_max_new_tokens(0);
  EXPECT_EQ(FromProto(s, "start.stopping").status().message(), "start.stopping.max_new_tokens = 0 must be >= 1");
}

}  // namespace
}  // namespace lanlm::protos
