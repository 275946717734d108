// The worker's side of the parameter relay (protocol 7): serving the version it receives to
// peers, and fetching a lease's parameters from the peer the coordinator names, falling back
// to the coordinator for whatever the peer did not deliver. See worker.h and param_relay.h.
#include <spdlog/spdlog.h>

#include "protos/cluster_auth.h"
#include "protos/tls.h"
#include "worker/work_state.h"

namespace lanlm::worker {
namespace {

bool IsWildcardHost(const std::string& host) { return host == "0.0.0.0" || host == "::" || host.empty(); }

}  // namespace

Status Worker::StartRelay() {
  if (options_.relay_listen.empty() || relay_) return OkStatus();
  auto started =
      RelayServer::Start(options_.relay_listen, options_.token, options_.relay_version_wait, options_.tls);
  if (!started.ok()) return started.status();
  {
    std::lock_guard<std::mutex> lock(mu_);  // stats() reads relay_ from other threads
    relay_ = std::move(*started);
  }
  if (!options_.relay_address.empty()) {
    relay_advertised_ = options_.relay_address;
  } else {
    // The listen host with the port actually bound (--relay-listen HOST:0 in tests).
    const std::string host = protos::HostOf(options_.relay_listen);
    const bool v6 = host.find(':') != std::string::npos;
    relay_advertised_ = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(relay_->port());
  }
  spdlog::info("worker {}: relaying parameters to peers on port {} (peers dial {})", options_.name, relay_->port(),
               relay_advertised_);
  return OkStatus();
}

Status WorkerOptions::ValidateRelay() const {
  if (relay_listen.empty()) {
    if (!relay_address.empty()) return InvalidArgumentError("--relay-address needs --relay-listen");
    return OkStatus();
  }
  LANLM_RETURN_IF_ERROR(protos::CheckHostPort(relay_listen, "--relay-listen", /*port_zero_ok=*/true));
  if (tls.enabled() && (tls.cert_file.empty() || tls.key_file.empty() || tls.ca_file.empty())) {
    return InvalidArgumentError("--relay-listen on a TLS cluster needs --tls-ca, --tls-cert and --tls-key: the relay "
                                "presents this worker's certificate to its peers and accepts only peers with a "
                                "certificate of that CA");
  }
  if (!relay_address.empty()) return protos::CheckHostPort(relay_address, "--relay-address");
  if (IsWildcardHost(protos::HostOf(relay_listen))) {
    return InvalidArgumentError("--relay-listen " + relay_listen +
                                " listens on every interface: say which address peers dial with "
                                "--relay-address HOST:PORT");
  }
  return OkStatus();
}

void Worker::BeginFeed(const std::string& run_id, int64_t version) {
  if (!relay_) return;
  if (feed_) feed_->Drop();  // a no-op when it was complete
  feed_ = std::make_shared<ParamFeed>(run_id, version);
  relay_->service().Publish(feed_);
}

void Worker::StartFetch(const v1::Lease& lease, WorkState& s) {
  s.fetch_cancelled = false;
  s.fetch_context = std::make_unique<grpc::ClientContext>();
  protos::AttachClusterToken(*s.fetch_context, options_.token);
  // A peer that stalls (its own source slow or gone) must not hold the lease to its deadline:
  // after --relay-stall-ms without a chunk (FetchFromPeer), or half the lease timeout in all,
  // the coordinator sends the rest.
  const auto timeout = std::chrono::milliseconds(std::max<int64_t>(lease.timeout_ms() / 2, 1000));
  s.fetch_context->set_deadline(std::chrono::system_clock::now() + timeout);
  s.fetch = std::thread([this, &s, source = lease.param_source(), run = lease.run_id(), version = lease.step()] {
    const Status fetched = FetchFromPeer(source, run, version, s.fetch_context.get(), [&](const v1::ParamChunk& c) {
      if (c.version() != version) {
        return InvalidArgumentError("peer " + source + " sent version " + std::to_string(c.version()) + " for " +
                                    std::to_string(version));
      }
      return AddParamChunk(c, s, /*from_peer=*/true);
    }, options_.relay_stall, options_.tls);
    int64_t received = -1;  // -1: complete
    {
      std::lock_guard<std::mutex> lock(param_mu_);
      if (s.incoming && s.incoming_version == version) received = s.incoming->received();
    }
    if (received < 0) {
      spdlog::debug("worker {}: parameters of version {} relayed by peer {}", options_.name, version, source);
      return;
    }
    if (stopping_ || s.fetch_cancelled) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.relay_fallbacks;
    }
    spdlog::warn("worker {}: parameters of version {} from peer {} stopped at float {} ({}); asking the coordinator "
                 "for the rest",
                 options_.name, version, source, received, fetched.ok() ? "the stream ended early" : fetched.ToString());
    // The compute thread writes once these parameters are complete, which the coordinator's
    // answer can make happen before this Write returns: hence the stream's write lock.
    v1::WorkerMessage ask;
    ask.mutable_param_request()->set_version(version);
    ask.mutable_param_request()->set_run_id(run);
    ask.mutable_param_request()->set_offset(received);
    std::lock_guard<std::mutex> lock(s.write_mu);
    s.stream->Write(ask);  // a broken stream ends the session anyway
  });
}

void Worker::StopFetch(WorkState& s) {
  if (!s.fetch.joinable()) return;
  s.fetch_cancelled = true;
  s.fetch_context->TryCancel();
  s.fetch.join();
  s.fetch_context.reset();
}

}  // namespace lanlm::worker
