// The Generate service: options, the client's identity, request validation and handling
// (what each request does to sessions and jobs), and the service object. The stream reactor's
// plumbing (reads, writes, ends, decode-thread events) is generate_stream.cc.
#include "coordinator/generate_service.h"

#include <algorithm>
#include <optional>

#include "coordinator/generate_stream.h"
#include "engine/base/float_bits.h"
#include "protos/convert.h"
#include "protos/generate_convert.h"

namespace lanlm::coordinator {

using engine::FinishReason;
using lanlm::v1::GenerateEvent;
using lanlm::v1::GenerateRequest;

namespace {

// Who a call is, for session ownership and the per-client cap: "token N" when tokens are on
// (UNAUTHENTICATED without a valid one), else the peer's host ("ipv4:10.0.0.7:51234" without
// the port: every connection of one machine is one client).
StatusOr<std::string> ClientOf(const grpc::ServerContextBase& context, const protos::ClientTokens* tokens) {
  if (tokens != nullptr) {
    LANLM_ASSIGN_OR_RETURN(const int index, tokens->Check(context));
    return "token " + std::to_string(index);
  }
  const std::string peer = context.peer();
  const auto colon = peer.rfind(':');
  return colon == std::string::npos || colon < peer.find(':') + 1 ? peer : peer.substr(0, colon);
}

}  // namespace

void GenerateServiceOptions::RegisterFlags(FlagSet& flags) {
  flags.Int("generate-max-sessions", &max_sessions, "live Generate sessions at most", 1, 1 << 20);
  flags.Int("generate-max-sessions-per-client", &max_sessions_per_client,
            "live Generate sessions one client (its token, else its address) may hold; 0 = a quarter of "
            "--generate-max-sessions",
            0, 1 << 20);
  flags.Int("generate-max-kv-mib", &max_kv_mib, "KV-cache memory of all Generate sessions at most (MiB)", 1,
            int64_t{1} << 30);
  flags.Double("generate-session-ttl", &session_ttl_s, "seconds an idle Generate session lives after its last use",
               0.001, 1e9);
  flags.Int("generate-max-prompt-bytes", &max_prompt_bytes, "bytes of prompt text per Generate request at most", 1,
            int64_t{1} << 30);
  flags.Int("generate-decode-threads", &decode_threads, "threads that run Generate decoding steps", 1, 256);
  flags.Int("generate-max-batch", &max_batch, "sessions advanced together per decoding step (1 = no batching)", 1,
            4096);
  flags.Int("generate-max-queued-events", &max_queued_events, "unsent events per stream before its generation pauses",
            1, 1 << 20);
  flags.String("weights", &weights,
               "weight format Generate decodes with: fp32, bf16 or q8 (converted from the fp32 parameters once per "
               "snapshot; checkpoints stay fp32)");
}

Status GenerateServiceOptions::Validate() const {
  auto positive = [](const char* name, int64_t v) {
    return v >= 1 ? OkStatus() : InvalidArgumentError(std::string(name) + " = " + std::to_string(v) + " must be >= 1");
  };
  LANLM_RETURN_IF_ERROR(positive("--generate-max-sessions", max_sessions));
  LANLM_RETURN_IF_ERROR(positive("--generate-max-kv-mib", max_kv_mib));
  LANLM_RETURN_IF_ERROR(positive("--generate-max-prompt-bytes", max_prompt_bytes));
  LANLM_RETURN_IF_ERROR(positive("--generate-decode-threads", decode_threads));
  LANLM_RETURN_IF_ERROR(positive("--generate-max-batch", max_batch));
  LANLM_RETURN_IF_ERROR(positive("--generate-max-queued-events", max_queued_events));
  LANLM_RETURN_IF_ERROR(engine::ParseWeightFormat(weights).status());
  if (!IsFiniteBits(static_cast<float>(session_ttl_s)) || session_ttl_s <= 0.0) {
    return InvalidArgumentError("--generate-session-ttl = " + std::to_string(session_ttl_s) + " must be > 0");
  }
  return OkStatus();
}

int GenerateServiceOptions::PerClientCap() const {
  return max_sessions_per_client > 0 ? max_sessions_per_client : std::max(1, max_sessions / 4);
}

Status GenerateStream::HandleLocked(const GenerateRequest& request) {
  switch (request.request_case()) {
    case GenerateRequest::kStart:
      return StartLocked(request.start());
    case GenerateRequest::kContinueSession:
      return ContinueLocked(request.continue_session());
    case GenerateRequest::kCancel:
      if (job_) {
        StopJobLocked(FinishReason::kCancelled);
      } else if (current_) {
        generate_engine_->manager.Release(current_, FinishReason::kCancelled);
        current_.reset();
      }
      return OkStatus();
    case GenerateRequest::kClose:
      return CloseLocked(request.close());
    case GenerateRequest::REQUEST_NOT_SET:
      break;
  }
  return InvalidArgumentError("request has none of start, continue_session, cancel, close set");
}

Status GenerateStream::CheckCommon(const std::string& prompt, const std::string& field) {
  if (job_) {
    return FailedPreconditionError(field + " while this stream's generation still runs (wait for done or cancel)");
  }
  if (static_cast<int64_t>(prompt.size()) > generate_engine_->options.max_prompt_bytes) {
    return ResourceExhaustedError(
        field + ".prompt is " + std::to_string(prompt.size()) +
        " bytes, above --generate-max-prompt-bytes = " + std::to_string(generate_engine_->options.max_prompt_bytes));
  }
  std::lock_guard<std::mutex> lock(generate_engine_->mu);
  if (generate_engine_->shutting_down) return UnavailableError("server is shutting down");
  return OkStatus();
}

Status GenerateStream::StartLocked(const lanlm::v1::StartRequest& start) {
  LANLM_RETURN_IF_ERROR(CheckCommon(start.prompt(), "start"));
  if (start.prompt().empty()) return InvalidArgumentError("start.prompt is empty");
  LANLM_ASSIGN_OR_RETURN(engine::SamplingOptions sampling, protos::FromProto(start.sampling(), "start.sampling"));
  LANLM_ASSIGN_OR_RETURN(engine::StopOptions stop, protos::FromProto(start.stopping(), "start.stopping"));
  std::shared_ptr<const ParamSnapshot> snapshot = generate_engine_->snapshots ? generate_engine_->snapshots() : nullptr;
  if (!snapshot || !snapshot->tokenizer) return UnavailableError("no parameters to generate from yet");
  LANLM_ASSIGN_OR_RETURN(std::shared_ptr<Session> session,
                         generate_engine_->manager.Create(start.session_id(), std::move(snapshot), id_, client_));
  generate_engine_->metrics->SessionOpened();
  RunLocked(std::move(session), start.prompt(), sampling, stop, !start.stopping().has_max_new_tokens(), false);
  return OkStatus();
}

Status GenerateStream::ContinueLocked(const lanlm::v1::ContinueRequest& next) {
  LANLM_RETURN_IF_ERROR(CheckCommon(next.prompt(), "continue_session"));
  if (next.session_id().empty()) return InvalidArgumentError("continue_session.session_id is empty");
  LANLM_ASSIGN_OR_RETURN(engine::SamplingOptions sampling,
                         protos::FromProto(next.sampling(), "continue_session.sampling"));
  LANLM_ASSIGN_OR_RETURN(engine::StopOptions stop, protos::FromProto(next.stopping(), "continue_session.stopping"));
  LANLM_ASSIGN_OR_RETURN(std::shared_ptr<Session> session,
                         generate_engine_->manager.Acquire(next.session_id(), id_, client_));
  RunLocked(std::move(session), next.prompt(), sampling, stop, !next.stopping().has_max_new_tokens(), true);
  return OkStatus();
}

void GenerateStream::RunLocked(std::shared_ptr<Session> session, const std::string& prompt,
                               const engine::SamplingOptions& sampling, const engine::StopOptions& stop,
                               bool default_max_new_tokens, bool resumed) {
  generate_engine_->metrics->GenerationStarted();
  auto job = std::make_shared<GenerateJob>();
  job->received = Clock::now();
  job->session = session;
  job->sink = shared_from_this();
  job->prompt = prompt;
  job->sampling = sampling;
  job->stop = stop;
  job->default_max_new_tokens = default_max_new_tokens;
  GenerateEvent event;
  auto* opened = event.mutable_opened();
  opened->set_session_id(session->id);
  opened->set_parameter_version(session->snapshot->version);
  opened->set_model_config(session->snapshot->config.ToString());
  opened->set_resumed(resumed);
  opened->set_weight_format(generate_engine_->options.weights);
  SendLocked(std::move(event));
  current_ = std::move(session);
  job_ = job;
  generate_engine_->scheduler.Enqueue(std::move(job));
}

Status GenerateStream::CloseLocked(const lanlm::v1::CloseRequest& close) {
  const std::string id = !close.session_id().empty() ? close.session_id() : current_ ? current_->id : "";
  if (id.empty()) return InvalidArgumentError("close.session_id is empty and this stream has no current session");
  if (job_ && job_->session->id == id) {
    StopJobLocked(FinishReason::kCancelled);
    closed_after_job_ = true;
    return OkStatus();
  }
  LANLM_RETURN_IF_ERROR(generate_engine_->manager.ReleaseById(id, FinishReason::kCancelled, client_));
  if (current_ && current_->id == id) current_.reset();
  GenerateEvent event;
  event.mutable_closed()->set_session_id(id);
  SendLocked(std::move(event));
  return OkStatus();
}

GenerateService::GenerateService(SnapshotSource snapshots, GenerateServiceOptions options, engine::ThreadPool& pool,
                                 std::shared_ptr<GenerateMetrics> metrics)
    : generate_engine_(std::make_shared<GenerateEngine>(std::move(snapshots), options, pool, std::move(metrics))) {}

GenerateService::~GenerateService() { Shutdown(); }

void GenerateService::Shutdown() { generate_engine_->Shutdown(); }

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* GenerateService::Generate(
    grpc::CallbackServerContext* context) {
  std::optional<grpc::Status> refusal;
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(generate_engine_->mu);
    if (generate_engine_->shutting_down) {
      refusal = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down");
    }
    id = generate_engine_->next_stream++;
  }
  StatusOr<std::string> client = ClientOf(*context, generate_engine_->options.client_tokens.get());
  if (!refusal && !client.ok()) refusal = protos::ToGrpcStatus(client.status());
  auto stream = std::make_shared<GenerateStream>(generate_engine_, id, context, client.ok() ? *client : "");
  if (!refusal) {
    std::lock_guard<std::mutex> lock(generate_engine_->mu);
    generate_engine_->streams.emplace(id, stream);
  }
  stream->Begin(std::move(refusal));
  return stream.get();
}

SessionStats GenerateService::Stats() const {
  SessionStats stats;
  stats.sessions = generate_engine_->manager.sessions();
  stats.generating = generate_engine_->manager.generating();
  stats.kv_bytes = generate_engine_->manager.kv_bytes();
  stats.largest_batch = generate_engine_->scheduler.largest_batch();
  return stats;
}

const GenerateMetrics& GenerateService::metrics() const { return *generate_engine_->metrics; }

}  // namespace lanlm::coordinator
