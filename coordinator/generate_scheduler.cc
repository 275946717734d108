// Decode threads of the Generate service: prefill, batched next-token steps, stop requests.
#include "coordinator/generate_scheduler.h"

#include <algorithm>
#include <chrono>

namespace lanlm::coordinator {

using engine::FinishReason;

DecodeScheduler::DecodeScheduler(engine::ThreadPool& pool, int threads, int max_batch,
                                 std::function<void()> housekeeping, double period_s, engine::WeightFormat format,
                                 GenerateMetrics* metrics)
    : pool_(pool),
      max_batch_(std::max(1, max_batch)),
      housekeeping_(std::move(housekeeping)),
      period_s_(period_s),
      format_(format),
      metrics_(metrics) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this, i] { Loop(i); });
}

DecodeScheduler::~DecodeScheduler() { Stop(); }

void DecodeScheduler::Enqueue(std::shared_ptr<GenerateJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      ready_.push_back(std::move(job));
      cv_.notify_one();
      return;
    }
  }
  // After Stop no decode thread is left: end the job on a thread of its own, since the
  // caller (the stream) may hold the lock OnJobDone takes.
  std::thread([job = std::move(job)] {
    const std::string tail = job->generation ? job->generation->Stop(FinishReason::kEvicted) : "";
    job->sink->OnJobDone(job, FinishReason::kEvicted, tail, OkStatus());
  }).detach();
}

int DecodeScheduler::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(ready_.size()) + stepping_;
}

void DecodeScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && threads_.empty()) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::deque<std::shared_ptr<GenerateJob>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(ready_);
  }
  for (const auto& job : left) {
    const std::string tail = job->generation ? job->generation->Stop(FinishReason::kEvicted) : "";
    Finish(job, FinishReason::kEvicted, tail, OkStatus());
  }
}

std::vector<std::shared_ptr<GenerateJob>> DecodeScheduler::TakeBatchLocked() {
  std::vector<std::shared_ptr<GenerateJob>> batch;
  if (ready_.empty()) return batch;
  const ParamSnapshot* snapshot = ready_.front()->session->snapshot.get();
  for (auto it = ready_.begin(); it != ready_.end() && static_cast<int>(batch.size()) < max_batch_;) {
    if ((*it)->session->snapshot.get() == snapshot) {
      batch.push_back(std::move(*it));
      it = ready_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

void DecodeScheduler::Loop(int index) {
  DecoderSlot slot;
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period_s_));
  Clock::time_point next_housekeeping = Clock::now() + period;
  while (true) {
    std::vector<std::shared_ptr<GenerateJob>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto wake = [this] { return stop_ || !ready_.empty(); };
      if (index == 0 && housekeeping_) {
        cv_.wait_until(lock, next_housekeeping, wake);
      } else {
        cv_.wait(lock, wake);
      }
      if (stop_) return;
      batch = TakeBatchLocked();
      stepping_ += static_cast<int>(batch.size());
    }
    if (index == 0 && housekeeping_ && Clock::now() >= next_housekeeping) {
      housekeeping_();
      next_housekeeping = Clock::now() + period;
    }
    if (batch.empty()) continue;
    const int taken = static_cast<int>(batch.size());
    Step(batch, slot);
    std::lock_guard<std::mutex> lock(mu_);
    stepping_ -= taken;
  }
}

void DecodeScheduler::Finish(const std::shared_ptr<GenerateJob>& job, FinishReason reason, const std::string& tail,
                             const Status& error) {
  job->sink->OnJobDone(job, reason, tail, error);
}

StatusOr<std::shared_ptr<const engine::ServingWeights>> DecodeScheduler::WeightsFor(
    const std::shared_ptr<const ParamSnapshot>& snapshot) {
  std::lock_guard<std::mutex> lock(weights_mu_);
  std::erase_if(converted_, [](const Converted& c) { return c.snapshot.expired(); });
  for (const Converted& c : converted_) {
    if (c.snapshot.lock() == snapshot) return c.weights;
  }
  LANLM_ASSIGN_OR_RETURN(engine::ServingWeights w,
                         engine::ServingWeights::Convert(snapshot->config, snapshot->params.data(), format_));
  auto shared = std::make_shared<const engine::ServingWeights>(std::move(w));
  converted_.push_back({snapshot, shared});
  return shared;
}

Status DecodeScheduler::Prefill(GenerateJob& job, engine::Decoder& decoder, float* logits) {
  const ParamSnapshot& snapshot = *job.session->snapshot;
  engine::DecodeState& state = job.session->state;
  const std::vector<int32_t> prompt = snapshot.tokenizer->Encode(job.prompt);
  if (job.default_max_new_tokens) {
    const int64_t room = snapshot.config.context - state.used() - static_cast<int64_t>(prompt.size());
    job.stop.max_new_tokens = static_cast<int>(std::clamp<int64_t>(room, 1, engine::StopOptions{}.max_new_tokens));
  }
  LANLM_ASSIGN_OR_RETURN(std::vector<int32_t> feed,
                         engine::Generation::PrefillTokens(state, prompt, job.stop, snapshot.config.context));
  job.cached_tokens = state.cache.length;
  job.prompt_tokens = static_cast<int64_t>(feed.size());
  LANLM_ASSIGN_OR_RETURN(auto weights, WeightsFor(job.session->snapshot));
  LANLM_RETURN_IF_ERROR(decoder.Feed(*weights, feed.data(), job.prompt_tokens, state.cache, logits, pool_));
  state.pending = -1;
  job.prefilled = true;
  job.generation = std::make_unique<engine::Generation>(*snapshot.tokenizer, job.sampling, job.stop);
  return OkStatus();
}

