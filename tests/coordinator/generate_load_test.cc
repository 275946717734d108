// Load: 32 concurrent Generate streams on loopback, a quarter of them disconnecting abruptly
// mid-generation. Every other one completes; afterwards no session and no KV byte remain.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/coordinator/generate_test_util.h"

namespace lanlm::coordinator {
namespace {

using namespace lanlm::coordinator::testing;

TEST(SlowGenerateLoadTest, ThirtyTwoStreamsWithAbruptDisconnects) {
  GenerateServiceOptions options;
  options.max_batch = 32;
  options.max_sessions_per_client = 64;  // every stream is one client (127.0.0.1)
  TestServer server(options, SlowSnapshot());
  constexpr int kStreams = 32;
  constexpr int kTokens = 100;
  std::atomic<int> completed{0}, dropped{0}, wrong{0};
  std::atomic<int> peak_sessions{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      Stream s(*server.stub);
      if (!s.Send(Start("the cat sat", kTokens, static_cast<uint64_t>(i)))) {
        ++wrong;
        return;
      }
      const bool disconnect = i % 4 == 0;
      lanlm::v1::GenerateEvent event;
      int tokens = 0;
      bool done = false;
      while (s.Read(&event)) {
        if (event.has_token()) ++tokens;
        if (disconnect && tokens == 5 + i % 7) {
          s.context.TryCancel();
          s.Finish();
          ++dropped;
          return;
        }
        if (event.has_done()) {
          done = event.done().reason() == lanlm::v1::FINISH_REASON_LENGTH &&
                 event.done().usage().generated_tokens() == kTokens && tokens == kTokens;
          break;
        }
      }
      int live = server.service().Stats().sessions;
      int seen = peak_sessions.load();
      while (live > seen && !peak_sessions.compare_exchange_weak(seen, live)) {
      }
      s.Send(Close());
      if (done && s.Finish().ok()) {
        ++completed;
      } else {
        ++wrong;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(completed.load(), kStreams - kStreams / 4);
  EXPECT_EQ(dropped.load(), kStreams / 4);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(peak_sessions.load(), 1);  // the streams really overlapped
  EXPECT_TRUE(server.WaitNoSessions());
  const SessionStats stats = server.service().Stats();
  EXPECT_EQ(stats.sessions, 0);
  EXPECT_EQ(stats.kv_bytes, 0);
  EXPECT_EQ(stats.generating, 0);
}

}  // namespace
}  // namespace lanlm::coordinator
