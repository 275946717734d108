// The HTTP endpoints of real lanlm-coordinator and lanlm-worker processes over real sockets:
// /metrics passes `promtool check metrics` (skipped with a message when promtool is absent),
// /healthz and /readyz answer, /api/status lists both workers, a generation and a refused
// request show in the lanlm_generate_* families, the dashboard and uPlot are served, --log-format json writes JSON lines, and the step history in the checkpoint
// directory survives a --resume. Slow (seconds): ctest label "slow".
#include <filesystem>

#include "client/client_generate.h"
#include "tests/integration/cluster_harness.h"
#include "tests/support/process.h"
#include "tests/ops/http_client.h"
#include "tests/ops/promtool.h"

namespace lanlm::testing {
namespace {

const std::string kBin = LANLM_BINARY_DIR;
const std::string kCoordinator = kBin + "/coordinator/lanlm-coordinator";
const std::string kWorker = kBin + "/worker/lanlm-worker";

class SlowHttpMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& exe : {kCoordinator, kWorker}) {
      if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " is not built";
    }
    dir_ = TempDir("http");
    corpus_ = WriteCorpus(dir_);
    token_file_ = WriteTokenFile(dir_);
  }
  void TearDown() override { KillAll(pids_); }
  pid_t Start(const std::vector<std::string>& argv, const std::string& log) {
    const pid_t pid = Spawn(argv, log);
    pids_.push_back(pid);
    return pid;
  }
  int Wait(pid_t pid) {
    const int code = WaitExit(pid, std::chrono::seconds(60));
    std::erase(pids_, pid);
    return code;
  }
  std::vector<std::string> CoordinatorArgs(int64_t steps, int http_port) {
    return {kCoordinator, "--listen", "127.0.0.1:0", "--cluster-token-file", token_file_, "--threads", "1",
            "--corpus", corpus_, "--config", "S", "--vocab-size", "96", "--layers", "2", "--dim", "32",
            "--heads", "2", "--ffn-hidden", "64", "--context", "16", "--micro-batch", "2", "--shards", "4",
            "--steps", std::to_string(steps), "--min-workers", "2", "--checkpoint-dir", dir_ + "/ck",
            "--checkpoint-every", "5", "--eval-every", "2", "--eval-windows", "2",
            "--http-listen", "127.0.0.1:" + std::to_string(http_port)};
  }
  // Polls url until pred(body) holds; returns the last body.
  std::string PollUntil(int port, const std::string& target, const std::function<bool(const std::string&)>& pred) {
    std::string body;
    for (int i = 0; i < 600; ++i) {
      const HttpResult r = HttpGet(port, target);
      body = r.body;
      if (r.status == 200 && pred(body)) return body;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return body;
  }

  // A 4-token generation, then a request with top_p = 2 (refused: INVALID_ARGUMENT).
  static void GenerateOnceAndRefuseOnce(const std::string& target) {
    client::GenerateClient generate(target, 30.0);
    client::GenerateCall call;
    call.prompt = "In the beginning";
    call.max_new_tokens = 4;
    call.stop_on_eos = false;
    call.confidence_threshold = 0.0f;
    call.close_after = true;
    auto generated = generate.Generate(call);
    ASSERT_TRUE(generated.ok()) << generated.status().ToString();
    call.top_p = 2.0f;
    EXPECT_EQ(generate.Generate(call).status().code(), StatusCode::kInvalidArgument);
  }

  // --eval-every 2: the row of step 2 carries a validation loss, the row of step 1 none.
  static void ExpectValidationLossOnEvalRowsOnly(const std::string& history) {
    const auto row = [&history](int step) {
      const size_t at = history.find("{\"step\":" + std::to_string(step) + ",");
      return at == std::string::npos ? std::string() : history.substr(at, history.find('\n', at) - at);
    };
    EXPECT_NE(row(1).find("\"validation_loss\":0,"), std::string::npos) << history;
    EXPECT_EQ(row(2).find("\"validation_loss\":0,"), std::string::npos) << history;
    EXPECT_NE(row(2).find("\"validation_loss\":"), std::string::npos) << history;
  }

  // A resumed coordinator serves the earlier steps from the checkpoint directory at once.
  void ExpectResumeServesTheHistory(int http, int64_t lines) {
    std::vector<std::string> resume = CoordinatorArgs(100000, http);
    std::vector<std::string> checkpoints;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/ck")) {
      if (entry.path().extension() == ".safetensors") checkpoints.push_back(entry.path().string());
    }
    ASSERT_FALSE(checkpoints.empty());
    std::sort(checkpoints.begin(), checkpoints.end());
    resume.insert(resume.end(), {"--resume", checkpoints.back()});
    const pid_t again = Start(resume, dir_ + "/resumed.log");
    ASSERT_GT(LoggedPort(dir_ + "/resumed.log", std::chrono::seconds(60)), 0) << ReadAll(dir_ + "/resumed.log");
    const std::string points = PollUntil(http, "/api/history?after=-1&max=100000",
                                         [](const std::string& body) { return body.size() > 20; });
    EXPECT_EQ(std::count(points.begin(), points.end(), '{') - 1, lines) << points;
    kill(again, SIGTERM);
    EXPECT_EQ(Wait(again), 0);
  }

  std::string dir_, corpus_, token_file_;
  std::vector<pid_t> pids_;
};

