// RunMetrics and the coordinator's HTTP routes: the step-time split, lease/worker/checkpoint
// accounting, history.jsonl surviving a resume (later steps dropped, malformed lines
// skipped), history thinning, and /metrics, /readyz, /api/* bodies (the /metrics text
// passes `promtool check metrics` when promtool is installed).
#include "coordinator/run_metrics.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "coordinator/http_endpoint.h"
#include "tests/ops/promtool.h"

namespace lanlm::coordinator {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("lanlm-run-metrics-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Two workers, one lease each, then a step of 1 s wall time.
void RunOneStep(RunMetrics& metrics, int64_t step, float loss) {
  metrics.LeaseIssued(10 * step + 1, "w1");
  metrics.LeaseIssued(10 * step + 2, "w2");
  metrics.LeaseCommitted(10 * step + 1, "w1", 64, 200.0);
  metrics.LeaseCommitted(10 * step + 2, "w2", 64, 400.0);
  metrics.StepFinished({.step = step, .step_tokens = 128, .loss = loss, .step_s = 1.0, .tree_s = 0.1,
                        .optimizer_s = 0.2, .bytes_in = 1000, .bytes_out = 500, .reissued = 1, .workers = 2});
}

TEST(RunMetricsTest, StepSplitAndTotals) {
  RunMetrics metrics;
  metrics.WorkerJoined("w1", "host-a");
  metrics.WorkerJoined("w2", "host-b");
  RunOneStep(metrics, 1, 4.5f);
  metrics.CommitRejected(StatusCode::kAborted);
  metrics.CommitRejected(StatusCode::kAborted);
  metrics.CommitRejected(StatusCode::kDataLoss);
  const MetricTotals t = metrics.Totals();
  EXPECT_EQ(t.steps, 1);
  EXPECT_EQ(t.tokens, 128);
  EXPECT_EQ(t.leases_issued, 2);
  EXPECT_EQ(t.leases_committed, 2);
  EXPECT_EQ(t.leases_reissued, 1);
  EXPECT_EQ(t.bytes_in, 1000);
  EXPECT_EQ(t.bytes_out, 500);
  EXPECT_EQ(t.commits_rejected.at("ABORTED"), 2);
  EXPECT_EQ(t.commits_rejected.at("DATA_LOSS"), 1);
  // compute: (0.2 + 0.4) / 2 workers; the parts add up to the step's wall time.
  EXPECT_DOUBLE_EQ(t.last.compute_s, 0.3);
  EXPECT_GE(t.last.transfer_s, 0.0);
  EXPECT_NEAR(t.last.compute_s + t.last.transfer_s + t.last.waiting_s + t.last.tree_s + t.last.optimizer_s, 1.0,
              1e-9);
  EXPECT_DOUBLE_EQ(t.last.tokens_per_second, 128.0);
  const std::vector<WorkerRecord> workers = metrics.Workers();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].name, "host-a");
  EXPECT_EQ(workers[0].leases, 1);
  EXPECT_EQ(workers[0].tokens, 64);
  EXPECT_DOUBLE_EQ(workers[1].compute_s, 0.4);
  metrics.WorkerLeft("w2");
  EXPECT_FALSE(metrics.Workers()[1].connected);
  EXPECT_EQ(metrics.Totals().workers_left, 1);
}

