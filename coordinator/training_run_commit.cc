// The commit half of the coordinator's step loop: gradient chunks, commits and their checks,
// failed leases, checkpoints; see training_run.h.
#include <spdlog/spdlog.h>

#include "coordinator/training_run.h"
#include "engine/base/float_bits.h"
#include "engine/train/training_checkpoint.h"

namespace lanlm::coordinator {
namespace {

// Index of the first non-finite value in commit.shard_losses, or -1.
int64_t FirstNonFiniteLoss(const engine::ShardCommit& commit) {
  for (size_t i = 0; i < commit.shard_losses.size(); ++i) {
    if (!IsFiniteBits(commit.shard_losses[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace

void TrainingRun::FailLease(Connection& conn, int64_t lease_id, Status status) {
  conn.gradients.erase(lease_id);
  if (leases_.Release(lease_id, /*expired=*/false)) {
    CancelTimer(lease_id);
    ++reissued_;
    spdlog::warn("step {}: lease {} of worker {} failed: {}; shard back in the queue", state_.step, lease_id, Who(conn),
                 status.ToString());
  }
  // Bound what a misbehaving client can make us remember.
  if (conn.failed.size() >= 64) conn.failed.erase(conn.failed.begin());
  conn.failed[lease_id] = std::move(status);
  Dispatch();
}

void TrainingRun::OnGradientChunk(int64_t connection, engine::GradientChunk chunk) {
  auto found = connections_.find(connection);
  if (found == connections_.end() || ended_) return;
  Connection& conn = found->second;
  const int64_t lease_id = chunk.lease_id;
  bytes_in_ += static_cast<int64_t>(chunk.chunk.data.size());
  if (conn.failed.count(lease_id)) return;
  if (Status active = leases_.CheckActive(lease_id, connection); !active.ok()) {
    if (conn.failed.size() >= 64) conn.failed.erase(conn.failed.begin());
    conn.failed[lease_id] = std::move(active);
    return;
  }
  // Protocol 6: a worker streams each range as its backward pass finishes it, last layer first.
  auto [it, inserted] = conn.gradients.try_emplace(lease_id, parameter_count(), engine::kMaxFloatChunkBytes,
                                                   settings_.wire, engine::ChunkOrder::kAnyOrder);
  Status added = it->second.Add(chunk.chunk);
  if (!added.ok()) FailLease(conn, lease_id, std::move(added));
}

void TrainingRun::SendResult(Connection& conn, int64_t lease_id, const Status& status) {
  conn.link->SendCommitResult(lease_id, status);
}

void TrainingRun::OnCommit(int64_t connection, const engine::ShardCommit& commit) {
  auto found = connections_.find(connection);
  if (found == connections_.end() || ended_) return;
  Connection& conn = found->second;
  const int64_t lease_id = commit.lease_id;
  Status status = AcceptCommit(connection, conn, commit);
  if (!status.ok()) {
    spdlog::warn("step {}: commit of lease {} by worker {} rejected: {}", state_.step, lease_id, Who(conn),
                 status.ToString());
    metrics_.CommitRejected(status.code());
  }
  SendResult(conn, lease_id, status);
  if (!diverged_.empty()) {
    End(false, "training diverged", diverged_);
    return;
  }
  if (status.ok() && leases_.StepComplete()) FinishStep();
}

// The checks of a commit against its lease and the gradient received for it; OK or why not.
Status TrainingRun::CheckCommit(const engine::ShardCommit& commit, engine::ChunkAssembler* gradient) {
  const int64_t received = gradient == nullptr ? 0 : gradient->received();
  if (commit.floats != parameter_count()) {
    return InvalidArgumentError("commit says the gradient has " + std::to_string(commit.floats) +
                                " floats, the model has " + std::to_string(parameter_count()));
  }
  if (received != parameter_count()) {
    const int64_t gap = gradient == nullptr ? 0 : gradient->FirstMissing();
    return InvalidArgumentError("gradient incomplete: " + std::to_string(received) + " of " +
                                std::to_string(parameter_count()) + " floats received; the first missing is at offset " +
                                std::to_string(gap));
  }
  if (gradient->crc32c() != commit.crc32c) return DataLossError("gradient CRC32C mismatch over the whole block");
  if (!IsFiniteBits(commit.loss)) return InvalidArgumentError("shard loss is not finite");
  const LeaseInfo* lease = leases_.Find(commit.lease_id);
  const auto losses = static_cast<int64_t>(commit.shard_losses.size());
  if (lease != nullptr && lease->count > 1 && losses != lease->count) {
    return InvalidArgumentError("commit has " + std::to_string(losses) + " shard losses for a lease of " +
                                std::to_string(lease->count) + " shards");
  }
  if (const int64_t at = FirstNonFiniteLoss(commit); at >= 0) {
    return InvalidArgumentError("shard_losses[" + std::to_string(at) + "] is not finite");
  }
  if (const int64_t at = FirstNonFinite(gradient->block().data(), parameter_count()); at >= 0) {
    return InvalidArgumentError("gradient element " + std::to_string(at) + " is not finite");
  }
  return OkStatus();
}

Status TrainingRun::AcceptCommit(int64_t connection, Connection& conn, const engine::ShardCommit& commit) {
  const int64_t lease_id = commit.lease_id;
  if (auto it = conn.failed.find(lease_id); it != conn.failed.end()) {
    Status status = std::move(it->second);
    conn.failed.erase(it);
    return status;
  }
  LANLM_RETURN_IF_ERROR(leases_.CheckActive(lease_id, connection));
  const auto start = std::chrono::steady_clock::now();
  auto it = conn.gradients.find(lease_id);
  Status bad = CheckCommit(commit, it == conn.gradients.end() ? nullptr : &it->second);
  if (!bad.ok()) {
    // A diverged model gives the same non-finite gradient on every try (the computation is
    // deterministic): a second one for a shard stops the run instead of re-issuing forever.
    const LeaseInfo* lease = leases_.Find(lease_id);
    if (lease != nullptr && bad.message().find("not finite") != std::string::npos &&
        ++nonfinite_[lease->shard] >= 2) {
      diverged_ = "training diverged at step " + std::to_string(state_.step) + ": shard " +
                  std::to_string(lease->shard) + " gave a non-finite result twice (" + bad.message() + ")";
    }
    FailLease(conn, lease_id, bad);
    conn.failed.erase(lease_id);
    return bad;
  }
  LANLM_ASSIGN_OR_RETURN(LeaseInfo lease, leases_.Complete(lease_id, connection));
  CancelTimer(lease_id);
  std::vector<float> grad = it->second.Take();
  conn.gradients.erase(it);
  const Status added = tree_.Add(lease.shard, lease.block, std::move(grad), pool_);
  LANLM_CHECK(added.ok(), added.ToString());  // the lease table admits each shard once
  for (int64_t i = 0; i < lease.count; ++i) {
    shard_loss_[static_cast<size_t>(lease.shard + i)] =
        lease.count == 1 ? commit.loss : commit.shard_losses[static_cast<size_t>(i)];
  }
  compute_ms_ += commit.compute_ms;
  // The whole-gradient checks and tree add, on the loop (issue 9: chunk-wise adds would hide it).
  commit_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  metrics_.LeaseCommitted(lease_id, conn.worker_id, lease.count * options_.micro_batch * options_.model.context,
                          commit.compute_ms);
  return OkStatus();
}

void TrainingRun::Validate(StepEnd end) {
  // state_.params is written only on this thread (FinishStep), so reading it here is safe;
  // Snapshot() on other threads only reads it too.
  const auto start = std::chrono::steady_clock::now();
  end.validation_loss = static_cast<float>(eval_.Evaluate(state_.params.data(), pool_));
  end.validation_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("step {} validation loss={:.4f} eval_ms={:.1f}", end.step, end.validation_loss, end.validation_s * 1e3);
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    status_.validation_loss = end.validation_loss;
  }
  metrics_.StepFinished(end);
}

Status TrainingRun::WriteCheckpoint() {
  if (settings_.checkpoint_dir.empty()) return OkStatus();
  // A copy: Snapshot() reads state_ from other threads meanwhile.
  const engine::Checkpoint checkpoint =
      engine::MakeTrainingCheckpoint(state_, options_, *tokenizer_, corpus_hash_, run_id_);
  StatusOr<std::string> path = engine::StepCheckpointPath(settings_.checkpoint_dir, state_.step);
  const Status saved = path.ok() ? engine::SaveCheckpoint(*path, checkpoint) : path.status();
  std::lock_guard<std::mutex> lock(status_mu_);
  if (!saved.ok()) {
    ++status_.checkpoint_failures;
    status_.checkpoint_error = "step " + std::to_string(state_.step) + ": " + saved.message();
    spdlog::error("step {}: checkpoint {} failed ({} failure(s) so far; retried after the next step): {}; last good "
                  "checkpoint: {}",
                  state_.step, path.ok() ? *path : settings_.checkpoint_dir, status_.checkpoint_failures,
                  saved.ToString(), LastGood());
    metrics_.CheckpointWritten(state_.step, path.ok() ? *path : settings_.checkpoint_dir, false);
    return saved;
  }
  spdlog::info("step {}: checkpoint written to {}", state_.step, *path);
  last_checkpoint_ = *path;
  status_.last_checkpoint = *path;
  status_.checkpoint_error.clear();
  metrics_.CheckpointWritten(state_.step, *path, true);
  return OkStatus();
}

std::string TrainingRun::LastGood() const { return last_checkpoint_.empty() ? "none" : last_checkpoint_; }

}  // namespace lanlm::coordinator
