// Every bad Generate input gets its gRPC code and a message naming the field or limit, and
// the server keeps serving afterwards.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "coordinator/session_manager.h"
#include "tests/coordinator/generate_test_util.h"

namespace lanlm::coordinator {
namespace {

using namespace lanlm::coordinator::testing;
using lanlm::v1::GenerateRequest;

struct BadCase {
  const char* name;
  std::function<void(GenerateRequest&)> edit;  // applied to Start("the cat", 5)
  grpc::StatusCode code;
  const char* needle;  // must appear in the message
};

grpc::Status SendOne(TestServer& server, const GenerateRequest& request) {
  Stream s(*server.stub);
  s.Send(request);
  s.ReadUntilDone();
  return s.Finish();
}

void ExpectServes(TestServer& server) {
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the cat", 3)));
  const Collected c = Collect(s.ReadUntilDone());
  EXPECT_EQ(c.done.usage().generated_tokens(), 3);
  ASSERT_TRUE(s.Send(Close()));
  EXPECT_TRUE(s.Finish().ok());
}

TEST(GenerateErrorsTest, BadValuesGetTheirCodes) {
  TestServer server;
  const std::vector<BadCase> cases = {
      {"top_p above 1", [](auto& r) { r.mutable_start()->mutable_sampling()->set_top_p(1.5f); },
       grpc::StatusCode::INVALID_ARGUMENT, "start.sampling.top_p = 1.5"},
      {"top_p 0", [](auto& r) { r.mutable_start()->mutable_sampling()->set_top_p(0.0f); },
       grpc::StatusCode::INVALID_ARGUMENT, "top_p"},
      {"negative temperature", [](auto& r) { r.mutable_start()->mutable_sampling()->set_temperature(-1.0f); },
       grpc::StatusCode::INVALID_ARGUMENT, "temperature"},
      {"negative top_k", [](auto& r) { r.mutable_start()->mutable_sampling()->set_top_k(-3); },
       grpc::StatusCode::INVALID_ARGUMENT, "top_k"},
      {"empty prompt", [](auto& r) { r.mutable_start()->set_prompt(""); }, grpc::StatusCode::INVALID_ARGUMENT,
       "start.prompt is empty"},
      {"zero max_new_tokens", [](auto& r) { r.mutable_start()->mutable_stopping()->set_max_new_tokens(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "max_new_tokens"},
      {"empty stop string", [](auto& r) { r.mutable_start()->mutable_stopping()->add_stop(""); },
       grpc::StatusCode::INVALID_ARGUMENT, "stop[0]"},
      {"too many stop strings",
       [](auto& r) {
         for (int i = 0; i < 17; ++i) r.mutable_start()->mutable_stopping()->add_stop("x" + std::to_string(i));
       },
       grpc::StatusCode::INVALID_ARGUMENT, "stop has 17 strings"},
      {"confidence threshold 1.5",
       [](auto& r) { r.mutable_start()->mutable_stopping()->set_confidence_threshold(1.5f); },
       grpc::StatusCode::INVALID_ARGUMENT, "confidence_threshold"},
      {"bad session id", [](auto& r) { r.mutable_start()->set_session_id("a b"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "session_id"},
      {"no request", [](auto& r) { r.clear_request(); }, grpc::StatusCode::INVALID_ARGUMENT, "none of"},
      {"prompt + max_new_tokens over the context",
       [](auto& r) { r.mutable_start()->mutable_stopping()->set_max_new_tokens(100); }, grpc::StatusCode::OUT_OF_RANGE,
       "+ 100 = "},
      {"continue unknown session", [](auto& r) { r = Continue("nobody", "x", 2); }, grpc::StatusCode::NOT_FOUND,
       "nobody"},
      {"continue without id", [](auto& r) { r = Continue("", "x", 2); }, grpc::StatusCode::INVALID_ARGUMENT,
       "continue_session.session_id"},
      {"close unknown session", [](auto& r) { r = Close("ghost"); }, grpc::StatusCode::NOT_FOUND, "ghost"},
      {"close without session", [](auto& r) { r = Close(); }, grpc::StatusCode::INVALID_ARGUMENT, "close"},
  };
  for (const BadCase& c : cases) {
    GenerateRequest request = Start("the cat", 5);
    c.edit(request);
    const grpc::Status status = SendOne(server, request);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.needle), std::string::npos) << c.name << ": " << status.error_message();
  }
  EXPECT_TRUE(server.WaitNoSessions());
  ExpectServes(server);
}

TEST(GenerateErrorsTest, OutOfRangeNamesBothNumbers) {
  TestServer server;
  GenerateRequest request = Start("the cat", 100);
  const int prompt = static_cast<int>(TinyTokenizer()->Encode("the cat").size());
  const grpc::Status status = SendOne(server, request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(status.error_message(), "prompt_tokens + max_new_tokens = " + std::to_string(prompt) +
                                        " + 100 = " + std::to_string(prompt + 100) + " exceeds context = 64");
  ExpectServes(server);
}

TEST(GenerateErrorsTest, LimitsAnswerResourceExhausted) {
  GenerateServiceOptions options;
  options.max_sessions = 2;
  options.max_prompt_bytes = 100;
  TestServer server(options);
  EXPECT_EQ(SendOne(server, Start(std::string(101, 'a'), 2)).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Two sessions held by open streams: the third does not fit.
  Stream a(*server.stub), b(*server.stub);
  ASSERT_TRUE(a.Send(Start("the cat", 2, 1, "a")));
  ASSERT_TRUE(b.Send(Start("the cat", 2, 1, "b")));
  a.ReadUntilDone();
  b.ReadUntilDone();
  const grpc::Status third = SendOne(server, Start("the cat", 2));
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(third.error_message().find("--generate-max-sessions = 2"), std::string::npos) << third.error_message();
  // A duplicate id is not a new session.
  EXPECT_EQ(SendOne(server, Start("the cat", 2, 1, "a")).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(a.Send(Close()));
  ASSERT_TRUE(a.Finish().ok());
  // b ends cleanly: its session stays, unowned, until a new one needs the room.
  ASSERT_TRUE(b.Finish().ok());
  EXPECT_EQ(server.service().Stats().sessions, 1);
  Stream c(*server.stub);
  ASSERT_TRUE(c.Send(Start("the cat", 2, 1, "c")));
  EXPECT_TRUE(Collect(c.ReadUntilDone()).has_done);
  // b's stream end reaches the server's reactor just after b.Finish() returned here; until it
  // has, b is still owned and d does not fit (RESOURCE_EXHAUSTED, a correct answer). Retry d
  // until b is unowned, then d evicts it.
  std::unique_ptr<Stream> d;
  for (int attempt = 0; attempt < 1000 && !d; ++attempt) {
    auto next = std::make_unique<Stream>(*server.stub);
    ASSERT_TRUE(next->Send(Start("the cat", 2, 1, "d")));
    if (Collect(next->ReadUntilDone()).has_done) {
      d = std::move(next);
    } else {
      EXPECT_EQ(next->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ASSERT_TRUE(d) << "d never fitted: the unowned session b was not evicted";
  EXPECT_EQ(server.service().Stats().sessions, 2);
  EXPECT_EQ(SendOne(server, Continue("b", "", 1)).error_code(), grpc::StatusCode::NOT_FOUND);  // evicted
  ASSERT_TRUE(c.Send(Close()));
  ASSERT_TRUE(d->Send(Close()));
  EXPECT_TRUE(c.Finish().ok());
  EXPECT_TRUE(d->Finish().ok());
  ExpectServes(server);
}

TEST(GenerateErrorsTest, KvMemoryLimitNamesTheFlag) {
  GenerateServiceOptions options;
  options.max_kv_mib = 1;
  options.max_sessions = 1000;
  TestServer server(options);
  const int64_t per_session = SessionKvBytes(ServedConfig());
  const int fit = static_cast<int>((int64_t{1} << 20) / per_session);
  Stream s(*server.stub);  // one stream holds every session, so none can be evicted
  for (int i = 0; i < fit; ++i) {
    ASSERT_TRUE(s.Send(Start("the cat", 1)));
    ASSERT_TRUE(Collect(s.ReadUntilDone()).has_done) << i;
  }
  EXPECT_EQ(server.service().Stats().kv_bytes, fit * per_session);
  ASSERT_TRUE(s.Send(Start("the cat", 1)));
  s.ReadUntilDone();
  const grpc::Status status = s.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("--generate-max-kv-mib = 1"), std::string::npos) << status.error_message();
}

TEST(GenerateErrorsTest, NoSnapshotIsUnavailable) {
  TestServer server;
  server.box.Publish(nullptr);
  EXPECT_EQ(SendOne(server, Start("the cat", 2)).error_code(), grpc::StatusCode::UNAVAILABLE);
  server.box.Publish(TinySnapshot(5, 1));
  ExpectServes(server);
}

}  // namespace
}  // namespace lanlm::coordinator
