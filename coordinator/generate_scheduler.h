// DecodeScheduler: the decode threads of the Generate service. Each loop takes the ready
// generations, prefills new ones one by one (Decoder::Feed) and advances the rest together,
// one token each, with Decoder::FeedBatch per pinned snapshot. Events go back through a
// JobSink (the stream); knows nothing of gRPC.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/generate_metrics.h"
#include "coordinator/session_manager.h"
#include "engine/generate/generation.h"
#include "engine/generate/serving_weights.h"
#include "engine/base/thread_pool.h"

namespace lanlm::coordinator {

class JobSink;

// One start or continue request being served.
struct GenerateJob {
  std::shared_ptr<Session> session;  // busy while the job runs
  std::shared_ptr<JobSink> sink;
  std::string prompt;  // text, tokenized on the decode thread
  engine::SamplingOptions sampling;
  engine::StopOptions stop;
  bool default_max_new_tokens = false;  // unset: 128, or as many as still fit in the context
  Clock::time_point received;

  // Decode-thread state (one thread at a time touches a job).
  std::unique_ptr<engine::Generation> generation;
  bool prefilled = false;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  Clock::time_point first_token;
  Clock::time_point last_token;
};

// Receives a job's events; implemented by the stream reactor. Called from decode threads.
class JobSink {
 public:
  virtual ~JobSink() = default;
  virtual void OnToken(GenerateJob& job, const engine::Generation::Step& step) = 0;
  // The job's last call. reason is kNone when `error` ends it (bad prompt, context overflow);
  // tail is held-back text not yet sent.
  virtual void OnJobDone(const std::shared_ptr<GenerateJob>& job, engine::FinishReason reason, const std::string& tail,
                         const Status& error) = 0;
  // The job is not finished: the sink enqueues it again now, or later when its write queue
  // drains (backpressure: a slow reader pauses its generation, not the others).
  virtual void AfterStep(const std::shared_ptr<GenerateJob>& job) = 0;
};

// Thread-safe.
class DecodeScheduler {
 public:
  // housekeeping runs on decode thread 0 about every period_s (session expiry). Decoding
  // reads each snapshot's weights converted to `format` (once per snapshot, when first used).
  // Each token's latency goes to `metrics` (optional; it must outlive the scheduler).
  DecodeScheduler(engine::ThreadPool& pool, int threads, int max_batch, std::function<void()> housekeeping,
                  double period_s, engine::WeightFormat format = engine::WeightFormat::kF32,
                  GenerateMetrics* metrics = nullptr);
  ~DecodeScheduler();  // Stop()

  void Enqueue(std::shared_ptr<GenerateJob> job);
  // Jobs queued or being stepped.
  int active() const;
  // Most jobs advanced by one batched step so far.
  int largest_batch() const { return largest_batch_.load(); }
  // Ends queued jobs with their session's stop request (or kEvicted) and joins the threads.
  void Stop();

 private:
  void Loop(int index);
  // Takes up to max_batch ready jobs pinned to the same snapshot as the oldest one.
  std::vector<std::shared_ptr<GenerateJob>> TakeBatchLocked();
  struct DecoderSlot {  // per decode thread
    engine::ModelConfig config;
    std::unique_ptr<engine::Decoder> decoder;
    std::vector<float> logits;  // (max_batch, V)
  };
  void Step(std::vector<std::shared_ptr<GenerateJob>>& jobs, DecoderSlot& slot);
  // Tokenizes and feeds the prompt; the logits after it land in `logits`.
  Status Prefill(GenerateJob& job, engine::Decoder& decoder, float* logits);
  // Samples a token, sends it, then finishes or hands the job back to its sink.
  void Emit(const std::shared_ptr<GenerateJob>& job, const float* logits, int vocab);
  // The same for a token already drawn (Generation::Sample).
  void Emit(const std::shared_ptr<GenerateJob>& job, const engine::SampledToken& sampled);
  void Finish(const std::shared_ptr<GenerateJob>& job, engine::FinishReason reason, const std::string& tail,
              const Status& error);
  // The snapshot's weights in format_, converted on first use and kept while it lives.
  StatusOr<std::shared_ptr<const engine::ServingWeights>> WeightsFor(
      const std::shared_ptr<const ParamSnapshot>& snapshot);

  engine::ThreadPool& pool_;
  const int max_batch_;
  std::function<void()> housekeeping_;
  const double period_s_;
  const engine::WeightFormat format_;
  GenerateMetrics* const metrics_;

  struct Converted {
    std::weak_ptr<const ParamSnapshot> snapshot;
    std::shared_ptr<const engine::ServingWeights> weights;
  };
  std::mutex weights_mu_;
  std::vector<Converted> converted_;  // guarded by weights_mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenerateJob>> ready_;
  int stepping_ = 0;  // jobs taken by threads and not yet returned
  bool stop_ = false;
  std::vector<std::thread> threads_;
  std::atomic<int> largest_batch_{0};
};

}  // namespace lanlm::coordinator
