// TrainingServer wiring; see coordinator_server.h.
#include "coordinator/coordinator_server.h"

#include <boost/asio/post.hpp>
#include <algorithm>

#include "engine/base/hash.h"
#include "engine/io/atomic_file.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"

namespace lanlm::coordinator {

namespace {

// A local-steps lease carries H x K shards of tokens in one message (cluster.proto Lease).
Status CheckLocalSteps(const CoordinatorOptions& options, const engine::TrainOptions& train) {
  if (options.local_steps == 0) return OkStatus();
  if (options.stop_after > 0 && options.stop_after < train.steps && options.stop_after % options.local_steps != 0) {
    return InvalidArgumentError("--stop-after " + std::to_string(options.stop_after) + " is not a multiple of --local-steps " +
                                std::to_string(options.local_steps) +
                                ": rounds end at multiples of H, and a run stopped inside a round would not resume "
                                "into the rounds of an uninterrupted run");
  }
  const int64_t shards = std::min(options.shards_per_lease, train.shards);
  const int64_t tokens = int64_t{options.local_steps} * shards * train.micro_batch * (train.model.context + 1);
  if (tokens * 4 > protos::kMaxChunkBytes) {
    return InvalidArgumentError("--local-steps " + std::to_string(options.local_steps) + " x " +
                                std::to_string(shards) + " shards per lease x B x (T+1) = " + std::to_string(tokens) +
                                " tokens per lease, more than " + std::to_string(protos::kMaxChunkBytes / 4) +
                                " (one message); use fewer local steps or --shards-per-lease");
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<TrainingServer>> TrainingServer::Start(const CoordinatorOptions& options,
                                                                const GivenFlags& given, bool handle_signals,
                                                                ExtraServices extra, const HostSecurity& security) {
  LANLM_ASSIGN_OR_RETURN(std::string token,
                         protos::ResolveClusterToken(options.cluster_token, options.cluster_token_file));
  const int per_lease = options.shards_per_lease;
  if (per_lease < 1 || per_lease > protos::kMaxShardsPerLease || (per_lease & (per_lease - 1)) != 0) {
    return InvalidArgumentError("--shards-per-lease " + std::to_string(per_lease) + " is not a power of two in [1, " +
                                std::to_string(protos::kMaxShardsPerLease) + "]");
  }
  LANLM_ASSIGN_OR_RETURN(const engine::WireFormat wire, engine::ParseWireFormat(options.wire));
  if (options.param_chunk_bytes <= 0 || options.param_chunk_bytes % 4 != 0 ||
      options.param_chunk_bytes > protos::kMaxChunkBytes) {
    return InvalidArgumentError("param_chunk_bytes = " + std::to_string(options.param_chunk_bytes) +
                                " is not a positive multiple of 4 up to " + std::to_string(protos::kMaxChunkBytes));
  }
  if (!options.checkpoint_dir.empty()) {
    LANLM_RETURN_IF_ERROR(engine::PrepareWritableDir(options.checkpoint_dir, "--checkpoint-dir"));
  }
  LANLM_ASSIGN_OR_RETURN(RunSetup setup, PrepareRun(options, given));
  LANLM_RETURN_IF_ERROR(CheckLocalSteps(options, setup.train));

  std::unique_ptr<TrainingServer> server(new TrainingServer());
  TrainingServer* self = server.get();
  self->done_future_ = self->done_.get_future();
  self->pool_ = std::make_unique<engine::ThreadPool>(options.threads);

  ClusterIdentity identity;
  identity.config = setup.train.model;
  identity.config_hash = setup.train.model.Hash();
  identity.tokenizer_hash = setup.tokenizer->Hash();
  identity.micro_batch = setup.train.micro_batch;
  identity.parameter_count = static_cast<int64_t>(setup.state.params.size());
  identity.lease_timeout_ms = options.lease_timeout_ms;
  identity.run_id = setup.run_id;
  identity.token = std::move(token);
  identity.wire = wire;
  identity.precision = setup.train.precision;
  identity.local_steps = options.local_steps;
  identity.adamw = setup.train.adamw;
  identity.param_chunk_bytes = options.param_chunk_bytes;

  RunSettings settings;
  settings.min_workers = options.min_workers;
  settings.lease_timeout = std::chrono::milliseconds(options.lease_timeout_ms);
  settings.shards_per_lease = per_lease;
  settings.checkpoint_dir = options.checkpoint_dir;
  settings.checkpoint_every = options.checkpoint_every;
  settings.stop_after = options.stop_after;
  settings.wire = wire;
  settings.local_steps = options.local_steps;
  settings.outer_lr = options.outer_lr;
  settings.outer_momentum = options.outer_momentum;
  settings.eval_every = options.eval_every;
  settings.eval_windows = options.eval_windows;
  settings.relay_fanout = options.relay_fanout;
  self->run_ = std::make_unique<TrainingRun>(std::move(setup), settings, self->host_.io(), *self->pool_,
                                             [self](const RunResult& result) { self->done_.set_value(result); });
  self->cluster_service_ = std::make_unique<ClusterService>(std::move(identity), self->host_.io(), *self->run_);
  TrainingRun* run = self->run_.get();
  Extras extras;
  if (extra) extras = extra([run] { return run->Snapshot(); }, *self->pool_);
  LANLM_RETURN_IF_ERROR(extras.refusal);
  const std::string config_text = run->options().model.ToString();
  auto status = [run, config_text](v1::GetStatusReply* reply) {
    const RunStatus status = run->status();
    reply->set_mode(status.mode);
    reply->set_step(status.step);
    reply->set_total_steps(status.total_steps);
    reply->set_loss(status.loss);
    reply->set_validation_loss(status.validation_loss);
    reply->set_tokens_per_second(status.tokens_per_second);
    reply->set_workers(status.workers);
    reply->set_model_config(config_text);
    reply->set_fingerprint(engine::Hex16(status.fingerprint));
    reply->set_last_checkpoint(status.last_checkpoint);
    reply->set_checkpoint_error(status.checkpoint_error);
    reply->set_checkpoint_failures(status.checkpoint_failures);
    std::vector<WorkerRecord> workers = run->metrics().Workers();
    std::stable_sort(workers.begin(), workers.end(),
                     [](const WorkerRecord& a, const WorkerRecord& b) { return a.connected > b.connected; });
    for (const WorkerRecord& w : workers) {
      v1::WorkerStatus* out = reply->add_worker_list();
      out->set_id(w.id);
      out->set_name(w.name);
      out->set_connected(w.connected);
      out->set_leases(w.leases);
      out->set_tokens_per_second(w.tokens_per_second);
      out->set_params_from(w.params_from);
      out->set_relay_fallbacks(w.relay_fallbacks);
      out->set_relay_address(w.relay_address);
      out->set_last_seen_unix_ms(w.last_seen_unix_ms);
    }
  };
  std::function<void(const std::string&)> on_signal;
  if (handle_signals) on_signal = [run](const std::string& signal) { run->Stop(signal); };
  LANLM_RETURN_IF_ERROR(self->host_.Start(options.listen, security, {self->cluster_service_.get()}, std::move(status),
                                          std::move(extras), std::move(on_signal)));
  boost::asio::post(self->host_.io(), [run] { run->Start(); });
  return server;
}

void TrainingServer::Stop(const std::string& reason) {
  TrainingRun* run = run_.get();
  boost::asio::post(host_.io(), [run, reason] { run->Stop(reason); });
}

RunResult TrainingServer::Wait() {
  if (waited_) return result_;
  waited_ = true;
  result_ = done_future_.get();
  // Each worker closes its Work stream once it has read the Shutdown (TrainingRun::End); wait
  // for that, then cancel what is left (a stalled or still-computing worker).
  host_.Shutdown(std::chrono::seconds(5));
  return result_;
}

TrainingServer::~TrainingServer() {
  if (!waited_ && run_ && host_.port() != 0) {
    Stop("server destroyed");
    Wait();
  }
}

}  // namespace lanlm::coordinator
