// End-to-end tests with real lanlm-coordinator / lanlm-worker / lanlm processes on loopback:
// the same fingerprint from `lanlm train`, a 1-worker and a 3-worker cluster; a run that
// survives a worker killed with SIGKILL and one stopped (SIGSTOP) past its lease deadline,
// ending with the undisturbed fingerprint. Slow (seconds): ctest label "slow".
#include <filesystem>
#include <sstream>

#include "engine/cli/run_history.h"
#include "engine/ops/matmul.h"
#include "tests/integration/cluster_harness.h"
#include "tests/support/process.h"

namespace lanlm::testing {
namespace {

const std::string kBin = LANLM_BINARY_DIR;
const std::string kCoordinator = kBin + "/coordinator/lanlm-coordinator";
const std::string kWorker = kBin + "/worker/lanlm-worker";
const std::string kLanlm = kBin + "/client/lanlm";

// Model and training flags shared by `lanlm train` and lanlm-coordinator.
std::vector<std::string> RunFlags(const std::string& corpus, int64_t steps, bool larger) {
  std::vector<std::string> flags = {"--corpus", corpus, "--config", "S", "--vocab-size", "96", "--layers", "2",
                                    "--seed", "7", "--lr", "0.003", "--warmup", "2", "--steps", std::to_string(steps)};
  const std::vector<std::string> shape =
      larger ? std::vector<std::string>{"--dim", "64", "--heads", "4", "--ffn-hidden", "128", "--context", "32",
                                        "--micro-batch", "4", "--shards", "6"}
             : std::vector<std::string>{"--dim", "32", "--heads", "2", "--ffn-hidden", "64", "--context", "16",
                                        "--micro-batch", "2", "--shards", "4"};
  flags.insert(flags.end(), shape.begin(), shape.end());
  return flags;
}

class SlowClusterProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& exe : {kCoordinator, kWorker}) {
      if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " is not built";
    }
    dir_ = TempDir("proc");
    corpus_ = WriteCorpus(dir_);
    token_file_ = dir_ + "/token";
    std::ofstream(token_file_) << kTestToken << "\n";
  }
  void TearDown() override {
    for (pid_t pid : pids_) {  // only children not reaped yet
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  int Wait(pid_t pid, std::chrono::milliseconds timeout) {
    const int code = WaitExit(pid, timeout);
    std::erase(pids_, pid);
    return code;
  }

  // Starts a coordinator on a port the kernel picks and returns that port (0 on failure).
  int StartCoordinator(const std::vector<std::string>& run_flags, pid_t* pid_out, const std::string& log,
                       const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kCoordinator, "--listen", "127.0.0.1:0",
                                     "--cluster-token-file", token_file_, "--threads", "1"};
    argv.insert(argv.end(), run_flags.begin(), run_flags.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    const pid_t pid = Spawn(argv, log);
    pids_.push_back(pid);
    *pid_out = pid;
    return LoggedPort(log, std::chrono::seconds(60));
  }
  pid_t StartWorker(int port, const std::string& log, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kWorker, "--coordinator", "127.0.0.1:" + std::to_string(port), "--threads", "1",
                                     "--cluster-token-file", token_file_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const pid_t pid = Spawn(argv, log);
    pids_.push_back(pid);
    return pid;
  }

  // Runs a coordinator with n workers to the end; returns the coordinator's fingerprint.
  // worker_extra[i]: flags of worker i (when given).
  std::string RunCluster(const std::vector<std::string>& run_flags, int workers, const std::string& name,
                         std::vector<std::string> extra = {},
                         const std::vector<std::vector<std::string>>& worker_extra = {}) {
    const std::string log = dir_ + "/" + name + ".coordinator.log";
    pid_t coordinator = 0;
    extra.insert(extra.end(), {"--min-workers", std::to_string(workers)});
    const int port = StartCoordinator(run_flags, &coordinator, log, extra);
    EXPECT_GT(port, 0) << ReadAll(log);
    std::vector<pid_t> worker_pids;
    for (int i = 0; i < workers; ++i) {
      worker_pids.push_back(StartWorker(port, dir_ + "/" + name + ".worker" + std::to_string(i) + ".log",
                                        i < static_cast<int>(worker_extra.size()) ? worker_extra[i] : std::vector<std::string>{}));
    }
    EXPECT_EQ(Wait(coordinator, std::chrono::seconds(120)), 0) << ReadAll(log);
    for (pid_t pid : worker_pids) EXPECT_EQ(Wait(pid, std::chrono::seconds(20)), 0);
    WaitForLog(log, "checkpoint=- fingerprint=", std::chrono::seconds(5));
    return LastFingerprint(ReadAll(log));
  }

  std::string dir_, corpus_, token_file_;
  std::vector<pid_t> pids_;
};

// Issue 12: a stop whose checkpoint cannot be written must not exit 0. The folder passes the
// start-up probe, then turns into a file; SIGTERM's checkpoint fails and the process says where
// and what the last good checkpoint is.
TEST_F(SlowClusterProcessTest, SigtermWhoseCheckpointIsLostExitsNonZero) {
  const std::string log = dir_ + "/lost.coordinator.log";
  const std::string folder = dir_ + "/ckpt";
  pid_t coordinator = 0;
  const int port = StartCoordinator(RunFlags(corpus_, 1000, false), &coordinator, log,
                                    {"--min-workers", "1", "--checkpoint-dir", folder});
  ASSERT_GT(port, 0) << ReadAll(log);
  std::filesystem::remove_all(folder);
  std::ofstream(folder) << "not a folder";
  kill(coordinator, SIGTERM);
  EXPECT_EQ(Wait(coordinator, std::chrono::seconds(30)), 1) << ReadAll(log);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("could not be written to --checkpoint-dir " + folder), std::string::npos) << text;
  EXPECT_NE(text.find("last good checkpoint: none"), std::string::npos) << text;
  EXPECT_NE(text.find("stopped step=0 loss=0.0000 checkpoint=-"), std::string::npos) << text;
}

