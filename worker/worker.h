// Worker: one lanlm-worker's client loop (DESIGN.md §6). Joins the coordinator, keeps its
// parameter copy at the version of its next lease (reassembling CRC-checked chunks), computes
// each leased shard's gradient with the engine and streams it back, then asks for the next
// lease. Protocol 6 overlaps both transfers with compute: the lease runs on a compute thread
// while the stream's reader still receives its parameters (the forward pass waits per layer,
// ParamArrival), and the gradient streams out range by range as the backward pass finishes
// it (GradientSender). Reconnects with exponential backoff when the coordinator goes away.
// Not the coordinator's lease logic; never included by coordinator/.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/base/status.h"
#include "engine/base/thread_pool.h"
#include "engine/io/float_chunks.h"
#include "engine/model/model.h"
#include "engine/model/model_config.h"
#include "engine/train/optimizer.h"
#include "protos/cluster.grpc.pb.h"
#include "protos/tls.h"
#include "worker/gradient_sender.h"
#include "worker/param_arrival.h"
#include "worker/param_relay.h"

namespace lanlm::worker {

struct WorkerOptions {
  std::string coordinator = "localhost:50051";  // host:port
  std::string token;                            // cluster token (required)
  protos::ClientTlsOptions tls;                 // --tls-ca/--tls-cert/--tls-key; empty = plaintext
  std::string name;                             // for the coordinator's logs; default host:pid
  uint64_t expect_config_hash = 0;              // 0 = accept the coordinator's model config
  uint64_t expect_tokenizer_hash = 0;           // 0 = accept the coordinator's tokenizer
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds join_timeout{10000};
  bool exit_when_finished = true;  // return from Run when the run is complete
  // The parameter relay (protocol 7, worker/param_relay.h). relay_listen: host:port to serve
  // Relay on ("" = relay nothing; parameters may still come from peers); relay_address: what
  // peers dial (default relay_listen, with the port actually bound). Token-checked; with TLS
  // options, mutual TLS with the worker's own certificate (worker/param_relay.h).
  std::string relay_listen;
  std::string relay_address;
  std::chrono::milliseconds relay_version_wait{10000};  // see RelayService
  // A peer that sends no chunk for this long is given up (FetchFromPeer's stall): the worker
  // asks the coordinator for the rest. Above relay_version_wait, the longest a healthy peer
  // waits before the version's first chunk.
  std::chrono::milliseconds relay_stall{15000};

  Status Validate() const;
  Status ValidateRelay() const;  // the relay flags (worker_relay.cc)
};

struct WorkerStats {
  int64_t leases = 0;          // gradients committed (accepted or not)
  int64_t accepted = 0;        // commits the coordinator applied
  int64_t rejected = 0;        // commits it refused (late, duplicate, ...)
  int64_t sessions = 0;        // successful Joins
  int64_t param_bytes = 0;     // parameter bytes received
  int64_t gradient_bytes = 0;  // gradient bytes sent
  int64_t relayed_param_bytes = 0;  // of param_bytes, those received from a peer
  int64_t relay_served_bytes = 0;   // parameter bytes this worker relayed to peers
  int64_t relay_fallbacks = 0;      // versions a peer failed to deliver (asked the coordinator)
};

class Worker {
 public:
  // pool: the engine pool gradients are computed on (its size is the worker's --threads).
  Worker(WorkerOptions options, engine::ThreadPool& pool);
  ~Worker();

  // Serves until Stop() or (with exit_when_finished) the coordinator's "finished" shutdown;
  // returns OK then. Returns an error without retrying when the coordinator refuses the
  // worker for good (UNAUTHENTICATED, FAILED_PRECONDITION at Join, a failed TLS handshake:
  // the same credentials cannot succeed later). Call once.
  Status Run();
  // Thread-safe; makes Run return soon (an in-progress gradient is abandoned after it ends).
  void Stop();

  WorkerStats stats() const;

