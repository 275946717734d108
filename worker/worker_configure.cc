// The worker's answer to a JoinReply: checks what the coordinator sent and sizes the model
// and the parameter and gradient blocks; see worker.h.
#include <spdlog/spdlog.h>

#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"
#include "engine/ops/matmul.h"
#include "protos/convert.h"
#include "worker/worker.h"

namespace lanlm::worker {

Status Worker::Configure(const v1::JoinReply& reply) {
  LANLM_ASSIGN_OR_RETURN(engine::ModelConfig config, protos::FromProto(reply.model_config()));
  if (config.Hash() != reply.model_config_hash()) {
    return FailedPreconditionError("model config " + config.ToString() +
                                   " hashes differently here than on the coordinator");
  }
  if (reply.micro_batch() < 1 || reply.micro_batch() > 4096) {
    return InvalidArgumentError("micro_batch = " + std::to_string(reply.micro_batch()) + " is outside [1, 4096]");
  }
  if (reply.parameter_count() != engine::ParameterCount(config)) {
    return FailedPreconditionError("parameter_count = " + std::to_string(reply.parameter_count()) +
                                   " but the model has " + std::to_string(engine::ParameterCount(config)));
  }
  if (reply.max_chunk_bytes() <= 0 || reply.max_chunk_bytes() > protos::kMaxChunkBytes ||
      reply.max_chunk_bytes() % 4 != 0) {
    return InvalidArgumentError("max_chunk_bytes = " + std::to_string(reply.max_chunk_bytes()) + " is invalid");
  }
  if (engine::WireBytes(reply.wire_format()) == 0) {
    return InvalidArgumentError("wire_format = " + std::to_string(reply.wire_format()) +
                                " is unknown here (this worker speaks fp32 and bf16)");
  }
  inner_.reset();
  if (reply.has_inner()) {
    LANLM_ASSIGN_OR_RETURN(engine::AdamWOptions inner, protos::FromProto(reply.inner()));
    inner_ = std::move(inner);
  }
  // Parameters cached under another wire format were rounded differently: never mix them.
  const auto wire = static_cast<engine::WireFormat>(reply.wire_format());
  if (wire != wire_) cached_version_ = -1;
  wire_ = wire;
  if (!engine::IsRunId(reply.run_id())) {
    return InvalidArgumentError("run_id \"" + reply.run_id().substr(0, 40) + "\" is not 32 lowercase hex digits");
  }
  if (reply.run_id() != cached_run_ && cached_version_ >= 0) {
    spdlog::info("worker {}: the coordinator runs {}; dropping cached version {} of run {}", options_.name,
                 reply.run_id(), cached_version_, cached_run_);
    cached_version_ = -1;
    cached_run_.clear();
  }
  engine::Precision precision = engine::Precision::kFp32;
  if (!reply.precision().empty() && !engine::ParsePrecision(reply.precision(), &precision)) {
    return InvalidArgumentError("precision \"" + reply.precision().substr(0, 16) +
                                "\" is unknown here (this worker computes fp32 and bf16)");
  }
  if (precision == engine::Precision::kBf16 && !engine::Bf16Supported()) {
    return FailedPreconditionError("precision bf16 (coordinator) needs AVX512_BF16, AVX-512F or AVX2 + FMA; "
                                   "this worker's CPU has none of them");
  }
  if (configured_ && config == config_ && reply.micro_batch() == micro_batch_ && precision == model_->precision()) {
    return OkStatus();
  }
  config_ = config;
  micro_batch_ = reply.micro_batch();
  parameter_count_ = reply.parameter_count();
  model_ = std::make_unique<engine::Model>(config_, micro_batch_, precision);
  if (precision == engine::Precision::kBf16) {
    spdlog::info("worker {}: precision bf16, matmul kernel {}", options_.name, engine::Bf16KernelPath());
  }
  params_.assign(static_cast<size_t>(parameter_count_), 0.0f);
  grad_.assign(static_cast<size_t>(parameter_count_), 0.0f);
  cached_version_ = -1;
  cached_run_.clear();
  configured_ = true;
  return OkStatus();
}

}  // namespace lanlm::worker
