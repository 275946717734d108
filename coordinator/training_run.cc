// The coordinator's step loop; see training_run.h. Mirrors engine LocalTrainer::Step:
// SampleShard -> (workers) ComputeShardGradient -> GradientTree -> ApplyUpdate.
#include "coordinator/training_run.h"

#include <spdlog/spdlog.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include "engine/base/float_bits.h"
#include "engine/io/checkpoint.h"
#include "engine/data/corpus.h"

namespace lanlm::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Index of the first non-finite value in commit.shard_losses, or -1.
int64_t FirstNonFiniteLoss(const v1::Commit& commit) {
  for (int i = 0; i < commit.shard_losses_size(); ++i) {
    if (!IsFiniteBits(commit.shard_losses(i))) return i;
  }
  return -1;
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

std::shared_ptr<const v1::CoordinatorMessage> ShutdownMessage(const std::string& reason, bool finished) {
  auto message = std::make_shared<v1::CoordinatorMessage>();
  message->mutable_shutdown()->set_reason(reason);
  message->mutable_shutdown()->set_finished(finished);
  return message;
}

}  // namespace

TrainingRun::TrainingRun(RunSetup setup, RunSettings settings, boost::asio::io_context& io, engine::ThreadPool& pool,
                         std::function<void(const RunResult&)> on_done)
    : options_(std::move(setup.train)),
      tokenizer_(std::move(setup.tokenizer)),
      train_tokens_(std::move(setup.train_tokens)),
      corpus_hash_(setup.corpus_hash),
      run_id_(std::move(setup.run_id)),
      state_(std::move(setup.state)),
      settings_(std::move(settings)),
      io_(io),
      pool_(pool),
      on_done_(std::move(on_done)),
      tree_(options_.shards, static_cast<int64_t>(state_.params.size())),
      step_grad_(state_.params.size()),
      shard_loss_(static_cast<size_t>(options_.shards)) {
  status_.total_steps = end_step();
  status_.step = state_.step;
  status_.fingerprint = state_.Fingerprint();
}

TrainingRun::~TrainingRun() {
  for (auto& [id, timer] : timers_) timer->cancel();
}

int64_t TrainingRun::end_step() const {
  return settings_.stop_after > 0 ? std::min(settings_.stop_after, options_.steps) : options_.steps;
}

std::string TrainingRun::Who(const Connection& conn) const { return conn.worker_id + " (" + conn.name + ")"; }

int64_t TrainingRun::KnownVersion(const std::string& cached_run, int64_t cached_version) const {
  return cached_run == run_id_ ? cached_version : -1;  // another run's step numbers mean nothing here
}

void TrainingRun::Start() {
  spdlog::info("training run {}: {} steps from step {}: model {} B={} S={} params={} corpus train tokens={}", run_id_,
               options_.steps, state_.step, options_.model.ToString(), options_.micro_batch, options_.shards, state_.params.size(),
               train_tokens_.size());
  running_ = true;
  if (state_.step >= end_step()) {
    End(true, "training finished");
    return;
  }
  RebuildParamChunks();
  BeginStep();
}

void TrainingRun::RebuildParamChunks() {
  param_chunks_.clear();
  param_chunk_bytes_ = 0;
  for (v1::FloatChunk& chunk : protos::MakeChunks(state_.params.data(), static_cast<int64_t>(state_.params.size()))) {
    auto message = std::make_shared<v1::CoordinatorMessage>();
    v1::ParamChunk* param = message->mutable_param_chunk();
    param->set_version(state_.step);
    param->set_run_id(run_id_);
    param_chunk_bytes_ += static_cast<int64_t>(chunk.data().size());
    *param->mutable_chunk() = std::move(chunk);
    param_chunks_.push_back(std::move(message));
  }
}

void TrainingRun::BeginStep() {
  leases_.StartStep(state_.step, options_.shards, settings_.shards_per_lease);
  nonfinite_.clear();
  tree_.Reset();
  std::fill(shard_loss_.begin(), shard_loss_.end(), 0.0f);
  step_start_ = Clock::now();
  bytes_out_ = bytes_in_ = reissued_ = 0;
  compute_ms_ = 0.0;
  Dispatch();
}