 private:
  enum class SessionEnd { kFinished, kStopped, kRetry, kFatal };
  struct WorkState;
  // One lease as the compute thread runs it (protocol 6: it may start before the lease's
  // parameters have all arrived; ParamArrival says how far they have).
  struct LeaseTask {
    v1::Lease lease;
    std::vector<int32_t> tokens;  // (max(1, local_steps), shards, B, T+1)
    int shards = 1;
    const float* params = nullptr;  // the cached block, or the one being received
    grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>* stream = nullptr;
    std::mutex* write_mu = nullptr;  // WorkState::write_mu: held by every write on stream
    grpc::ClientContext* context = nullptr;
  };
  // What the compute thread reports; read by the stream's reader after joining it.
  struct LeaseOutcome {
    Status status;
    bool writable = true;  // false: a write failed (the coordinator ended the call)
  };
  // One connection: channel, Join, Configure, then WorkStream.
  SessionEnd Session(Status* status, bool* made_progress);
  // The Work stream of a joined session: hello, then messages until the stream ends.
  SessionEnd WorkStream(v1::Cluster::Stub& stub, const std::string& run_id, Status* status, bool* made_progress);
  void HandleMessage(const v1::CoordinatorMessage& message, WorkState& state);
  // Reassembles the parameters of the lease being computed, advancing arrival_; a complete
  // set becomes params_ at its version.
  void AcceptParamChunk(const v1::ParamChunk& chunk, WorkState& state);
  // Adds one chunk of the version being received (from the coordinator or a peer) under
  // param_mu_; a peer's chunk is checked first and refused without failing the assembler, so
  // the coordinator can send the rest. Publishes it to the relay feed.
  Status AddParamChunk(const v1::ParamChunk& chunk, WorkState& state, bool from_peer);
  // The relay (worker_relay.cc): starts the server when --relay-listen is set.
  Status StartRelay();
  // Fetches the lease's parameters from lease.param_source on a thread of its own; on failure
  // asks the coordinator for the rest (ParamRequest).
  void StartFetch(const v1::Lease& lease, WorkState& state);
  // Cancels and joins the fetch thread, if any.
  void StopFetch(WorkState& state);
  // A new version starts arriving: its relay feed.
  void BeginFeed(const std::string& run_id, int64_t version);
  // Starts a lease on the compute thread (after joining the previous one).
  void StartLease(const v1::Lease& lease, WorkState& state);
  // Joins the compute thread, if any, and takes in its outcome.
  void JoinCompute(WorkState& state);
  Status Configure(const v1::JoinReply& reply);
  // The compute thread: computes the lease while its parameters arrive, streams the gradient
  // out as the backward pass finishes each range, commits, and asks for the next lease.
  LeaseOutcome RunLease(const LeaseTask& task);
  // Computes the lease (grad_: the block's gradient, or a local-steps round's parameter
  // difference; losses[shards]), handing final ranges to `sender`; *wait_ms: time spent
  // waiting for parameters. CANCELLED when the parameters never complete or the worker stops.
  Status ComputeLease(const LeaseTask& task, float* losses, GradientSender& sender, double* wait_ms);
  // The block gradient of a synchronous lease of several shards; the last shard's ranges
  // stream out as they are final.
  Status ComputeBlock(const LeaseTask& task, float* losses, GradientSender& sender,
                      const engine::ModelStreamHooks& hooks, const bool* abandoned);

  WorkerOptions options_;
  engine::ThreadPool& pool_;

  // Model state (Run's thread only).
  std::string worker_id_;
  engine::ModelConfig config_;
  bool configured_ = false;
  int micro_batch_ = 0;
  int64_t parameter_count_ = 0;
  engine::WireFormat wire_ = engine::WireFormat::kFp32;  // the run's (JoinReply.wire_format)
  std::optional<engine::AdamWOptions> inner_;   // the run's AdamW for local-steps leases
  std::unique_ptr<engine::Model> model_;
  std::vector<float> params_;
  std::vector<float> grad_;
  ParamArrival arrival_;    // how far the parameters of the lease being computed have arrived
  int64_t cached_version_ = -1;
  std::string cached_run_;  // run id of params_; a version of another run is never reused

  // Relay: the server, the address peers dial, and the feed of the version being received.
  std::unique_ptr<RelayServer> relay_;
  std::string relay_advertised_;
  std::shared_ptr<ParamFeed> feed_;  // guarded by param_mu_
  // Guards WorkState::incoming/incoming_version, params_, cached_version_, cached_run_ and
  // feed_ while a fetch thread runs beside the stream's reader.
  std::mutex param_mu_;

  int closed_before_http2_ = 0;  // Joins in a row closed before HTTP/2 (protos::TlsRefusal)

  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  grpc::ClientContext* active_context_ = nullptr;  // guarded by mu_; cancelled by Stop
  WorkerStats stats_;                              // guarded by mu_
};

}  // namespace lanlm::worker
