// Proof tests of `lanlm train` (RunTrain in-process): the same fingerprint for any thread
// count, bit-identical resume (after --stop-after and after Ctrl-C), the CSV, --history and
// progress output, and one clear error line for bad flags and files.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <thread>

#include "client/commands.h"
#include "client/offline_common.h"
#include "engine/cli/run_history.h"
#include "engine/io/checkpoint.h"
#include "engine/data/corpus.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/client/offline_test_util.h"

namespace lanlm::client {
namespace {

using testing_util::CommandResult;
using testing_util::Field;
using testing_util::RunCommand;
using testing_util::ScratchDir;
using testing_util::Slurp;

class TrainTest : public testing::Test {
 protected:
  // A 40 KB slice of Genesis and a 200-token tokenizer learned from it, shared by the tests.
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("TrainTestSuite");
    auto text = engine::ReadTextFile(testing_util::GenesisPath());
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    const std::string slice = text->substr(0, 40000);
    corpus_ = new std::string(*dir_ / "corpus.txt");
    std::ofstream(*corpus_) << slice;
    auto tok = engine::BpeTokenizer::Train(slice, 200);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tokenizer_ = new std::string(*dir_ / "tok.txt");
    ASSERT_TRUE(tok->SaveToFile(*tokenizer_).ok());
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete corpus_;
    delete tokenizer_;
  }

  // A tiny model so each run takes milliseconds.
  Args TinyArgs(const std::string& out, int64_t steps) const {
    return {"--corpus",       *corpus_, "--tokenizer",   *tokenizer_,
            "--dim",          "16",     "--layers",      "1",
            "--heads",        "2",      "--ffn-hidden",  "24",
            "--context",      "16",     "--micro-batch", "2",
            "--shards",       "3",      "--lr",          "0.01",
            "--warmup",       "3",      "--eval-every",  "5",
            "--eval-windows", "4",      "--steps",       std::to_string(steps),
            "--out",          out};
  }
  static Args With(Args a, const Args& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  // Runs train and returns its fingerprint, failing the test on a non-zero exit.
  static std::string Fingerprint(const Args& args) {
    CommandResult r = RunCommand(RunTrain, args);
    EXPECT_EQ(r.code, 0) << r.err << r.out;
    const std::string fp = Field(r.out, "fingerprint");
    EXPECT_EQ(fp.size(), 16u) << r.out;
    return fp;
  }

  ScratchDir scratch_;
  static ScratchDir* dir_;
  static std::string* corpus_;
  static std::string* tokenizer_;
};
ScratchDir* TrainTest::dir_ = nullptr;
std::string* TrainTest::corpus_ = nullptr;
std::string* TrainTest::tokenizer_ = nullptr;

TEST_F(TrainTest, SameFingerprintForOneTwoThreeThreads) {
  const std::string one = Fingerprint(With(TinyArgs(scratch_ / "t1", 6), {"--threads", "1"}));
  EXPECT_EQ(Fingerprint(With(TinyArgs(scratch_ / "t2", 6), {"--threads", "2"})), one);
  EXPECT_EQ(Fingerprint(With(TinyArgs(scratch_ / "t3", 6), {"--threads", "3"})), one);
  // And training moved the parameters: a different step count gives a different fingerprint.
  EXPECT_NE(Fingerprint(With(TinyArgs(scratch_ / "t4", 5), {"--threads", "2"})), one);
}

TEST_F(TrainTest, StopAndResumeEqualsStraightRun) {
  const std::string straight = Fingerprint(TinyArgs(scratch_ / "a", 20));
  const std::string split = scratch_ / "b";
  CommandResult first = RunCommand(RunTrain, With(TinyArgs(split, 20), {"--stop-after", "10"}));
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("stopped at step 10 of 20"), std::string::npos) << first.out;
  auto ckpt = engine::LoadCheckpoint(split);
  ASSERT_TRUE(ckpt.ok());
  EXPECT_EQ(ckpt->step, 10);
  // Only the required flags: config, seed, shards and tokenizer come from the checkpoint.
  EXPECT_EQ(Fingerprint({"--resume", split, "--corpus", *corpus_, "--out", split}), straight);
}

TEST_F(TrainTest, ResumeOnAnotherCorpusIsRefusedUnlessAllowed) {
  const std::string split = scratch_ / "c";
  ASSERT_EQ(RunCommand(RunTrain, With(TinyArgs(split, 8), {"--stop-after", "4"})).code, 0);
  auto ckpt = engine::LoadCheckpoint(split);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_NE(ckpt->corpus_hash, 0u);
  // Another text: the same corpus without its first line.
  const std::string text = Slurp(*corpus_), other = scratch_ / "other.txt";
  std::ofstream(other) << text.substr(text.find('\n') + 1);
  const CommandResult refused = RunCommand(RunTrain, {"--resume", split, "--corpus", other, "--out", split});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("--allow-corpus-change"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("other.txt"), std::string::npos) << refused.err;
  EXPECT_EQ(engine::LoadCheckpoint(split)->step, 4);  // nothing trained, nothing written
  // The same text resumes; another one only when asked, and then it is what gets recorded.
  const CommandResult allowed =
      RunCommand(RunTrain, {"--resume", split, "--corpus", other, "--out", split, "--allow-corpus-change"});
  ASSERT_EQ(allowed.code, 0) << allowed.err;
  auto after = engine::LoadCheckpoint(split);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->step, 8);
  EXPECT_NE(after->corpus_hash, ckpt->corpus_hash);
  EXPECT_NE(after->corpus_hash, 0u);
}

