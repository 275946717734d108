// Training steps shared by `lanlm train` and the coordinator (DESIGN.md §3): options and
// their string form, state initialisation, shard gradients, the update, evaluation, and the
// single-process trainer.
#include "engine/train/trainer.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/data/corpus.h"
#include "engine/train/gradient_tree.h"
#include "engine/base/float_bits.h"
#include "engine/base/hash.h"
#include "engine/model/parameters.h"

namespace lanlm::engine {
namespace {

std::string FormatFloat(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
  return buf;
}

Status BadValue(const std::string& key, const std::string& value, const char* expected) {
  return InvalidArgumentError("training option " + key + " = '" + value + "' is not " + expected);
}

Status ParseInt(const std::string& key, const std::string& s, int64_t* out) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0) return BadValue(key, s, "an integer");
  *out = v;
  return OkStatus();
}

Status ParseUint(const std::string& key, const std::string& s, uint64_t* out) {
  errno = 0;
  char* end = nullptr;
  if (s.empty() || s[0] == '-') return BadValue(key, s, "an unsigned integer");
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end != s.c_str() + s.size() || errno != 0) return BadValue(key, s, "an unsigned integer");
  *out = v;
  return OkStatus();
}

Status ParseDouble(const std::string& key, const std::string& s, double* out) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0) return BadValue(key, s, "a number");
  *out = v;
  return OkStatus();
}

Status CheckRange(const char* name, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi)) {
    return InvalidArgumentError(std::string(name) + " = " + FormatFloat(value, 9) + " is outside [" +
                                FormatFloat(lo, 9) + ", " + FormatFloat(hi, 9) + "]");
  }
  return OkStatus();
}

}  // namespace

Status TrainOptions::Validate() const {
  LANLM_RETURN_IF_ERROR(model.Validate());
  LANLM_RETURN_IF_ERROR(CheckRange("micro_batch", micro_batch, 1, 1 << 16));
  LANLM_RETURN_IF_ERROR(CheckRange("shards", shards, 1, 1 << 16));
  LANLM_RETURN_IF_ERROR(CheckRange("steps", static_cast<double>(steps), 0, 1e12));
  if (!(init_std > 0.0f && init_std <= 1.0f)) {
    return InvalidArgumentError("init_std = " + FormatFloat(init_std, 9) + " is outside (0, 1]");
  }
  LANLM_RETURN_IF_ERROR(CheckRange("validation_fraction", validation_fraction, 0.0, 0.5));
  return adamw.Validate();
}

std::map<std::string, std::string> TrainOptions::ToMap() const {
  return {
      {"micro_batch", std::to_string(micro_batch)},
      {"shards", std::to_string(shards)},
      {"steps", std::to_string(steps)},
      {"seed", std::to_string(seed)},
      {"init_std", FormatFloat(init_std, 9)},
      {"validation_fraction", FormatFloat(validation_fraction, 17)},
      {"lr", FormatFloat(adamw.lr, 9)},
      {"beta1", FormatFloat(adamw.beta1, 9)},
      {"beta2", FormatFloat(adamw.beta2, 9)},
      {"eps", FormatFloat(adamw.eps, 9)},
      {"weight_decay", FormatFloat(adamw.weight_decay, 9)},
      {"warmup_steps", std::to_string(adamw.warmup_steps)},
      {"schedule", adamw.schedule},
      {"min_lr_ratio", FormatFloat(adamw.min_lr_ratio, 9)},
      {"total_steps", std::to_string(adamw.total_steps)},
      {"clip", FormatFloat(adamw.clip, 9)},
      {"precision", PrecisionName(precision)},
  };
}

