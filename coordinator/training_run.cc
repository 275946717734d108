// The coordinator's step loop; see training_run.h. Mirrors engine LocalTrainer::Step:
// SampleShard -> (workers) ComputeShardGradient -> GradientTree -> ApplyUpdate.
#include "coordinator/training_run.h"

#include <spdlog/spdlog.h>

#include "engine/base/hash.h"
#include "engine/data/corpus.h"
#include "engine/train/local_steps.h"

namespace lanlm::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

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
      shard_loss_(static_cast<size_t>(options_.shards)),
      eval_(options_.model, options_.micro_batch, std::move(setup.validation_tokens), settings_.eval_every,
            settings_.eval_windows) {
  if (settings_.local_steps > 0 && state_.outer_m.size() != state_.params.size()) {
    // A state not made by PrepareRun (tests): rounds start with zero momentum. The momentum
    // lives in state_ so that checkpoints carry it (engine::ApplyResumeRounds).
    state_.outer_m.assign(state_.params.size(), 0.0f);
    state_.outer_settings =
        engine::OuterRoundSettings(settings_.local_steps, settings_.outer_lr, settings_.outer_momentum);
  }
  status_.total_steps = end_step();
  status_.step = state_.step;
  status_.fingerprint = state_.Fingerprint();
  if (Status opened = metrics_.OpenHistory(settings_.checkpoint_dir, state_.step); !opened.ok()) {
    spdlog::warn("run history: {}", opened.ToString());
  }
  status_.validation_loss = metrics_.Totals().validation_loss;  // a resumed run's newest
}

TrainingRun::~TrainingRun() {
  for (auto& [id, timer] : timers_) timer->cancel();
}

int64_t TrainingRun::RoundSteps() const {
  // Rounds end at multiples of H (or at the last step), whatever step the run resumed from, so
  // a run stopped and resumed at a round's end runs the same rounds as an uninterrupted one.
  const int64_t h = settings_.local_steps;
  return h > 0 ? std::min<int64_t>(h - state_.step % h, end_step() - state_.step) : 1;
}

int64_t TrainingRun::end_step() const {
  return settings_.stop_after > 0 ? std::min(settings_.stop_after, options_.steps) : options_.steps;
}

std::string TrainingRun::Who(const Connection& conn) const { return conn.worker_id + " (" + conn.name + ")"; }

void TrainingRun::Start() {
  spdlog::info("training {} steps from step {}: model {} B={} S={} params={} corpus train tokens={} wire={}",
               options_.steps, state_.step, options_.model.ToString(), options_.micro_batch, options_.shards,
               state_.params.size(), train_tokens_.size(), engine::WireName(static_cast<int>(settings_.wire)));
  running_ = true;
  if (state_.step >= end_step()) {
    End(true, "training finished");
    return;
  }
  PublishParams();
  BeginStep();
}

void TrainingRun::PublishParams() { params_ = Snapshot(); }

void TrainingRun::BeginStep() {
  leases_.StartStep(state_.step, options_.shards, settings_.shards_per_lease);
  relay_nodes_.clear();  // a new version: a new tree
  nonfinite_.clear();
  tree_.Reset();
  std::fill(shard_loss_.begin(), shard_loss_.end(), 0.0f);
  step_start_ = Clock::now();
  bytes_out_ = bytes_in_ = reissued_ = 0;
  compute_ms_ = commit_ms_ = 0.0;
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
  const LeaseInfo lease = leases_.Issue(connection);
  metrics_.LeaseIssued(lease.lease_id, conn.worker_id);
  const int T = options_.model.context, B = options_.micro_batch;
  const int64_t per_shard = int64_t{B} * (T + 1), steps = RoundSteps();
  // (steps, count, B, T+1): a local-steps round carries every inner step's block.
  std::vector<int32_t> tokens(static_cast<size_t>(steps * lease.count * per_shard));
  for (int64_t i = 0; i < steps * lease.count; ++i) {
    const Status sampled = engine::SampleShard(train_tokens_, options_.seed, lease.step + i / lease.count,
                                               lease.shard + i % lease.count, B, T, tokens.data() + i * per_shard);
    LANLM_CHECK(sampled.ok(), sampled.ToString());  // PrepareRun checked the corpus length
  }

  engine::ShardLease out;
  out.step = lease.step;
  out.shard = lease.shard;
  out.lease_id = lease.lease_id;
  const auto timeout = settings_.lease_timeout;
  out.timeout_ms = timeout.count();
  out.deadline_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             (std::chrono::system_clock::now() + timeout).time_since_epoch())
                             .count();
  out.micro_batch = B;
  out.shard_count = static_cast<int>(lease.count);
  if (settings_.local_steps > 0) out.local_steps = static_cast<int>(steps);
  bytes_out_ += static_cast<int64_t>(tokens.size()) * 4;
  out.tokens = std::move(tokens);
  // Protocol 6: the parameters follow their Lease, in forward order, so the worker starts
  // the forward pass as soon as the first layers have arrived. Protocol 7: or the Lease names
  // a peer that relays them.
  const bool needs_params = conn.known_version != state_.step;
  const Connection* source = needs_params ? RelaySourceFor(connection) : nullptr;
  if (source != nullptr) out.param_source = source->relay_address;
  if (needs_params) metrics_.ParamsFrom(conn.worker_id, source != nullptr ? source->worker_id : "coordinator");
  const bool direct = needs_params && source == nullptr;
  conn.link->SendLease(std::move(out));
  if (direct) {
    const Status sent = conn.link->SendParams(params_, 0);
    LANLM_CHECK(sent.ok(), sent.ToString());  // offset 0 always starts a chunk
    bytes_out_ += static_cast<int64_t>(params_->params.size()) * engine::WireBytes(static_cast<int>(settings_.wire));
  }
  if (needs_params) {
    conn.known_version = state_.step;
    // It now holds or receives this version: it can feed peers.
    if (!conn.relay_address.empty() && settings_.relay_fanout > 0) relay_nodes_.push_back({connection, 0});
  }

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
                              const std::string& name, int64_t cached_version, const std::string& relay_address) {
  if (ended_) {
    link->SendShutdown("training run is over", true);  // the worker closes (see End)
    return;
  }
  Connection& conn = connections_[connection];
  conn.link = std::move(link);
  conn.worker_id = worker_id;
  conn.name = name;
  conn.known_version = cached_version;
  conn.relay_address = relay_address;
  spdlog::info("worker {} joined (cached version {}{}); {} connected", Who(conn), cached_version,
               relay_address.empty() ? "" : ", relays parameters at " + relay_address, connections_.size());
  metrics_.WorkerJoined(worker_id, name, relay_address);
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
  metrics_.WorkerLeft(it->second.worker_id);
  // Peers it was feeding find out themselves (their fetch fails) and ask the coordinator.
  std::erase_if(relay_nodes_, [connection](const RelayNode& node) { return node.connection == connection; });
  connections_.erase(it);
  UpdateStatus();
  Dispatch();
}

