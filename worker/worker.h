// Worker: one lanlm-worker's client loop (DESIGN.md §6). Joins the coordinator, keeps its
// parameter copy at the version of its next lease (reassembling CRC-checked chunks), computes
// each leased shard's gradient with the engine and streams it back, then asks for the next
// lease. Reconnects with exponential backoff when the coordinator goes away. Not the
// coordinator's lease logic; never included by coordinator/.
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
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model.h"
#include "engine/model/model_config.h"
#include "engine/base/thread_pool.h"
#include "engine/io/float_chunks.h"
#include "engine/train/optimizer.h"
#include "protos/cluster.grpc.pb.h"

namespace lanlm::worker {

struct WorkerOptions {
  std::string coordinator = "localhost:50051";  // host:port
  std::string token;                            // cluster token (required)
  std::string name;                             // for the coordinator's logs; default host:pid
  uint64_t expect_config_hash = 0;              // 0 = accept the coordinator's model config
  uint64_t expect_tokenizer_hash = 0;           // 0 = accept the coordinator's tokenizer
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds join_timeout{10000};
  bool exit_when_finished = true;  // return from Run when the run is complete

  Status Validate() const;
};

struct WorkerStats {
  int64_t leases = 0;          // gradients committed (accepted or not)
  int64_t accepted = 0;        // commits the coordinator applied
  int64_t rejected = 0;        // commits it refused (late, duplicate, ...)
  int64_t sessions = 0;        // successful Joins
  int64_t param_bytes = 0;     // parameter bytes received
  int64_t gradient_bytes = 0;  // gradient bytes sent
};

class Worker {
 public:
  // pool: the engine pool gradients are computed on (its size is the worker's --threads).
  Worker(WorkerOptions options, engine::ThreadPool& pool);
  ~Worker();

  // Serves until Stop() or (with exit_when_finished) the coordinator's "finished" shutdown;
  // returns OK then. Returns an error without retrying when the coordinator refuses the
  // worker for good (UNAUTHENTICATED, FAILED_PRECONDITION at Join). Call once.
  Status Run();
  // Thread-safe; makes Run return soon (an in-progress gradient is abandoned after it ends).
  void Stop();

  WorkerStats stats() const;

 private:
  enum class SessionEnd { kFinished, kStopped, kRetry, kFatal };
  struct WorkState;
  // One connection: channel, Join, Configure, then WorkStream.
  SessionEnd Session(Status* status, bool* made_progress);
  // The Work stream of a joined session: hello, then messages until the stream ends.
  SessionEnd WorkStream(v1::Cluster::Stub& stub, const std::string& run_id, Status* status, bool* made_progress);
  void HandleMessage(const v1::CoordinatorMessage& message, WorkState& state);
  // Reassembles parameters; a complete set becomes params_ at its version.
  void AcceptParamChunk(const v1::ParamChunk& chunk, WorkState& state);
  Status Configure(const v1::JoinReply& reply);
  // Fills grad_ (the block's gradient, or a local-steps round's parameter difference) and
  // losses[shards].
  Status ComputeLease(const v1::Lease& lease, const std::vector<int32_t>& tokens, int shards, float* losses);
  // Computes and sends one lease's gradient; sets *writable = false when a write fails.
  Status HandleLease(const v1::Lease& lease,
                     grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>& stream, bool* writable);

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
  int64_t cached_version_ = -1;
  std::string cached_run_;  // run id of params_; a version of another run is never reused

  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  grpc::ClientContext* active_context_ = nullptr;  // guarded by mu_; cancelled by Stop
  WorkerStats stats_;                              // guarded by mu_
};

}  // namespace lanlm::worker