TEST_F(TrainTest, ResumeToLongerConstantScheduleEqualsStraightRun) {
  // With a constant schedule the total does not shape the learning rate, so 10 steps, then
  // --steps 20 on resume, equal 20 steps at once.
  const std::string straight = Fingerprint(With(TinyArgs(scratch_ / "a", 20), {"--schedule", "constant"}));
  const std::string split = scratch_ / "b";
  Fingerprint(With(TinyArgs(split, 10), {"--schedule", "constant"}));
  EXPECT_EQ(Fingerprint({"--resume", split, "--corpus", *corpus_, "--out", split, "--steps", "20", "--threads", "2"}),
            straight);
}

TEST_F(TrainTest, CtrlCSavesAndResumesBitIdentically) {
  const std::string out = scratch_ / "int", csv = scratch_ / "loss.csv";
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    // Once two steps are logged, Ctrl-C; the run has 100000 steps, so it is still going.
    while (!done.load()) {
      std::ifstream in(csv);
      int lines = 0;
      for (std::string l; std::getline(in, l);) ++lines;
      if (lines >= 3) {
        kill(getpid(), SIGINT);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  CommandResult r = RunCommand(RunTrain, With(TinyArgs(out, 100000), {"--loss-csv", csv}));
  done = true;
  interrupter.join();
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("interrupted at step"), std::string::npos) << r.out;
  auto ckpt = engine::LoadCheckpoint(out);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  const int64_t k = ckpt->step;
  ASSERT_GE(k, 2);
  ASSERT_LT(k, 1000);
  EXPECT_EQ(Field(r.out, "step"), std::to_string(k));
  const std::string stop = std::to_string(k + 3);
  const std::string resumed =
      Fingerprint({"--resume", out, "--corpus", *corpus_, "--out", out, "--stop-after", stop, "--loss-csv", csv});
  EXPECT_EQ(resumed, Fingerprint(With(TinyArgs(scratch_ / "straight", 100000), {"--stop-after", stop})));
  // The CSV continued: a header once, then one row per step 1 .. k+3.
  std::istringstream rows(Slurp(csv));
  std::string line;
  std::getline(rows, line);
  EXPECT_EQ(line, "step,loss,val_loss,tokens_per_s,elapsed_s");
  int64_t expect_step = 1;
  while (std::getline(rows, line)) {
    EXPECT_EQ(line.substr(0, line.find(',')), std::to_string(expect_step++)) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), 4) << line;
  }
  EXPECT_EQ(expect_step, k + 4);
}

// The rows of a --history file, failing the test on a malformed line.
std::vector<engine::StepRecord> ReadHistory(const std::string& path) {
  std::vector<engine::StepRecord> rows;
  std::istringstream in(Slurp(path));
  for (std::string line; std::getline(in, line);) {
    engine::StepRecord r;
    EXPECT_TRUE(engine::ParseStepRecord(line, &r)) << line;
    rows.push_back(r);
  }
  return rows;
}

