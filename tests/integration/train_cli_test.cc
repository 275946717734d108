// End-to-end tests of the built `lanlm` binary's offline training path: tokenizer train ->
// train -> SIGINT from outside -> resume -> eval, as a person would run them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace lanlm {
namespace {

using namespace std::chrono_literals;
using testing::LastFingerprint;
using testing::ReadAll;
using testing::Spawn;
using testing::WaitExit;

const std::string kLanlm = LANLM_BINARY_DIR "/client/lanlm";

class TrainCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The lanlm executable links once both command halves (offline and online) exist.
    if (!std::filesystem::exists(kLanlm)) GTEST_SKIP() << kLanlm << " is not built";
    dir_ = (std::filesystem::path(::testing::TempDir()) / ("lanlm_train_cli_" + std::to_string(getpid()))).string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const std::string genesis = ReadAll(LANLM_SOURCE_DIR "/tests/data/genesis.txt");
    ASSERT_GT(genesis.size(), 40000u);
    corpus_ = dir_ + "/corpus.txt";
    std::ofstream(corpus_) << genesis.substr(0, 40000);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Runs lanlm with args to completion; returns the exit code, output in *log.
  int Lanlm(const std::vector<std::string>& args, std::string* log) {
    const std::string path = dir_ + "/log" + std::to_string(runs_++) + ".txt";
    std::vector<std::string> argv = {kLanlm};
    argv.insert(argv.end(), args.begin(), args.end());
    const int code = WaitExit(Spawn(argv, path), 120s);
    *log = ReadAll(path);
    return code;
  }
  std::vector<std::string> Tiny(const std::string& out) const {
    return {"train",
            "--corpus",
            corpus_,
            "--tokenizer",
            dir_ + "/tok.txt",
            "--dim",
            "16",
            "--layers",
            "1",
            "--heads",
            "2",
            "--ffn-hidden",
            "24",
            "--context",
            "16",
            "--micro-batch",
            "2",
            "--shards",
            "3",
            "--steps",
            "100000",
            "--lr",
            "0.01",
            "--warmup",
            "3",
            "--eval-every",
            "5",
            "--eval-windows",
            "4",
            "--out",
            out};
  }

  std::string dir_, corpus_;
  int runs_ = 0;
};

TEST_F(TrainCliTest, InterruptResumeAndEvalWithTheRealBinary) {
  std::string log;
  ASSERT_EQ(Lanlm({"tokenizer", "train", "--corpus", corpus_, "--vocab-size", "200", "--out", dir_ + "/tok.txt"}, &log),
            0)
      << log;

  // Start a long run, Ctrl-C it from outside once a few steps are logged.
  const std::string out = dir_ + "/m.safetensors", csv = dir_ + "/loss.csv", run_log = dir_ + "/run.txt";
  std::vector<std::string> argv = {kLanlm};
  for (const auto& a : Tiny(out)) argv.push_back(a);
  argv.insert(argv.end(), {"--loss-csv", csv});
  const pid_t pid = Spawn(argv, run_log);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(testing::WaitForLog(csv, "\n3,", 60s)) << ReadAll(run_log);
  kill(pid, SIGINT);
  ASSERT_EQ(WaitExit(pid, 60s), 0) << ReadAll(run_log);
  const std::string interrupted = ReadAll(run_log);
  ASSERT_NE(interrupted.find("interrupted at step"), std::string::npos) << interrupted;
  const auto at = interrupted.rfind("step=");
  ASSERT_NE(at, std::string::npos);
  const int64_t k = std::stoll(interrupted.substr(at + 5));
  ASSERT_GE(k, 3);

  // Resume a few steps past the interruption; equal to a straight run to the same step.
  const std::string stop = std::to_string(k + 2);
  ASSERT_EQ(Lanlm({"train", "--resume", out, "--corpus", corpus_, "--out", out, "--stop-after", stop, "--threads", "2"},
                  &log),
            0)
      << log;
  const std::string resumed = LastFingerprint(log);
  std::vector<std::string> straight = Tiny(dir_ + "/straight.safetensors");
  straight.insert(straight.end(), {"--stop-after", stop, "--threads", "1"});
  ASSERT_EQ(Lanlm(straight, &log), 0) << log;
  EXPECT_EQ(resumed.size(), 16u);
  EXPECT_EQ(LastFingerprint(log), resumed);

  ASSERT_EQ(Lanlm({"eval", "--checkpoint", out, "--text", corpus_, "--max-windows", "8"}, &log), 0) << log;
  EXPECT_EQ(log.rfind("loss=", 0), 0u) << log;
  EXPECT_NE(log.find(" tokens=128 "), std::string::npos) << log;
}

TEST_F(TrainCliTest, BadInvocationsExitNonZeroWithOneLine) {
  std::string log;
  EXPECT_EQ(Lanlm({"train", "--corpus", corpus_, "--out", dir_ + "/x", "--steps", "ten"}, &log), 2);
  EXPECT_EQ(
      log,
      "lanlm train: --steps=ten: expected an integer in [1, 1099511627776] (lanlm train --help lists the flags)\n");
  EXPECT_EQ(Lanlm({"eval", "--checkpoint", corpus_, "--text", corpus_}, &log), 1);
  EXPECT_NE(log.find("lanlm eval: checkpoint " + corpus_ + ": header length"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

}  // namespace
}  // namespace lanlm
