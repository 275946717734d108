// The parameter relay (protocol 7, issue 9 item 4): a worker forwards the ParamChunks of the
// version it holds or is receiving to peers, so the coordinator's link carries one parameter
// copy per step instead of one per worker. The coordinator builds the tree (Lease.param_source
// names a peer; each peer serves at most --relay-fanout others) and the chunks travel byte for
// byte as the coordinator made them, CRC-checked at every hop, so relayed parameters are
// bit-identical to direct ones.
//   ParamFeed     the chunks of one (run, version) as they arrive, kept in wire form;
//   RelayService  the gRPC service that streams a feed to a peer (token-checked);
//   RelayServer   RelayService on a listening port (lanlm-worker --relay-listen);
//   FetchFromPeer the client side: streams a peer's feed into a callback.
// Not the worker's session logic (worker_relay.cc) nor the coordinator's tree (training_run).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "protos/cluster.grpc.pb.h"
#include "protos/tls.h"

namespace lanlm::worker {

// Thread-safe. Appended by whichever thread receives the version (the Work stream's reader,
// or a FetchFromPeer thread); read by RelayService calls.
class ParamFeed {
 public:
  ParamFeed(std::string run_id, int64_t version) : run_id_(std::move(run_id)), version_(version) {}
  const std::string& run_id() const { return run_id_; }
  int64_t version() const { return version_; }

  // A chunk the worker accepted (checked: CRC, order, size), in offset order.
  void Append(std::shared_ptr<const v1::ParamChunk> chunk);
  // Every chunk is in: readers end after the last one.
  void Complete();
  // The worker gave the version up before it was complete: readers end with UNAVAILABLE.
  void Drop();

  enum class Next { kChunk, kEnd, kDropped, kTimeout };
  // Chunk `index` (0-based) once it is in (kChunk, *chunk set); kEnd past the last chunk of a
  // complete feed; kDropped; kTimeout when neither happened within `timeout`.
  Next Wait(size_t index, std::chrono::milliseconds timeout, std::shared_ptr<const v1::ParamChunk>* chunk);

 private:
  const std::string run_id_;
  const int64_t version_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const v1::ParamChunk>> chunks_;  // guarded by mu_
  bool complete_ = false;                                      // guarded by mu_
  bool dropped_ = false;                                       // guarded by mu_
};

class RelayService final : public v1::Relay::Service {
 public:
  // version_wait: how long a call for a version this worker does not have yet waits for it
  // to start arriving (the coordinator may name this worker as a source a moment before this
  // worker has read its own Lease).
  RelayService(std::string token, std::chrono::milliseconds version_wait);

  // The version this worker now receives or holds (replaces the previous one: calls for an
  // older version get NOT_FOUND; calls already streaming the old feed finish it).
  void Publish(std::shared_ptr<ParamFeed> feed);
  // Ends every call (UNAVAILABLE) and refuses new ones; called before the server shuts down.
  void Close();
  // Parameter bytes streamed to peers so far.
  int64_t bytes_served() const { return bytes_served_.load(); }

  grpc::Status Params(grpc::ServerContext* context, const v1::RelayParamsRequest* request,
                      grpc::ServerWriter<v1::ParamChunk>* writer) override;

 private:
  // The feed of (run_id, version), waiting up to version_wait_ for it; null with *status set.
  std::shared_ptr<ParamFeed> FindFeed(const v1::RelayParamsRequest& request, grpc::ServerContext* context,
                                      grpc::Status* status);

  const std::string token_;
  const std::chrono::milliseconds version_wait_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<ParamFeed> feed_;  // guarded by mu_
  bool closed_ = false;              // guarded by mu_
  std::atomic<int64_t> bytes_served_{0};
};

// The name a relaying worker's certificate must carry (subjectAltName DNS) when the cluster
// uses TLS: peers dial each other by address, and every worker presents the same worker
// certificate of deploy/make-certs.sh, so they check this name instead of the address.
inline constexpr char kRelayTlsName[] = "lanlm-worker-relay";

// RelayService listening on an address; token-checked. With TLS (the worker's --tls-ca,
// --tls-cert, --tls-key) it presents the worker's certificate and requires a peer certificate
// of the same CA (mutual TLS); plaintext otherwise.
class RelayServer {
 public:
  // listen: host:port to bind (port 0 picks a free one). INVALID_ARGUMENT when it cannot bind
  // or the TLS files do not load.
  static StatusOr<std::unique_ptr<RelayServer>> Start(const std::string& listen, const std::string& token,
                                                      std::chrono::milliseconds version_wait,
                                                      const protos::ClientTlsOptions& tls = {});
  ~RelayServer();
  int port() const { return port_; }
  RelayService& service() { return service_; }

 private:
  RelayServer(const std::string& token, std::chrono::milliseconds version_wait) : service_(token, version_wait) {}
  RelayService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// Streams the ParamChunks of (run_id, version) from the peer at `address` into on_chunk, which
// checks and keeps each (a non-OK return stops the fetch with that status). OK when the peer
// ended the stream normally (the caller checks that the version is complete); the peer's or
// the channel's error otherwise. `context` (carrying the token and a deadline) may be cancelled
// from another thread. tls: the worker's client options (the peer's certificate must chain to
// tls.ca_file and name kRelayTlsName); plaintext when empty.
// stall: the call is cancelled (UNAVAILABLE, naming the wait) when no chunk arrived for that
// long, the call's start counting as the first arrival: a peer whose own source stalls, or a
// link that drops packets without resetting, costs that wait, not the context's deadline.
Status FetchFromPeer(const std::string& address, const std::string& run_id, int64_t version,
                     grpc::ClientContext* context, const std::function<Status(const v1::ParamChunk&)>& on_chunk,
                     std::chrono::milliseconds stall, const protos::ClientTlsOptions& tls = {});

}  // namespace lanlm::worker