TEST_F(TrainTest, HistoryHasTheCoordinatorsRowsAndContinuesOnResume) {
  const std::string out = scratch_ / "h.safetensors", history = scratch_ / "h.jsonl";
  CommandResult first = RunCommand(RunTrain, With(TinyArgs(out, 8), {"--stop-after", "4", "--history", history}));
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_EQ(ReadHistory(history).size(), 4u);
  std::ofstream(history, std::ios::app) << "{\"step\":99}\n";  // a torn line: dropped on resume
  CommandResult resumed =
      RunCommand(RunTrain, {"--resume", out, "--corpus", *corpus_, "--out", out, "--history", history, "--eval-every",
                            "5", "--eval-windows", "4"});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  const std::string straight = scratch_ / "straight.jsonl";
  CommandResult whole = RunCommand(RunTrain, With(TinyArgs(scratch_ / "s.safetensors", 8), {"--history", straight}));
  ASSERT_EQ(whole.code, 0) << whole.err;

  const std::vector<engine::StepRecord> rows = ReadHistory(history), reference = ReadHistory(straight);
  ASSERT_EQ(rows.size(), 8u);
  ASSERT_EQ(reference.size(), 8u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].step, static_cast<int64_t>(i + 1));
    EXPECT_EQ(rows[i].tokens, rows[i].step * 3 * 2 * 16);  // S x B x T per step
    EXPECT_EQ(rows[i].loss, reference[i].loss) << "step " << rows[i].step;
    EXPECT_GT(rows[i].step_s, 0.0);
    EXPECT_EQ(rows[i].compute_s, rows[i].step_s);
    EXPECT_EQ(rows[i].workers, 0);
    EXPECT_GT(rows[i].unix_ms, 0);
  }
  // --eval-every 5: steps 5 and 8 (the end); the stopped run also evaluated its last step 4.
  for (int step : {1, 2, 3, 6, 7}) EXPECT_EQ(reference[step - 1].validation_loss, 0.0f) << step;
  EXPECT_GT(reference[4].validation_loss, 0.0f);
  EXPECT_EQ(rows[4].validation_loss, reference[4].validation_loss);
  EXPECT_EQ(rows[7].validation_loss, reference[7].validation_loss);
  EXPECT_GT(rows[3].validation_loss, 0.0f);
  EXPECT_EQ(FormatFixed(reference[7].validation_loss, 4), Field(whole.out, "val_loss"));
}