TEST(RunMetricsTest, HistorySurvivesResumeAndDropsRedoneSteps) {
  const std::string dir = TempDir("resume");
  {
    RunMetrics first;
    ASSERT_TRUE(first.OpenHistory(dir, 0).ok());
    for (int64_t step = 1; step <= 5; ++step) RunOneStep(first, step, 5.0f - 0.1f * static_cast<float>(step));
    first.CheckpointWritten(3, dir + "/step-00000003.safetensors", true);
    EXPECT_EQ(Lines(dir + "/history.jsonl").size(), 5u);
  }
  std::ofstream(dir + "/step-00000003.safetensors") << "x";
  std::ofstream(dir + "/history.jsonl", std::ios::app) << "{\"step\":6, truncated by a crash\n";
  RunMetrics resumed;
  ASSERT_TRUE(resumed.OpenHistory(dir, 3).ok());  // resumed from the step-3 checkpoint
  std::vector<StepRecord> history = resumed.History(-1, 100);
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history.back().step, 3);
  EXPECT_FLOAT_EQ(history.back().loss, 4.7f);
  EXPECT_EQ(resumed.Totals().tokens, 3 * 128);
  ASSERT_EQ(resumed.Checkpoints().size(), 1u);
  EXPECT_EQ(resumed.Checkpoints()[0].step, 3);
  RunOneStep(resumed, 4, 1.0f);
  const std::vector<std::string> lines = Lines(dir + "/history.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  StepRecord last;
  ASSERT_TRUE(ParseStepRecord(lines.back(), &last));
  EXPECT_EQ(last.step, 4);
  EXPECT_EQ(last.tokens, 4 * 128);
  EXPECT_FLOAT_EQ(last.loss, 1.0f);
  fs::remove_all(dir);
}

TEST(RunMetricsTest, HistoryIsIncrementalAndThinned) {
  RunMetrics metrics;
  for (int64_t step = 1; step <= 100; ++step) RunOneStep(metrics, step, 1.0f);
  EXPECT_EQ(metrics.History(95, 1000).size(), 5u);
  EXPECT_EQ(metrics.History(95, 1000).front().step, 96);
  EXPECT_TRUE(metrics.History(100, 1000).empty());
  const std::vector<StepRecord> thin = metrics.History(-1, 10);
  EXPECT_LE(thin.size(), 11u);
  EXPECT_GE(thin.size(), 10u);
  EXPECT_EQ(thin.back().step, 100);  // always ends at the newest step
}

TEST(RunMetricsTest, StepRecordJsonRoundTrips) {
  StepRecord r;
  r.step = 12;
  r.tokens = 1 << 20;
  r.loss = 3.25f;
  r.step_s = 0.5;
  r.workers = 3;
  r.unix_ms = 1795932792250;
  StepRecord back;
  ASSERT_TRUE(ParseStepRecord(StepRecordJson(r), &back));
  EXPECT_EQ(back.step, 12);
  EXPECT_EQ(back.tokens, 1 << 20);
  EXPECT_FLOAT_EQ(back.loss, 3.25f);
  EXPECT_EQ(back.unix_ms, 1795932792250);
  EXPECT_FALSE(ParseStepRecord("{\"step\":1}", &back));
  EXPECT_FALSE(ParseStepRecord("", &back));
}

HttpSources Sources(const RunMetrics* metrics, const std::string& mode) {
  return {[mode](v1::GetStatusReply* reply) {
            reply->set_mode(mode);
            reply->set_step(7);
            reply->set_total_steps(100);
            reply->set_loss(3.5f);
            reply->set_workers(2);
            reply->set_model_config("V=96 C=32 L=2 NH=2 F=64 T=16");
            reply->set_fingerprint("00112233445566aa");
          },
          metrics};
}

TEST(CoordinatorHttpTest, RoutesAnswerFromTheSnapshot) {
  RunMetrics metrics;
  metrics.WorkerJoined("w1", "host \"a\"");
  RunOneStep(metrics, 1, 4.0f);
  metrics.CheckpointWritten(1, "/tmp/step-00000001.safetensors", true);
  const HttpSources training = Sources(&metrics, "training");
  EXPECT_EQ(HandleCoordinatorHttp(training, {"GET", "/healthz", ""}).status, 200);
  EXPECT_EQ(HandleCoordinatorHttp(training, {"GET", "/readyz", ""}).status, 200);
  EXPECT_EQ(HandleCoordinatorHttp(Sources(&metrics, "finished"), {"GET", "/readyz", ""}).status, 503);
  EXPECT_EQ(HandleCoordinatorHttp(Sources(nullptr, "serving"), {"GET", "/readyz", ""}).status, 200);
  EXPECT_EQ(HandleCoordinatorHttp(training, {"GET", "/nope", ""}).status, 404);
  EXPECT_EQ(HandleCoordinatorHttp(training, {"GET", "/api/history", "max=0"}).status, 400);
  const ops::HttpResponse status = HandleCoordinatorHttp(training, {"GET", "/api/status", ""});
  EXPECT_EQ(status.content_type, "application/json");
  EXPECT_NE(status.body.find("\"name\":\"host \\\"a\\\"\""), std::string::npos) << status.body;
  EXPECT_NE(status.body.find("\"checkpoints\":[{\"step\":1,"), std::string::npos) << status.body;
  const ops::HttpResponse history = HandleCoordinatorHttp(training, {"GET", "/api/history", "after=0"});
  EXPECT_EQ(history.body.rfind("{\"points\":[{\"step\":1,", 0), 0u) << history.body;
  const ops::HttpResponse page = HandleCoordinatorHttp(training, {"GET", "/", ""});
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("dashboard.js"), std::string::npos);
  EXPECT_EQ(HandleCoordinatorHttp(training, {"GET", "/dashboard.js", ""}).status, 200);
}