StatusOr<TrainOptions> TrainOptions::FromMap(const std::map<std::string, std::string>& map, const ModelConfig& model) {
  TrainOptions o;
  o.model = model;
  // Every key ToMap writes must be present, except precision (files from before bf16 training
  // are fp32); unknown keys are rejected by name.
  const std::map<std::string, std::string> expected = o.ToMap();
  for (const auto& [key, unused] : expected) {
    if (map.find(key) == map.end() && key != "precision") {
      return InvalidArgumentError("training option " + key + " is missing");
    }
  }
  for (const auto& [key, value] : map) {
    int64_t i = 0;
    double d = 0.0;
    if (key == "micro_batch" || key == "shards") {
      LANLM_RETURN_IF_ERROR(ParseInt(key, value, &i));
      if (i < 1 || i > (1 << 16)) return BadValue(key, value, "in [1, 65536]");
      (key == "shards" ? o.shards : o.micro_batch) = static_cast<int>(i);
    } else if (key == "steps") {
      LANLM_RETURN_IF_ERROR(ParseInt(key, value, &o.steps));
    } else if (key == "warmup_steps") {
      LANLM_RETURN_IF_ERROR(ParseInt(key, value, &o.adamw.warmup_steps));
    } else if (key == "total_steps") {
      LANLM_RETURN_IF_ERROR(ParseInt(key, value, &o.adamw.total_steps));
    } else if (key == "seed") {
      LANLM_RETURN_IF_ERROR(ParseUint(key, value, &o.seed));
    } else if (key == "validation_fraction") {
      LANLM_RETURN_IF_ERROR(ParseDouble(key, value, &o.validation_fraction));
    } else if (key == "schedule") {
      o.adamw.schedule = value;
    } else if (key == "precision") {
      if (!ParsePrecision(value, &o.precision)) return BadValue(key, value, "fp32 or bf16");
    } else {
      float* target = key == "init_std"       ? &o.init_std
                      : key == "lr"           ? &o.adamw.lr
                      : key == "beta1"        ? &o.adamw.beta1
                      : key == "beta2"        ? &o.adamw.beta2
                      : key == "eps"          ? &o.adamw.eps
                      : key == "weight_decay" ? &o.adamw.weight_decay
                      : key == "min_lr_ratio" ? &o.adamw.min_lr_ratio
                      : key == "clip"         ? &o.adamw.clip
                                              : nullptr;
      if (target == nullptr) return InvalidArgumentError("unknown training option '" + key + "'");
      LANLM_RETURN_IF_ERROR(ParseDouble(key, value, &d));
      *target = static_cast<float>(d);
    }
  }
  LANLM_RETURN_IF_ERROR(o.Validate());
  return o;
}

TrainingState TrainingState::Init(const ModelConfig& config, uint64_t seed, float init_std) {
  TrainingState s;
  s.config = config;
  const int64_t n = ParameterCount(config);
  s.params.resize(n);
  InitParameters(config, seed, init_std, s.params.data());
  s.adam_m.assign(n, 0.0f);
  s.adam_v.assign(n, 0.0f);
  s.step = 0;
  return s;
}

uint64_t TrainingState::Fingerprint() const {
  return engine::Fingerprint(params.data(), static_cast<int64_t>(params.size()));
}

float ComputeShardGradient(Model& model, const float* params, const int32_t* tokens, int B, float* grad,
                           ThreadPool& pool, bool reuse_packed_weights) {
  const int64_t n = ParameterCount(model.config());
  std::memset(grad, 0, static_cast<size_t>(n) * sizeof(float));
  const float loss = model.Forward(params, tokens, B, pool, /*hooks=*/nullptr, reuse_packed_weights);
  model.Backward(params, tokens, B, grad, pool);
  return loss;
}

void ApplyUpdate(const AdamWOptions& options, float* grad, TrainingState& state, ThreadPool& pool) {
  const int64_t n = static_cast<int64_t>(state.params.size());
  ClipGradients(grad, n, options.clip, pool);
  AdamWStep(options, state.step, ParameterTensors(state.config), state.params.data(), grad, state.adam_m.data(),
            state.adam_v.data(), pool);
  ++state.step;
}

