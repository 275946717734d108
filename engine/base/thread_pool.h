// ThreadPool: a fixed set of persistent worker threads and a deterministic ParallelFor.
// One pool per process, created from --threads and passed explicitly (never a global).
// Not a task queue: ParallelFor blocks until every item is done. Concurrent ParallelFor calls
// from different threads are serialised (thread-safe, but only one runs at a time).
//
// Determinism: ParallelFor only decides which thread runs which range of items; callers make
// each item's arithmetic independent of range boundaries, so results are bit-identical for
// any pool size (DESIGN.md §3, §9).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lanlm::engine {

// std::thread::hardware_concurrency(), read once and cached; at least 1.
int DefaultThreadCount();

class ThreadPool {
 public:
  // num_threads counts the calling thread: a pool of 1 runs everything inline. 0 = default.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return num_threads_; }

  // Below this much work (items x cost_per_item, in rough flops) ParallelFor runs inline.
  static constexpr int64_t kInlineWork = 32 * 1024;

  // Calls fn(begin, end) on disjoint ranges that together cover [0, count), possibly from
  // several threads at once, and returns when all are done. cost_per_item is a rough count of
  // flops per item, used only to decide whether threads are worth waking.
  template <typename Fn>
  void ParallelFor(int64_t count, int64_t cost_per_item, Fn&& fn) {
    Dispatch(count, cost_per_item, /*affine=*/false, fn);
  }

  // ParallelFor where thread t (the caller is thread 0) first runs its own share of the items,
  // the t-th of size() contiguous shares, the same for every call with the same count; threads
  // that finish their share then take chunks left in the others'. For memory-bound work that
  // reads the same data on every call (decoding a token reads every weight once): each core's
  // caches keep the part it reads, where ParallelFor's first-come claims hand a range to
  // whichever thread is free. On the 2-core development VM, where each core keeps its own part
  // of a buffer read over and over, fixed halves of 30 MB read at 116-143 GB/s and alternating
  // halves at 75-98 (lanlm-cache-halves; BENCHMARKS.md, issue 11, thirteenth session). Same
  // determinism contract as ParallelFor.
  template <typename Fn>
  void ParallelForAffine(int64_t count, int64_t cost_per_item, Fn&& fn) {
    Dispatch(count, cost_per_item, /*affine=*/true, fn);
  }

 private:
  using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
  template <typename Fn>
  void Dispatch(int64_t count, int64_t cost_per_item, bool affine, Fn& fn) {
    if (count <= 0) return;
    if (num_threads_ == 1 || count == 1 || count * cost_per_item < kInlineWork) {
      fn(int64_t{0}, count);
      return;
    }
    using FnType = std::remove_reference_t<Fn>;
    Run(count, affine, [](void* ctx, int64_t b, int64_t e) { (*static_cast<FnType*>(ctx))(b, e); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }
  void Run(int64_t count, bool affine, RangeFn fn, void* ctx);
  void WorkerLoop(int self);
  // Claims and runs chunks of the job published in claims_ until a claim fails (an affine
  // job's claims_ word has no chunks: its chunks are claimed from the shares in RunShares);
  // returns the tag of the job that claim failed in.
  uint64_t RunChunks(int self);
  // An affine job: thread self's share first, then what is left of the others', in order.
  void RunShares(int self);
  // Runs chunk c of the current job and counts it done; whether that was the job's last
  // (then it wakes a sleeping caller).
  bool RunChunk(int64_t c, int64_t chunks);
  // Spins for at most kSpin until done() holds; whether it does. Decoding one token issues
  // about 30 jobs of 20-50 us each at 2 threads, and a condition-variable wake-up costs
  // tens of microseconds in a VM, so workers and the caller poll briefly before sleeping.
  template <typename Done>
  static bool SpinUntil(Done&& done);

  // A job's claim word: generation (bits 41-63), affine (bit 40), chunk count (bits 20-39),
  // chunks claimed so far (bits 0-19); bits 40-63 are the job's tag. One fetch_add both claims
  // a chunk and says which job it belongs to and whether it exists, so the fast path takes no
  // lock: a claim below the count is valid, and the job's fields stay unchanged until every
  // valid claim has finished (chunks_done_). An affine job publishes a count of 0 here.
  static constexpr int kClaimBits = 20;
  static constexpr int kTagShift = 2 * kClaimBits;
  static constexpr uint64_t kClaimMask = (uint64_t{1} << kClaimBits) - 1;
  static constexpr uint64_t kAffineBit = uint64_t{1} << kTagShift;

  // Thread t's share of an affine job: first chunk (bits 40-59), end (bits 20-39), chunks
  // claimed from it so far (bits 0-19). Run() resets every share before it publishes the job,
  // so a fetch_add below the end is a valid claim of the current job, whoever makes it (a
  // thread still looking at the previous job included); each on its own cache line.
  struct alignas(64) Share {
    std::atomic<uint64_t> word{0};
  };
  std::unique_ptr<Share[]> shares_;

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // serialises Run() callers

  // Sleeping only: workers wait on wake_cv_ after spinning kSpin without a job, the caller on
  // done_cv_ after spinning kSpin for the last chunk. sleepers_ and caller_sleeps_ let the other
  // side skip the mutex and the notify when nobody sleeps (read after a seq_cst write of the
  // state the sleeper re-checks, so one of the two always sees the other).
  std::mutex mu_;
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeps_{false};
  std::atomic<bool> stop_{false};

  // The current job; written by Run() before it publishes claims_, read after a valid claim.
  RangeFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int64_t job_count_ = 0;
  int64_t job_chunk_ = 0;
  int64_t job_chunks_ = 0;
  uint64_t generation_ = 0;  // Run() only
  std::atomic<uint64_t> claims_{0};
  std::atomic<int64_t> chunks_done_{0};
};

}  // namespace lanlm::engine
