// ThreadPool implementation: each job is cut into a few chunks per thread that threads claim
// from one atomic word (load balancing for uneven items such as causal attention rows). Between
// jobs workers spin briefly, then sleep on a condition variable; the fast path takes no lock.
#include "engine/base/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "engine/base/check.h"

namespace lanlm::engine {

int DefaultThreadCount() {
  static const int count = [] {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
  }();
  return count;
}

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads > 0 ? num_threads : DefaultThreadCount()) {
  LANLM_CHECK(num_threads >= 0, "negative thread count");
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

template <typename Done>
bool ThreadPool::SpinUntil(Done&& done) {
  // Long enough to bridge the gap between two jobs of one decoding step (the caller's
  // elementwise work in between), short enough that an idle pool sleeps at once in human terms.
  constexpr auto kSpin = std::chrono::microseconds(100);
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (i % 64 == 0 && std::chrono::steady_clock::now() > until) return done();
  }
}

uint64_t ThreadPool::RunChunks() {
  for (;;) {
    // acq_rel: a valid claim sees the fields Run() wrote before publishing the word.
    const uint64_t word = claims_.fetch_add(1, std::memory_order_acq_rel);
    const int64_t c = static_cast<int64_t>(word & kClaimMask);
    const int64_t chunks = static_cast<int64_t>((word >> kClaimBits) & kClaimMask);
    if (c >= chunks) return word >> (2 * kClaimBits);  // the generation it ran out of chunks in
    const int64_t begin = c * job_chunk_;
    const int64_t end = std::min(job_count_, begin + job_chunk_);
    job_fn_(job_ctx_, begin, end);
    if (chunks_done_.fetch_add(1, std::memory_order_seq_cst) + 1 == chunks &&
        caller_sleeps_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_all();
    }
  }
}

void ThreadPool::Run(int64_t count, RangeFn fn, void* ctx) {
  std::lock_guard<std::mutex> run_lock(run_mu_);
  const int64_t target = std::min<int64_t>(count, int64_t{num_threads_} * 4);  // chunks aimed for
  const int64_t chunk = (count + target - 1) / target;
  const int64_t chunks = (count + chunk - 1) / chunk;
  LANLM_CHECK(static_cast<uint64_t>(chunks) + static_cast<uint64_t>(num_threads_) < kClaimMask,
              "too many chunks for the claim word");
  // The previous job's chunks are all done (Run returned), so no valid claim reads these.
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_count_ = count;
  job_chunk_ = chunk;
  chunks_done_.store(0, std::memory_order_relaxed);
  ++generation_;
  claims_.store((generation_ << (2 * kClaimBits)) | (static_cast<uint64_t>(chunks) << kClaimBits),
                std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }  // a sleeper is in wait() or sees the new word
    wake_cv_.notify_all();
  }
  RunChunks();
  auto done = [&] { return chunks_done_.load(std::memory_order_seq_cst) == chunks; };
  if (SpinUntil(done)) return;
  std::unique_lock<std::mutex> lock(mu_);
  caller_sleeps_.store(true, std::memory_order_seq_cst);
  done_cv_.wait(lock, done);
  caller_sleeps_.store(false, std::memory_order_relaxed);
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;  // the generation of this worker's last failed claim
  auto fresh = [&] { return (claims_.load(std::memory_order_seq_cst) >> (2 * kClaimBits)) != seen; };
  for (;;) {
    if (!SpinUntil([&] { return fresh() || stop_.load(std::memory_order_relaxed); })) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_cv_.wait(lock, [&] { return stop_.load() || fresh(); });
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (stop_.load()) return;
    seen = RunChunks();
  }
}

}  // namespace lanlm::engine