TEST_F(TrainTest, ProgressCsvAndCheckpointContents) {
  const std::string out = scratch_ / "m.safetensors", csv = scratch_ / "l.csv";
  CommandResult r = RunCommand(RunTrain, With(TinyArgs(out, 10), {"--loss-csv", csv, "--log-every", "3"}));
  ASSERT_EQ(r.code, 0) << r.err;
  // Plain lines when stdout is not a terminal: steps 3, 5 (eval), 6, 9, 10.
  for (const char* s : {"step 3/10", "step 5/10", "step 6/10", "step 9/10", "step 10/10"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("step 4/10"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_NE(Field(r.out, "val_loss"), "-");
  const std::string csv_text = Slurp(csv);
  EXPECT_EQ(std::count(csv_text.begin(), csv_text.end(), '\n'), 11);
  EXPECT_NE(csv_text.find("\n5,"), std::string::npos);
  auto ckpt = engine::LoadCheckpoint(out);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ(ckpt->step, 10);
  EXPECT_EQ(ckpt->config.dim, 16);
  EXPECT_EQ(ckpt->config.vocab_size, engine::BpeTokenizer::LoadFromFile(*tokenizer_)->vocab_size());
  EXPECT_EQ(ckpt->training.at("shards"), "3");
  EXPECT_EQ(ckpt->tokenizer, engine::BpeTokenizer::LoadFromFile(*tokenizer_)->Serialize());
  EXPECT_FALSE(ckpt->adam_m.empty());
}

TEST_F(TrainTest, BadFlagsAndFilesGiveOneClearLine) {
  struct Case {
    Args args;
    int code;
    std::string message;
  };
  const std::string out = scratch_ / "x";
  const std::string good = scratch_ / "good";
  ASSERT_EQ(RunCommand(RunTrain, TinyArgs(good, 2)).code, 0);
  const Case cases[] = {
      {{"--corpus", *corpus_, "--bogus", "1"}, 2, "unknown flag --bogus"},
      {{"--corpus", *corpus_}, 2, "--out FILE is required"},
      {{"--out", out}, 2, "--corpus FILE is required"},
      {{"--corpus", *corpus_, "--out", out, "--steps", "0"}, 2, "--steps=0: expected an integer in [1,"},
      {{"--corpus", *corpus_, "--out", out, "--threads", "x"}, 2, "--threads=x"},
      {{"--corpus", *corpus_, "--out", out, "--config", "XL"}, 2, "--config XL: expected S or M"},
      {{"--corpus", scratch_ / "nope.txt", "--out", out}, 1, "nope.txt does not exist"},
      {{"--corpus", *corpus_, "--out", scratch_ / "no/dir/x"},
       1,
       "no/dir/x: folder " + scratch_.path() + "/no/dir does not exist or is not writable"},
      {{"--corpus", *corpus_, "--out", out, "--tokenizer", *tokenizer_, "--vocab-size", "300"},
       2,
       "give --tokenizer or --vocab-size, not both"},
      {{"--corpus", *corpus_, "--out", out, "--schedule", "linear"},
       2,
       "--schedule linear: expected cosine or constant"},
      {{"--corpus", *corpus_, "--out", out, "--resume", scratch_ / "none"}, 1, "none does not exist"},
      {{"--corpus", *corpus_, "--out", out, "--resume", *corpus_}, 1, "exceeds the limit"},
      {{"--corpus", *corpus_, "--out", out, "--resume", good, "--seed", "5"},
       2,
       "--seed 5 contradicts the checkpoint's seed 1"},
      {{"--corpus", *corpus_, "--out", out, "--resume", good, "--shards", "4"},
       2,
       "--shards 4 contradicts the checkpoint's shards 3"},
      {{"--corpus", *corpus_, "--out", out, "--resume", good, "--lr", "0.02"},
       2,
       "--lr 0.02 contradicts the checkpoint's lr 0.01"},
      {{"--corpus", *corpus_, "--out", out, "--resume", good, "--config", "M"}, 2, "contradicts the checkpoint's V="},
      {{"--corpus", *corpus_, "--out", out, "--resume", good, "--vocab-size", "300"},
       2,
       "--vocab-size 300 contradicts the checkpoint's vocab size"},
      {{"--corpus", *corpus_, "--out", out, "--resume", good, "--steps", "1"},
       2,
       "--steps 1 is below the checkpoint's step 2"},
  };
  for (const Case& c : cases) {
    CommandResult r = RunCommand(RunTrain, c.args);
    EXPECT_EQ(r.code, c.code) << c.message << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "want: " << c.message << "\ngot: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("lanlm train: ", 0), 0u) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(TrainTest, HelpListsEveryFlagWithDefault) {
  CommandResult r = RunCommand(RunTrain, {"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"--corpus", "--config", "--vocab-size", "--tokenizer", "--steps", "--shards", "--seed",
                           "--threads", "--lr", "--warmup", "--weight-decay", "--out", "--resume", "--eval-every",
                           "--checkpoint-every", "--loss-csv", "--stop-after", "--schedule"}) {
    EXPECT_NE(r.out.find(std::string("  ") + flag + " "), std::string::npos) << flag;
  }
  EXPECT_NE(r.out.find("(default: 1000)"), std::string::npos);
  EXPECT_NE(r.out.find("(default: S)"), std::string::npos);
  EXPECT_NE(r.out.find("(default: cosine)"), std::string::npos);
}

// Config S (T and the batch cut down so it runs in well under two minutes on two cores) on
// Genesis: after 150 steps its validation loss is below the best unigram model's, i.e. it has
// learned to use context. The unigram baseline is fitted on the training split (add-one
// smoothing) and scored on exactly the tokens EvaluateLoss predicts.
TEST(SlowTrainTest, ConfigSBeatsUnigramBaselineOnValidation) {
  ScratchDir scratch;
  const std::string out = scratch / "s.safetensors";
  CommandResult r = RunCommand(RunTrain, {"--corpus",       testing_util::GenesisPath(),
                                          "--config",       "S",
                                          "--vocab-size",   "512",
                                          "--context",      "64",
                                          "--micro-batch",  "4",
                                          "--shards",       "2",
                                          "--steps",        "150",
                                          "--lr",           "0.003",
                                          "--warmup",       "10",
                                          "--eval-every",   "0",
                                          "--eval-windows", "0",
                                          "--threads",      "2",
                                          "--out",          out});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const double val_loss = std::stod(Field(r.out, "val_loss"));

  auto ckpt = engine::LoadCheckpoint(out);
  ASSERT_TRUE(ckpt.ok());
  auto tok = engine::BpeTokenizer::Deserialize(ckpt->tokenizer);
  ASSERT_TRUE(tok.ok());
  auto corpus = engine::LoadCorpus(testing_util::GenesisPath(), *tok, 0.05);
  ASSERT_TRUE(corpus.ok());
  std::vector<double> counts(static_cast<size_t>(tok->vocab_size()), 1.0);
  for (int32_t id : corpus->train) counts[static_cast<size_t>(id)] += 1.0;
  const double total = static_cast<double>(corpus->train.size()) + tok->vocab_size();
  const int64_t T = 64, windows = (static_cast<int64_t>(corpus->validation.size()) - 1) / T;
  double nats = 0.0;
  for (int64_t i = 1; i <= windows * T; ++i)
    nats -= std::log(counts[static_cast<size_t>(corpus->validation[i])] / total);
  const double unigram = nats / static_cast<double>(windows * T);
  std::printf("validation loss %.4f vs unigram baseline %.4f nats (%lld tokens)\n", val_loss, unigram,
              static_cast<long long>(windows * T));
  EXPECT_LT(val_loss, unigram - 0.1);
}

}  // namespace
}  // namespace lanlm::client
