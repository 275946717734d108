// Conversions between engine types and lanlm.v1 messages, with validation of everything
// read from the wire. Floats are copied as raw bytes (little-endian hosts only).
#include "protos/convert.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "engine/base/hash.h"

namespace lanlm::protos {

static_assert(std::endian::native == std::endian::little, "the wire formats are little-endian");

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

int WireBytes(int format) {
  switch (format) {
    case v1::WIRE_FORMAT_FP32:
      return 4;
    case v1::WIRE_FORMAT_BF16:
      return 2;
    default:
      return 0;
  }
}

std::string WireName(int format) {
  switch (format) {
    case v1::WIRE_FORMAT_FP32:
      return "fp32";
    case v1::WIRE_FORMAT_BF16:
      return "bf16";
    default:
      return "wire format " + std::to_string(format);
  }
}

StatusOr<v1::WireFormat> ParseWireFormat(const std::string& name) {
  if (name == "fp32") return v1::WIRE_FORMAT_FP32;
  if (name == "bf16") return v1::WIRE_FORMAT_BF16;
  return InvalidArgumentError("--wire '" + name + "': expected fp32 or bf16");
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

std::vector<v1::FloatChunk> MakeChunks(const float* block, int64_t n, int64_t max_chunk_bytes,
                                       v1::WireFormat format) {
  LANLM_CHECK(max_chunk_bytes >= 4 && max_chunk_bytes % 4 == 0, "chunk size must be a positive multiple of 4");
  const int bytes = WireBytes(format);
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
    chunk.set_format(format);
    if (format == v1::WIRE_FORMAT_BF16) {
      half.resize(static_cast<size_t>(len));
      for (int64_t i = 0; i < len; ++i) half[static_cast<size_t>(i)] = ToBf16(block[offset + i]);
      chunk.set_data(reinterpret_cast<const char*>(half.data()), static_cast<size_t>(len) * 2);
    } else {
      chunk.set_data(reinterpret_cast<const char*>(block + offset), static_cast<size_t>(len) * 4);
    }
    chunk.set_crc32c(engine::Crc32c(chunk.data().data(), chunk.data().size()));
  }
  return chunks;
}

ChunkAssembler::ChunkAssembler(int64_t expected_total, int64_t max_chunk_bytes, v1::WireFormat format)
    : total_(expected_total), max_chunk_bytes_(max_chunk_bytes), format_(format) {
  LANLM_CHECK(expected_total >= 0, "negative block size");
  LANLM_CHECK(WireBytes(format) > 0, "unknown wire format");
}

Status ChunkAssembler::Add(const v1::FloatChunk& chunk) {
  if (!status_.ok()) return status_;
  const int64_t bytes = static_cast<int64_t>(chunk.data().size());
  const int width = WireBytes(format_);
  if (chunk.format() != format_) {
    status_ = InvalidArgumentError("chunk format " + WireName(chunk.format()) + ", but this run uses " +
                                   WireName(format_));
  } else if (chunk.total() != total_) {
    status_ = InvalidArgumentError("chunk total = " + std::to_string(chunk.total()) + " floats, expected " +
                                   std::to_string(total_));
  } else if (chunk.offset() != received_) {
    status_ = InvalidArgumentError("chunk offset = " + std::to_string(chunk.offset()) + ", expected " +
                                   std::to_string(received_) + " (chunks must arrive in order without gaps)");
  } else if (bytes == 0 || bytes > max_chunk_bytes_ || bytes % width != 0) {
    status_ = InvalidArgumentError("chunk data = " + std::to_string(bytes) + " bytes; must be a positive multiple of " +
                                   std::to_string(width) + " up to " + std::to_string(max_chunk_bytes_));
  } else if (bytes / width > total_ - received_) {
    status_ = InvalidArgumentError("chunk at offset " + std::to_string(chunk.offset()) + " with " +
                                   std::to_string(bytes / width) + " floats runs past total = " +
                                   std::to_string(total_));
  } else if (engine::Crc32c(chunk.data().data(), chunk.data().size()) != chunk.crc32c()) {
    status_ = DataLossError("chunk at offset " + std::to_string(chunk.offset()) + " fails its CRC32C check");
  }
  if (!status_.ok()) return status_;
  if (block_.empty()) block_.resize(static_cast<size_t>(total_));
  const int64_t floats = bytes / width;
  if (format_ == v1::WIRE_FORMAT_BF16) {
    const char* data = chunk.data().data();
    for (int64_t i = 0; i < floats; ++i) {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      block_[static_cast<size_t>(received_ + i)] = FromBf16(h);
    }
  } else {
    std::memcpy(block_.data() + received_, chunk.data().data(), static_cast<size_t>(bytes));
  }
  const uint32_t chunk_crc = chunk.crc32c();
  crc_ = engine::Crc32c(&chunk_crc, 4, crc_);
  received_ += floats;
  return OkStatus();
}

uint32_t ChunksCrc32c(const std::vector<v1::FloatChunk>& chunks) {
  uint32_t crc = 0;
  for (const v1::FloatChunk& chunk : chunks) {
    const uint32_t chunk_crc = chunk.crc32c();
    crc = engine::Crc32c(&chunk_crc, 4, crc);
  }
  return crc;
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
