// The one resume rule (engine/cli/train_run.h) through all three entry points: `lanlm train`
// (client RunTrain), `lanlm-coordinator --local` (RunLocal) and the distributed coordinator
// (TrainingServer::Start). The same command-line flags, parsed by each program's own FlagSet,
// must be refused with the same message naming both values, and accepted alike when allowed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "client/commands.h"
#include "coordinator/local_run.h"
#include "tests/client/offline_test_util.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

using client::testing_util::CommandResult;
using client::testing_util::Field;
using client::testing_util::RunCommand;
using Args = std::vector<std::string>;

// Coordinator options as lanlm-coordinator's main parses them from args.
struct Parsed {
  coordinator::CoordinatorOptions options;
  GivenFlags given;
};
Parsed ParseCoordinator(const Args& args) {
  Parsed p;
  FlagSet flags("test");
  p.options.Register(flags);
  const Status parsed = flags.Parse(args);
  EXPECT_TRUE(parsed.ok()) << parsed.ToString();
  p.given = flags.Given();
  return p;
}

class ResumeRuleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new client::testing_util::ScratchDir("ResumeRuleTest");
    dir_ = new std::string(scratch_->path());
    corpus_ = new std::string(WriteCorpus(*dir_));
    auto options = TinyOptions(*corpus_, 2);  // seed 7, lr 0.003, S=4, B=2, V from a 96-token tokenizer
    options.checkpoint_dir = *dir_ + "/ckpt";
    auto result = coordinator::RunLocal(options, GivenFlags{"steps"});
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    checkpoint_ = new std::string(result->checkpoint);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete corpus_;
    delete checkpoint_;
    delete scratch_;
  }

  static Args Resume(const Args& extra) {
    Args args = {"--corpus", *corpus_, "--resume", *checkpoint_, "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // The status each entry point gives for these resume flags ("" = accepted).
  static std::string Train(const Args& extra, std::string* fingerprint = nullptr) {
    Args args = Resume(extra);
    args.insert(args.end(), {"--out", *dir_ + "/train.safetensors"});
    const CommandResult r = RunCommand(client::RunTrain, args);
    if (fingerprint) *fingerprint = Field(r.out, "fingerprint");
    return r.code == 0 ? "" : std::to_string(r.code) + " " + r.err;
  }
  static std::string Local(const Args& extra, std::string* fingerprint = nullptr) {
    Parsed p = ParseCoordinator(Resume(extra));
    auto result = coordinator::RunLocal(p.options, p.given);
    if (!result.ok()) return result.status().ToString();
    if (fingerprint) *fingerprint = Hex(result->fingerprint);
    return "";
  }
  static std::string Cluster(const Args& extra, std::string* fingerprint = nullptr) {
    Args args = Resume(extra);
    args.insert(args.end(), {"--listen", "127.0.0.1:0"});
    Parsed p = ParseCoordinator(args);
    p.options.cluster_token = kTestToken;  // as main does from LANLM_CLUSTER_TOKEN (no flag holds a secret)
    auto server = coordinator::TrainingServer::Start(p.options, p.given, /*handle_signals=*/false);
    if (!server.ok()) return server.status().ToString();
    WorkerGroup workers((*server)->port(), 1, 1);
    const coordinator::RunResult result = (*server)->Wait();
    workers.JoinAll();
    if (fingerprint) *fingerprint = Hex(result.fingerprint);
    return "";
  }

  static client::testing_util::ScratchDir* scratch_;
  static std::string* dir_;
  static std::string* corpus_;
  static std::string* checkpoint_;
};
client::testing_util::ScratchDir* ResumeRuleTest::scratch_ = nullptr;
std::string* ResumeRuleTest::dir_ = nullptr;
std::string* ResumeRuleTest::corpus_ = nullptr;
std::string* ResumeRuleTest::checkpoint_ = nullptr;

TEST_F(ResumeRuleTest, AContradictingFlagIsRefusedAlikeByAllThreeEntryPoints) {
  struct Case {
    Args flags;
    std::string message;
  };
  const Case cases[] = {
      {{"--seed", "5"}, "--seed 5 contradicts the checkpoint's seed 7"},
      {{"--shards", "3"}, "--shards 3 contradicts the checkpoint's shards 4"},
      {{"--micro-batch", "4"}, "--micro-batch 4 contradicts the checkpoint's micro_batch 2"},
      {{"--lr", "0.02"}, "--lr 0.02 contradicts the checkpoint's lr 0.003 (drop the flag"},
      {{"--schedule", "constant"}, "--schedule constant contradicts the checkpoint's schedule cosine"},
      {{"--dim", "64"}, "which contradicts the checkpoint's V="},
      {{"--vocab-size", "300"}, "--vocab-size 300 contradicts the checkpoint's vocab size"},
      {{"--validation-fraction", "0.2"}, "--validation-fraction 0.2 contradicts the checkpoint's validation_fraction"},
      {{"--steps", "1"}, "--steps 1 is below the checkpoint's step 2"},
      // --override-checkpoint frees the optimizer flags only.
      {{"--seed", "5", "--override-checkpoint"}, "--seed 5 contradicts the checkpoint's seed 7"},
  };
  for (const Case& c : cases) {
    const std::string train = Train(c.flags), local = Local(c.flags), cluster = Cluster(c.flags);
    EXPECT_EQ(train.rfind("2 lanlm train: ", 0), 0u) << train;  // a usage error, exit code 2
    EXPECT_NE(train.find(c.message), std::string::npos) << "want: " << c.message << "\ngot: " << train;
    for (const std::string& got : {local, cluster}) {
      EXPECT_EQ(got.rfind("INVALID_ARGUMENT", 0), 0u) << got;
      EXPECT_NE(got.find(c.message), std::string::npos) << "want: " << c.message << "\ngot: " << got;
    }
  }
}

TEST_F(ResumeRuleTest, AgreeingFlagsStepsAndOverridesResumeToTheSameParameters) {
  // Flags equal to the checkpoint's are no contradiction; --steps moves the end; with
  // --override-checkpoint a new --lr replaces the checkpoint's in all three.
  const Args flags = {"--seed", "7", "--shards", "4", "--steps", "3", "--lr", "0.002", "--override-checkpoint"};
  std::string train, local, cluster;
  EXPECT_EQ(Train(flags, &train), "");
  EXPECT_EQ(Local(flags, &local), "");
  EXPECT_EQ(Cluster(flags, &cluster), "");
  EXPECT_EQ(train.size(), 16u);
  EXPECT_EQ(local, train);
  EXPECT_EQ(cluster, train);
  std::string plain;
  EXPECT_EQ(Local({"--steps", "3"}, &plain), "");
  EXPECT_NE(plain, local);  // the override did change the run
}

}  // namespace
}  // namespace lanlm::testing