EvalResult EvaluateLoss(Model& model, const float* params, const std::vector<int32_t>& tokens, int64_t max_windows,
                        ThreadPool& pool) {
  const int64_t T = model.config().context;
  const int64_t size = static_cast<int64_t>(tokens.size());
  int64_t windows = size > T ? (size - 1) / T : 0;
  if (max_windows > 0) windows = std::min(windows, max_windows);
  EvalResult result;
  double total = 0.0;
  std::vector<int32_t> batch(static_cast<size_t>(model.max_batch()) * (T + 1));
  for (int64_t w = 0; w < windows;) {
    const int B = static_cast<int>(std::min<int64_t>(model.max_batch(), windows - w));
    // Window w + b is tokens[(w + b) T, (w + b) T + T]: consecutive windows share one token,
    // so the (B, T+1) rows overlap in memory and are laid out one after another here.
    for (int b = 0; b < B; ++b) {
      std::memcpy(batch.data() + b * (T + 1), tokens.data() + (w + b) * T, (T + 1) * sizeof(int32_t));
    }
    const float mean = model.Forward(params, batch.data(), B, pool, /*hooks=*/nullptr, /*reuse_packed_weights=*/w > 0);
    total += static_cast<double>(mean) * static_cast<double>(B * T);
    result.predictions += B * T;
    w += B;
  }
  result.mean_loss = result.predictions > 0 ? total / static_cast<double>(result.predictions) : 0.0;
  return result;
}

LocalTrainer::LocalTrainer(const TrainOptions& options, const std::vector<int32_t>& train_tokens,
                           TrainingState& state, ThreadPool& pool)
    : options_(options),
      train_(train_tokens),
      state_(state),
      pool_(pool),
      model_(options.model, options.micro_batch, options.precision),
      tokens_(static_cast<size_t>(options.micro_batch) * (options.model.context + 1)),
      step_grad_(static_cast<size_t>(ParameterCount(options.model))) {
  LANLM_CHECK(state.config == options.model, "TrainingState config differs from TrainOptions model");
}

StatusOr<float> LocalTrainer::Step() {
  const int64_t n = static_cast<int64_t>(step_grad_.size());
  const int B = options_.micro_batch, T = options_.model.context;
  GradientTree tree(options_.shards, n);
  double loss_sum = 0.0;
  for (int s = 0; s < options_.shards; ++s) {
    LANLM_RETURN_IF_ERROR(SampleShard(train_, options_.seed, state_.step, s, B, T, tokens_.data()));
    grad_.resize(n);
    loss_sum += ComputeShardGradient(model_, state_.params.data(), tokens_.data(), B, grad_.data(), pool_,
                                     /*reuse_packed_weights=*/s > 0);
    LANLM_RETURN_IF_ERROR(tree.Add(s, 1, std::move(grad_), pool_));
    grad_ = std::vector<float>();
  }
  tree.Finish(step_grad_.data(), pool_);
  const double loss = loss_sum / options_.shards;
  LANLM_RETURN_IF_ERROR(CheckGradientFinite(state_.step, loss, step_grad_.data(), n));
  ApplyUpdate(options_.adamw, step_grad_.data(), state_, pool_);
  LANLM_RETURN_IF_ERROR(CheckParametersFinite(state_.step - 1, state_.params.data(), n));
  return static_cast<float>(loss);
}

Status CheckGradientFinite(int64_t step, double loss, const float* grad, int64_t n) {
  if (!IsFiniteBits(static_cast<float>(loss))) {
    return DataLossError("training diverged at step " + std::to_string(step) +
                         ": the mean loss is not finite (NaN or Inf); the step was not applied");
  }
  if (const int64_t at = FirstNonFinite(grad, n); at >= 0) {
    return DataLossError("training diverged at step " + std::to_string(step) + ": gradient element " +
                         std::to_string(at) + " is not finite (NaN or Inf); the step was not applied");
  }
  return OkStatus();
}

Status CheckParametersFinite(int64_t step, const float* params, int64_t n) {
  if (const int64_t at = FirstNonFinite(params, n); at >= 0) {
    return DataLossError("training diverged at step " + std::to_string(step) + ": parameter " + std::to_string(at) +
                         " is not finite after the AdamW update (corrupt optimizer state?)");
  }
  return OkStatus();
}

}  // namespace lanlm::engine
