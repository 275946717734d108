// The generation clients end to end: the client library and `lanlm generate --server` /
// `lanlm status` against an in-process Generate server, and `lanlm generate --checkpoint`
// against a checkpoint written here, compared with the engine run directly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "client/client_generate.h"
#include "client/commands.h"
#include "engine/io/checkpoint.h"
#include "tests/coordinator/generate_test_util.h"

namespace lanlm::client {
namespace {

using coordinator::testing::TestServer;
using coordinator::testing::TinySnapshot;

GenerateCall Deterministic(const std::string& prompt, int tokens) {
  GenerateCall call;
  call.prompt = prompt;
  call.temperature = 1.0f;
  call.top_k = 0;
  call.top_p = 1.0f;
  call.seed = 6;
  call.max_new_tokens = tokens;
  call.stop_on_eos = false;
  call.confidence_threshold = 0.0f;
  return call;
}

TEST(GenerateClientTest, KeepsAndResumesASessionThenCloses) {
  TestServer server;
  GenerateClient client(server.address, 30.0);
  std::string streamed;
  auto first = client.Generate(Deterministic("the cat", 5), [&](const std::string& t) { streamed += t; });
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->generated_tokens, 5);
  EXPECT_EQ(first->finish_reason, "length");
  EXPECT_EQ(first->parameter_version, 1);
  EXPECT_EQ(streamed, first->text);
  EXPECT_EQ(server.service().Stats().sessions, 1);  // kept

  GenerateCall more = Deterministic("", 5);
  more.resume = true;
  more.session_id = first->session_id;
  auto second = client.Generate(more);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->cached_tokens, first->prompt_tokens + 4);

  GenerateCall whole = Deterministic("the cat", 10);
  whole.close_after = true;
  auto one = client.Generate(whole);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(first->text + second->text, one->text);

  EXPECT_TRUE(client.Close(first->session_id).ok());
  EXPECT_EQ(server.service().Stats().sessions, 0);
  EXPECT_EQ(client.Close(first->session_id).code(), StatusCode::kNotFound);
}

TEST(GenerateClientTest, ServerErrorsComeBackAsStatus) {
  TestServer server;
  GenerateClient client(server.address, 30.0);
  GenerateCall bad = Deterministic("the cat", 5);
  bad.top_p = 2.0f;
  auto r = client.Generate(bad);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("top_p"), std::string::npos);
}

// Slow: gRPC takes about a second to give up on a refused connection.
TEST(SlowGenerateClientTest, UnreachableServerIsOneClearLine) {
  GenerateClient client("127.0.0.1:1", 2.0);
  auto r = client.Generate(Deterministic("x", 1));
  ASSERT_FALSE(r.ok());
  const std::string line = DescribeError(r.status(), client.address());
  EXPECT_NE(line.find("cannot reach lanlm-coordinator at 127.0.0.1:1"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(RunStatus({"--server", "127.0.0.1:1", "--deadline", "2"}), 1);
}

TEST(GenerateClientTest, OnlineCommandStreamsTheText) {
  TestServer server;
  GenerateClient client(server.address, 30.0);
  GenerateCall call = Deterministic("the dog", 8);
  call.close_after = true;
  auto expected = client.Generate(call);
  ASSERT_TRUE(expected.ok());
  ::testing::internal::CaptureStdout();
  const int code = RunGenerateOnline({"--server", server.address, "--prompt", "the dog", "--max-new-tokens", "8",
                                      "--temperature", "1", "--top-k", "0", "--top-p", "1", "--seed", "6",
                                      "--stop-on-eos=false", "--confidence-threshold", "0"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, expected->text + "\n");
  EXPECT_TRUE(server.WaitNoSessions());                           // the one-shot command closes its session
  EXPECT_EQ(RunGenerateOnline({"--server", server.address}), 2);  // no --prompt
}

TEST(GenerateClientTest, ChatKeepsOneSessionAcrossTurnsAndClosesIt) {
  TestServer server;
  std::istringstream input("the cat\nsat on\n/quit\n");
  std::streambuf* saved = std::cin.rdbuf(input.rdbuf());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = RunChat({"--server", server.address, "--max-new-tokens", "4", "--stop-on-eos=false",
                            "--confidence-threshold", "0", "--stop", "\n"});
  ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  std::cin.rdbuf(saved);
  EXPECT_EQ(code, 0);
  // Two answers; the second reused the first turn's cache.
  EXPECT_EQ(std::count(err.begin(), err.end(), '['), 2) << err;
  EXPECT_EQ(err.find("cached 0)", err.find("cached 0)") + 1), std::string::npos) << err;
  EXPECT_EQ(server.service().Stats().sessions, 0);  // closed on /quit
}

TEST(GenerateClientTest, OfflineCommandMatchesTheServer) {
  auto snapshot = TinySnapshot(5, 1);
  engine::Checkpoint checkpoint;
  checkpoint.config = snapshot->config;
  checkpoint.step = 1;
  checkpoint.tokenizer = snapshot->tokenizer->Serialize();
  checkpoint.params = snapshot->params;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lanlm_generate_offline_" + std::to_string(::getpid()) + ".safetensors"))
                               .string();
  ASSERT_TRUE(engine::SaveCheckpoint(path, checkpoint).ok());

  TestServer server;  // serves the same weights
  GenerateClient client(server.address, 30.0);
  GenerateCall call = Deterministic("the cat", 12);
  call.close_after = true;
  auto expected = client.Generate(call);
  ASSERT_TRUE(expected.ok());

  ::testing::internal::CaptureStdout();
  const int code = RunGenerateOffline({"--checkpoint", path, "--prompt", "the cat", "--max-new-tokens", "12",
                                       "--temperature", "1", "--top-k", "0", "--top-p", "1", "--seed", "6",
                                       "--stop-on-eos=false", "--confidence-threshold", "0", "--threads", "1"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  std::filesystem::remove(path);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, expected->text + "\n");
  EXPECT_EQ(RunGenerateOffline({"--checkpoint", "/nonexistent.safetensors", "--prompt", "x"}), 1);
  EXPECT_EQ(RunGenerateOffline({"--prompt", "x"}), 2);
}

}  // namespace
}  // namespace lanlm::client
