// GenerateStream: the reactor of one lanlm.v1.Generate call (generate_service.h), and
// GenerateEngine, what the service object and every stream share: sessions, decode threads
// and the registry of live streams. Requests and events travel as raw bytes (grpc::ByteBuffer)
// so that a request which does not parse is answered INVALID_ARGUMENT naming its message type
// instead of gRPC's silent end of stream; the stream parses and serializes them itself.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "coordinator/generate_scheduler.h"
#include "coordinator/generate_service.h"
#include "coordinator/session_manager.h"
#include "protos/generate.pb.h"

namespace lanlm::coordinator {

class GenerateStream;

// Shared by the service object and every stream (which may outlive the service object).
class GenerateEngine {
 public:
  GenerateEngine(SnapshotSource source, const GenerateServiceOptions& opts, engine::ThreadPool& pool,
                 std::shared_ptr<GenerateMetrics> recorder);

  // Evicts every running generation, ends every open stream, frees all sessions and joins the
  // decode threads; see GenerateService::Shutdown.
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
class GenerateStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                             public JobSink,
                             public std::enable_shared_from_this<GenerateStream> {
 public:
  // client: whose sessions this stream creates and may continue (SessionManager).
  GenerateStream(std::shared_ptr<GenerateEngine> engine, uint64_t id, grpc::CallbackServerContext* context,
                 std::string client)
      : generate_engine_(std::move(engine)), id_(id), context_(context), client_(std::move(client)) {}

  // Starts reading, or ends the call at once with `refusal` (shutting down, unauthenticated).
  void Begin(std::optional<grpc::Status> refusal);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  // Also after Finish: a read that failed before the cancellation was visible looked like a
  // half-close, and the stream ended "cleanly" although the client had gone.
  void OnCancel() override;
  // The one release path's last check: a call that did not end cleanly frees its sessions;
  // one that did leaves its idle sessions for continue_session (the TTL frees them).
  void OnDone() override;
  // Shutdown: evict the running generation, then end with UNAVAILABLE.
  void Evict();

  // JobSink (decode threads).
  void OnToken(GenerateJob& job, const engine::Generation::Step& step) override;
  void AfterStep(const std::shared_ptr<GenerateJob>& job) override;
  void OnJobDone(const std::shared_ptr<GenerateJob>& job, engine::FinishReason reason, const std::string& tail,
                 const Status& error) override;

 private:
  // Request handling (generate_service.cc, with the request validation).
  Status HandleLocked(const lanlm::v1::GenerateRequest& request);
  Status CheckCommon(const std::string& prompt, const std::string& field);
  Status StartLocked(const lanlm::v1::StartRequest& start);
  Status ContinueLocked(const lanlm::v1::ContinueRequest& next);
  void RunLocked(std::shared_ptr<Session> session, const std::string& prompt, const engine::SamplingOptions& sampling,
                 const engine::StopOptions& stop, bool default_max_new_tokens, bool resumed);
  Status CloseLocked(const lanlm::v1::CloseRequest& close);

  // Asks the running job to stop at its next step and release its session afterwards.
  void StopJobLocked(engine::FinishReason reason);
  // The client went away (cancel, disconnect, failed write): free everything at once.
  void AbortLocked();
  void EndWhenIdleLocked(grpc::Status status, engine::FinishReason reason);
  void EndLocked(grpc::Status status);
  void SendLocked(lanlm::v1::GenerateEvent event);
  // At most one write in flight; Finish exactly once, after the last write.
  void MaybeWriteLocked();

  const std::shared_ptr<GenerateEngine> generate_engine_;
  const uint64_t id_;
  grpc::CallbackServerContext* const context_;  // valid until OnDone returns
  const std::string client_;
  std::shared_ptr<GenerateStream> self_;  // keeps the reactor alive until OnDone
  grpc::ByteBuffer request_bytes_;        // target of the one outstanding read

  std::mutex mu_;
  std::deque<lanlm::v1::GenerateEvent> queue_;
  grpc::ByteBuffer writing_bytes_;  // the event being written, serialized
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

}  // namespace lanlm::coordinator
