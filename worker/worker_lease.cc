// One leased shard on the worker: its gradient (or a local-steps round's parameter difference)
// computed with the engine on the worker's parameter copy, then streamed back to the
// coordinator as CRC-checked chunks and a Commit (DESIGN.md §6). See worker.h.
#include <spdlog/spdlog.h>

#include <chrono>

#include "engine/train/gradient_tree.h"
#include "engine/train/local_steps.h"
#include "engine/train/trainer.h"
#include "protos/convert.h"
#include "worker/worker.h"

namespace lanlm::worker {
namespace {

using Clock = std::chrono::steady_clock;
using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

}  // namespace

Status Worker::ComputeLease(const v1::Lease& lease, const std::vector<int32_t>& tokens, int shards, float* losses) {
  if (lease.local_steps() > 0) {
    if (!inner_) {
      return InvalidArgumentError("lease " + std::to_string(lease.lease_id()) + " has local_steps = " +
                                  std::to_string(lease.local_steps()) + " but the run sent no inner optimizer");
    }
    // A DiLoCo round: grad_ receives the parameter difference in place of a gradient.
    return engine::RunLocalSteps(*inner_, lease.step(), lease.local_steps(), shards, *model_, micro_batch_,
                                 params_.data(), tokens.data(), grad_.data(), losses, pool_,
                                 [this] { return stopping_.load(); });
  }
  if (shards == 1) {
    losses[0] = engine::ComputeShardGradient(*model_, params_.data(), tokens.data(), micro_batch_, grad_.data(), pool_);
    return OkStatus();
  }
  // One gradient per shard, then their tree sum: the node the coordinator's GradientTree
  // would have built from them, bit for bit.
  const int64_t per_shard = int64_t{micro_batch_} * (config_.context + 1);
  std::vector<std::vector<float>> block(static_cast<size_t>(shards));
  for (int i = 0; i < shards && !stopping_; ++i) {
    block[i].resize(static_cast<size_t>(parameter_count_));
    losses[i] = engine::ComputeShardGradient(*model_, params_.data(), tokens.data() + i * per_shard, micro_batch_,
                                             block[i].data(), pool_);
  }
  if (stopping_) return CancelledError("stopping");
  grad_ = engine::GradientTree::SumBlock(std::move(block), pool_);
  return OkStatus();
}

Status Worker::HandleLease(const v1::Lease& lease, Stream& stream, bool* writable) {
  if (lease.step() != cached_version_ || lease.run_id() != cached_run_) {
    Status mismatch = FailedPreconditionError(
        "lease " + std::to_string(lease.lease_id()) + " is for step " + std::to_string(lease.step()) + " of run " +
        lease.run_id().substr(0, 40) + " but the parameters here are version " + std::to_string(cached_version_) +
        " of run " + (cached_run_.empty() ? "none" : cached_run_));
    cached_version_ = -1;  // ask for the parameters again after reconnecting
    return mismatch;
  }
  LANLM_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protos::TokensFromProto(lease, config_, micro_batch_));
  LANLM_ASSIGN_OR_RETURN(const int shards, protos::LeaseShardCount(lease));
  const auto start = Clock::now();
  std::vector<float> losses(static_cast<size_t>(shards));
  LANLM_RETURN_IF_ERROR(ComputeLease(lease, tokens, shards, losses.data()));
  const double compute_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (stopping_) return CancelledError("stopping");

  std::vector<v1::FloatChunk> chunks = protos::MakeChunks(grad_.data(), parameter_count_, protos::kMaxChunkBytes, wire_);
  const uint32_t commit_crc = protos::ChunksCrc32c(chunks);
  v1::WorkerMessage out;
  for (v1::FloatChunk& chunk : chunks) {
    v1::GradientChunk* g = out.mutable_gradient_chunk();
    g->set_lease_id(lease.lease_id());
    *g->mutable_chunk() = std::move(chunk);
    if (!stream.Write(out)) {
      *writable = false;
      return UnavailableError("stream broke while sending a gradient");
    }
  }
  out.Clear();
  v1::Commit* commit = out.mutable_commit();
  commit->set_lease_id(lease.lease_id());
  commit->set_floats(parameter_count_);
  commit->set_crc32c(commit_crc);
  commit->set_loss(losses[0]);
  commit->set_compute_ms(compute_ms);
  if (shards > 1) {
    for (float l : losses) commit->add_shard_losses(l);
  }
  if (!stream.Write(out)) {
    *writable = false;
    return UnavailableError("stream broke while committing");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.leases;
    stats_.gradient_bytes += parameter_count_ * engine::WireBytes(static_cast<int>(wire_));
  }
  spdlog::debug("worker {}: step {} shards {}+{} loss={:.4f} compute_ms={:.1f}", options_.name, lease.step(),
                lease.shard(), shards, losses[0], compute_ms);
  v1::WorkerMessage ask;
  ask.mutable_lease_request()->set_cached_version(cached_version_);
  ask.mutable_lease_request()->set_cached_run_id(cached_run_);
  if (!stream.Write(ask)) {
    *writable = false;
    return UnavailableError("stream broke while asking for a lease");
  }
  return OkStatus();
}

}  // namespace lanlm::worker
