// Shared training flags: parsing onto TrainFlags, defaults, help overrides, the checks of values
// set in code (each one, worded exactly as the parser words the same bad value), and the
// ModelConfig / TrainOptions built from them, including --steps on resume.
#include "engine/cli/train_flags.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace lanlm::engine {
namespace {

StatusOr<TrainFlags> Parse(const std::vector<std::string>& args) {
  TrainFlags values;
  FlagSet flags("test");
  RegisterTrainFlags(flags, &values);
  LANLM_RETURN_IF_ERROR(flags.Parse(args));
  return values;
}

// The message the parser gives for --name=value.
std::string ParseError(const std::string& name, const std::string& value) {
  auto parsed = Parse({"--" + name + "=" + value});
  EXPECT_FALSE(parsed.ok()) << name << "=" << value;
  return parsed.status().message();
}

TEST(TrainFlagsTest, ParsesEveryFlag) {
  auto v = Parse({"--config",
                  "M",
                  "--vocab-size",
                  "300",
                  "--dim",
                  "32",
                  "--layers",
                  "3",
                  "--heads",
                  "4",
                  "--ffn-hidden",
                  "96",
                  "--context",
                  "64",
                  "--micro-batch",
                  "5",
                  "--steps",
                  "77",
                  "--stop-after",
                  "40",
                  "--shards",
                  "6",
                  "--seed",
                  "18446744073709551615",
                  "--lr",
                  "0.002",
                  "--warmup",
                  "9",
                  "--weight-decay",
                  "0.5",
                  "--schedule",
                  "constant",
                  "--validation-fraction=0.25"});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->config, "M");
  EXPECT_EQ(v->vocab_size, 300);
  EXPECT_EQ(v->dim, 32);
  EXPECT_EQ(v->layers, 3);
  EXPECT_EQ(v->heads, 4);
  EXPECT_EQ(v->ffn_hidden, 96);
  EXPECT_EQ(v->context, 64);
  EXPECT_EQ(v->micro_batch, 5);
  EXPECT_EQ(v->steps, 77);
  EXPECT_EQ(v->stop_after, 40);
  EXPECT_EQ(v->shards, 6);
  EXPECT_EQ(v->seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(v->lr, 0.002f);
  EXPECT_EQ(v->warmup, 9);
  EXPECT_EQ(v->weight_decay, 0.5f);
  EXPECT_EQ(v->schedule, "constant");
  EXPECT_EQ(v->validation_fraction, 0.25);
  EXPECT_TRUE(ValidateTrainFlags(*v).ok());
}

TEST(TrainFlagsTest, DefaultsAreTheNamedConfigAndTheEngineDefaults) {
  auto v = Parse({});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(ValidateTrainFlags(*v).ok());
  auto o = TrainOptionsFromFlags(*v, 512);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  ModelConfig s = *NamedConfig("S");
  s.vocab_size = 512;
  EXPECT_EQ(o->model, s);
  EXPECT_EQ(o->micro_batch, NamedMicroBatch("S"));
  EXPECT_EQ(o->shards, 4);
  EXPECT_EQ(o->steps, 1000);
  EXPECT_EQ(o->seed, 1u);
  EXPECT_EQ(o->validation_fraction, 0.05);
  EXPECT_EQ(o->adamw.lr, 1e-3f);
  EXPECT_EQ(o->adamw.warmup_steps, 100);
  EXPECT_EQ(o->adamw.weight_decay, 0.01f);
  EXPECT_EQ(o->adamw.schedule, "cosine");
  EXPECT_EQ(o->adamw.total_steps, 1000);
  const TrainOptions engine_defaults;  // what the flags leave alone stays the engine's
  EXPECT_EQ(o->init_std, engine_defaults.init_std);
  EXPECT_EQ(o->adamw.clip, engine_defaults.adamw.clip);
  EXPECT_EQ(o->adamw.beta2, engine_defaults.adamw.beta2);
  EXPECT_EQ(TokenizerVocabSize(*v), NamedConfig("S")->vocab_size);
}

TEST(TrainFlagsTest, HelpShowsDefaults) {
  TrainFlags values;
  FlagSet shared("test");
  RegisterTrainFlags(shared, &values);
  const std::string help = shared.Help();
  EXPECT_NE(help.find("  --steps VALUE\n      total optimizer steps of the run"), std::string::npos) << help;
  EXPECT_NE(help.find("(default: cosine)"), std::string::npos);
  EXPECT_NE(help.find("sequences per shard B (0 = the config's, 8 for S and M) (default: 0)"), std::string::npos);
}

TEST(TrainFlagsTest, OverridesAndExplicitMicroBatchReachTheOptions) {
  auto v = Parse({"--dim", "16", "--layers", "1", "--heads", "2", "--ffn-hidden", "32", "--context", "8",
                  "--micro-batch", "2", "--steps", "3", "--lr", "0.004", "--schedule", "constant"});
  ASSERT_TRUE(v.ok());
  auto o = TrainOptionsFromFlags(*v, 77);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->model.vocab_size, 77);
  EXPECT_EQ(o->model.dim, 16);
  EXPECT_EQ(o->model.n_layers, 1);
  EXPECT_EQ(o->model.n_heads, 2);
  EXPECT_EQ(o->model.ffn_hidden, 32);
  EXPECT_EQ(o->model.context, 8);
  EXPECT_EQ(o->micro_batch, 2);
  EXPECT_EQ(o->steps, 3);
  EXPECT_EQ(o->adamw.total_steps, 3);
  EXPECT_EQ(o->adamw.lr, 0.004f);
  EXPECT_EQ(o->adamw.schedule, "constant");
  v->vocab_size = 123;
  EXPECT_EQ(TokenizerVocabSize(*v), 123);
}

