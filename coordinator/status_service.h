// StatusService: lanlm.v1.ClusterStatus (protos/status.proto). Answers from a provider
// function that snapshots the coordinator's state under its own locks; never blocks long.
#pragma once

#include <functional>

#include "protos/status.grpc.pb.h"

namespace lanlm::coordinator {

class StatusService final : public v1::ClusterStatus::CallbackService {
 public:
  using Provider = std::function<void(v1::GetStatusReply*)>;
  explicit StatusService(Provider provider) : provider_(std::move(provider)) {}

  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context, const v1::GetStatusRequest* request,
                                      v1::GetStatusReply* reply) override {
    provider_(reply);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // The snapshot function, shared with the HTTP endpoint (coordinator/http_endpoint.h).
  const Provider& provider() const { return provider_; }

 private:
  Provider provider_;
};

}  // namespace lanlm::coordinator
