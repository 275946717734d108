// TrainingRun: the coordinator's step loop (DESIGN.md §3, §6). It leases shards to whichever
// worker asks, gathers their gradients into a GradientTree in shard order, clips and applies
// AdamW with the engine's ApplyUpdate, and versions the parameters, so its parameters stay
// bit-identical to the single-process LocalTrainer. It re-issues leases whose deadline passes
// or whose worker leaves, and applies each (step, shard) exactly once.
// Threading: every method except status()/Snapshot()/accepting() runs on the one thread that
// runs the io_context (the "loop"); gRPC reactors only post to it. Not the gRPC layer: it
// speaks the plain step messages of engine/train/step_messages.h, and the Work stream
// adapter (work_stream.cc) turns them into lanlm.v1 messages (protos/convert).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "coordinator/lease_table.h"
#include "coordinator/param_snapshot.h"
#include "coordinator/run_metrics.h"
#include "coordinator/run_config.h"
#include "coordinator/validation_eval.h"
#include "engine/base/thread_pool.h"
#include "engine/io/float_chunks.h"
#include "engine/train/gradient_tree.h"
#include "engine/train/step_messages.h"

namespace lanlm::coordinator {

// The coordinator's half of one worker's Work stream, implemented by the stream reactor.
// Thread-safe; calls after the stream ended are ignored.
class WorkerLink {
 public:
  virtual ~WorkerLink() = default;
  // The parameters of version params->version (shared by every link; not to be modified), from
  // float from_offset on; INVALID_ARGUMENT (nothing sent) when no chunk starts there.
  virtual Status SendParams(std::shared_ptr<const ParamSnapshot> params, int64_t from_offset) = 0;
  virtual void SendLease(engine::ShardLease lease) = 0;
  // The answer to the commit of lease_id: OK (applied) or why not.
  virtual void SendCommitResult(int64_t lease_id, const Status& status) = 0;
  // finished: the run is complete (the worker may exit) rather than stopped.
  virtual void SendShutdown(const std::string& reason, bool finished) = 0;
  // Ends the stream with `status` once the queued messages are written.
  virtual void Close(const Status& status) = 0;
};

struct RunSettings {
  int min_workers = 1;
  std::chrono::milliseconds lease_timeout{120000};
  int shards_per_lease = 1;         // a power of two (LeaseTable blocks)
  std::string checkpoint_dir;       // empty = no checkpoints
  int64_t checkpoint_every = 0;     // steps; 0 = only at the end and on shutdown
  int64_t stop_after = 0;           // end at this step, keeping the schedule (0 = run to options.steps)
  engine::WireFormat wire = engine::WireFormat::kFp32;  // encoding of parameter and gradient chunks
  int local_steps = 0;              // H > 0: DiLoCo rounds (engine/train/local_steps.h)
  float outer_lr = 0.7f;
  float outer_momentum = 0.9f;
  int64_t eval_every = 100;         // validation loss every N steps and at the end (0 = only at the end)
  int64_t eval_windows = 16;        // windows of T+1 validation tokens per evaluation (0 = all)
  int relay_fanout = 1;             // peers one relaying worker feeds (0 = the coordinator sends every copy)
};

struct RunResult {
  bool finished = false;            // all steps done (false: stopped early)
  int64_t step = 0;                 // parameter version at the end
  float loss = 0.0f;                // mean shard loss of the last step
  uint64_t fingerprint = 0;         // engine TrainingState::Fingerprint
  std::string checkpoint;           // last checkpoint written ("" = none)
  std::string error;                // non-empty: the run failed (diverged, or its final checkpoint was
                                    // not written); names the folder and the last good checkpoint
};

// What ClusterStatus reports.
struct RunStatus {
  std::string mode = "training";
  int64_t step = 0;
  int64_t total_steps = 0;
  float loss = 0.0f;
  float validation_loss = 0.0f;     // the newest evaluation's (nats); 0 = none yet
  double tokens_per_second = 0.0;
  int workers = 0;
  uint64_t fingerprint = 0;
  std::string last_checkpoint;      // newest checkpoint written ("" = none yet)
  std::string checkpoint_error;     // why the newest checkpoint attempt failed ("" = it worked)
  int64_t checkpoint_failures = 0;  // failed checkpoint writes so far (each retried next step)
};

class TrainingRun {
 public:
  TrainingRun(RunSetup setup, RunSettings settings, boost::asio::io_context& io, engine::ThreadPool& pool,
              std::function<void(const RunResult&)> on_done);
  ~TrainingRun();

  const engine::TrainOptions& options() const { return options_; }
  const engine::BpeTokenizer& tokenizer() const { return *tokenizer_; }
  const std::string& run_id() const { return run_id_; }
  int64_t parameter_count() const { return static_cast<int64_t>(state_.params.size()); }