TEST(TrainFlagsTest, ParserRejectsValuesOutOfRange) {
  EXPECT_EQ(ParseError("shards", "0"), "--shards=0: expected an integer in [1, 65536]");
  EXPECT_EQ(ParseError("lr", "20"), "--lr=20: expected a number in [1e-08, 10]");
  EXPECT_EQ(ParseError("steps", "ten"), "--steps=ten: expected an integer in [1, 1099511627776]");
}

// Every check of a value set in code, each worded as the parser words it.
TEST(TrainFlagsTest, EachOutOfRangeValueIsNamedWithItsRange) {
  struct Case {
    const char* flag;
    const char* value;
    void (*set)(TrainFlags&);
  };
  const Case cases[] = {
      {"vocab-size", "-1", [](TrainFlags& t) { t.vocab_size = -1; }},
      {"vocab-size", "1048577", [](TrainFlags& t) { t.vocab_size = kMaxVocab + 1; }},
      {"dim", "-2", [](TrainFlags& t) { t.dim = -2; }},
      {"dim", "16385", [](TrainFlags& t) { t.dim = kMaxDim + 1; }},
      {"layers", "257", [](TrainFlags& t) { t.layers = kMaxLayers + 1; }},
      {"heads", "-1", [](TrainFlags& t) { t.heads = -1; }},
      {"ffn-hidden", "65537", [](TrainFlags& t) { t.ffn_hidden = 4 * kMaxDim + 1; }},
      {"context", "65537", [](TrainFlags& t) { t.context = kMaxContext + 1; }},
      {"micro-batch", "65537", [](TrainFlags& t) { t.micro_batch = 65537; }},
      {"steps", "0", [](TrainFlags& t) { t.steps = 0; }},
      {"steps", "1099511627777", [](TrainFlags& t) { t.steps = (int64_t{1} << 40) + 1; }},
      {"stop-after", "-1", [](TrainFlags& t) { t.stop_after = -1; }},
      {"shards", "0", [](TrainFlags& t) { t.shards = 0; }},
      {"shards", "65537", [](TrainFlags& t) { t.shards = 65537; }},
      {"lr", "0", [](TrainFlags& t) { t.lr = 0.0f; }},
      {"lr", "20", [](TrainFlags& t) { t.lr = 20.0f; }},
      {"warmup", "-1", [](TrainFlags& t) { t.warmup = -1; }},
      {"weight-decay", "-0.5", [](TrainFlags& t) { t.weight_decay = -0.5f; }},
      {"weight-decay", "11", [](TrainFlags& t) { t.weight_decay = 11.0f; }},
      {"validation-fraction", "0.75", [](TrainFlags& t) { t.validation_fraction = 0.75; }},
      {"validation-fraction", "-0.25", [](TrainFlags& t) { t.validation_fraction = -0.25; }},
  };
  for (const Case& c : cases) {
    TrainFlags t;
    c.set(t);
    const Status s = ValidateTrainFlags(t);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.flag;
    EXPECT_EQ(s.message(), ParseError(c.flag, c.value)) << c.flag;
    EXPECT_NE(s.message().find(std::string("--") + c.flag + "=" + c.value + ": expected "), std::string::npos)
        << s.message();
    // The builders check first: no TrainOptions or ModelConfig from a bad value.
    EXPECT_EQ(TrainOptionsFromFlags(t, 64).status().message(), s.message());
    EXPECT_EQ(ModelConfigFromFlags(t, 64).status().message(), s.message());
  }
}

