// Trainer: options round trip and validation, state init and fingerprint, a tiny model that
// overfits one batch, evaluation windows, and LocalTrainer bit identity across thread counts
// and against shards summed in another order.
#include "engine/train/trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/data/corpus.h"
#include "engine/train/gradient_tree.h"
#include "engine/base/hash.h"
#include "engine/model/parameters.h"
#include "engine/base/random.h"
#include "tests/support/tiny.h"

namespace lanlm::engine {
namespace {

// This suite's model sizes (tests/support/tiny.h).
constexpr test_support::TinySizes kSizes = {.dim = 16, .ffn = 24};

std::vector<int32_t> Corpus(int64_t n, int vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(CounterRng::Below(seed, i, vocab));
  return t;
}

TEST(TrainerTest, OptionsRoundTripThroughMap) {
  TrainOptions o;
  o.model = test_support::TinyConfig(kSizes);
  o.micro_batch = 3;
  o.shards = 5;
  o.steps = 77;
  o.seed = 18446744073709551557ull;
  o.init_std = 0.0123f;
  o.validation_fraction = 0.1;
  o.adamw.lr = 3e-4f;
  o.adamw.beta2 = 0.99f;
  o.adamw.eps = 1e-7f;
  o.adamw.weight_decay = 0.05f;
  o.adamw.warmup_steps = 9;
  o.adamw.schedule = "constant";
  o.adamw.min_lr_ratio = 0.2f;
  o.adamw.total_steps = 500;
  o.adamw.clip = 0.7f;
  ASSERT_TRUE(o.Validate().ok());
  auto back = TrainOptions::FromMap(o.ToMap(), o.model);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToMap(), o.ToMap());
  EXPECT_EQ(back->seed, o.seed);
  EXPECT_EQ(back->init_std, o.init_std);
  EXPECT_EQ(back->adamw.lr, o.adamw.lr);
  EXPECT_EQ(back->adamw.eps, o.adamw.eps);
  EXPECT_EQ(back->adamw.schedule, "constant");
  EXPECT_EQ(back->validation_fraction, 0.1);
  EXPECT_EQ(back->model, o.model);
}

TEST(TrainerTest, FromMapNamesBadKeysAndValues) {
  TrainOptions o;
  auto map = o.ToMap();
  map["learning_rate"] = "0.1";
  Status s = TrainOptions::FromMap(map, o.model).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("learning_rate"), std::string::npos) << s.message();

  map = o.ToMap();
  map["shards"] = "four";
  s = TrainOptions::FromMap(map, o.model).status();
  EXPECT_NE(s.message().find("shards"), std::string::npos) << s.message();

  map = o.ToMap();
  map["beta1"] = "1.5";
  s = TrainOptions::FromMap(map, o.model).status();
  EXPECT_NE(s.message().find("beta1"), std::string::npos) << s.message();

  map = o.ToMap();
  map.erase("seed");
  s = TrainOptions::FromMap(map, o.model).status();
  EXPECT_NE(s.message().find("seed"), std::string::npos) << s.message();
}

TEST(TrainerTest, InitIsDeterministicAndFingerprintCoversParams) {
  const TrainingState a = TrainingState::Init(test_support::TinyConfig(kSizes), 5, 0.02f);
  const TrainingState b = TrainingState::Init(test_support::TinyConfig(kSizes), 5, 0.02f);
  const TrainingState c = TrainingState::Init(test_support::TinyConfig(kSizes), 6, 0.02f);
  EXPECT_EQ(a.params.size(), static_cast<size_t>(ParameterCount(test_support::TinyConfig(kSizes))));
  EXPECT_EQ(a.Fingerprint(), b.Fingerprint());
  EXPECT_NE(a.Fingerprint(), c.Fingerprint());
  EXPECT_EQ(a.Fingerprint(), Fingerprint(a.params.data(), static_cast<int64_t>(a.params.size())));
  EXPECT_EQ(a.step, 0);
  for (float m : a.adam_m) ASSERT_EQ(m, 0.0f);
}

TEST(TrainerTest, TinyModelOverfitsOneBatch) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const int B = 2;
  const std::vector<int32_t> tokens = Corpus(B * (c.context + 1), c.vocab_size, 3);
  TrainingState state = TrainingState::Init(c, 1, 0.1f);
  AdamWOptions adam;
  adam.lr = 1e-2f;
  adam.warmup_steps = 10;
  adam.schedule = "constant";
  ThreadPool pool(1);
  Model model(c, B);
  std::vector<float> grad(state.params.size());
  const float first = ComputeShardGradient(model, state.params.data(), tokens.data(), B, grad.data(), pool);
  float loss = first;
  int steps = 0;
  for (; steps < 200 && loss > 0.1f * first; ++steps) {
    ApplyUpdate(adam, grad.data(), state, pool);
    loss = ComputeShardGradient(model, state.params.data(), tokens.data(), B, grad.data(), pool);
  }
  EXPECT_LT(loss, 0.1f * first) << "start " << first << " after " << steps << " steps";
  EXPECT_EQ(state.step, steps);
}