void TrainingRun::Dispatch() {
  if (!running_) return;
  const int connected = static_cast<int>(connections_.size());
  if (connected < settings_.min_workers) {
    if (!logged_waiting_) {
      spdlog::info("step {}: waiting for workers: {} of --min-workers={} connected", state_.step, connected,
                   settings_.min_workers);
      logged_waiting_ = true;
    }
    return;
  }
  logged_waiting_ = false;
  while (!waiting_.empty() && leases_.HasPending()) {
    const int64_t id = waiting_.front();
    waiting_.pop_front();
    auto it = connections_.find(id);
    if (it == connections_.end() || !it->second.wants_lease) continue;
    IssueLease(id, it->second);
  }
}

void TrainingRun::IssueLease(int64_t connection, Connection& conn) {
  conn.wants_lease = false;
  if (conn.known_version != state_.step) {
    for (const auto& chunk : param_chunks_) conn.link->Send(chunk);
    bytes_out_ += param_chunk_bytes_;
    conn.known_version = state_.step;
  }
  const LeaseInfo lease = leases_.Issue(connection);
  const int T = options_.model.context, B = options_.micro_batch;
  const int64_t per_shard = int64_t{B} * (T + 1);
  std::vector<int32_t> tokens(static_cast<size_t>(lease.count * per_shard));
  for (int64_t i = 0; i < lease.count; ++i) {
    const Status sampled = engine::SampleShard(train_tokens_, options_.seed, lease.step, lease.shard + i, B, T,
                                               tokens.data() + i * per_shard);
    LANLM_CHECK(sampled.ok(), sampled.ToString());  // PrepareRun checked the corpus length
  }

  auto message = std::make_shared<v1::CoordinatorMessage>();
  v1::Lease* out = message->mutable_lease();
  out->set_step(lease.step);
  out->set_shard(lease.shard);
  out->set_lease_id(lease.lease_id);
  const auto timeout = settings_.lease_timeout;
  out->set_timeout_ms(timeout.count());
  out->set_deadline_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                (std::chrono::system_clock::now() + timeout).time_since_epoch())
                                .count());
  out->set_micro_batch(B);
  out->set_shard_count(static_cast<int32_t>(lease.count));
  out->set_run_id(run_id_);
  protos::TokensToProto(tokens.data(), static_cast<int64_t>(tokens.size()), out);
  bytes_out_ += static_cast<int64_t>(tokens.size()) * 4;
  conn.link->Send(std::move(message));

  auto timer = std::make_unique<boost::asio::steady_timer>(io_, timeout);
  const int64_t lease_id = lease.lease_id;
  timer->async_wait([this, lease_id](const boost::system::error_code& ec) {
    if (!ec) OnLeaseDeadline(lease_id);
  });
  timers_[lease_id] = std::move(timer);
}

void TrainingRun::CancelTimer(int64_t lease_id) {
  auto it = timers_.find(lease_id);
  if (it == timers_.end()) return;
  it->second->cancel();
  timers_.erase(it);
}

void TrainingRun::OnConnected(int64_t connection, std::shared_ptr<WorkerLink> link, const std::string& worker_id,
                              const std::string& name, const std::string& cached_run, int64_t cached_version) {
  if (ended_) {
    link->Send(ShutdownMessage("training run is over", true));  // the worker closes (see End)
    return;
  }
  Connection& conn = connections_[connection];
  conn.link = std::move(link);
  conn.worker_id = worker_id;
  conn.name = name;
  conn.known_version = KnownVersion(cached_run, cached_version);
  if (cached_version >= 0 && conn.known_version < 0) {
    spdlog::info("worker {} holds version {} of another run ({}); sending it this run's parameters", Who(conn),
                 cached_version, cached_run.empty() ? "none" : cached_run.substr(0, 32));
  }
  spdlog::info("worker {} joined (cached version {}); {} connected", Who(conn), conn.known_version,
               connections_.size());
  UpdateStatus();
  Dispatch();
}

