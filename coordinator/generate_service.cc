// The Generate service: options, request validation, and the per-stream reactor that turns
// requests into jobs for the decode threads and their events into writes.
#include "coordinator/generate_service.h"

#include <deque>
#include <optional>
#include <thread>
#include <unordered_map>

#include "coordinator/generate_scheduler.h"
#include "coordinator/session_manager.h"
#include "engine/base/float_bits.h"
#include "protos/convert.h"
#include "protos/generate_convert.h"

namespace lanlm::coordinator {

using engine::FinishReason;
using lanlm::v1::GenerateEvent;
using lanlm::v1::GenerateRequest;

void GenerateServiceOptions::RegisterFlags(FlagSet& flags) {
  flags.Int("generate-max-sessions", &max_sessions, "live Generate sessions at most", 1, 1 << 20);
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

class GenerateStream;

// Shared by the service object and every stream (which may outlive the service object).
class GenerateEngine {
 public:
  GenerateEngine(SnapshotSource source, const GenerateServiceOptions& opts, engine::ThreadPool& pool,
                 std::shared_ptr<GenerateMetrics> recorder)
      : snapshots(std::move(source)),
        options(opts),
        metrics(recorder ? std::move(recorder) : std::make_shared<GenerateMetrics>()),
        manager(SessionLimits{opts.max_sessions, opts.max_kv_mib << 20, opts.session_ttl_s}),
        scheduler(
            pool, opts.decode_threads, opts.max_batch, [this] { manager.ExpireIdle(Clock::now()); },
            std::min(1.0, opts.session_ttl_s / 4), engine::ParseWeightFormat(opts.weights).value(), metrics.get()) {}

  void Shutdown();

  const SnapshotSource snapshots;
  const GenerateServiceOptions options;
  const std::shared_ptr<GenerateMetrics> metrics;
  SessionManager manager;

  std::mutex mu;
  bool shutting_down = false;                                           // guarded by mu
  uint64_t next_stream = 1;                                             // guarded by mu
  std::unordered_map<uint64_t, std::weak_ptr<GenerateStream>> streams;  // guarded by mu

  DecodeScheduler scheduler;  // last: its threads stop first
};

// One Generate call. Lives from Generate() until OnDone and the last job event; everything
// below mu_ is guarded by it. Lock order: stream mu_, then manager, then scheduler.
class GenerateStream final : public grpc::ServerBidiReactor<GenerateRequest, GenerateEvent>,
                             public JobSink,
                             public std::enable_shared_from_this<GenerateStream> {
 public:
  GenerateStream(std::shared_ptr<GenerateEngine> engine, uint64_t id, grpc::CallbackServerContext* context)
      : engine_(std::move(engine)), id_(id), context_(context) {}

  void Begin(bool accept) {
    self_ = shared_from_this();
    std::lock_guard<std::mutex> lock(mu_);
    if (!accept) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ok) {
      // A read fails on a clean half-close, but also when the client cancels, its deadline
      // passes or its connection drops: only the first keeps the stream's idle sessions.
      if (context_->IsCancelled()) {
        AbortLocked();
        return;
      }
      half_closed_ = true;
      if (!job_) EndLocked(grpc::Status::OK);
      return;
    }
    if (end_status_ || end_after_job_ || cancelled_) return;
    const Status status = HandleLocked(request_);
    if (!status.ok()) {
      EndWhenIdleLocked(protos::ToGrpcStatus(status), FinishReason::kCancelled);
      return;
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      AbortLocked();
      return;
    }
    if (parked_ && static_cast<int>(queue_.size()) <= engine_->options.max_queued_events / 2) {
      parked_ = false;
      engine_->scheduler.Enqueue(job_);
    }
    MaybeWriteLocked();
  }

  // Also after Finish: a read that failed before the cancellation was visible looked like a
  // half-close, and the stream ended "cleanly" although the client had gone.
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    AbortLocked();
  }