  // ---- loop thread ----
  void Start();
  // relay_address: where the worker relays parameters to peers ("" = it does not).
  void OnConnected(int64_t connection, std::shared_ptr<WorkerLink> link, const std::string& worker_id,
                   const std::string& name, int64_t cached_version, const std::string& relay_address = "");
  // A worker could not get (all of) version `version` from the peer its lease named: send it
  // the rest from `offset`. A version no longer held ends its stream (ABORTED).
  void OnParamRequest(int64_t connection, const std::string& run_id, int64_t version, int64_t offset);
  void OnLeaseRequest(int64_t connection, int64_t cached_version);
  void OnGradientChunk(int64_t connection, engine::GradientChunk chunk);
  void OnCommit(int64_t connection, const engine::ShardCommit& commit);
  // A message the protocol does not allow here: closes the worker's stream with `status`.
  void OnBadMessage(int64_t connection, const Status& status);
  void OnDisconnected(int64_t connection, const std::string& reason);
  // Graceful stop: abandons the step in progress, writes a checkpoint, tells every worker.
  void Stop(const std::string& reason);

  // ---- any thread ----
  RunStatus status() const;
  // The newest parameters (copied once per version, on demand).
  std::shared_ptr<const ParamSnapshot> Snapshot() const;
  bool accepting() const { return accepting_.load(); }
  // Counters, worker table and step history for /metrics and the dashboard.
  const RunMetrics& metrics() const { return metrics_; }

 private:
  struct Connection {
    std::shared_ptr<WorkerLink> link;
    std::string worker_id;
    std::string name;
    int64_t known_version = -1;    // parameter version the worker holds (as far as we know)
    bool wants_lease = false;
    std::string relay_address;     // where it relays parameters to peers ("" = it does not)
    std::map<int64_t, engine::ChunkAssembler> gradients;  // lease_id -> gradient so far
    std::map<int64_t, Status> failed;                     // lease_id -> error to answer at commit
  };

  void BeginStep();
  void Dispatch();
  void IssueLease(int64_t connection, Connection& conn);
  // A worker in the current version's relay tree with room for one more peer (counted), or
  // nullptr when the coordinator sends the parameters itself. Valid until connections_ changes.
  const Connection* RelaySourceFor(int64_t connection);
  Status AcceptCommit(int64_t connection, Connection& conn, const engine::ShardCommit& commit);
  Status CheckCommit(const engine::ShardCommit& commit, engine::ChunkAssembler* gradient);
  void FailLease(Connection& conn, int64_t lease_id, Status status);
  void OnLeaseDeadline(int64_t lease_id);
  void CancelTimer(int64_t lease_id);
  void FinishStep();
  // Evaluates the parameters of the step that just ended, then records the step (with its
  // validation loss) in the metrics and the status.
  void Validate(StepEnd end);
  Status WriteCheckpoint();
  // error non-empty: the run failed (diverged): no checkpoint of the current state is written.
  void End(bool finished, const std::string& reason, const std::string& error = "");
  std::string LastGood() const;
  void PublishParams();
  void SendResult(Connection& conn, int64_t lease_id, const Status& status);
  void UpdateStatus();
  std::string Who(const Connection& conn) const;
  int64_t end_step() const;
  // Global steps the current round covers: 1, or with --local-steps H up to the next multiple
  // of H (at most the steps left).
  int64_t RoundSteps() const;

  engine::TrainOptions options_;
  std::shared_ptr<const engine::BpeTokenizer> tokenizer_;
  std::vector<int32_t> train_tokens_;
  uint64_t corpus_hash_;
  std::string run_id_;              // RunSetup::run_id, written into every checkpoint
  engine::TrainingState state_;     // params written only on the loop, under params_mu_
  RunSettings settings_;
  boost::asio::io_context& io_;
  engine::ThreadPool& pool_;
  std::function<void(const RunResult&)> on_done_;

  LeaseTable leases_;
  engine::GradientTree tree_;
  std::vector<float> step_grad_;
  std::vector<float> shard_loss_;
  std::shared_ptr<const ParamSnapshot> params_;  // of state_.step, as sent to workers
  std::map<int64_t, Connection> connections_;
  std::deque<int64_t> waiting_;     // connections that asked for a lease, in order
  // The relay tree of the current version: relaying workers that hold or receive it, in the
  // order they got it, with the peers each feeds (at most settings_.relay_fanout).
  struct RelayNode {
    int64_t connection;
    int children;
  };
  std::vector<RelayNode> relay_nodes_;
  std::map<int64_t, std::unique_ptr<boost::asio::steady_timer>> timers_;  // lease_id -> deadline
  bool running_ = false;
  bool ended_ = false;
  bool logged_waiting_ = false;
  std::atomic<bool> accepting_{true};

  // Per-step counters (loop thread).
  std::chrono::steady_clock::time_point step_start_;
  int64_t bytes_out_ = 0;
  int64_t bytes_in_ = 0;
  int64_t reissued_ = 0;
  double compute_ms_ = 0.0;
  double commit_ms_ = 0.0;          // accepted commits' checks + tree adds on the loop
  float last_loss_ = 0.0f;
  std::string last_checkpoint_;
  bool checkpoint_pending_ = false;  // a periodic checkpoint failed: retry after the next step
  std::map<int64_t, int> nonfinite_;  // shard -> non-finite commits this step
  std::string diverged_;              // set when a shard's gradient is non-finite twice

  mutable std::mutex params_mu_;
  mutable std::shared_ptr<const ParamSnapshot> snapshot_;  // guarded by params_mu_
  mutable std::mutex status_mu_;
  RunStatus status_;                                       // guarded by status_mu_
  RunMetrics metrics_;                                     // thread-safe
  ValidationEval eval_;                                    // loop thread
};

}  // namespace lanlm::coordinator
