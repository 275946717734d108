// ThreadPool implementation: each job is cut into a few chunks per thread that threads claim
// from one atomic word (load balancing for uneven items such as causal attention rows), or, for
// an affine job, from one word per thread's share. Between jobs workers spin briefly, then sleep
// on a condition variable; the fast path takes no lock.
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
  shares_ = std::make_unique<Share[]>(num_threads_);
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
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

bool ThreadPool::RunChunk(int64_t c, int64_t chunks) {
  const int64_t begin = c * job_chunk_;
  const int64_t end = std::min(job_count_, begin + job_chunk_);
  job_fn_(job_ctx_, begin, end);
  if (chunks_done_.fetch_add(1, std::memory_order_seq_cst) + 1 < chunks) return false;
  if (caller_sleeps_.load(std::memory_order_seq_cst)) {
    std::lock_guard<std::mutex> lock(mu_);
    done_cv_.notify_all();
  }
  return true;
}

uint64_t ThreadPool::RunChunks(int self) {
  for (;;) {
    // acq_rel: a valid claim sees the fields Run() wrote before publishing the word.
    const uint64_t word = claims_.fetch_add(1, std::memory_order_acq_rel);
    const int64_t c = static_cast<int64_t>(word & kClaimMask);
    const int64_t chunks = static_cast<int64_t>((word >> kClaimBits) & kClaimMask);
    if (c < chunks) {
      RunChunk(c, chunks);
      continue;
    }
    if (word & kAffineBit) RunShares(self);
    return word >> kTagShift;  // the tag of the job it ran out of chunks in
  }
}

void ThreadPool::RunShares(int self) {
  // Each failed claim costs a cache-line transfer (another thread's share, or this one's after a
  // theft), so claims stop where the word already says there is nothing left: after the last
  // chunk of a share, once a share's word shows it all claimed, and when the job is done.
  for (int i = 0; i < num_threads_; ++i) {
    Share& share = shares_[(self + i) % num_threads_];
    auto left = [](uint64_t word) {
      return static_cast<int64_t>((word >> kClaimBits) & kClaimMask) -
             static_cast<int64_t>((word >> kTagShift) + (word & kClaimMask));
    };
    if (i > 0 && left(share.word.load(std::memory_order_relaxed)) <= 0) continue;
    for (;;) {
      // acq_rel: a valid claim sees the fields Run() wrote before resetting the share.
      const uint64_t word = share.word.fetch_add(1, std::memory_order_acq_rel);
      if (left(word) <= 0) break;
      if (RunChunk(static_cast<int64_t>((word >> kTagShift) + (word & kClaimMask)), job_chunks_)) return;
      if (left(word) == 1) break;  // that was the share's last chunk
    }
  }
}

void ThreadPool::Run(int64_t count, bool affine, RangeFn fn, void* ctx) {
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
  job_chunks_ = chunks;
  chunks_done_.store(0, std::memory_order_relaxed);
  if (affine) {
    for (int t = 0; t < num_threads_; ++t) {  // release: a claim of the share sees the fields
      const auto first = static_cast<uint64_t>(chunks * t / num_threads_);
      const auto end = static_cast<uint64_t>(chunks * (t + 1) / num_threads_);
      shares_[t].word.store((first << kTagShift) | (end << kClaimBits), std::memory_order_release);
    }
  }
  ++generation_;
  const uint64_t published = affine ? 0 : static_cast<uint64_t>(chunks);
  claims_.store((generation_ << (kTagShift + 1)) | (affine ? kAffineBit : 0) | (published << kClaimBits),
                std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }  // a sleeper is in wait() or sees the new word
    wake_cv_.notify_all();
  }
  if (affine) {
    RunShares(0);
  } else {
    RunChunks(0);
  }
  auto done = [&] { return chunks_done_.load(std::memory_order_seq_cst) == chunks; };
  if (SpinUntil(done)) return;
  std::unique_lock<std::mutex> lock(mu_);
  caller_sleeps_.store(true, std::memory_order_seq_cst);
  done_cv_.wait(lock, done);
  caller_sleeps_.store(false, std::memory_order_relaxed);
}

void ThreadPool::WorkerLoop(int self) {
  uint64_t seen = 0;  // the tag of the job of this worker's last failed claim
  auto fresh = [&] { return (claims_.load(std::memory_order_seq_cst) >> kTagShift) != seen; };
  for (;;) {
    if (!SpinUntil([&] { return fresh() || stop_.load(std::memory_order_relaxed); })) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_cv_.wait(lock, [&] { return stop_.load() || fresh(); });
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (stop_.load()) return;
    // An affine job's word has no chunks to claim, so reading it is enough (no fetch_add that
    // takes its cache line from the caller).
    const uint64_t word = claims_.load(std::memory_order_acquire);
    if (word & kAffineBit) {
      RunShares(self);
      seen = word >> kTagShift;
    } else {
      seen = RunChunks(self);
    }
  }
}

}  // namespace lanlm::engine