  // The one release path's last check: a call that did not end cleanly frees its sessions;
  // one that did leaves its idle sessions for continue_session (the TTL frees them).
  void OnDone() override {
    if (context_->IsCancelled()) {
      std::lock_guard<std::mutex> lock(mu_);
      AbortLocked();
    }
    engine_->manager.Detach(id_);
    {
      std::lock_guard<std::mutex> lock(engine_->mu);
      engine_->streams.erase(id_);
    }
    std::shared_ptr<GenerateStream> self = std::move(self_);  // may be the last reference
  }

  // Shutdown: evict the running generation, then end with UNAVAILABLE.
  void Evict() {
    std::lock_guard<std::mutex> lock(mu_);
    EndWhenIdleLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"), FinishReason::kEvicted);
  }

  // JobSink (decode threads).
  void OnToken(GenerateJob& /*job*/, const engine::Generation::Step& step) override {
    GenerateEvent event;
    auto* token = event.mutable_token();
    token->set_id(step.token);
    token->set_text(step.text);
    token->set_probability(step.probability);
    std::lock_guard<std::mutex> lock(mu_);
    SendLocked(std::move(event));
  }

  void AfterStep(const std::shared_ptr<GenerateJob>& job) override {
    std::lock_guard<std::mutex> lock(mu_);
    const bool stopping = job->session->stop_request.load() != FinishReason::kNone;
    if (stopping || static_cast<int>(queue_.size()) < engine_->options.max_queued_events) {
      engine_->scheduler.Enqueue(job);
    } else {
      parked_ = true;
    }
  }

  void OnJobDone(const std::shared_ptr<GenerateJob>& job, FinishReason reason, const std::string& tail,
                 const Status& error) override {
    std::lock_guard<std::mutex> lock(mu_);
    // An error ends the stream, and like every end of a running generation but a normal one
    // it releases the session.
    const bool released = engine_->manager.EndGeneration(job->session, release_after_job_ || !error.ok());
    job_.reset();
    parked_ = false;
    release_after_job_ = false;
    if (released && current_ == job->session) current_.reset();
    if (!error.ok()) {
      EndLocked(protos::ToGrpcStatus(error));
      return;
    }
    GenerateEvent event;
    auto* done = event.mutable_done();
    done->set_reason(protos::ToProto(reason));
    done->set_session_id(job->session->id);
    done->set_text_delta(tail);
    const int generated = job->generation ? job->generation->generated() : 0;
    done->mutable_usage()->set_prompt_tokens(static_cast<int32_t>(job->prompt_tokens));
    done->mutable_usage()->set_cached_tokens(static_cast<int32_t>(job->cached_tokens));
    done->mutable_usage()->set_generated_tokens(generated);
    using Seconds = std::chrono::duration<double>;
    if (generated > 0) done->set_time_to_first_token_s(Seconds(job->first_token - job->received).count());
    const double decode_s = Seconds(job->last_token - job->first_token).count();
    if (generated > 1 && decode_s > 0) done->set_tokens_per_second((generated - 1) / decode_s);
    SendLocked(std::move(event));
    if (closed_after_job_) {
      GenerateEvent closed;
      closed.mutable_closed()->set_session_id(job->session->id);
      SendLocked(std::move(closed));
      closed_after_job_ = false;
    }
    if (end_after_job_) {
      EndLocked(*end_after_job_);
    } else if (cancelled_) {
      EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    } else if (half_closed_) {
      EndLocked(grpc::Status::OK);
    }
  }