// Also: the history `lanlm train --history` writes has the rows of the cluster's history.jsonl
// (same steps, tokens and validation losses; --eval-every is a shared flag).
TEST_F(SlowClusterProcessTest, LanlmTrainOneWorkerAndThreeWorkersAgree) {
  auto flags = RunFlags(corpus_, 5, /*larger=*/false);
  flags.insert(flags.end(), {"--eval-every", "2", "--eval-windows", "3"});
  std::string train_fingerprint;
  if (std::filesystem::exists(kLanlm)) {
    std::vector<std::string> argv = {kLanlm, "train", "--threads", "2", "--out", dir_ + "/train.safetensors",
                                     "--history", dir_ + "/train.jsonl"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const std::string log = dir_ + "/train.log";
    const pid_t pid = Spawn(argv, log);
    ASSERT_EQ(Wait(pid, std::chrono::seconds(120)), 0) << ReadAll(log);
    train_fingerprint = LastFingerprint(ReadAll(log));
  } else {  // `lanlm` needs both client halves; until then the in-process reference
    auto options = TinyOptions(corpus_, 5);
    train_fingerprint = Hex(ReferenceFingerprint(options));
  }
  ASSERT_EQ(train_fingerprint.size(), 16u);
  {  // lanlm-coordinator --local: LocalTrainer in its own process, 2 threads
    std::vector<std::string> argv = {kCoordinator, "--local", "--threads", "2", "--checkpoint-dir", dir_ + "/local"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const std::string log = dir_ + "/local.log";
    const pid_t pid = Spawn(argv, log);
    pids_.push_back(pid);
    ASSERT_EQ(Wait(pid, std::chrono::seconds(120)), 0) << ReadAll(log);
    EXPECT_EQ(LastFingerprint(ReadAll(log)), train_fingerprint);
  }
  EXPECT_EQ(RunCluster(flags, 1, "one"), train_fingerprint);
  EXPECT_EQ(RunCluster(flags, 3, "three", {"--checkpoint-dir", dir_ + "/three"}), train_fingerprint);
  if (!std::filesystem::exists(kLanlm)) return;
  const auto rows = [](const std::string& path) {
    std::vector<engine::StepRecord> out;
    std::istringstream in(ReadAll(path));
    for (std::string line; std::getline(in, line);) {
      EXPECT_TRUE(engine::ParseStepRecord(line, &out.emplace_back())) << path << ": " << line;
    }
    return out;
  };
  const auto local = rows(dir_ + "/train.jsonl"), cluster = rows(dir_ + "/three/history.jsonl");
  const auto coordinator_local = rows(dir_ + "/local/history.jsonl");  // --local writes it too
  ASSERT_EQ(local.size(), 5u);
  ASSERT_EQ(cluster.size(), 5u);
  ASSERT_EQ(coordinator_local.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(coordinator_local[i].tokens, local[i].tokens);
    EXPECT_EQ(coordinator_local[i].loss, local[i].loss);  // the same LocalTrainer
    EXPECT_EQ(coordinator_local[i].validation_loss, local[i].validation_loss);
    EXPECT_EQ(local[i].step, cluster[i].step);
    EXPECT_EQ(local[i].tokens, cluster[i].tokens);
    EXPECT_NEAR(local[i].loss, cluster[i].loss, 1e-5f);  // float vs double mean of the shard losses
    EXPECT_EQ(local[i].validation_loss, cluster[i].validation_loss) << "step " << local[i].step;
    EXPECT_EQ(cluster[i].workers, 3);
  }
  EXPECT_GT(cluster[1].validation_loss, 0.0f);  // steps 2, 4 and 5 (the end)
  EXPECT_EQ(cluster[2].validation_loss, 0.0f);
  EXPECT_GT(cluster[4].validation_loss, 0.0f);
}

// A mixed LAN on one machine: bf16 workers on different kernels (the AVX2 + FMA emulation, the
// widest one, native AVX512_BF16 where the CPU has it) train the model `lanlm train` trains.
TEST_F(SlowClusterProcessTest, Bf16WorkersOnDifferentKernelsAgreeWithLanlmTrain) {
  if (!std::filesystem::exists(kLanlm)) GTEST_SKIP() << kLanlm << " is not built";
  auto flags = RunFlags(corpus_, 4, /*larger=*/true);
  flags.insert(flags.end(), {"--precision", "bf16"});
  std::vector<std::string> argv = {kLanlm, "train", "--threads", "2", "--out", dir_ + "/bf16.safetensors"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  const std::string log = dir_ + "/bf16-train.log";
  const pid_t pid = Spawn(argv, log);
  ASSERT_EQ(Wait(pid, std::chrono::seconds(120)), 0) << ReadAll(log);
  const std::string train_fingerprint = LastFingerprint(ReadAll(log));
  ASSERT_EQ(train_fingerprint.size(), 16u);
  std::vector<std::vector<std::string>> kernels = {{"--bf16-kernel", "emulated-avx2"}, {"--bf16-kernel", "emulated"}};
  if (engine::Bf16KernelPath() == std::string("avx512bf16")) kernels.push_back({"--bf16-kernel", "native"});
  const int workers = static_cast<int>(kernels.size());
  EXPECT_EQ(RunCluster(flags, workers, "mixed", {}, kernels), train_fingerprint);
  for (int i = 0; i < workers; ++i) {  // each worker said which kernel it ran
    const std::string text = ReadAll(dir_ + "/mixed.worker" + std::to_string(i) + ".log");
    EXPECT_NE(text.find("matmul kernel "), std::string::npos) << text;
  }
  EXPECT_NE(ReadAll(dir_ + "/mixed.worker0.log").find("matmul kernel emulated-avx2-fma"), std::string::npos);
}

// Config-M-like head shapes (D = 48: partial 32-column panels; T = 96: several 12-row
// blocks) where the tiny shapes above take fewer code paths. `lanlm train`, the coordinator
// and the workers are three executables: they must run the same machine code for every op
// (engine/CMakeLists.txt builds the engine without LTO for this; with LTO the workers'
// gradients differed from the coordinator's in the last bits at config M).
TEST_F(SlowClusterProcessTest, ExecutablesAgreeAtLargerHeadShapes) {
  if (!std::filesystem::exists(kLanlm)) GTEST_SKIP() << kLanlm << " is not built";
  const std::vector<std::string> flags = {"--corpus", corpus_, "--config", "S", "--vocab-size", "96",
                                          "--layers", "2", "--dim", "96", "--heads", "2", "--ffn-hidden", "160",
                                          "--context", "96", "--micro-batch", "2", "--shards", "2",
                                          "--seed", "3", "--lr", "0.003", "--warmup", "1", "--steps", "2"};
  std::vector<std::string> argv = {kLanlm, "train", "--threads", "2", "--out", dir_ + "/big.safetensors"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  const std::string log = dir_ + "/big-train.log";
  const pid_t pid = Spawn(argv, log);
  pids_.push_back(pid);
  ASSERT_EQ(Wait(pid, std::chrono::seconds(120)), 0) << ReadAll(log);
  const std::string train_fingerprint = LastFingerprint(ReadAll(log));
  ASSERT_EQ(train_fingerprint.size(), 16u);
  EXPECT_EQ(RunCluster(flags, 2, "big"), train_fingerprint);
}

TEST_F(SlowClusterProcessTest, SurvivesSigkilledAndStalledWorkers) {
  const int64_t steps = 60;
  const auto flags = RunFlags(corpus_, steps, /*larger=*/true);
  // The undisturbed run: 2 workers, nobody interferes.
  const std::string undisturbed = RunCluster(flags, 2, "undisturbed");
  ASSERT_EQ(undisturbed.size(), 16u);

  const std::string log = dir_ + "/chaos.coordinator.log";
  pid_t coordinator = 0;
  const int port = StartCoordinator(flags, &coordinator, log, {"--min-workers", "2", "--lease-timeout-ms", "400"});
  ASSERT_GT(port, 0) << ReadAll(log);
  const std::string log_a = dir_ + "/chaos.a.log", log_b = dir_ + "/chaos.b.log";
  const pid_t a = StartWorker(port, log_a);
  const pid_t b = StartWorker(port, log_b);
  const pid_t c = StartWorker(port, dir_ + "/chaos.c.log");
  ASSERT_TRUE(WaitForLog(log, "; 3 connected", std::chrono::seconds(60))) << ReadAll(log);
  ASSERT_TRUE(WaitForLog(log, "step 3/", std::chrono::seconds(60))) << ReadAll(log);

  // B stalls: its leases pass their deadline and go to the others.
  kill(b, SIGSTOP);
  EXPECT_TRUE(WaitForLog(log, "passed its 400 ms deadline", std::chrono::seconds(90))) << ReadAll(log);
  // A dies mid-run: its stream breaks and its lease is re-issued at once.
  kill(a, SIGKILL);
  EXPECT_EQ(Wait(a, std::chrono::seconds(5)), 128 + SIGKILL);
  EXPECT_TRUE(WaitForLog(log, "left:", std::chrono::seconds(90))) << ReadAll(log);
  // B wakes up: whatever it computed for its expired leases is refused, then it works on.
  kill(b, SIGCONT);

  ASSERT_EQ(Wait(coordinator, std::chrono::seconds(180)), 0) << ReadAll(log);
  EXPECT_EQ(Wait(b, std::chrono::seconds(20)), 0);
  EXPECT_EQ(Wait(c, std::chrono::seconds(20)), 0);
  const std::string out = ReadAll(log);
  EXPECT_NE(out.find("step=" + std::to_string(steps) + " "), std::string::npos) << out;
  EXPECT_EQ(LastFingerprint(out), undisturbed) << out;
  const std::string b_out = ReadAll(log_b);
  EXPECT_NE(b_out.find("rejected (code 10)"), std::string::npos) << "no late commit was refused:\n" << b_out;
}

// Protocol 7 with real processes: three workers relay each step's parameters along a chain
// (lanlm-worker --relay-listen), and one of them is SIGKILLed mid-run: it leaves the relay tree,
// and a peer that was fetching from it (if any, at that moment) asks the coordinator for the
// rest. The run ends on the fingerprint of workers that do not relay. (The fallback itself is
// tested deterministically in cluster_relay_test.cc.)
TEST_F(SlowClusterProcessTest, RelayingWorkersAgreeWithPlainWorkersAndSurviveASigkilledRelay) {
  const int64_t steps = 30;
  const auto flags = RunFlags(corpus_, steps, /*larger=*/true);
  const std::string plain = RunCluster(flags, 2, "plain");
  ASSERT_EQ(plain.size(), 16u);

  const std::string log = dir_ + "/relay.coordinator.log";
  pid_t coordinator = 0;
  const int port = StartCoordinator(flags, &coordinator, log, {"--min-workers", "2"});
  ASSERT_GT(port, 0) << ReadAll(log);
  const std::vector<std::string> relay = {"--relay-listen", "127.0.0.1:0"};
  const pid_t a = StartWorker(port, dir_ + "/relay.a.log", relay);
  const pid_t b = StartWorker(port, dir_ + "/relay.b.log", relay);
  const pid_t c = StartWorker(port, dir_ + "/relay.c.log", relay);
  ASSERT_TRUE(WaitForLog(log, "; 3 connected", std::chrono::seconds(60))) << ReadAll(log);
  EXPECT_NE(ReadAll(log).find("relays parameters at 127.0.0.1:"), std::string::npos) << ReadAll(log);
  ASSERT_TRUE(WaitForLog(log, "step 5/", std::chrono::seconds(60))) << ReadAll(log);
  kill(b, SIGKILL);
  EXPECT_EQ(Wait(b, std::chrono::seconds(5)), 128 + SIGKILL);
  ASSERT_EQ(Wait(coordinator, std::chrono::seconds(180)), 0)
      << ReadAll(log) << ReadAll(dir_ + "/relay.a.log") << ReadAll(dir_ + "/relay.c.log");
  EXPECT_EQ(Wait(a, std::chrono::seconds(20)), 0);
  EXPECT_EQ(Wait(c, std::chrono::seconds(20)), 0);
  const std::string out = ReadAll(log);
  EXPECT_NE(out.find("step=" + std::to_string(steps) + " "), std::string::npos) << out;
  EXPECT_EQ(LastFingerprint(out), plain) << out;
  const std::string a_out = ReadAll(dir_ + "/relay.a.log"), c_out = ReadAll(dir_ + "/relay.c.log");
  EXPECT_NE((a_out + c_out).find("relaying parameters to peers on port"), std::string::npos) << a_out;
}

}  // namespace
}  // namespace lanlm::testing
