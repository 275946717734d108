// One leased shard on the worker, on its compute thread (protocol 6): the forward pass starts
// as soon as the first layers' parameters have arrived and waits before each later layer;
// the backward pass hands each range of the gradient to a GradientSender as soon as it is
// final, so the upload overlaps the rest of the backward pass; then the Commit and the next
// LeaseRequest (DESIGN.md §6). See worker.h.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "engine/train/gradient_tree.h"
#include "engine/train/local_steps.h"
#include "protos/convert.h"
#include "worker/worker.h"

namespace lanlm::worker {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

Status Worker::ComputeBlock(const LeaseTask& task, float* losses, GradientSender& sender,
                            const engine::ModelStreamHooks& hooks, const bool* abandoned) {
  const int shards = task.shards;
  const int64_t per_shard = int64_t{micro_batch_} * (config_.context + 1);
  const auto bytes = static_cast<size_t>(parameter_count_) * sizeof(float);
  // One gradient per shard (shard 0 in grad_), then their tree sum: the node the
  // coordinator's GradientTree would have built from them, bit for bit. The sum is taken
  // range by range as the last shard's backward pass finishes each (elementwise: same bits).
  std::vector<std::vector<float>> rest(static_cast<size_t>(shards - 1));
  std::vector<float*> block{grad_.data()};
  for (auto& g : rest) {
    g.resize(static_cast<size_t>(parameter_count_));
    block.push_back(g.data());
  }
  engine::ModelStreamHooks last = hooks;
  last.grads_final = [&](int64_t begin, int64_t end) {
    engine::GradientTree::SumBlockRange(block, begin, end, pool_);
    sender.Send(grad_.data(), begin, end);
  };
  for (int i = 0; i < shards; ++i) {
    if (stopping_) return CancelledError("stopping");
    std::memset(block[i], 0, bytes);
    const int32_t* tokens = task.tokens.data() + i * per_shard;
    // Shards after the first: the same parameters, so bf16 reuses the first's packed weights.
    losses[i] = model_->Forward(task.params, tokens, micro_batch_, pool_, &hooks, /*reuse_packed_weights=*/i > 0);
    if (*abandoned) return CancelledError("parameters never arrived");
    model_->Backward(task.params, tokens, micro_batch_, block[i], pool_, i + 1 == shards ? &last : nullptr);
  }
  return OkStatus();
}

Status Worker::ComputeLease(const LeaseTask& task, float* losses, GradientSender& sender, double* wait_ms) {
  const v1::Lease& lease = task.lease;
  engine::ModelStreamHooks hooks;
  bool abandoned = false;  // a params_ready said no: Forward stopped early
  hooks.params_ready = [this, wait_ms, &abandoned](int64_t end) {
    const auto start = Clock::now();
    abandoned = !arrival_.Wait(end) || stopping_;
    *wait_ms += Ms(Clock::now() - start);
    return !abandoned;
  };
  if (lease.local_steps() > 0) {
    if (!inner_) {
      return InvalidArgumentError("lease " + std::to_string(lease.lease_id()) + " has local_steps = " +
                                  std::to_string(lease.local_steps()) + " but the run sent no inner optimizer");
    }
    // A DiLoCo round starts from the whole block; grad_ receives the parameter difference.
    if (!hooks.params_ready(parameter_count_)) return CancelledError("parameters never arrived");
    LANLM_RETURN_IF_ERROR(engine::RunLocalSteps(*inner_, lease.step(), lease.local_steps(), task.shards, *model_,
                                                micro_batch_, task.params, task.tokens.data(), grad_.data(), losses,
                                                pool_, [this] { return stopping_.load(); }));
    sender.Send(grad_.data(), 0, parameter_count_);
    return OkStatus();
  }
  if (task.shards > 1) return ComputeBlock(task, losses, sender, hooks, &abandoned);
  std::memset(grad_.data(), 0, static_cast<size_t>(parameter_count_) * sizeof(float));
  losses[0] = model_->Forward(task.params, task.tokens.data(), micro_batch_, pool_, &hooks);
  if (abandoned) return CancelledError("parameters never arrived");
  hooks.grads_final = [&](int64_t begin, int64_t end) { sender.Send(grad_.data(), begin, end); };
  model_->Backward(task.params, task.tokens.data(), micro_batch_, grad_.data(), pool_, &hooks);
  return OkStatus();
}

Worker::LeaseOutcome Worker::RunLease(const LeaseTask& task) {
  const v1::Lease& lease = task.lease;
  LeaseOutcome outcome;
  const auto start = Clock::now();
  double wait_ms = 0.0;
  std::vector<float> losses(static_cast<size_t>(task.shards));
  GradientSender sender(*task.stream, *task.write_mu, lease.lease_id(), parameter_count_, wire_);
  if (Status computed = ComputeLease(task, losses.data(), sender, &wait_ms); !computed.ok()) {
    outcome.status = std::move(computed);  // nothing is committed; chunks already sent are dropped
    return outcome;
  }
  // Forward + backward only: the time spent waiting for parameters is the link's.
  const double compute_ms = Ms(Clock::now() - start) - wait_ms;
  if (stopping_) {
    outcome.status = CancelledError("stopping");
    return outcome;
  }
  if (Status sent = sender.Finish(); !sent.ok()) {
    outcome.status = std::move(sent);
    outcome.writable = false;
    return outcome;
  }
  v1::WorkerMessage out;
  v1::Commit* commit = out.mutable_commit();
  commit->set_lease_id(lease.lease_id());
  commit->set_floats(parameter_count_);
  commit->set_crc32c(sender.commit_crc());
  commit->set_loss(losses[0]);
  commit->set_compute_ms(compute_ms);
  if (task.shards > 1) {
    for (float l : losses) commit->add_shard_losses(l);
  }
  v1::WorkerMessage ask;
  // The lease's parameters are complete here (the forward pass waited for all of them).
  ask.mutable_lease_request()->set_cached_version(lease.step());
  ask.mutable_lease_request()->set_cached_run_id(lease.run_id());
  bool written = false;
  {
    std::lock_guard<std::mutex> lock(*task.write_mu);
    written = task.stream->Write(out) && task.stream->Write(ask);
  }
  if (!written) {
    outcome.status = UnavailableError("stream broke while committing");
    outcome.writable = false;
    return outcome;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.leases;
    stats_.gradient_bytes += sender.bytes();
  }
  spdlog::debug("worker {}: step {} shards {}+{} loss={:.4f} compute_ms={:.1f} param_wait_ms={:.1f}", options_.name,
                lease.step(), lease.shard(), task.shards, losses[0], compute_ms, wait_ms);
  return outcome;
}

}  // namespace lanlm::worker
