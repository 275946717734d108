// The Generate stream reactor: reads, writes, the ways a call ends and the decode threads'
// events; see generate_stream.h. Request handling lives in generate_service.cc.
#include "coordinator/generate_stream.h"

#include <thread>

#include "protos/convert.h"
#include "protos/generate_convert.h"
#include "protos/raw_message.h"

namespace lanlm::coordinator {

using engine::FinishReason;
using lanlm::v1::GenerateEvent;
using lanlm::v1::GenerateRequest;

GenerateEngine::GenerateEngine(SnapshotSource source, const GenerateServiceOptions& opts, engine::ThreadPool& pool,
                               std::shared_ptr<GenerateMetrics> recorder)
    : snapshots(std::move(source)),
      options(opts),
      metrics(recorder ? std::move(recorder) : std::make_shared<GenerateMetrics>()),
      manager(SessionLimits{opts.max_sessions, opts.PerClientCap(), opts.max_kv_mib << 20, opts.session_ttl_s}),
      scheduler(
          pool, opts.decode_threads, opts.max_batch, [this] { manager.ExpireIdle(Clock::now()); },
          std::min(1.0, opts.session_ttl_s / 4), engine::ParseWeightFormat(opts.weights).value(), metrics.get()) {}

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

void GenerateStream::Begin(std::optional<grpc::Status> refusal) {
  self_ = shared_from_this();
  std::lock_guard<std::mutex> lock(mu_);
  if (refusal) {
    EndLocked(std::move(*refusal));
    return;
  }
  StartRead(&request_bytes_);
}

void GenerateStream::OnReadDone(bool ok) {
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
  GenerateRequest request;
  Status status = protos::ParseRaw(request_bytes_, &request);
  if (status.ok()) status = HandleLocked(request);
  if (!status.ok()) {
    EndWhenIdleLocked(protos::ToGrpcStatus(status), FinishReason::kCancelled);
    return;
  }
  StartRead(&request_bytes_);
}

void GenerateStream::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (!ok) {
    AbortLocked();
    // The stream may have ended while this write was in flight (cancelled, then the job's
    // end): EndLocked could not finish then, so finish now, or gRPC waits for us forever.
    MaybeWriteLocked();
    return;
  }
  if (parked_ && static_cast<int>(queue_.size()) <= generate_engine_->options.max_queued_events / 2) {
    parked_ = false;
    generate_engine_->scheduler.Enqueue(job_);
  }
  MaybeWriteLocked();
}

void GenerateStream::OnCancel() {
  std::lock_guard<std::mutex> lock(mu_);
  AbortLocked();
}

void GenerateStream::OnDone() {
  if (context_->IsCancelled()) {
    std::lock_guard<std::mutex> lock(mu_);
    AbortLocked();
  }
  generate_engine_->manager.Detach(id_);
  {
    std::lock_guard<std::mutex> lock(generate_engine_->mu);
    generate_engine_->streams.erase(id_);
  }
  std::shared_ptr<GenerateStream> self = std::move(self_);  // may be the last reference
}

void GenerateStream::Evict() {
  std::lock_guard<std::mutex> lock(mu_);
  EndWhenIdleLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"), FinishReason::kEvicted);
}

void GenerateStream::OnToken(GenerateJob& /*job*/, const engine::Generation::Step& step) {
  GenerateEvent event;
  auto* token = event.mutable_token();
  token->set_id(step.token);
  token->set_text(step.text);
  token->set_probability(step.probability);
  std::lock_guard<std::mutex> lock(mu_);
  SendLocked(std::move(event));
}

void GenerateStream::AfterStep(const std::shared_ptr<GenerateJob>& job) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool stopping = job->session->stop_request.load() != FinishReason::kNone;
  if (stopping || static_cast<int>(queue_.size()) < generate_engine_->options.max_queued_events) {
    generate_engine_->scheduler.Enqueue(job);
  } else {
    parked_ = true;
  }
}

void GenerateStream::OnJobDone(const std::shared_ptr<GenerateJob>& job, FinishReason reason, const std::string& tail,
                               const Status& error) {
  std::lock_guard<std::mutex> lock(mu_);
  // An error ends the stream, and like every end of a running generation but a normal one
  // it releases the session.
  const bool released = generate_engine_->manager.EndGeneration(job->session, release_after_job_ || !error.ok());
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

void GenerateStream::StopJobLocked(FinishReason reason) {
  FinishReason none = FinishReason::kNone;
  job_->session->stop_request.compare_exchange_strong(none, reason);
  release_after_job_ = true;
  if (parked_) {
    parked_ = false;
    generate_engine_->scheduler.Enqueue(job_);
  }
}

void GenerateStream::AbortLocked() {
  if (cancelled_) return;
  cancelled_ = true;
  queue_.clear();
  generate_engine_->manager.ReleaseOwnedBy(id_, FinishReason::kCancelled);
  current_.reset();
  if (job_) {
    StopJobLocked(FinishReason::kCancelled);
  } else {
    EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
  }
}

void GenerateStream::EndWhenIdleLocked(grpc::Status status, FinishReason reason) {
  if (end_status_ || end_after_job_) return;
  if (job_) {
    end_after_job_ = std::move(status);
    StopJobLocked(reason);
  } else {
    EndLocked(std::move(status));
  }
}

void GenerateStream::EndLocked(grpc::Status status) {
  if (end_status_) return;
  generate_engine_->metrics->StreamFinished(static_cast<StatusCode>(status.error_code()));
  end_status_ = std::move(status);
  if (cancelled_) queue_.clear();
  MaybeWriteLocked();
}

void GenerateStream::SendLocked(GenerateEvent event) {
  if (end_status_ || cancelled_) return;
  queue_.push_back(std::move(event));
  MaybeWriteLocked();
}

void GenerateStream::MaybeWriteLocked() {
  if (writing_ || finished_) return;
  if (!queue_.empty()) {
    const GenerateEvent event = std::move(queue_.front());
    queue_.pop_front();
    writing_bytes_.Clear();
    if (grpc::Status serialized = protos::SerializeRaw(event, &writing_bytes_); !serialized.ok()) {
      queue_.clear();
      finished_ = true;
      Finish(serialized);
      return;
    }
    writing_ = true;
    StartWrite(&writing_bytes_);
  } else if (end_status_) {
    finished_ = true;
    Finish(*end_status_);
  }
}

}  // namespace lanlm::coordinator
