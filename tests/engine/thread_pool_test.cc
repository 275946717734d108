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

TEST(ThreadPoolTest, DefaultThreadCountIsPositiveAndStable) {
  EXPECT_GE(DefaultThreadCount(), 1);
  EXPECT_EQ(DefaultThreadCount(), DefaultThreadCount());
  ThreadPool pool;
  EXPECT_EQ(pool.size(), DefaultThreadCount());
}

}  // namespace
}  // namespace lanlm::engine
