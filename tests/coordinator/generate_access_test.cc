// Who may use Generate and ClusterStatus, and how much (issue 12): client bearer tokens
// (UNAUTHENTICATED without one), the per-client session cap (the 64-idle-streams lockout:
// another client still gets a session), sessions private to their client, and requests that
// do not parse (INVALID_ARGUMENT naming the message type), all over real gRPC sockets.
#include <gtest/gtest.h>

#include "coordinator/status_service.h"
#include "tests/coordinator/generate_test_util.h"
#include "tests/support/raw_call.h"

namespace lanlm::coordinator::testing {
namespace {

using lanlm::v1::GenerateEvent;
using lanlm::v1::GenerateRequest;
using ReaderWriter = grpc::ClientReaderWriter<GenerateRequest, GenerateEvent>;
using lanlm::testing::RawCall;
using lanlm::testing::RawResult;

std::shared_ptr<const protos::ClientTokens> Tokens() {
  return std::make_shared<const protos::ClientTokens>(std::vector<std::string>{"alpha-token", "beta-token"});
}

// One Generate stream carrying `token` ("" = none); kept open until Finish.
struct TokenStream {
  TokenStream(lanlm::v1::Generate::Stub& stub, const std::string& token) {
    // A liveness bound, not a timing: 65 streams decode on a shared CI machine.
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    protos::AttachBearerToken(context, token);
    rw = stub.Generate(&context);
  }
  // Sends `request`, reads to its done event: the session id, or "" when the stream ended.
  std::string RunToDone(const GenerateRequest& request) {
    if (!rw->Write(request)) return "";
    GenerateEvent event;
    while (rw->Read(&event)) {
      if (event.has_done()) return event.done().session_id();
    }
    return "";
  }
  grpc::Status Finish() {
    rw->WritesDone();
    GenerateEvent event;
    while (rw->Read(&event)) {
    }
    return rw->Finish();
  }
  grpc::ClientContext context;
  std::unique_ptr<ReaderWriter> rw;
};

TEST(GenerateAccessTest, TokensAreRequiredWhenConfigured) {
  GenerateServiceOptions options;
  options.client_tokens = Tokens();
  TestServer server(options);
  TokenStream none(*server.stub, "");
  EXPECT_EQ(none.RunToDone(Start("the cat", 2)), "");
  grpc::Status status = none.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(status.error_message().find("authorization: Bearer <token>"), std::string::npos) << status.error_message();

  TokenStream wrong(*server.stub, "gamma-token");
  EXPECT_EQ(wrong.RunToDone(Start("the cat", 2)), "");
  status = wrong.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message().find("gamma"), std::string::npos) << "never echo what was sent";

  TokenStream right(*server.stub, "beta-token");
  EXPECT_NE(right.RunToDone(Start("the cat", 2)), "");
  EXPECT_TRUE(right.Finish().ok());
}

// The lockout: one client opens 64 streams that start a session and never read. It
// gets a quarter of --generate-max-sessions; everyone else still gets a session.
TEST(GenerateAccessTest, OneClientCannotLockOutAnother) {
  GenerateServiceOptions options;  // 64 sessions, 16 per client
  options.client_tokens = Tokens();
  TestServer server(options);
  std::vector<std::unique_ptr<TokenStream>> idle;
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<TokenStream>(*server.stub, "alpha-token"));
    ASSERT_TRUE(idle.back()->rw->Write(Start("the cat", 2)));
  }
  TokenStream other(*server.stub, "beta-token");
  EXPECT_NE(other.RunToDone(Start("the dog", 2)), "");
  EXPECT_TRUE(other.Finish().ok());

  int held = 0, refused = 0;
  for (auto& stream : idle) {
    const grpc::Status status = stream->Finish();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      EXPECT_NE(status.error_message().find("--generate-max-sessions-per-client = 16"), std::string::npos)
          << status.error_message();
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
      ++held;
    }
  }
  EXPECT_EQ(held, 16);
  EXPECT_EQ(refused, 48);
  EXPECT_EQ(server.service().Stats().sessions, 17);  // clean ends keep their sessions for continue
}