TEST(TrainFlagsTest, LimitsThemselvesAreAccepted) {
  TrainFlags t;
  t.lr = 1e-8f;
  t.weight_decay = 10.0f;
  t.validation_fraction = 0.5;
  t.shards = 1 << 16;
  t.steps = int64_t{1} << 40;
  EXPECT_TRUE(ValidateTrainFlags(t).ok()) << ValidateTrainFlags(t).ToString();
}

TEST(TrainFlagsTest, NonFiniteNumbersAreRejected) {
  TrainFlags t;
  t.lr = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(ValidateTrainFlags(t).message().find("--lr=nan: expected a number in [1e-08, 10]"), std::string::npos)
      << ValidateTrainFlags(t).message();
  t = TrainFlags();
  t.validation_fraction = std::numeric_limits<double>::infinity();
  EXPECT_NE(ValidateTrainFlags(t).message().find("--validation-fraction=inf: expected a number in [0, 0.5]"),
            std::string::npos)
      << ValidateTrainFlags(t).message();
}

TEST(TrainFlagsTest, ChoicesNameTheAllowedValues) {
  TrainFlags t;
  t.config = "XL";
  EXPECT_EQ(ValidateTrainFlags(t).message(), "--config XL: expected S or M");
  EXPECT_EQ(ModelConfigFromFlags(t, 64).status().code(), StatusCode::kInvalidArgument);
  t = TrainFlags();
  t.schedule = "linear";
  EXPECT_EQ(ValidateTrainFlags(t).message(), "--schedule linear: expected cosine or constant");
  EXPECT_EQ(TrainOptionsFromFlags(t, 64).status().message(), "--schedule linear: expected cosine or constant");
}

TEST(TrainFlagsTest, InconsistentModelOverridesNameTheConfig) {
  TrainFlags t;
  t.dim = 30;
  t.heads = 4;                              // 30 is not divisible by 4
  EXPECT_TRUE(ValidateTrainFlags(t).ok());  // each value is in range on its own
  auto config = ModelConfigFromFlags(t, 64);
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message().rfind("model config ", 0), 0u) << config.status().message();
  EXPECT_EQ(TrainOptionsFromFlags(t, 64).status().message(), config.status().message());
}

TEST(TrainFlagsTest, StepsOnResume) {
  TrainOptions o;
  o.steps = 10;
  o.adamw.total_steps = 10;
  TrainFlags t;
  t.steps = 50;
  // Not given: the checkpoint's steps stay.
  ASSERT_TRUE(ApplyResumeSteps(t, false, 4, &o).ok());
  EXPECT_EQ(o.steps, 10);
  EXPECT_EQ(o.adamw.total_steps, 10);
  EXPECT_EQ(ApplyResumeSteps(t, false, 11, &o).message(), "--steps 10 is below the checkpoint's step 11");
  // Given: the target and the schedule's end move together.
  ASSERT_TRUE(ApplyResumeSteps(t, true, 50, &o).ok());
  EXPECT_EQ(o.steps, 50);
  EXPECT_EQ(o.adamw.total_steps, 50);
  t.steps = 3;
  EXPECT_EQ(ApplyResumeSteps(t, true, 4, &o).message(), "--steps 3 is below the checkpoint's step 4");
}

TEST(TrainFlagsTest, CorpusOnResume) {
  TrainFlags t;
  EXPECT_TRUE(CheckResumeCorpus(t, 0, 0x1234, "a.txt").ok());       // the checkpoint records none
  EXPECT_TRUE(CheckResumeCorpus(t, 0x1234, 0x1234, "a.txt").ok());  // the same text
  const Status other = CheckResumeCorpus(t, 0xabc, 0x1234, "b.txt");
  EXPECT_EQ(other.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(other.message(),
            "--corpus b.txt tokenizes to corpus hash 0000000000001234, but the checkpoint was trained on corpus "
            "hash 0000000000000abc; resuming on another text is a different run (pass --allow-corpus-change to "
            "train on it anyway)");
  t.allow_corpus_change = true;
  EXPECT_TRUE(CheckResumeCorpus(t, 0xabc, 0x1234, "b.txt").ok());
  FlagSet flags("test");
  TrainFlags parsed;
  RegisterTrainFlags(flags, &parsed);
  ASSERT_TRUE(flags.Parse({"--allow-corpus-change"}).ok());
  EXPECT_TRUE(parsed.allow_corpus_change);
}

}  // namespace
}  // namespace lanlm::engine