void TrainingRun::OnDisconnected(int64_t connection, const std::string& reason) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  const std::vector<LeaseInfo> released = leases_.ReleaseConnection(connection);
  for (const LeaseInfo& lease : released) CancelTimer(lease.lease_id);
  reissued_ += static_cast<int64_t>(released.size());
  spdlog::info("worker {} left: {}; {} lease(s) back in the queue; {} connected", Who(it->second), reason,
               released.size(), connections_.size() - 1);
  connections_.erase(it);
  UpdateStatus();
  Dispatch();
}

void TrainingRun::OnMessage(int64_t connection, const v1::WorkerMessage& message) {
  auto it = connections_.find(connection);
  if (it == connections_.end() || ended_) return;
  Connection& conn = it->second;
  switch (message.kind_case()) {
    case v1::WorkerMessage::kLeaseRequest:
      conn.known_version =
          KnownVersion(message.lease_request().cached_run_id(), message.lease_request().cached_version());
      if (!conn.wants_lease) {
        conn.wants_lease = true;
        waiting_.push_back(connection);
      }
      Dispatch();
      break;
    case v1::WorkerMessage::kGradientChunk:
      OnGradientChunk(connection, conn, message.gradient_chunk());
      break;
    case v1::WorkerMessage::kCommit:
      OnCommit(connection, conn, message.commit());
      break;
    default:
      conn.link->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unexpected message kind after Hello"));
      break;
  }
}

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

void TrainingRun::OnGradientChunk(int64_t connection, Connection& conn, const v1::GradientChunk& chunk) {
  const int64_t lease_id = chunk.lease_id();
  bytes_in_ += static_cast<int64_t>(chunk.chunk().data().size());
  if (conn.failed.count(lease_id)) return;
  if (Status active = leases_.CheckActive(lease_id, connection); !active.ok()) {
    if (conn.failed.size() >= 64) conn.failed.erase(conn.failed.begin());
    conn.failed[lease_id] = std::move(active);
    return;
  }
  auto [it, inserted] = conn.gradients.try_emplace(lease_id, parameter_count());
  Status added = it->second.Add(chunk.chunk());
  if (!added.ok()) FailLease(conn, lease_id, std::move(added));
}

void TrainingRun::SendResult(Connection& conn, int64_t lease_id, const Status& status) {
  auto message = std::make_shared<v1::CoordinatorMessage>();
  v1::CommitResult* result = message->mutable_commit_result();
  result->set_lease_id(lease_id);
  result->set_code(static_cast<int>(status.code()));
  result->set_message(status.message());
  conn.link->Send(std::move(message));
}

void TrainingRun::OnCommit(int64_t connection, Connection& conn, const v1::Commit& commit) {
  const int64_t lease_id = commit.lease_id();
  Status status = AcceptCommit(connection, conn, commit);
  if (!status.ok()) {
    spdlog::warn("step {}: commit of lease {} by worker {} rejected: {}", state_.step, lease_id, Who(conn),
                 status.ToString());
  }
  SendResult(conn, lease_id, status);
  if (!diverged_.empty()) {
    End(false, "training diverged", diverged_);
    return;
  }
  if (status.ok() && leases_.StepComplete()) FinishStep();
}

Status TrainingRun::AcceptCommit(int64_t connection, Connection& conn, const v1::Commit& commit) {
  const int64_t lease_id = commit.lease_id();
  if (auto it = conn.failed.find(lease_id); it != conn.failed.end()) {
    Status status = std::move(it->second);
    conn.failed.erase(it);
    return status;
  }
  LANLM_RETURN_IF_ERROR(leases_.CheckActive(lease_id, connection));
  auto it = conn.gradients.find(lease_id);
  const int64_t received = it == conn.gradients.end() ? 0 : it->second.received();
  Status bad;
  if (commit.floats() != parameter_count()) {
    bad = InvalidArgumentError("commit says the gradient has " + std::to_string(commit.floats()) +
                               " floats, the model has " + std::to_string(parameter_count()));
  } else if (received != parameter_count()) {
    bad = InvalidArgumentError("gradient incomplete: " + std::to_string(received) + " of " +
                               std::to_string(parameter_count()) + " floats received");
  } else if (it->second.crc32c() != commit.crc32c()) {
    bad = DataLossError("gradient CRC32C mismatch over the whole block");
  } else if (!IsFiniteBits(commit.loss())) {
    bad = InvalidArgumentError("shard loss is not finite");
  } else if (const LeaseInfo* lease = leases_.Find(lease_id);
             lease != nullptr && lease->count > 1 && commit.shard_losses_size() != lease->count) {
    bad = InvalidArgumentError("commit has " + std::to_string(commit.shard_losses_size()) +
                               " shard losses for a lease of " + std::to_string(lease->count) + " shards");
  } else if (const int64_t at = FirstNonFiniteLoss(commit); at >= 0) {
    bad = InvalidArgumentError("shard_losses[" + std::to_string(at) + "] is not finite");
  } else if (const int64_t at = FirstNonFinite(it->second.block().data(), parameter_count()); at >= 0) {
    bad = InvalidArgumentError("gradient element " + std::to_string(at) + " is not finite");
  }
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
    shard_loss_[static_cast<size_t>(lease.shard + i)] = lease.count == 1 ? commit.loss() : commit.shard_losses(i);
  }
  compute_ms_ += commit.compute_ms();
  return OkStatus();
}