TEST_F(SlowHttpMetricsTest, ScrapesARunningClusterAndKeepsHistoryAcrossResume) {
  const int http = FreePort(), worker_http = FreePort();
  const std::string log = dir_ + "/coordinator.log";
  std::vector<std::string> args = CoordinatorArgs(100000, http);
  args.insert(args.end(), {"--log-format", "json"});
  const pid_t coordinator = Start(args, log);
  const int port = LoggedPort(log, std::chrono::seconds(60));
  ASSERT_GT(port, 0) << ReadAll(log);
  const std::string target = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(HttpGet(http, "/healthz").status, 200);
  Start({kWorker, "--coordinator", target, "--threads", "1", "--cluster-token-file", token_file_, "--name", "alpha",
         "--http-listen", "127.0.0.1:" + std::to_string(worker_http)},
        dir_ + "/w1.log");
  Start({kWorker, "--coordinator", target, "--threads", "1", "--cluster-token-file", token_file_, "--name", "beta"},
        dir_ + "/w2.log");

  const std::string status = PollUntil(http, "/api/status", [](const std::string& body) {
    return body.find("\"name\":\"alpha\"") != std::string::npos && body.find("\"name\":\"beta\"") != std::string::npos &&
           body.find("\"step\":0,") == std::string::npos && body.find("\"validation_loss\":0,") == std::string::npos;
  });
  EXPECT_NE(status.find("\"workers_connected\":2"), std::string::npos) << status;
  EXPECT_EQ(HttpGet(http, "/readyz").status, 200);
  GenerateOnceAndRefuseOnce(target);
  const HttpResult metrics = HttpGet(http, "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.error;
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  for (const char* name : {"lanlm_training_tokens_total ", "lanlm_step_phase_seconds_total{phase=\"transfer\"} ",
                           "lanlm_workers_connected 2", "lanlm_worker_tokens_total{worker=",
                           "lanlm_leases_issued_total ", "lanlm_generate_sessions ", "lanlm_validation_loss ",
                           "lanlm_validation_runs_total ",
                           "lanlm_generate_sessions_opened_total 1\n", "lanlm_generate_tokens_total 4\n",
                           "lanlm_generate_time_to_first_token_seconds_count 1\n",
                           "lanlm_generate_token_latency_seconds_bucket{le=\"+Inf\"} 3\n",
                           "lanlm_generate_streams_finished_total{code=\"INVALID_ARGUMENT\"} 1\n"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name << "\n" << metrics.body;
  }
  const HttpResult worker_metrics = HttpGet(worker_http, "/metrics");
  EXPECT_NE(worker_metrics.body.find("lanlm_worker_leases_total "), std::string::npos) << worker_metrics.body;
  EXPECT_NE(worker_metrics.body.find("lanlm_worker_relay_fallbacks_total 0"), std::string::npos) << worker_metrics.body;
  EXPECT_EQ(HttpGet(worker_http, "/readyz").status, 200);
  const HttpResult page = HttpGet(http, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<script src=\"dashboard.js\">"), std::string::npos);
  const PromtoolResult check = PromtoolCheck(metrics.body);
  const PromtoolResult worker_check = PromtoolCheck(worker_metrics.body);

  kill(coordinator, SIGTERM);
  EXPECT_EQ(Wait(coordinator), 0) << ReadAll(log);
  // JSON lines on stderr: every log line is one object with the stable keys.
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("{\"time\":\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"program\":\"coordinator\",\"pid\":"), std::string::npos);
  const std::string history = ReadAll(dir_ + "/ck/history.jsonl");
  const int64_t lines = std::count(history.begin(), history.end(), '\n');
  EXPECT_GE(lines, 1);
  ExpectValidationLossOnEvalRowsOnly(history);
  ExpectResumeServesTheHistory(http, lines);

  if (!check.available) GTEST_SKIP() << "promtool not installed (apt-get install prometheus; deploy/setup-deps.sh)";
  EXPECT_EQ(check.exit_code, 0) << check.output << metrics.body;
  EXPECT_EQ(check.output, "") << metrics.body;
  EXPECT_EQ(worker_check.exit_code, 0) << worker_check.output;
  EXPECT_EQ(worker_check.output, "");
}

TEST_F(SlowHttpMetricsTest, BadHttpListenIsAUsageError) {
  const std::string log = dir_ + "/bad.log";
  std::vector<std::string> args = CoordinatorArgs(10, 0);
  args.back() = "localhost";
  EXPECT_EQ(Wait(Start(args, log)), 2);
  EXPECT_NE(ReadAll(log).find("--http-listen localhost is not host:port"), std::string::npos) << ReadAll(log);
  const std::string wlog = dir_ + "/badworker.log";
  EXPECT_EQ(Wait(Start({kWorker, "--coordinator", "127.0.0.1:1", "--cluster-token-file", token_file_,
                        "--log-format", "yaml"},
                       wlog)),
            2);
  EXPECT_NE(ReadAll(wlog).find("--log-format yaml is not one of: text, json"), std::string::npos) << ReadAll(wlog);
}

}  // namespace
}  // namespace lanlm::testing
