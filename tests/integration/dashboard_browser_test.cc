// A real browser against a real cluster: lanlm-coordinator with --http-listen and two
// lanlm-worker processes; Debian's chromium, driven headless by npm's playwright-core
// (tests/integration/dashboard_browser.mjs), opens the dashboard, waits for >= 20 points in
// the loss chart and both workers in the table, and saves build/dashboard.png. Skips with a
// message when node, chromium or playwright-core (deploy/setup-deps.sh) are absent.
#include <filesystem>

#include "tests/integration/cluster_harness.h"
#include "tests/support/process.h"

namespace lanlm::testing {
namespace {

const std::string kBin = LANLM_BINARY_DIR;
const std::string kSource = LANLM_SOURCE_DIR;
const std::string kModules = kSource + "/third_party/browser/node_modules";

bool OnPath(const std::string& program) { return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0; }

TEST(SlowDashboardBrowserTest, ChromiumShowsLossAndBothWorkers) {
  const std::string coordinator_exe = kBin + "/coordinator/lanlm-coordinator", worker_exe = kBin + "/worker/lanlm-worker";
  for (const auto& exe : {coordinator_exe, worker_exe}) {
    if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " is not built";
  }
  if (!OnPath("node")) GTEST_SKIP() << "node not installed (deploy/setup-deps.sh)";
  const char* chromium_env = std::getenv("LANLM_CHROMIUM");
  const std::string chromium = chromium_env != nullptr ? chromium_env : "/usr/bin/chromium";
  if (!std::filesystem::exists(chromium)) GTEST_SKIP() << chromium << " not installed (apt-get install chromium)";
  if (!std::filesystem::exists(kModules + "/playwright-core")) {
    GTEST_SKIP() << "playwright-core not in " << kModules << " (deploy/setup-deps.sh installs it)";
  }
  const std::string dir = TempDir("browser");
  const std::string corpus = WriteCorpus(dir), token = WriteTokenFile(dir);
  const int http = FreePort();
  const std::string log = dir + "/coordinator.log";
  std::vector<pid_t> pids;
  pids.push_back(Spawn({coordinator_exe, "--listen", "127.0.0.1:0", "--cluster-token-file", token, "--threads", "1",
                        "--corpus", corpus, "--config", "S", "--vocab-size", "96", "--layers", "2", "--dim", "32",
                        "--heads", "2", "--ffn-hidden", "64", "--context", "16", "--micro-batch", "2", "--shards", "4",
                        "--steps", "1000000", "--min-workers", "2", "--checkpoint-dir", dir + "/ck",
                        "--checkpoint-every", "200", "--eval-every", "5", "--eval-windows", "4",
                        "--http-listen", "127.0.0.1:" + std::to_string(http)},
                       log));
  const int port = LoggedPort(log, std::chrono::seconds(60));
  ASSERT_GT(port, 0) << ReadAll(log);
  for (const char* name : {"alpha", "beta"}) {
    pids.push_back(Spawn({worker_exe, "--coordinator", "127.0.0.1:" + std::to_string(port), "--threads", "1",
                          "--cluster-token-file", token, "--name", name},
                         dir + "/" + name + ".log"));
  }
  // One generation, so the sessions table shows its counts and time to first token.
  if (const std::string lanlm = kBin + "/client/lanlm"; std::filesystem::exists(lanlm)) {
    const int generated = std::system((lanlm + " generate --server 127.0.0.1:" + std::to_string(port) +
                                       " --prompt 'In the' --max-new-tokens 8 > " + dir +
                                       "/generate.log 2>&1").c_str());
    EXPECT_EQ(generated, 0) << ReadAll(dir + "/generate.log");
  }
  const std::string screenshot = kBin + "/dashboard.png", browser_log = dir + "/browser.log";
  const std::string command = "LANLM_CHROMIUM=" + chromium + " NODE_PATH=" + kModules + " timeout 120 node " + kSource +
                              "/tests/integration/dashboard_browser.mjs http://127.0.0.1:" + std::to_string(http) +
                              "/ " + screenshot + " 20 2 > " + browser_log + " 2>&1";
  const int status = std::system(command.c_str());
  for (pid_t pid : pids) kill(pid, SIGTERM);
  for (pid_t pid : pids) WaitExit(pid, std::chrono::seconds(30));
  ASSERT_EQ(status, 0) << ReadAll(browser_log) << "\n" << ReadAll(log).substr(0, 4000);
  EXPECT_GT(std::filesystem::file_size(screenshot), 10000u);
  EXPECT_NE(ReadAll(browser_log).find("\"charts\":4"), std::string::npos) << ReadAll(browser_log);
}

}  // namespace
}  // namespace lanlm::testing
