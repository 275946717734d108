// libFuzzer target: every cluster message (protos/cluster.proto) as a hostile peer could send
// it, through the conversion and validation the receiving side runs (protos/convert.h).
// Input: byte 0 picks the message type, byte 1 holds flags (bit 0: fix every chunk's CRC32C
// so the data path past the checksum is reached), the rest are the message's bytes.
//   coordinator side: JoinRequest, WorkerMessage (Hello, LeaseRequest, GradientChunk, Commit)
//   worker side:      JoinReply (Worker::Configure's checks), CoordinatorMessage (ParamChunk
//                     reassembly, Lease tokens and shard count)
// Converted values must survive the way back (ToProto then FromProto) unchanged.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/base/check.h"
#include "engine/base/hash.h"
#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"
#include "protos/convert.h"

namespace v1 = lanlm::v1;
namespace engine = lanlm::engine;
namespace protos = lanlm::protos;

namespace {

// The worker's model in Lease checks: small, so a valid token block is within reach.
engine::ModelConfig SmallConfig() {
  engine::ModelConfig config;
  config.vocab_size = 64;
  config.dim = 16;
  config.n_layers = 1;
  config.n_heads = 2;
  config.ffn_hidden = 32;
  config.context = 8;
  return config;
}
constexpr int kMicroBatch = 2;

void FixCrc(v1::FloatChunk* chunk, bool fix) {
  if (fix) chunk->set_crc32c(engine::Crc32c(chunk->data().data(), chunk->data().size()));
}

// The receiver's reassembly of one chunk, into a block of the chunk's own size when that is
// small (so success is reachable) and of a fixed size otherwise.
void Assemble(const v1::FloatChunk& chunk, int wire) {
  const int64_t total = chunk.total() > 0 && chunk.total() <= (1 << 16) ? chunk.total() : 1024;
  protos::ChunkAssembler assembler(total, protos::kMaxChunkBytes, static_cast<engine::WireFormat>(wire & 1));
  if (assembler.Add(chunk).ok() && assembler.complete()) {
    LANLM_CHECK(assembler.block().size() == static_cast<size_t>(total), "assembled block has the wrong size");
  }
  // A gradient's assembler (protocol 6: any order, each range once), fed the chunk twice.
  protos::ChunkAssembler any(total, protos::kMaxChunkBytes, static_cast<engine::WireFormat>(wire & 1),
                             engine::ChunkOrder::kAnyOrder);
  if (any.Add(chunk).ok()) {
    LANLM_CHECK(!any.Add(chunk).ok(), "a range was accepted twice");
    LANLM_CHECK(any.FirstMissing() <= total, "first missing float past the block");
  }
}

void ConfigRoundTrip(const v1::ModelConfig& message) {
  auto config = protos::FromProto(message);
  if (!config.ok()) return;
  LANLM_CHECK(engine::ParameterCount(*config) > 0, "a valid config has no parameters");
  v1::ModelConfig back;
  protos::ToProto(*config, &back);
  auto again = protos::FromProto(back);
  LANLM_CHECK(again.ok() && *again == *config, "ModelConfig does not survive ToProto/FromProto");
}

// Worker::Configure's checks of a JoinReply, in its order.
void JoinReply(const v1::JoinReply& reply) {
  ConfigRoundTrip(reply.model_config());
  auto config = protos::FromProto(reply.model_config());
  if (!config.ok() || config->Hash() != reply.model_config_hash()) return;
  if (reply.parameter_count() != engine::ParameterCount(*config)) return;
  (void)engine::WireBytes(reply.wire_format());
  if (reply.has_inner()) {
    auto inner = protos::FromProto(reply.inner());
    if (inner.ok()) {
      v1::InnerOptimizer back;
      protos::ToProto(*inner, reply.inner().local_steps(), &back);
      LANLM_CHECK(protos::FromProto(back).ok(), "InnerOptimizer does not survive ToProto/FromProto");
    }
  }
  (void)engine::IsRunId(reply.run_id());
}

void Lease(const v1::Lease& lease) {
  auto shards = protos::LeaseShardCount(lease);
  auto tokens = protos::TokensFromProto(lease, SmallConfig(), kMicroBatch);
  if (!tokens.ok()) return;
  const engine::ModelConfig config = SmallConfig();
  for (int32_t id : *tokens) LANLM_CHECK(id >= 0 && id < config.vocab_size, "a lease token is outside the vocabulary");
  LANLM_CHECK(shards.ok(), "tokens accepted for a lease whose shard count is not");
}

void WorkerMessage(v1::WorkerMessage& message, bool fix_crc) {
  switch (message.kind_case()) {
    case v1::WorkerMessage::kGradientChunk: {
      FixCrc(message.mutable_gradient_chunk()->mutable_chunk(), fix_crc);
      const v1::FloatChunk copy = message.gradient_chunk().chunk();
      engine::FloatChunk chunk = protos::FromProto(std::move(*message.mutable_gradient_chunk()->mutable_chunk()));
      engine::ChunkAssembler assembler(copy.total() > 0 && copy.total() <= (1 << 16) ? copy.total() : 1024);
      (void)assembler.Add(chunk);
      Assemble(copy, static_cast<int>(copy.format()));
      break;
    }
    case v1::WorkerMessage::kCommit: {
      const engine::ShardCommit commit = protos::FromProto(message.commit());
      LANLM_CHECK(commit.shard_losses.size() == static_cast<size_t>(message.commit().shard_losses_size()),
                  "commit lost shard losses");
      break;
    }
    default:
      break;  // Hello and LeaseRequest carry only ids and versions, compared as they are
  }
}

void CoordinatorMessage(v1::CoordinatorMessage& message, bool fix_crc) {
  switch (message.kind_case()) {
    case v1::CoordinatorMessage::kParamChunk:
      FixCrc(message.mutable_param_chunk()->mutable_chunk(), fix_crc);
      Assemble(message.param_chunk().chunk(), static_cast<int>(message.param_chunk().chunk().format()));
      break;
    case v1::CoordinatorMessage::kLease:
      Lease(message.lease());
      break;
    default:
      break;  // CommitResult and Shutdown carry a code and text shown as they are
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);  // parse errors of fuzzed bytes are expected, not news
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int kind = data[0] % 6;
  const bool fix_crc = (data[1] & 1) != 0;
  const auto* bytes = data + 2;
  const int n = static_cast<int>(size - 2);
  switch (kind) {
    case 0: {
      v1::JoinRequest m;
      if (m.ParseFromArray(bytes, n)) (void)m.worker_name().size();
      break;
    }
    case 1: {
      v1::JoinReply m;
      if (m.ParseFromArray(bytes, n)) JoinReply(m);
      break;
    }
    case 2: {
      v1::WorkerMessage m;
      if (m.ParseFromArray(bytes, n)) WorkerMessage(m, fix_crc);
      break;
    }
    case 3: {
      v1::CoordinatorMessage m;
      if (m.ParseFromArray(bytes, n)) CoordinatorMessage(m, fix_crc);
      break;
    }
    case 4: {
      v1::ModelConfig m;
      if (m.ParseFromArray(bytes, n)) ConfigRoundTrip(m);
      break;
    }
    default: {
      v1::Lease m;
      if (m.ParseFromArray(bytes, n)) Lease(m);
      break;
    }
  }
  return 0;
}
