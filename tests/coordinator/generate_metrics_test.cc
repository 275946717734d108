// GenerateMetrics: a real Generate service counts sessions, generations, tokens, both latency
// histograms and stream ends by gRPC code; /metrics renders them so promtool accepts it, and
// /api/status carries the dashboard's summary.
#include <gtest/gtest.h>

#include "coordinator/generate_metrics.h"
#include "coordinator/http_endpoint.h"
#include "tests/coordinator/generate_test_util.h"
#include "tests/ops/promtool.h"

namespace lanlm::coordinator {
namespace {

using namespace lanlm::coordinator::testing;

TEST(GenerateMetricsTest, CountsWhatTheServiceDoes) {
  TestServer server;
  {
    Stream s(*server.stub);
    ASSERT_TRUE(s.Send(Start("the cat", 5, 1, "kept")));
    EXPECT_EQ(Collect(s.ReadUntilDone()).done.usage().generated_tokens(), 5);
    ASSERT_TRUE(s.Send(Continue("kept", " sat", 3)));
    EXPECT_EQ(Collect(s.ReadUntilDone()).done.usage().generated_tokens(), 3);
    ASSERT_TRUE(s.Send(Close()));
    EXPECT_TRUE(s.Finish().ok());
  }
  {
    Stream bad(*server.stub);
    lanlm::v1::GenerateRequest r = Start("the cat", 5);
    r.mutable_start()->mutable_sampling()->set_top_p(1.5f);
    bad.Send(r);
    EXPECT_EQ(bad.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  const GenerateTotals t = server.service().metrics().Totals();
  EXPECT_EQ(t.sessions_opened, 1);  // continue_session reuses the session
  EXPECT_EQ(t.generations, 2);
  EXPECT_EQ(t.tokens, 8);
  EXPECT_EQ(t.time_to_first_token.count(), 2);  // one first token per generation
  EXPECT_EQ(t.token_latency.count(), 6);        // the other tokens
  EXPECT_GT(t.time_to_first_token.sum, 0.0);
  EXPECT_EQ(t.streams_finished.at("OK"), 1);
  EXPECT_EQ(t.streams_finished.at("INVALID_ARGUMENT"), 1);
}

TEST(GenerateMetricsTest, RendersHistogramsAndCodesThatPassPromtool) {
  GenerateMetrics metrics;
  metrics.SessionOpened();
  metrics.GenerationStarted();
  metrics.TokenEmitted(true, 0.03);
  metrics.TokenEmitted(false, 0.004);
  metrics.TokenEmitted(false, 100.0);  // above every bucket: +Inf only
  metrics.StreamFinished(StatusCode::kOk);
  metrics.StreamFinished(StatusCode::kResourceExhausted);
  metrics.StreamFinished(StatusCode::kDeadlineExceeded);  // not pre-listed: still rendered
  const HttpSources sources{[](v1::GetStatusReply* reply) { reply->set_mode("serving"); }, nullptr, &metrics};
  const std::string text = HandleCoordinatorHttp(sources, {"GET", "/metrics", ""}).body;
  for (const char* line : {"lanlm_generate_sessions_opened_total 1\n", "lanlm_generate_tokens_total 3\n",
                           "lanlm_generate_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n",
                           "lanlm_generate_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n",
                           "lanlm_generate_time_to_first_token_seconds_count 1\n",
                           "lanlm_generate_token_latency_seconds_bucket{le=\"0.005\"} 1\n",
                           "lanlm_generate_token_latency_seconds_bucket{le=\"2.5\"} 1\n",
                           "lanlm_generate_token_latency_seconds_bucket{le=\"+Inf\"} 2\n",
                           "lanlm_generate_streams_finished_total{code=\"OK\"} 1\n",
                           "lanlm_generate_streams_finished_total{code=\"CANCELLED\"} 0\n",
                           "lanlm_generate_streams_finished_total{code=\"RESOURCE_EXHAUSTED\"} 1\n",
                           "lanlm_generate_streams_finished_total{code=\"DEADLINE_EXCEEDED\"} 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  const std::string status = HandleCoordinatorHttp(sources, {"GET", "/api/status", ""}).body;
  EXPECT_NE(status.find("\"generate\":{\"sessions_opened\":1,\"generations\":1,\"tokens\":3,"
                        "\"time_to_first_token_mean_s\":0.03"),
            std::string::npos)
      << status;
  EXPECT_NE(status.find("\"errors\":2}"), std::string::npos) << status;
  const lanlm::testing::PromtoolResult check = lanlm::testing::PromtoolCheck(text);
  if (!check.available) GTEST_SKIP() << "promtool not installed (apt-get install prometheus; deploy/setup-deps.sh)";
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << text;
}

}  // namespace
}  // namespace lanlm::coordinator
