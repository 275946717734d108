// Conversions between engine types and lanlm.v1 messages, with validation of everything
// read from the wire. Floats are copied as raw bytes (little-endian hosts only).
#include "protos/convert.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "engine/base/hash.h"

namespace lanlm::protos {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian float32");

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(status.code())), status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return OkStatus();
  const int code = static_cast<int>(status.error_code());
  if (code <= 0 || code > static_cast<int>(StatusCode::kUnauthenticated)) {
    return Status(StatusCode::kUnknown, status.error_message());
  }
  return Status(static_cast<StatusCode>(code), status.error_message());
}

void ToProto(const engine::ModelConfig& config, v1::ModelConfig* out) {
  out->set_vocab_size(config.vocab_size);
  out->set_dim(config.dim);
  out->set_n_layers(config.n_layers);
  out->set_n_heads(config.n_heads);
  out->set_ffn_hidden(config.ffn_hidden);
  out->set_context(config.context);
  out->set_norm_eps(config.norm_eps);
  out->set_rope_theta(config.rope_theta);
}

StatusOr<engine::ModelConfig> FromProto(const v1::ModelConfig& message) {
  engine::ModelConfig config;
  config.vocab_size = message.vocab_size();
  config.dim = message.dim();
  config.n_layers = message.n_layers();
  config.n_heads = message.n_heads();
  config.ffn_hidden = message.ffn_hidden();
  config.context = message.context();
  config.norm_eps = message.norm_eps();
  config.rope_theta = message.rope_theta();
  LANLM_RETURN_IF_ERROR(config.Validate());
  return config;
}

std::vector<v1::FloatChunk> MakeChunks(const float* block, int64_t n, int64_t max_chunk_bytes,
                                       engine::WireFormat format) {
  LANLM_CHECK(max_chunk_bytes >= 4 && max_chunk_bytes % 4 == 0, "chunk size must be a positive multiple of 4");
  const int bytes = engine::WireBytes(static_cast<int>(format));
  LANLM_CHECK(bytes > 0, "unknown wire format");
  const int64_t per_chunk = max_chunk_bytes / bytes;
  std::vector<v1::FloatChunk> chunks;
  chunks.reserve(static_cast<size_t>((n + per_chunk - 1) / per_chunk));
  std::vector<uint16_t> half;
  for (int64_t offset = 0; offset < n; offset += per_chunk) {
    const int64_t len = std::min(per_chunk, n - offset);
    v1::FloatChunk& chunk = chunks.emplace_back();
    chunk.set_offset(offset);
    chunk.set_total(n);
    chunk.set_format(static_cast<v1::WireFormat>(format));
    if (format == engine::WireFormat::kBf16) {
      half.resize(static_cast<size_t>(len));
      for (int64_t i = 0; i < len; ++i) half[static_cast<size_t>(i)] = engine::ToBf16(block[offset + i]);
      chunk.set_data(reinterpret_cast<const char*>(half.data()), static_cast<size_t>(len) * 2);
    } else {
      chunk.set_data(reinterpret_cast<const char*>(block + offset), static_cast<size_t>(len) * 4);
    }
    chunk.set_crc32c(engine::Crc32c(chunk.data().data(), chunk.data().size()));
  }
  return chunks;
}

void ToProto(const engine::AdamWOptions& adamw, int local_steps, v1::InnerOptimizer* out) {
  out->set_local_steps(local_steps);
  out->set_lr(adamw.lr);
  out->set_beta1(adamw.beta1);
  out->set_beta2(adamw.beta2);
  out->set_eps(adamw.eps);
  out->set_weight_decay(adamw.weight_decay);
  out->set_warmup_steps(adamw.warmup_steps);
  out->set_schedule(adamw.schedule);
  out->set_min_lr_ratio(adamw.min_lr_ratio);
  out->set_total_steps(adamw.total_steps);
  out->set_clip(adamw.clip);
}

StatusOr<engine::AdamWOptions> FromProto(const v1::InnerOptimizer& message) {
  if (message.local_steps() < 1 || message.local_steps() > kMaxLocalSteps) {
    return InvalidArgumentError("inner.local_steps = " + std::to_string(message.local_steps()) + " is outside [1, " +
                                std::to_string(kMaxLocalSteps) + "]");
  }
  engine::AdamWOptions adamw;
  adamw.lr = message.lr();
  adamw.beta1 = message.beta1();
  adamw.beta2 = message.beta2();
  adamw.eps = message.eps();
  adamw.weight_decay = message.weight_decay();
  adamw.warmup_steps = message.warmup_steps();
  adamw.schedule = message.schedule();
  adamw.min_lr_ratio = message.min_lr_ratio();
  adamw.total_steps = message.total_steps();
  adamw.clip = message.clip();
  LANLM_RETURN_IF_ERROR(adamw.Validate());
  return adamw;
}

