// ThreadPool implementation: workers sleep on a condition variable between jobs; each job
// is cut into a few chunks per thread that threads claim from an atomic counter (load
// balancing for uneven items such as causal attention rows).
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
    stop_ = true;
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

void ThreadPool::RunChunks() {
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= job_chunks_) return;
    const int64_t begin = c * job_chunk_;
    const int64_t end = std::min(job_count_, begin + job_chunk_);
    job_fn_(job_ctx_, begin, end);
    if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == job_chunks_) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_all();
    }
  }
}

void ThreadPool::Run(int64_t count, RangeFn fn, void* ctx) {
  std::lock_guard<std::mutex> run_lock(run_mu_);
  const int64_t target_chunks = std::min<int64_t>(count, int64_t{num_threads_} * 4);
  {
    // A worker still inside RunChunks() of the previous job reads the job fields without the
    // lock, so they are rewritten only once every worker has left it (active_ == 0).
    SpinUntil([&] { return active_.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return active_ == 0; });
    job_fn_ = fn;
    job_ctx_ = ctx;
    job_count_ = count;
    job_chunk_ = (count + target_chunks - 1) / target_chunks;
    job_chunks_ = (count + job_chunk_ - 1) / job_chunk_;
    next_chunk_.store(0, std::memory_order_relaxed);
    chunks_done_.store(0, std::memory_order_relaxed);
    ++generation_;
    published_.store(generation_, std::memory_order_release);
  }
  wake_cv_.notify_all();
  RunChunks();
  SpinUntil([&] {
    return chunks_done_.load(std::memory_order_acquire) == job_chunks_ && active_.load(std::memory_order_acquire) == 0;
  });
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] {
    return active_ == 0 && chunks_done_.load(std::memory_order_acquire) == job_chunks_;
  });
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    SpinUntil([&] { return published_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      ++active_;
    }
    RunChunks();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_cv_.notify_all();
    }
  }
}

}  // namespace lanlm::engine
