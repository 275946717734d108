// Writes the committed seed corpora (fuzz/corpus/<target>/): one valid example of each input
// a target reads, so fuzzing starts from the accepting paths. Rerun after a format change:
//   build-fuzz/fuzz/fuzz_seeds fuzz/corpus
// The JSON seeds are hand-written files, not made here.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/base/check.h"
#include "engine/base/hash.h"
#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"
#include "protos/convert.h"
#include "protos/generate.pb.h"

namespace engine = lanlm::engine;
namespace v1 = lanlm::v1;

namespace {

std::string root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(root + "/" + target);
  const std::string path = root + "/" + target + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  LANLM_CHECK(f != nullptr && std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size(), "cannot write " + path);
  std::fclose(f);
}

// cluster_messages input: kind byte, flags byte, message bytes.
void WriteMessage(const std::string& name, char kind, const google::protobuf::MessageLite& message) {
  Write("cluster_messages", name, std::string{kind, 0} + message.SerializeAsString());
}

engine::ModelConfig SmallConfig(int vocab) { return {vocab, 8, 1, 2, 12, 8}; }

void EngineSeeds() {
  auto tokenizer = engine::BpeTokenizer::Train("the cat sat on the mat, \"caf\xc3\xa9\"\nthe cat sat\n", 40);
  LANLM_CHECK(tokenizer.ok(), tokenizer.status().ToString());
  Write("tokenizer", "tiny.txt", tokenizer->Serialize());
  engine::Checkpoint c;
  c.config = SmallConfig(tokenizer->vocab_size());
  c.step = 3;
  c.seed = 7;
  c.run_id = "0123456789abcdef0123456789abcdef";
  c.training = {{"lr", "0.001"}, {"shards", "2"}};
  c.tokenizer = tokenizer->Serialize();
  c.params.resize(static_cast<size_t>(engine::ParameterCount(c.config)));
  engine::InitParameters(c.config, 1, 0.02f, c.params.data());
  const std::string dir = root + "/checkpoint";
  std::filesystem::create_directories(dir);
  LANLM_CHECK(engine::SaveCheckpoint(dir + "/inference.safetensors", c).ok(), "save failed");
  c.adam_m.assign(c.params.size(), 0.5f);
  c.adam_v.assign(c.params.size(), 0.25f);
  LANLM_CHECK(engine::SaveCheckpoint(dir + "/training.safetensors", c).ok(), "save failed");
}

void ClusterSeeds() {
  const engine::ModelConfig config{64, 16, 1, 2, 32, 8};  // the fuzz target's worker model
  v1::JoinRequest join;
  join.set_protocol_version(v1::PROTOCOL_VERSION_CURRENT);
  join.set_worker_name("host:1");
  join.set_threads(2);
  WriteMessage("join_request", 0, join);
  v1::JoinReply reply;
  reply.set_worker_id("w1");
  lanlm::protos::ToProto(config, reply.mutable_model_config());
  reply.set_model_config_hash(config.Hash());
  reply.set_micro_batch(2);
  reply.set_parameter_count(engine::ParameterCount(config));
  reply.set_max_chunk_bytes(lanlm::protos::kMaxChunkBytes);
  reply.set_run_id("0123456789abcdef0123456789abcdef");
  lanlm::protos::ToProto(engine::AdamWOptions{}, 4, reply.mutable_inner());
  WriteMessage("join_reply", 1, reply);
  const std::vector<float> block = {1.0f, -2.0f, 0.5f, 3.25f, 0.0f, 8.0f};
  for (int format = 0; format < 2; ++format) {
    auto chunks = lanlm::protos::MakeChunks(block.data(), static_cast<int64_t>(block.size()), 16,
                                            static_cast<engine::WireFormat>(format));
    v1::WorkerMessage gradient;
    gradient.mutable_gradient_chunk()->set_lease_id(1);
    *gradient.mutable_gradient_chunk()->mutable_chunk() = chunks[0];
    WriteMessage("gradient_chunk_" + std::to_string(format), 2, gradient);
    v1::CoordinatorMessage param;
    param.mutable_param_chunk()->set_version(1);
    *param.mutable_param_chunk()->mutable_chunk() = chunks[0];
    WriteMessage("param_chunk_" + std::to_string(format), 3, param);
  }
  v1::WorkerMessage commit;
  commit.mutable_commit()->set_lease_id(1);
  commit.mutable_commit()->set_floats(6);
  commit.mutable_commit()->set_loss(2.5f);
  commit.mutable_commit()->add_shard_losses(2.5f);
  commit.mutable_commit()->add_shard_losses(2.0f);
  WriteMessage("commit", 2, commit);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id("w1");
  hello.mutable_hello()->set_cached_version(-1);
  WriteMessage("hello", 2, hello);
  v1::CoordinatorMessage lease;
  lease.mutable_lease()->set_step(0);
  lease.mutable_lease()->set_lease_id(1);
  lease.mutable_lease()->set_micro_batch(2);
  lease.mutable_lease()->set_shard_count(2);
  for (int i = 0; i < 2 * 2 * 9; ++i) lease.mutable_lease()->add_tokens(i % 64);
  WriteMessage("lease", 3, lease);
  WriteMessage("model_config", 4, reply.model_config());
}

// generate_messages input: requests as (2-byte length, bytes), then the leave byte.
void GenerateSeeds() {
  auto frame = [](const v1::GenerateRequest& r) {
    const std::string bytes = r.SerializeAsString();
    return std::string{static_cast<char>(bytes.size() & 0xff), static_cast<char>(bytes.size() >> 8)} + bytes;
  };
  v1::GenerateRequest start;
  start.mutable_start()->set_session_id("s1");
  start.mutable_start()->set_prompt("the cat");
  start.mutable_start()->mutable_sampling()->set_temperature(0.5f);
  start.mutable_start()->mutable_sampling()->set_seed(3);
  start.mutable_start()->mutable_stopping()->set_max_new_tokens(4);
  start.mutable_start()->mutable_stopping()->add_stop("mat");
  v1::GenerateRequest next;
  next.mutable_continue_session()->set_session_id("s1");
  next.mutable_continue_session()->set_prompt(" sat");
  next.mutable_continue_session()->mutable_stopping()->set_max_new_tokens(3);
  v1::GenerateRequest close;
  close.mutable_close()->set_session_id("s1");
  v1::GenerateRequest cancel;
  cancel.mutable_cancel();
  Write("generate_messages", "start_continue_close", frame(start) + frame(next) + frame(close) + std::string(1, '\0'));
  Write("generate_messages", "start_cancel", frame(start) + frame(cancel) + std::string(1, '\1'));
  Write("generate_messages", "start_halfclose", frame(start) + std::string(1, '\0'));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  root = argv[1];
  EngineSeeds();
  ClusterSeeds();
  GenerateSeeds();
  return 0;
}