 private:
  Status HandleLocked(const GenerateRequest& request) {
    switch (request.request_case()) {
      case GenerateRequest::kStart:
        return StartLocked(request.start());
      case GenerateRequest::kContinueSession:
        return ContinueLocked(request.continue_session());
      case GenerateRequest::kCancel:
        if (job_) {
          StopJobLocked(FinishReason::kCancelled);
        } else if (current_) {
          engine_->manager.Release(current_, FinishReason::kCancelled);
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

  Status CheckCommon(const std::string& prompt, const std::string& field) {
    if (job_) {
      return FailedPreconditionError(field + " while this stream's generation still runs (wait for done or cancel)");
    }
    if (static_cast<int64_t>(prompt.size()) > engine_->options.max_prompt_bytes) {
      return ResourceExhaustedError(
          field + ".prompt is " + std::to_string(prompt.size()) +
          " bytes, above --generate-max-prompt-bytes = " + std::to_string(engine_->options.max_prompt_bytes));
    }
    std::lock_guard<std::mutex> lock(engine_->mu);
    if (engine_->shutting_down) return UnavailableError("server is shutting down");
    return OkStatus();
  }

  Status StartLocked(const lanlm::v1::StartRequest& start) {
    LANLM_RETURN_IF_ERROR(CheckCommon(start.prompt(), "start"));
    if (start.prompt().empty()) return InvalidArgumentError("start.prompt is empty");
    LANLM_ASSIGN_OR_RETURN(engine::SamplingOptions sampling, protos::FromProto(start.sampling(), "start.sampling"));
    LANLM_ASSIGN_OR_RETURN(engine::StopOptions stop, protos::FromProto(start.stopping(), "start.stopping"));
    std::shared_ptr<const ParamSnapshot> snapshot = engine_->snapshots ? engine_->snapshots() : nullptr;
    if (!snapshot || !snapshot->tokenizer) return UnavailableError("no parameters to generate from yet");
    LANLM_ASSIGN_OR_RETURN(std::shared_ptr<Session> session,
                           engine_->manager.Create(start.session_id(), std::move(snapshot), id_));
    engine_->metrics->SessionOpened();
    RunLocked(std::move(session), start.prompt(), sampling, stop, !start.stopping().has_max_new_tokens(), false);
    return OkStatus();
  }

  Status ContinueLocked(const lanlm::v1::ContinueRequest& next) {
    LANLM_RETURN_IF_ERROR(CheckCommon(next.prompt(), "continue_session"));
    if (next.session_id().empty()) return InvalidArgumentError("continue_session.session_id is empty");
    LANLM_ASSIGN_OR_RETURN(engine::SamplingOptions sampling, protos::FromProto(next.sampling(), "continue_session.sampling"));
    LANLM_ASSIGN_OR_RETURN(engine::StopOptions stop, protos::FromProto(next.stopping(), "continue_session.stopping"));
    LANLM_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, engine_->manager.Acquire(next.session_id(), id_));
    RunLocked(std::move(session), next.prompt(), sampling, stop, !next.stopping().has_max_new_tokens(), true);
    return OkStatus();
  }

  void RunLocked(std::shared_ptr<Session> session, const std::string& prompt, const engine::SamplingOptions& sampling,
                 const engine::StopOptions& stop, bool default_max_new_tokens, bool resumed) {
    engine_->metrics->GenerationStarted();
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
    opened->set_weight_format(engine_->options.weights);
    SendLocked(std::move(event));
    current_ = std::move(session);
    job_ = job;
    engine_->scheduler.Enqueue(std::move(job));
  }

  Status CloseLocked(const lanlm::v1::CloseRequest& close) {
    const std::string id = !close.session_id().empty() ? close.session_id() : current_ ? current_->id : "";
    if (id.empty()) return InvalidArgumentError("close.session_id is empty and this stream has no current session");
    if (job_ && job_->session->id == id) {
      StopJobLocked(FinishReason::kCancelled);
      closed_after_job_ = true;
      return OkStatus();
    }
    LANLM_RETURN_IF_ERROR(engine_->manager.ReleaseById(id, FinishReason::kCancelled));
    if (current_ && current_->id == id) current_.reset();
    GenerateEvent event;
    event.mutable_closed()->set_session_id(id);
    SendLocked(std::move(event));
    return OkStatus();
  }

  // Asks the running job to stop at its next step and release its session afterwards.
  void StopJobLocked(FinishReason reason) {
    FinishReason none = FinishReason::kNone;
    job_->session->stop_request.compare_exchange_strong(none, reason);
    release_after_job_ = true;
    if (parked_) {
      parked_ = false;
      engine_->scheduler.Enqueue(job_);
    }
  }

  // The client went away (cancel, disconnect, failed write): free everything at once.
  void AbortLocked() {
    if (cancelled_) return;
    cancelled_ = true;
    queue_.clear();
    engine_->manager.ReleaseOwnedBy(id_, FinishReason::kCancelled);
    current_.reset();
    if (job_) {
      StopJobLocked(FinishReason::kCancelled);
    } else {
      EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
  }

  void EndWhenIdleLocked(grpc::Status status, FinishReason reason) {
    if (end_status_ || end_after_job_) return;
    if (job_) {
      end_after_job_ = std::move(status);
      StopJobLocked(reason);
    } else {
      EndLocked(std::move(status));
    }
  }

  void EndLocked(grpc::Status status) {
    if (end_status_) return;
    engine_->metrics->StreamFinished(static_cast<StatusCode>(status.error_code()));
    end_status_ = std::move(status);
    if (cancelled_) queue_.clear();
    MaybeWriteLocked();
  }

  void SendLocked(GenerateEvent event) {
    if (end_status_ || cancelled_) return;
    queue_.push_back(std::move(event));
    MaybeWriteLocked();
  }

  // At most one write in flight; Finish exactly once, after the last write.
  void MaybeWriteLocked() {
    if (writing_ || finished_) return;
    if (!queue_.empty()) {
      writing_event_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      StartWrite(&writing_event_);
    } else if (end_status_) {
      finished_ = true;
      Finish(*end_status_);
    }
  }

  const std::shared_ptr<GenerateEngine> engine_;
  const uint64_t id_;
  grpc::CallbackServerContext* const context_;  // valid until OnDone returns
  std::shared_ptr<GenerateStream> self_;  // keeps the reactor alive until OnDone
  GenerateRequest request_;               // target of the one outstanding read

  std::mutex mu_;
  std::deque<GenerateEvent> queue_;
  GenerateEvent writing_event_;
  bool writing_ = false;
  bool finished_ = false;                      // Finish called
  std::optional<grpc::Status> end_status_;     // Finish with this once the queue drains
  std::optional<grpc::Status> end_after_job_;  // end with this when the running job is done
  bool half_closed_ = false;                   // the client sent WritesDone
  bool cancelled_ = false;                     // the client went away
  std::shared_ptr<GenerateJob> job_;           // the running generation, if any
  bool parked_ = false;                        // job_ waits for the write queue to drain
  bool release_after_job_ = false;
  bool closed_after_job_ = false;
  std::shared_ptr<Session> current_;  // target of cancel and of close without an id
};

void GenerateEngine::Shutdown() {
  std::vector<std::shared_ptr<GenerateStream>> live;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (shutting_down) return;
    shutting_down = true;
    for (auto& [id, weak] : streams) {
      if (auto stream = weak.lock()) live.push_back(std::move(stream));
    }
  }
  for (const auto& stream : live) stream->Evict();
  // Evicted jobs end at their next step.
  for (int i = 0; i < 10000 && scheduler.active() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  scheduler.Stop();
  manager.ReleaseAll(FinishReason::kEvicted);
}

GenerateService::GenerateService(SnapshotSource snapshots, GenerateServiceOptions options, engine::ThreadPool& pool,
                                 std::shared_ptr<GenerateMetrics> metrics)
    : engine_(std::make_shared<GenerateEngine>(std::move(snapshots), options, pool, std::move(metrics))) {}

GenerateService::~GenerateService() { Shutdown(); }

void GenerateService::Shutdown() { engine_->Shutdown(); }

grpc::ServerBidiReactor<GenerateRequest, GenerateEvent>* GenerateService::Generate(
    grpc::CallbackServerContext* context) {
  bool accept = false;
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(engine_->mu);
    accept = !engine_->shutting_down;
    id = engine_->next_stream++;
  }
  auto stream = std::make_shared<GenerateStream>(engine_, id, context);
  if (accept) {
    std::lock_guard<std::mutex> lock(engine_->mu);
    engine_->streams.emplace(id, stream);
  }
  stream->Begin(accept);
  return stream.get();
}

SessionStats GenerateService::Stats() const {
  SessionStats stats;
  stats.sessions = engine_->manager.sessions();
  stats.generating = engine_->manager.generating();
  stats.kv_bytes = engine_->manager.kv_bytes();
  stats.largest_batch = engine_->scheduler.largest_batch();
  return stats;
}

const GenerateMetrics& GenerateService::metrics() const { return *engine_->metrics; }

}  // namespace lanlm::coordinator