uint32_t ChunksCrc32c(const std::vector<v1::FloatChunk>& chunks) {
  uint32_t crc = 0;
  for (const v1::FloatChunk& chunk : chunks) {
    const uint32_t chunk_crc = chunk.crc32c();
    crc = engine::Crc32c(&chunk_crc, 4, crc);
  }
  return crc;
}

void ToProto(const engine::FloatChunk& chunk, v1::FloatChunk* out) {
  out->set_offset(chunk.offset);
  out->set_total(chunk.total);
  out->set_data(chunk.data);
  out->set_crc32c(chunk.crc32c);
  out->set_format(static_cast<v1::WireFormat>(chunk.format));
}

engine::FloatChunk FromProto(v1::FloatChunk&& message) {
  engine::FloatChunk chunk;
  chunk.offset = message.offset();
  chunk.total = message.total();
  chunk.data.swap(*message.mutable_data());  // no copy of the floats
  chunk.crc32c = message.crc32c();
  chunk.format = static_cast<engine::WireFormat>(message.format());  // checked by the assembler
  return chunk;
}

void ToProto(const engine::ShardLease& lease, v1::Lease* out) {
  out->set_step(lease.step);
  out->set_shard(lease.shard);
  out->set_lease_id(lease.lease_id);
  out->set_timeout_ms(lease.timeout_ms);
  out->set_deadline_unix_ms(lease.deadline_unix_ms);
  out->set_micro_batch(lease.micro_batch);
  out->set_shard_count(lease.shard_count);
  out->set_local_steps(lease.local_steps);
  out->set_param_source(lease.param_source);
  TokensToProto(lease.tokens.data(), static_cast<int64_t>(lease.tokens.size()), out);
}

engine::ShardCommit FromProto(const v1::Commit& message) {
  engine::ShardCommit commit;
  commit.lease_id = message.lease_id();
  commit.floats = message.floats();
  commit.crc32c = message.crc32c();
  commit.loss = message.loss();
  commit.shard_losses.assign(message.shard_losses().begin(), message.shard_losses().end());
  commit.compute_ms = message.compute_ms();
  return commit;
}

void TokensToProto(const int32_t* tokens, int64_t n, v1::Lease* lease) {
  auto* field = lease->mutable_tokens();
  field->Reserve(static_cast<int>(n));
  for (int64_t i = 0; i < n; ++i) field->Add(tokens[i]);
}

StatusOr<int> LeaseShardCount(const v1::Lease& lease) {
  const int count = lease.shard_count() == 0 ? 1 : lease.shard_count();
  if (count < 1 || count > kMaxShardsPerLease) {
    return InvalidArgumentError("lease shard_count = " + std::to_string(lease.shard_count()) + " is outside [1, " +
                                std::to_string(kMaxShardsPerLease) + "]");
  }
  return count;
}

StatusOr<std::vector<int32_t>> TokensFromProto(const v1::Lease& lease, const engine::ModelConfig& config,
                                               int micro_batch) {
  LANLM_ASSIGN_OR_RETURN(const int shards, LeaseShardCount(lease));
  if (lease.local_steps() < 0 || lease.local_steps() > kMaxLocalSteps) {
    return InvalidArgumentError("lease local_steps = " + std::to_string(lease.local_steps()) + " is outside [0, " +
                                std::to_string(kMaxLocalSteps) + "]");
  }
  const int64_t steps = std::max(1, lease.local_steps());
  const int64_t expected = steps * shards * micro_batch * (config.context + 1);
  if (lease.micro_batch() != micro_batch) {
    return InvalidArgumentError("lease micro_batch = " + std::to_string(lease.micro_batch()) + ", expected " +
                                std::to_string(micro_batch));
  }
  if (lease.tokens_size() != expected) {
    return InvalidArgumentError("lease has " + std::to_string(lease.tokens_size()) +
                                " tokens, expected steps*shards*B*(T+1) = " + std::to_string(expected));
  }
  std::vector<int32_t> tokens(lease.tokens().begin(), lease.tokens().end());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config.vocab_size) {
      return InvalidArgumentError("lease token[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) +
                                  " is outside [0, " + std::to_string(config.vocab_size) + ")");
    }
  }
  return tokens;
}

}  // namespace lanlm::protos
