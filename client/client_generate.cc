// Blocking Generate / ClusterStatus client over gRPC's synchronous API.
#include "client/client_generate.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "protos/client_auth.h"
#include "protos/convert.h"
#include "protos/generate.grpc.pb.h"
#include "protos/generate_convert.h"
#include "protos/status.grpc.pb.h"

namespace lanlm::client {
namespace {

void SetDeadline(grpc::ClientContext& context, double seconds) {
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds)));
}

// The engine's name of a finish reason; "unspecified" for one this build does not know.
const char* ReasonName(lanlm::v1::FinishReason reason) {
  const char* name = engine::FinishReasonName(protos::FromProto(reason));
  return *name != '\0' ? name : "unspecified";
}

template <typename Params>
void FillParams(const GenerateCall& call, Params* request) {
  auto* sampling = request->mutable_sampling();
  if (call.temperature) sampling->set_temperature(*call.temperature);
  if (call.top_k) sampling->set_top_k(*call.top_k);
  if (call.top_p) sampling->set_top_p(*call.top_p);
  sampling->set_seed(call.seed);
  auto* stopping = request->mutable_stopping();
  if (call.max_new_tokens) stopping->set_max_new_tokens(*call.max_new_tokens);
  for (const auto& s : call.stop) stopping->add_stop(s);
  if (call.stop_on_eos) stopping->set_stop_on_eos(*call.stop_on_eos);
  if (call.confidence_threshold) stopping->set_confidence_threshold(*call.confidence_threshold);
  request->set_session_id(call.session_id);
  request->set_prompt(call.prompt);
}

}  // namespace

GenerateClient::GenerateClient(const std::string& address, double deadline_s)
    : GenerateClient(address, deadline_s, grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), "") {}

GenerateClient::GenerateClient(const std::string& address, double deadline_s, std::shared_ptr<grpc::Channel> channel,
                               std::string token)
    : address_(address), deadline_s_(deadline_s), channel_(std::move(channel)), token_(std::move(token)) {}

StatusOr<std::unique_ptr<GenerateClient>> GenerateClient::Connect(const std::string& address, double deadline_s,
                                                                  const protos::ClientTlsOptions& tls,
                                                                  const std::string& token) {
  LANLM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, protos::MakeChannel(address, tls));
  return std::unique_ptr<GenerateClient>(new GenerateClient(address, deadline_s, std::move(channel), token));
}

void GenerateClient::Prepare(grpc::ClientContext& context) const {
  SetDeadline(context, deadline_s_);
  protos::AttachBearerToken(context, token_);
}

GenerateClient::~GenerateClient() = default;

StatusOr<GenerateOutcome> GenerateClient::Generate(const GenerateCall& call,
                                                   const std::function<void(const std::string&)>& on_text) {
  lanlm::v1::Generate::Stub stub(channel_);
  grpc::ClientContext context;
  Prepare(context);
  auto stream = stub.Generate(&context);
  lanlm::v1::GenerateRequest request;
  if (call.resume) {
    FillParams(call, request.mutable_continue_session());
  } else {
    FillParams(call, request.mutable_start());
  }
  GenerateOutcome outcome;
  bool done = false;
  if (stream->Write(request)) {
    lanlm::v1::GenerateEvent event;
    while (!done && stream->Read(&event)) {
      switch (event.event_case()) {
        case lanlm::v1::GenerateEvent::kOpened:
          outcome.session_id = event.opened().session_id();
          outcome.parameter_version = event.opened().parameter_version();
          outcome.model_config = event.opened().model_config();
          break;
        case lanlm::v1::GenerateEvent::kToken:
          outcome.token_ids.push_back(event.token().id());
          outcome.text += event.token().text();
          if (on_text && !event.token().text().empty()) on_text(event.token().text());
          break;
        case lanlm::v1::GenerateEvent::kDone: {
          const auto& d = event.done();
          outcome.text += d.text_delta();
          if (on_text && !d.text_delta().empty()) on_text(d.text_delta());
          outcome.finish_reason = ReasonName(d.reason());
          outcome.prompt_tokens = d.usage().prompt_tokens();
          outcome.cached_tokens = d.usage().cached_tokens();
          outcome.generated_tokens = d.usage().generated_tokens();
          outcome.time_to_first_token_s = d.time_to_first_token_s();
          outcome.tokens_per_second = d.tokens_per_second();
          done = true;
          break;
        }
        default:
          break;
      }
    }
  }
  if (done && call.close_after) {
    lanlm::v1::GenerateRequest close;
    close.mutable_close()->set_session_id(outcome.session_id);
    lanlm::v1::GenerateEvent event;
    if (stream->Write(close)) {
      while (stream->Read(&event) && !event.has_closed()) {
      }
    }
  }
  stream->WritesDone();
  lanlm::v1::GenerateEvent rest;
  while (stream->Read(&rest)) {
  }
  const Status status = protos::FromGrpcStatus(stream->Finish());
  if (!status.ok()) return status;
  if (!done) return InternalError("the server ended the stream without a done event");
  return outcome;
}

Status GenerateClient::Close(const std::string& session_id) {
  lanlm::v1::Generate::Stub stub(channel_);
  grpc::ClientContext context;
  Prepare(context);
  auto stream = stub.Generate(&context);
  lanlm::v1::GenerateRequest request;
  request.mutable_close()->set_session_id(session_id);
  if (stream->Write(request)) {
    lanlm::v1::GenerateEvent event;
    while (stream->Read(&event) && !event.has_closed()) {
    }
  }
  stream->WritesDone();
  lanlm::v1::GenerateEvent rest;
  while (stream->Read(&rest)) {
  }
  return protos::FromGrpcStatus(stream->Finish());
}

StatusOr<lanlm::v1::GetStatusReply> GenerateClient::GetStatus() {
  lanlm::v1::ClusterStatus::Stub stub(channel_);
  grpc::ClientContext context;
  Prepare(context);
  lanlm::v1::GetStatusReply reply;
  const Status status = protos::FromGrpcStatus(stub.GetStatus(&context, lanlm::v1::GetStatusRequest(), &reply));
  if (!status.ok()) return status;
  return reply;
}

std::string DescribeError(const Status& status, const std::string& address, const protos::ClientTlsOptions& tls) {
  if (status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded) {
    const std::string what = "cannot reach lanlm-coordinator at " + address + " (" + StatusCodeName(status.code()) +
                             ": " + status.message() + ")";
    const grpc::Status raw(grpc::StatusCode::UNAVAILABLE, status.message());
    if (protos::IsTlsFailure(raw)) return what + "; the TLS handshake failed: " + protos::TlsHint(tls);
    if (protos::IsClosedBeforeHttp2(raw)) {
      return what +
             "; the server closed the connection before HTTP/2, as a TLS server does to a plaintext client "
             "or to a certificate it refuses: " +
             protos::TlsHint(tls);
    }
    return what;
  }
  return status.ToString();
}

}  // namespace lanlm::client