void TrainingRun::OnLeaseDeadline(int64_t lease_id) {
  timers_.erase(lease_id);
  for (auto& [id, conn] : connections_) conn.gradients.erase(lease_id);
  if (!leases_.Release(lease_id, /*expired=*/true)) return;
  ++reissued_;
  spdlog::warn("step {}: lease {} passed its {} ms deadline; re-issuing its shard", state_.step, lease_id,
               settings_.lease_timeout.count());
  Dispatch();
}

void TrainingRun::FinishStep() {
  const auto optimizer_start = Clock::now();
  tree_.Finish(step_grad_.data(), pool_);
  float loss = 0.0f;
  for (float l : shard_loss_) loss += l;
  loss /= static_cast<float>(options_.shards);
  if (Status finite = engine::CheckGradientFinite(state_.step, loss, step_grad_.data(), parameter_count());
      !finite.ok()) {
    End(false, "training diverged", finite.message());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(params_mu_);
    engine::ApplyUpdate(options_.adamw, step_grad_.data(), state_, pool_);
  }
  if (Status finite = engine::CheckParametersFinite(state_.step - 1, state_.params.data(), parameter_count());
      !finite.ok()) {
    End(false, "training diverged", finite.message());
    return;
  }
  const auto now = Clock::now();
  last_loss_ = loss;
  const double wall = Seconds(now - step_start_);
  const double tokens = static_cast<double>(options_.shards) * options_.micro_batch * options_.model.context;
  spdlog::info(
      "step {}/{} loss={:.4f} tok/s={:.0f} workers={} bytes_out={} bytes_in={} reissued={} wall_ms={:.1f} "
      "compute_ms={:.1f} optimizer_ms={:.1f}",
      state_.step, options_.steps, last_loss_, tokens / wall, connections_.size(), bytes_out_, bytes_in_, reissued_,
      wall * 1e3, compute_ms_, Seconds(now - optimizer_start) * 1e3);
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    status_.tokens_per_second = tokens / wall;
  }
  const bool due = settings_.checkpoint_every > 0 && state_.step % settings_.checkpoint_every == 0;
  if ((due || checkpoint_pending_) && state_.step < end_step()) {
    // A failed periodic checkpoint is retried after every step until one is written.
    checkpoint_pending_ = !WriteCheckpoint().ok();
  }
  UpdateStatus();
  if (state_.step >= end_step()) {
    End(true, "training finished");
    return;
  }
  RebuildParamChunks();
  BeginStep();
}