void TrainingRun::OnLeaseRequest(int64_t connection, int64_t cached_version) {
  auto it = connections_.find(connection);
  if (it == connections_.end() || ended_) return;
  Connection& conn = it->second;
  conn.known_version = cached_version;
  if (!conn.wants_lease) {
    conn.wants_lease = true;
    waiting_.push_back(connection);
  }
  Dispatch();
}

void TrainingRun::OnBadMessage(int64_t connection, const Status& status) {
  auto it = connections_.find(connection);
  if (it == connections_.end() || ended_) return;
  it->second.link->Close(status);
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
  const auto tree_end = Clock::now();
  const int64_t steps = RoundSteps();
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
    if (settings_.local_steps > 0) {
      // Finish gave sum / S; the outer step wants the mean over the ceil(S/K) replicas.
      const int64_t replicas = (options_.shards + settings_.shards_per_lease - 1) / settings_.shards_per_lease;
      const float scale = static_cast<float>(options_.shards) / static_cast<float>(replicas);
      engine::OuterNesterovStep(settings_.outer_lr, settings_.outer_momentum, step_grad_.data(), scale,
                                state_.params.data(), state_.outer_m.data(), parameter_count(), pool_);
      state_.step += steps;
    } else {
      engine::ApplyUpdate(options_.adamw, step_grad_.data(), state_, pool_);
    }
  }
  if (Status finite = engine::CheckParametersFinite(state_.step - 1, state_.params.data(), parameter_count());
      !finite.ok()) {
    End(false, "training diverged", finite.message());
    return;
  }
  const auto now = Clock::now();
  last_loss_ = loss;
  const double wall = Seconds(now - step_start_);
  const double tokens =
      static_cast<double>(options_.shards) * options_.micro_batch * options_.model.context * static_cast<double>(steps);
  spdlog::info(
      "step {}/{} loss={:.4f} tok/s={:.0f} workers={} bytes_out={} bytes_in={} reissued={} wall_ms={:.1f} "
      "compute_ms={:.1f} commit_ms={:.1f} optimizer_ms={:.1f} tokens={:.0f}",
      state_.step, options_.steps, last_loss_, tokens / wall, connections_.size(), bytes_out_, bytes_in_, reissued_,
      wall * 1e3, compute_ms_, commit_ms_, Seconds(now - optimizer_start) * 1e3, tokens);
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    status_.tokens_per_second = tokens / wall;
  }
  const StepEnd end{.step = state_.step, .step_tokens = static_cast<int64_t>(tokens), .loss = last_loss_,
                    .step_s = wall, .tree_s = Seconds(tree_end - optimizer_start),
                    .optimizer_s = Seconds(now - tree_end), .bytes_in = bytes_in_, .bytes_out = bytes_out_,
                    .reissued = reissued_, .workers = static_cast<int>(connections_.size())};
  const bool evaluate = eval_.Due(state_.step, steps, end_step());
  if (!evaluate) metrics_.StepFinished(end);
  const int64_t every = settings_.checkpoint_every;
  const bool due = every > 0 && state_.step / every != (state_.step - steps) / every;
  if ((due || checkpoint_pending_) && state_.step < end_step()) {
    // A failed periodic checkpoint is retried after every step until one is written.
    checkpoint_pending_ = !WriteCheckpoint().ok();
  }
  UpdateStatus();
  if (state_.step < end_step()) {
    PublishParams();
    BeginStep();  // the workers compute the next step while this one is evaluated
  }
  if (evaluate) Validate(end);
  if (state_.step >= end_step()) End(true, "training finished");
}

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
  for (auto& [id, conn] : connections_) conn.link->SendShutdown(reason, finished);
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
               engine::Hex16(result.fingerprint));
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