TEST(TrainerTest, EvaluateLossAveragesConsecutiveWindows) {
  const ModelConfig c = test_support::TinyConfig(kSizes);
  const TrainingState state = TrainingState::Init(c, 2, 0.3f);
  const int64_t T = c.context;
  const std::vector<int32_t> tokens = Corpus(3 * T + 5, c.vocab_size, 4);  // 3 full windows + a partial
  ThreadPool pool(1);
  Model model(c, 2);
  const EvalResult all = EvaluateLoss(model, state.params.data(), tokens, 0, pool);
  EXPECT_EQ(all.predictions, 3 * T);
  double want = 0.0;
  Model one(c, 1);
  for (int64_t w = 0; w < 3; ++w) want += one.Forward(state.params.data(), tokens.data() + w * T, 1, pool);
  EXPECT_NEAR(all.mean_loss, want / 3, 1e-6);
  const EvalResult first = EvaluateLoss(model, state.params.data(), tokens, 1, pool);
  EXPECT_EQ(first.predictions, T);
  EXPECT_NEAR(first.mean_loss, one.Forward(state.params.data(), tokens.data(), 1, pool), 1e-6);
  EXPECT_EQ(EvaluateLoss(model, state.params.data(), std::vector<int32_t>(T), 0, pool).predictions, 0);
}

TrainOptions SmallRun() {
  TrainOptions o;
  o.model = test_support::TinyConfig(kSizes);
  o.model.dim = 32;
  o.model.ffn_hidden = 48;
  o.model.vocab_size = 64;
  o.model.context = 16;
  o.micro_batch = 2;
  o.shards = 3;
  o.adamw.warmup_steps = 2;
  return o;
}

TEST(TrainerTest, LocalTrainerIsBitIdenticalForAnyThreadCount) {
  const TrainOptions o = SmallRun();
  const std::vector<int32_t> train = Corpus(500, o.model.vocab_size, 8);
  uint64_t reference = 0;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    TrainingState state = TrainingState::Init(o.model, o.seed, o.init_std);
    LocalTrainer trainer(o, train, state, pool);
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(trainer.Step().ok());
    EXPECT_EQ(state.step, 3);
    if (threads == 1) {
      reference = state.Fingerprint();
      EXPECT_NE(reference, TrainingState::Init(o.model, o.seed, o.init_std).Fingerprint());
    } else {
      EXPECT_EQ(state.Fingerprint(), reference) << threads << " threads";
    }
  }
}

TEST(TrainerTest, LocalTrainerEqualsShardsSummedInAnotherOrder) {
  // What a cluster does: shards computed anywhere, added in any order, same parameters.
  const TrainOptions o = SmallRun();
  const std::vector<int32_t> train = Corpus(500, o.model.vocab_size, 9);
  ThreadPool pool(2);
  TrainingState local = TrainingState::Init(o.model, o.seed, o.init_std);
  TrainingState cluster = local;
  LocalTrainer trainer(o, train, local, pool);
  Model model(o.model, o.micro_batch);
  const int64_t n = static_cast<int64_t>(cluster.params.size());
  std::vector<int32_t> tokens(o.micro_batch * (o.model.context + 1));
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(trainer.Step().ok());
    GradientTree tree(o.shards, n);
    for (int s = o.shards - 1; s >= 0; --s) {
      ASSERT_TRUE(SampleShard(train, o.seed, cluster.step, s, o.micro_batch, o.model.context, tokens.data()).ok());
      std::vector<float> g(n);
      ComputeShardGradient(model, cluster.params.data(), tokens.data(), o.micro_batch, g.data(), pool);
      ASSERT_TRUE(tree.Add(s, 1, std::move(g), pool).ok());
    }
    std::vector<float> step_grad(n);
    tree.Finish(step_grad.data(), pool);
    ApplyUpdate(o.adamw, step_grad.data(), cluster, pool);
  }
  EXPECT_EQ(local.Fingerprint(), cluster.Fingerprint());
  EXPECT_EQ(0, std::memcmp(local.adam_v.data(), cluster.adam_v.data(), n * sizeof(float)));
}

TEST(TrainerTest, LocalTrainerReportsTooShortCorpus) {
  const TrainOptions o = SmallRun();
  const std::vector<int32_t> train = Corpus(o.model.context + 1, o.model.vocab_size, 1);
  ThreadPool pool(1);
  TrainingState state = TrainingState::Init(o.model, o.seed, o.init_std);
  LocalTrainer trainer(o, train, state, pool);
  EXPECT_EQ(trainer.Step().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(state.step, 0);
}

// -ffast-math folds std::isnan away; the trainer checks bit patterns and stops a diverged run.
TEST(TrainerTest, LocalTrainerStopsOnNonFiniteLossOrParameters) {
  const TrainOptions o = SmallRun();
  const std::vector<int32_t> train = Corpus(2000, o.model.vocab_size, 1);
  ThreadPool pool(1);
  TrainingState nan_params = TrainingState::Init(o.model, o.seed, o.init_std);
  std::fill(nan_params.params.begin(), nan_params.params.end(), std::numeric_limits<float>::quiet_NaN());
  LocalTrainer a(o, train, nan_params, pool);
  const auto nan_loss = a.Step();
  EXPECT_EQ(nan_loss.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(nan_loss.status().message().find("diverged at step 0"), std::string::npos) << nan_loss.status().ToString();
  EXPECT_EQ(nan_params.step, 0);  // nothing applied

  TrainingState bad_moments = TrainingState::Init(o.model, o.seed, o.init_std);
  std::fill(bad_moments.adam_v.begin(), bad_moments.adam_v.end(), -1.0f);  // a corrupt optimizer state
  LocalTrainer b(o, train, bad_moments, pool);
  const auto bad = b.Step();
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("not finite after the AdamW update"), std::string::npos) << bad.status().ToString();
}

TEST(TrainerTest, ValidateNamesTheField) {
  TrainOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.shards = 0;
  EXPECT_NE(o.Validate().message().find("shards"), std::string::npos);
  o = TrainOptions();
  o.validation_fraction = 0.9;
  EXPECT_NE(o.Validate().message().find("validation_fraction"), std::string::npos);
}

}  // namespace
}  // namespace lanlm::engine
