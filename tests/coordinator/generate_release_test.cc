// Every way a Generate client can leave frees its sessions (issue 12): cancel, deadline and a
// dropped channel, before, during and after a generation, with and without a half-close
// first. Only a clean end of the stream (half-close, then the server's OK) keeps idle
// sessions for a later continue_session. Each test reads the session count back.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "tests/coordinator/generate_test_util.h"

namespace lanlm::coordinator {
namespace {

using namespace lanlm::coordinator::testing;

// When the client leaves relative to its generation.
enum class When { kBeforeStart, kDuring, kAfterDone, kDuringAfterHalfClose };

// Opens a stream on its own channel (so dropping the channel drops only this stream), brings
// it to `when`, then lets `leave` end it the abrupt way.
void LeaveAndExpectFreed(When when, const std::function<void(grpc::ClientContext&)>& leave,
                         double deadline_s = 30.0) {
  TestServer server({}, SlowSnapshot());
  {
    auto channel = grpc::CreateCustomChannel(server.address, grpc::InsecureChannelCredentials(),
                                             grpc::ChannelArguments());  // not shared with server.stub
    auto stub = lanlm::v1::Generate::NewStub(channel);
    Stream s(*stub, deadline_s);
    lanlm::v1::GenerateEvent event;
    if (when != When::kBeforeStart) {
      ASSERT_TRUE(s.Send(Start("the cat", when == When::kAfterDone ? 3 : 240, 3)));
      if (when == When::kAfterDone) {
        ASSERT_TRUE(Collect(s.ReadUntilDone()).has_done);
      } else {
        while (s.Read(&event) && !event.has_token()) {
        }
      }
      EXPECT_EQ(server.service().Stats().sessions, 1);
    }
    leave(s.context);
    while (s.Read(&event)) {
    }
  }
  EXPECT_TRUE(server.WaitNoSessions()) << server.service().Stats().sessions << " session(s) left";
}

void Cancel(grpc::ClientContext& context) { context.TryCancel(); }

TEST(GenerateReleaseTest, CancelBeforeStartLeavesNothing) { LeaveAndExpectFreed(When::kBeforeStart, Cancel); }
TEST(GenerateReleaseTest, CancelDuringGenerationFrees) { LeaveAndExpectFreed(When::kDuring, Cancel); }
TEST(GenerateReleaseTest, CancelAfterDoneFrees) { LeaveAndExpectFreed(When::kAfterDone, Cancel); }

TEST(GenerateReleaseTest, CancelAfterHalfCloseDuringGenerationFrees) {
  TestServer server({}, SlowSnapshot());
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the cat", 240, 3)));
  lanlm::v1::GenerateEvent event;
  while (s.Read(&event) && !event.has_token()) {
  }
  ASSERT_TRUE(s.HalfClose());  // the generation still runs; then the client gives up after all
  s.context.TryCancel();
  while (s.Read(&event)) {
  }
  EXPECT_TRUE(server.WaitNoSessions()) << server.service().Stats().sessions << " session(s) left";
}

TEST(GenerateReleaseTest, DeadlineAfterDoneFrees) {
  LeaveAndExpectFreed(
      When::kAfterDone, [](grpc::ClientContext&) { std::this_thread::sleep_for(std::chrono::milliseconds(700)); },
      0.5);
}

TEST(GenerateReleaseTest, DeadlineDuringGenerationFrees) {
  TestServer server({}, SlowSnapshot());
  Stream s(*server.stub, 0.1);
  ASSERT_TRUE(s.Send(Start("the cat", 240, 3)));
  lanlm::v1::GenerateEvent event;
  while (s.Read(&event)) {
  }
  EXPECT_TRUE(server.WaitNoSessions()) << server.service().Stats().sessions << " session(s) left";
}

// A clean end (half-close, server's OK) keeps the idle session for continue_session.
TEST(GenerateReleaseTest, CleanEndKeepsTheSessionForContinue) {
  TestServer server({}, TinySnapshot(5, 1));
  std::string id;
  {
    Stream s(*server.stub);
    ASSERT_TRUE(s.Send(Start("the cat", 3, 3)));
    const Collected c = Collect(s.ReadUntilDone());
    ASSERT_TRUE(c.has_done);
    id = c.done.session_id();
    ASSERT_TRUE(s.Finish().ok());
  }
  EXPECT_EQ(server.service().Stats().sessions, 1);
  Stream t(*server.stub);
  ASSERT_TRUE(t.Send(Continue(id, " sat", 2)));
  EXPECT_TRUE(Collect(t.ReadUntilDone()).has_done);
  ASSERT_TRUE(t.Send(Close(id)));
  EXPECT_TRUE(t.Finish().ok());
  EXPECT_EQ(server.service().Stats().sessions, 0);
}

}  // namespace
}  // namespace lanlm::coordinator