// Without tokens a client is its address: every loopback stream is the same client.
TEST(GenerateAccessTest, WithoutTokensTheCapCountsByPeerAddress) {
  GenerateServiceOptions options;
  options.max_sessions = 8;
  options.max_sessions_per_client = 2;
  TestServer server(options);
  TokenStream a(*server.stub, ""), b(*server.stub, ""), c(*server.stub, "");
  EXPECT_NE(a.RunToDone(Start("the cat", 1)), "");
  EXPECT_NE(b.RunToDone(Start("the cat", 1)), "");
  EXPECT_EQ(c.RunToDone(Start("the cat", 1)), "");
  const grpc::Status status = c.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("--generate-max-sessions-per-client = 2"), std::string::npos);
  EXPECT_TRUE(a.Finish().ok());
  EXPECT_TRUE(b.Finish().ok());
}

TEST(GenerateAccessTest, AnotherClientsSessionAnswersAsUnknown) {
  GenerateServiceOptions options;
  options.client_tokens = Tokens();
  TestServer server(options);
  TokenStream owner(*server.stub, "alpha-token");
  const std::string id = owner.RunToDone(Start("the cat", 1));
  ASSERT_NE(id, "");
  ASSERT_TRUE(owner.Finish().ok());  // a clean end keeps the session for continue_session

  TokenStream other(*server.stub, "beta-token");
  EXPECT_EQ(other.RunToDone(Continue(id, " sat", 1)), "");
  EXPECT_EQ(other.Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  TokenStream again(*server.stub, "alpha-token");
  EXPECT_EQ(again.RunToDone(Continue(id, " sat", 1)), id);
  EXPECT_TRUE(again.Finish().ok());
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

TEST(GenerateAccessTest, RequestsThatDoNotParseAreInvalidArgument) {
  TestServer server;
  const std::string method = "/lanlm.v1.Generate/Generate";
  const RawResult garbage = RawCall(Channel(server.address), method, {std::string("\xff\xff\xff\xff\x0f\x01", 6)});
  EXPECT_EQ(garbage.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(garbage.status.error_message().find("malformed lanlm.v1.GenerateRequest"), std::string::npos)
      << garbage.status.error_message();
  EXPECT_TRUE(garbage.replies.empty());

  // A well-formed request whose prompt bytes are not UTF-8 (proto3 strings must be).
  std::string bytes = Start("PROMPT", 2).SerializeAsString();
  bytes.replace(bytes.find("PROMPT"), 6, "\xff\xfe\xc0\x80\xed\xa0");
  const RawResult utf8 = RawCall(Channel(server.address), method, {bytes});
  EXPECT_EQ(utf8.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(utf8.status.error_message().find("invalid UTF-8"), std::string::npos) << utf8.status.error_message();

  // The same path serves well-formed bytes.
  const RawResult fine = RawCall(Channel(server.address), method, {Start("the cat", 2).SerializeAsString()});
  EXPECT_TRUE(fine.status.ok()) << fine.status.error_message();
  GenerateEvent last;
  ASSERT_FALSE(fine.replies.empty());
  ASSERT_TRUE(last.ParseFromString(fine.replies.back()));
  EXPECT_TRUE(last.has_done());
}

// ClusterStatus: the same token rule and the same answer to bytes that do not parse.
TEST(GenerateAccessTest, ClusterStatusChecksTokensAndParsing) {
  StatusService service([](v1::GetStatusReply* reply) { reply->set_mode("serving"); }, Tokens());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_GT(port, 0);
  auto channel = Channel("127.0.0.1:" + std::to_string(port));
  const std::string method = "/lanlm.v1.ClusterStatus/GetStatus";
  EXPECT_EQ(RawCall(channel, method, {""}).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const std::multimap<std::string, std::string> bearer = {{"authorization", "Bearer alpha-token"}};
  const RawResult ok = RawCall(channel, method, {""}, bearer);
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  v1::GetStatusReply reply;
  ASSERT_EQ(ok.replies.size(), 1u);
  ASSERT_TRUE(reply.ParseFromString(ok.replies[0]));
  EXPECT_EQ(reply.mode(), "serving");
  const RawResult bad = RawCall(channel, method, {std::string("\x0a\xff\x01", 3)}, bearer);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.status.error_message().find("malformed lanlm.v1.GetStatusRequest"), std::string::npos)
      << bad.status.error_message();
  server->Shutdown();
}

}  // namespace
}  // namespace lanlm::coordinator::testing