Status TrainingRun::WriteCheckpoint() {
  if (settings_.checkpoint_dir.empty()) return OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(settings_.checkpoint_dir, ec);
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08" PRId64 ".safetensors", state_.step);
  const std::string path = (std::filesystem::path(settings_.checkpoint_dir) / name).string();
  engine::Checkpoint checkpoint;
  checkpoint.config = state_.config;
  checkpoint.step = state_.step;
  checkpoint.seed = options_.seed;
  checkpoint.corpus_hash = corpus_hash_;
  checkpoint.run_id = run_id_;
  checkpoint.training = options_.ToMap();
  checkpoint.tokenizer = tokenizer_->Serialize();
  checkpoint.params = state_.params;
  checkpoint.adam_m = state_.adam_m;
  checkpoint.adam_v = state_.adam_v;
  const Status saved = engine::SaveCheckpoint(path, checkpoint);
  std::lock_guard<std::mutex> lock(status_mu_);
  if (!saved.ok()) {
    ++status_.checkpoint_failures;
    status_.checkpoint_error = "step " + std::to_string(state_.step) + ": " + saved.message();
    spdlog::error("step {}: checkpoint {} failed ({} failure(s) so far; retried after the next step): {}; last good "
                  "checkpoint: {}",
                  state_.step, path, status_.checkpoint_failures, saved.ToString(), LastGood());
    return saved;
  }
  spdlog::info("step {}: checkpoint written to {}", state_.step, path);
  last_checkpoint_ = path;
  status_.last_checkpoint = path;
  status_.checkpoint_error.clear();
  return OkStatus();
}

std::string TrainingRun::LastGood() const { return last_checkpoint_.empty() ? "none" : last_checkpoint_; }

void TrainingRun::Stop(const std::string& reason) {
  if (ended_) return;
  spdlog::info("stopping at step {} ({}): abandoning {} of {} shards of the step in progress", state_.step, reason,
               options_.shards - leases_.done_count(), options_.shards);
  End(false, reason);
}

void TrainingRun::End(bool finished, const std::string& reason, const std::string& error) {
  ended_ = true;
  running_ = false;
  accepting_ = false;
  for (auto& [id, timer] : timers_) timer->cancel();
  timers_.clear();
  std::string failure = error.empty() ? "" : error + "; no checkpoint of this state was written; last good "
                                                         "checkpoint: " + LastGood();
  if (error.empty() && (state_.step > 0 || !finished)) {
    if (Status saved = WriteCheckpoint(); !saved.ok()) {
      failure = "the checkpoint of step " + std::to_string(state_.step) + " could not be written to --checkpoint-dir " +
                settings_.checkpoint_dir + " (" + saved.message() + "); last good checkpoint: " + LastGood();
    }
  }
  // The stream stays open until the worker closes its side, which it does after reading the
  // Shutdown (TrainingServer::Wait cancels whatever is left after a grace period). Ending it
  // here would let this process exit while the Shutdown is still in the worker's receive
  // buffer: closing a socket with unread input sends a reset, the worker can lose the
  // message, and a worker told nothing reconnects to a coordinator that is gone.
  const auto shutdown = ShutdownMessage(reason, finished);
  for (auto& [id, conn] : connections_) conn.link->Send(shutdown);
  connections_.clear();
  waiting_.clear();
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    status_.mode = failure.empty() ? "finished" : "failed";
  }
  UpdateStatus();
  RunResult result;
  result.finished = finished;
  result.step = state_.step;
  result.loss = last_loss_;
  result.fingerprint = state_.Fingerprint();
  result.checkpoint = last_checkpoint_;
  result.error = failure;
  if (!failure.empty()) spdlog::error("{}", failure);
  spdlog::info("{} at step {} loss={:.4f} fingerprint={}", finished ? "finished" : "stopped", result.step, result.loss,
               Hex(result.fingerprint));
  if (on_done_) on_done_(result);
}

void TrainingRun::UpdateStatus() {
  const uint64_t fingerprint = state_.Fingerprint();
  std::lock_guard<std::mutex> lock(status_mu_);
  status_.step = state_.step;
  status_.loss = last_loss_;
  status_.workers = static_cast<int>(connections_.size());
  status_.fingerprint = fingerprint;
}

RunStatus TrainingRun::status() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  return status_;
}

std::shared_ptr<const ParamSnapshot> TrainingRun::Snapshot() const {
  std::lock_guard<std::mutex> lock(params_mu_);
  if (!snapshot_ || snapshot_->version != state_.step) {
    auto snapshot = std::make_shared<ParamSnapshot>();
    snapshot->config = state_.config;
    snapshot->params = state_.params;
    snapshot->version = state_.step;
    snapshot->tokenizer = tokenizer_;
    snapshot_ = std::move(snapshot);
  }
  return snapshot_;
}

}  // namespace lanlm::coordinator