void DecodeScheduler::Emit(const std::shared_ptr<GenerateJob>& job, const float* logits, int vocab) {
  Emit(job, job->generation->Sample(logits, vocab, job->session->state, &pool_));
}

void DecodeScheduler::Emit(const std::shared_ptr<GenerateJob>& job, const engine::SampledToken& sampled) {
  const engine::Generation::Step step = job->generation->Accept(sampled, job->session->state);
  const Clock::time_point now = Clock::now();
  const bool first = job->generation->generated() == 1;
  if (metrics_ != nullptr) {
    metrics_->TokenEmitted(first, std::chrono::duration<double>(now - (first ? job->received : job->last_token)).count());
  }
  if (first) job->first_token = now;
  job->last_token = now;
  job->sink->OnToken(*job, step);
  if (step.finish != FinishReason::kNone) {
    Finish(job, step.finish, "", OkStatus());
  } else {
    job->sink->AfterStep(job);
  }
}

void DecodeScheduler::Step(std::vector<std::shared_ptr<GenerateJob>>& jobs, DecoderSlot& slot) {
  const engine::ModelConfig& config = jobs.front()->session->snapshot->config;
  if (!slot.decoder || !(slot.config == config)) {
    slot.decoder = std::make_unique<engine::Decoder>(config);
    slot.config = config;
  }
  const int vocab = config.vocab_size;
  const size_t need = jobs.size() * static_cast<size_t>(vocab);
  if (slot.logits.size() < need) slot.logits.resize(need);

  std::vector<std::shared_ptr<GenerateJob>> batch;  // prefilled jobs: one token each
  for (const auto& job : jobs) {
    const FinishReason stop = job->session->stop_request.load();
    if (stop != FinishReason::kNone) {
      const std::string tail = job->generation ? job->generation->Stop(stop) : "";
      Finish(job, stop, tail, OkStatus());
    } else if (!job->prefilled) {
      const Status status = Prefill(*job, *slot.decoder, slot.logits.data());
      if (status.ok()) {
        Emit(job, slot.logits.data(), vocab);
      } else {
        Finish(job, FinishReason::kNone, "", status);
      }
    } else {
      batch.push_back(job);
    }
  }
  if (batch.empty()) return;

  int largest = largest_batch_.load();
  while (static_cast<int>(batch.size()) > largest &&
         !largest_batch_.compare_exchange_weak(largest, static_cast<int>(batch.size()))) {
  }
  // Prefill converted this snapshot's weights already (they live as long as its sessions).
  auto weights = WeightsFor(batch.front()->session->snapshot);
  Status status = weights.status();
  if (!status.ok()) {
  } else if (batch.size() == 1) {
    engine::DecodeState& state = batch.front()->session->state;
    const int32_t token = state.pending;
    status = slot.decoder->Feed(**weights, &token, 1, state.cache, slot.logits.data(), pool_);
  } else {
    std::vector<engine::KvCache*> caches;
    std::vector<int32_t> tokens;
    for (const auto& job : batch) {
      caches.push_back(&job->session->state.cache);
      tokens.push_back(job->session->state.pending);
    }
    status = slot.decoder->FeedBatch(**weights, caches, tokens.data(), slot.logits.data(), pool_);
  }
  if (!status.ok()) {
    // PrefillTokens reserved room for every token, so this is a server bug, not bad input.
    for (const auto& job : batch)
      Finish(job, FinishReason::kNone, "", InternalError("decode step: " + status.ToString()));
    return;
  }
  // Each session's draw depends only on its own logits, seed and step count, so the batch
  // draws in parallel with the same tokens (at V = 32000 a draw takes 15-35 us, serial work
  // between batched steps otherwise); tokens are then sent in batch order. A batch always
  // spreads (each draw counted as a whole inline unit of work), whatever the vocabulary: a
  // small one's draws are cheap, but so is its step, and the tests' tiny vocabularies then
  // drive this path across threads too.
  // A batch of one spreads its single draw's passes over the pool instead.
  std::vector<engine::SampledToken> sampled(batch.size());
  const auto draw = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      sampled[i] = batch[i]->generation->Sample(slot.logits.data() + i * static_cast<size_t>(vocab), vocab,
                                                batch[i]->session->state, batch.size() == 1 ? &pool_ : nullptr);
    }
  };
  if (batch.size() == 1) {
    draw(0, 1);
  } else {
    pool_.ParallelFor(static_cast<int64_t>(batch.size()), engine::ThreadPool::kInlineWork, draw);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->session->state.pending = -1;
    Emit(batch[i], sampled[i]);
  }
}

}  // namespace lanlm::coordinator