// The relay (protocol 7): who fed each worker its newest version, and the versions a peer
// failed to deliver, in /api/status (the dashboard's workers table) and /metrics.
TEST(CoordinatorHttpTest, WorkersShowWhereTheirParametersCameFrom) {
  RunMetrics metrics;
  metrics.WorkerJoined("w1", "host-a", "10.0.0.1:7400");
  metrics.WorkerJoined("w2", "host-b", "10.0.0.2:7400");
  metrics.ParamsFrom("w1", "coordinator");
  metrics.ParamsFrom("w2", "w1");
  metrics.RelayFallback("w2");
  metrics.RelayFallback("w2");
  metrics.RelayFallback("w9");  // not joined: ignored
  const std::vector<WorkerRecord> workers = metrics.Workers();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].relay_address, "10.0.0.1:7400");
  EXPECT_EQ(workers[0].params_from, "coordinator");
  EXPECT_EQ(workers[0].relay_fallbacks, 0);
  EXPECT_EQ(workers[1].params_from, "w1");
  EXPECT_EQ(workers[1].relay_fallbacks, 2);
  const HttpSources training = Sources(&metrics, "training");
  const std::string status = HandleCoordinatorHttp(training, {"GET", "/api/status", ""}).body;
  EXPECT_NE(status.find("\"relay_address\":\"10.0.0.2:7400\",\"params_from\":\"w1\",\"relay_fallbacks\":2"),
            std::string::npos)
      << status;
  const std::string text = HandleCoordinatorHttp(training, {"GET", "/metrics", ""}).body;
  for (const char* line : {"lanlm_worker_params_from_peer{worker=\"w1\",name=\"host-a\"} 0\n",
                           "lanlm_worker_params_from_peer{worker=\"w2\",name=\"host-b\"} 1\n",
                           "lanlm_worker_relay_fallbacks_total{worker=\"w2\",name=\"host-b\"} 2\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST(CoordinatorHttpTest, MetricsPassPromtool) {
  RunMetrics metrics;
  metrics.WorkerJoined("w1", "host-a");
  RunOneStep(metrics, 1, 4.0f);
  metrics.CommitRejected(StatusCode::kAborted);
  metrics.CheckpointWritten(1, "/tmp/x", true);
  const ops::HttpResponse response = HandleCoordinatorHttp(Sources(&metrics, "training"), {"GET", "/metrics", ""});
  EXPECT_EQ(response.content_type, ops::MetricsText::kContentType);
  const std::string& text = response.body;
  for (const char* line : {"lanlm_training_step 7\n", "lanlm_training_tokens_total 128\n",
                           "lanlm_step_phase_seconds_total{phase=\"optimizer\"} 0.2\n",
                           "lanlm_lease_commits_rejected_total{code=\"ABORTED\"} 1\n",
                           "lanlm_worker_leases_committed_total{worker=\"w1\",name=\"host-a\"} 1\n",
                           "lanlm_checkpoint_last_step 1\n", "lanlm_mode{mode=\"training\"} 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  const testing::PromtoolResult check = testing::PromtoolCheck(text);
  if (!check.available) GTEST_SKIP() << "promtool not installed (apt-get install prometheus; deploy/setup-deps.sh)";
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << text;
}

}  // namespace
}  // namespace lanlm::coordinator
