// ClusterService: the gRPC side of lanlm.v1.Cluster (protos/cluster.proto). Join is answered
// inline (token, protocol version and hashes are immutable); each Work stream is a callback
// reactor that validates the Hello and posts every later message to the TrainingRun's loop
// thread. Reactors never block; writes go through a per-stream queue with one write in flight.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "coordinator/param_snapshot.h"
#include "coordinator/training_run.h"
#include "protos/cluster.grpc.pb.h"
#include "protos/convert.h"

namespace lanlm::coordinator {

// What Join checks and answers; fixed for the server's lifetime.
struct ClusterIdentity {
  engine::ModelConfig config;
  uint64_t config_hash = 0;
  uint64_t tokenizer_hash = 0;
  int micro_batch = 0;
  int64_t parameter_count = 0;
  int64_t lease_timeout_ms = 0;
  engine::WireFormat wire = engine::WireFormat::kFp32;
  engine::Precision precision = engine::Precision::kFp32;  // workers must compute it exactly
  int local_steps = 0;              // > 0: JoinReply.inner carries it and `adamw`
  engine::AdamWOptions adamw;
  int64_t param_chunk_bytes = protos::kMaxChunkBytes;  // ParamChunk data size (smaller: relay hops pipeline)
  std::string run_id;  // RunSetup::run_id: ParamChunks, Leases and JoinReply carry it; workers key their cache by it
  std::string token;
};

// The serialized ParamChunk messages of one parameter version, and each chunk's first float.
struct ParamWire {
  std::vector<grpc::ByteBuffer> messages;  // CoordinatorMessage{param_chunk}, in offset order
  std::vector<int64_t> offsets;
};

// Join and Work are registered raw (bytes in and out, protos/raw_message.h) so that a message
// that does not parse gets INVALID_ARGUMENT naming its type.
class ClusterService final
    : public v1::Cluster::WithRawCallbackMethod_Join<v1::Cluster::WithRawCallbackMethod_Work<v1::Cluster::Service>> {
 public:
  // run is used only through posts to io; both must outlive the server.
  ClusterService(ClusterIdentity identity, boost::asio::io_context& io, TrainingRun& run);

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* reply) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Work(grpc::CallbackServerContext* context) override;

  // For the stream reactors.
  const ClusterIdentity& identity() const { return identity_; }
  boost::asio::io_context& io() { return io_; }
  TrainingRun& run() { return run_; }
  int64_t NextConnectionId() { return next_connection_++; }
  // The ParamChunk messages of params, serialized once per snapshot and shared by every stream.
  std::shared_ptr<const ParamWire> ParamMessages(const std::shared_ptr<const ParamSnapshot>& params);
  // Binds worker_id to the Work stream of `peer` (grpc peer string) and returns the name the
  // worker gave at Join. NOT_FOUND for an id never joined; PERMISSION_DENIED when the id
  // joined from another host or already has a stream: a token holder cannot speak for
  // another worker's id.
  // *relay_address: the one the worker gave at Join ("" = none).
  StatusOr<std::string> ClaimWorkerId(const std::string& worker_id, const std::string& peer,
                                      std::string* relay_address);
  // A worker's cached parameter version as this run sees it: -1 unless it is of this run
  // (Hello/LeaseRequest cached_run_id == identity().run_id).
  int64_t CachedVersion(const std::string& cached_run, int64_t cached_version) const;

 private:
  // Join's checks and answer, once the token is checked and the request parsed.
  Status Admit(grpc::CallbackServerContext* context, const v1::JoinRequest* request, v1::JoinReply* reply);

  ClusterIdentity identity_;
  boost::asio::io_context& io_;
  TrainingRun& run_;
  std::atomic<int64_t> next_connection_{1};
  mutable std::mutex mu_;
  int64_t next_worker_ = 1;                      // guarded by mu_
  struct Joined {
    std::string name;
    std::string host;      // peer address without the port
    bool claimed = false;  // a Work stream said Hello with this id
    std::string relay_address;  // JoinRequest.relay_address (checked)
  };
  std::map<std::string, Joined> joined_;         // worker_id -> who joined; guarded by mu_
  std::shared_ptr<const ParamSnapshot> param_source_;                           // guarded by mu_
  std::shared_ptr<const ParamWire> param_wire_;                                // of param_source_
};

}  // namespace lanlm::coordinator
