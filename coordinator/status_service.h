// StatusService: lanlm.v1.ClusterStatus (protos/status.proto). Answers from a provider
// function that snapshots the coordinator's state under its own locks; never blocks long.
#pragma once

#include <functional>
#include <memory>

#include "coordinator/security.h"
#include "protos/convert.h"
#include "protos/raw_message.h"
#include "protos/status.grpc.pb.h"

namespace lanlm::coordinator {

// GetStatus is registered raw (protos/raw_message.h): a request that does not parse gets
// INVALID_ARGUMENT naming its type.
class StatusService final : public v1::ClusterStatus::WithRawCallbackMethod_GetStatus<v1::ClusterStatus::Service> {
 public:
  using Provider = std::function<void(v1::GetStatusReply*)>;
  // tokens: null = open; else every call must carry one (coordinator/security.h).
  explicit StatusService(Provider provider, std::shared_ptr<const protos::ClientTokens> tokens = nullptr)
      : provider_(std::move(provider)), tokens_(std::move(tokens)) {}

  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* reply) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    grpc::Status status = CheckClientToken(tokens_.get(), *context);
    v1::GetStatusRequest parsed;
    grpc::ByteBuffer bytes(*request);
    if (status.ok()) status = protos::ToGrpcStatus(protos::ParseRaw(bytes, &parsed));
    if (status.ok()) {
      v1::GetStatusReply answer;
      provider_(&answer);
      status = protos::SerializeRaw(answer, reply);
    }
    reactor->Finish(status);
    return reactor;
  }

  // The snapshot function, shared with the HTTP endpoint (coordinator/http_endpoint.h).
  const Provider& provider() const { return provider_; }

 private:
  Provider provider_;
  std::shared_ptr<const protos::ClientTokens> tokens_;
};

}  // namespace lanlm::coordinator
