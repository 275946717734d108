// ThreadPool: coverage of every item exactly once, inline execution of small work, reuse
// across many jobs and pool sizes, and the sleeping paths of idle workers and of the caller.
#include "engine/base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace lanlm::engine {
namespace {

TEST(ThreadPoolTest, EveryItemRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t count : {1, 2, 7, 64, 1000, 4097}) {
      std::vector<std::atomic<int>> hits(count);
      pool.ParallelFor(count, 1 << 20, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LT(b, e);
        ASSERT_LE(e, count);
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < count; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads=" << threads << " i=" << i;
    }
  }
}

TEST(ThreadPoolTest, SmallWorkRunsInlineOnCaller) {
  ThreadPool pool(4);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.ParallelFor(10, 1, [&](int64_t b, int64_t e) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPoolTest, UsesSeveralThreadsForLargeWork) {
  ThreadPool pool(3);
  std::mutex mu;
  std::set<std::thread::id> seen;
  for (int rep = 0; rep < 200 && seen.size() < 2; ++rep) {
    pool.ParallelFor(64, 1 << 20, [&](int64_t, int64_t) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(std::this_thread::get_id());
    });
  }
  EXPECT_GE(seen.size(), 2u);
}

TEST(ThreadPoolTest, ManyBackToBackJobsAndConcurrentCallers) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto work = [&] {
    for (int rep = 0; rep < 500; ++rep) {
      pool.ParallelFor(100, 1 << 12, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
    }
  };
  std::thread other(work);
  work();
  other.join();
  EXPECT_EQ(total.load(), 2 * 500 * 100);
}

// The pool's slow paths: between jobs idle workers stop spinning and sleep, and a caller whose
// last chunk runs on another thread sleeps too. Each of 20 jobs comes after an idle gap and has
// two chunks; the first one claimed waits until the other has been claimed, which only another
// thread can do, so a worker must wake for every job (a lost wake-up fails the wait). The second
// chunk then outlasts the caller's spin, so the caller must be woken when it ends.
TEST(ThreadPoolTest, SleepingWorkersWakeForEachJobAndWakeASleepingCaller) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 20; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // > the 100 us spin
    std::atomic<int> claimed{0};
    std::atomic<int> hits[2] = {0, 0};
    bool partner_came = true;
    pool.ParallelFor(2, 1 << 20, [&](int64_t b, int64_t e) {
      ASSERT_EQ(e, b + 1);
      hits[b].fetch_add(1);
      if (claimed.fetch_add(1) == 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (claimed.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
        partner_came = claimed.load() == 2;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the caller sleeps meanwhile
      }
    });
    ASSERT_TRUE(partner_came) << "no second thread claimed a chunk within 20 s (job " << rep << ")";
    ASSERT_EQ(hits[0].load(), 1);
    ASSERT_EQ(hits[1].load(), 1);
  }
}

TEST(ThreadPoolTest, AffineEveryItemRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 3; ++rep) {  // back to back: each job resets the shares
      for (int64_t count : {1, 2, 3, 6, 7, 64, 1000, 4097}) {
        std::vector<std::atomic<int>> hits(count);
        pool.ParallelForAffine(count, 1 << 20, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LT(b, e);
          ASSERT_LE(e, count);
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < count; ++i) {
          ASSERT_EQ(hits[i].load(), 1) << "threads=" << threads << " count=" << count << " i=" << i;
        }
      }
    }
  }
}

// Mixed affine and first-come jobs from two callers: each job's items once, none lost when a
// worker still in one job's shares meets the next job's.
TEST(ThreadPoolTest, AffineAndFirstComeJobsInterleave) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  auto work = [&](bool affine_first) {
    for (int rep = 0; rep < 400; ++rep) {
      auto add = [&](int64_t b, int64_t e) { total.fetch_add(e - b); };
      if ((rep % 2 == 0) == affine_first) {
        pool.ParallelForAffine(24, 1 << 12, add);
      } else {
        pool.ParallelFor(24, 1 << 12, add);
      }
    }
  };
  std::thread other(work, false);
  work(true);
  other.join();
  EXPECT_EQ(total.load(), 2 * 400 * 24);
}

// The contract that keeps data in a core's caches: thread t starts with the first chunk of the
// t-th share, the same every call. Each job's share heads wait until every thread has entered
// the job, so no thread can finish early and take another's share first.
TEST(ThreadPoolTest, AffineThreadsStartWithTheirOwnShare) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    const int64_t count = 4 * threads;  // 4 chunks of one item per thread; shares of 4
    std::vector<std::thread::id> first_runner;
    for (int rep = 0; rep < 10; ++rep) {
      std::atomic<int> entered{0};
      std::vector<std::thread::id> runner(count);
      bool all_came = true;
      pool.ParallelForAffine(count, 1 << 20, [&](int64_t b, int64_t e) {
        ASSERT_EQ(e, b + 1);
        runner[b] = std::this_thread::get_id();
        if (b % 4 != 0) return;
        entered.fetch_add(1);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (entered.load() < threads && std::chrono::steady_clock::now() < until) std::this_thread::yield();
        if (entered.load() < threads) all_came = false;
      });
      ASSERT_TRUE(all_came) << "threads=" << threads << ": not every thread entered within 20 s";
      EXPECT_EQ(runner[0], std::this_thread::get_id()) << "the caller is thread 0";
      std::set<std::thread::id> heads;
      for (int t = 0; t < threads; ++t) heads.insert(runner[4 * t]);
      EXPECT_EQ(heads.size(), static_cast<size_t>(threads)) << "each share head on its own thread";
      if (rep == 0) {
        for (int t = 0; t < threads; ++t) first_runner.push_back(runner[4 * t]);
      } else {
        for (int t = 0; t < threads; ++t) EXPECT_EQ(runner[4 * t], first_runner[t]) << "share " << t << " moved";
      }
    }
  }
}

// A thread stuck in its share's first chunk: the others finish their own shares, then take the
// rest of its share, so the job does not wait for it chunk after chunk.
TEST(ThreadPoolTest, AffineIdleThreadsTakeWhatIsLeftOfAStuckShare) {
  ThreadPool pool(2);
  std::atomic<int> entered{0};
  std::vector<std::thread::id> runner(8);
  pool.ParallelForAffine(8, 1 << 20, [&](int64_t b, int64_t e) {
    ASSERT_EQ(e, b + 1);
    runner[b] = std::this_thread::get_id();
    if (b == 0 || b == 4) {  // the share heads: both threads in the job before either goes on
      entered.fetch_add(1);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (entered.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    }
    if (b == 4) std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the worker is stuck
  });
  const auto caller = std::this_thread::get_id();
  ASSERT_EQ(entered.load(), 2);
  EXPECT_NE(runner[4], caller);
  int caller_ran = 0;
  for (int64_t i = 0; i < 8; ++i) caller_ran += runner[i] == caller ? 1 : 0;
  EXPECT_EQ(caller_ran, 7) << "the caller should have taken chunks 5-7 from the stuck worker's share";
}

TEST(ThreadPoolTest, DefaultThreadCountIsPositiveAndStable) {
  EXPECT_GE(DefaultThreadCount(), 1);
  EXPECT_EQ(DefaultThreadCount(), DefaultThreadCount());
  ThreadPool pool;
  EXPECT_EQ(pool.size(), DefaultThreadCount());
}

}  // namespace
}  // namespace lanlm::engine
