// Generate service over real gRPC on localhost: sessions, continuation, streaming text,
// cancellation, parameter pinning. Errors and load are in generate_errors_test.cc and
// generate_load_test.cc.
#include <gtest/gtest.h>

#include <thread>

#include "engine/generate/generation.h"
#include "tests/coordinator/generate_test_util.h"

namespace lanlm::coordinator {
namespace {

using namespace lanlm::coordinator::testing;

bool ValidUtf8(const std::string& s) {
  // Minimal strict decoder, independent of the streamer's.
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2) || c > 0xF4) return false;
    for (int k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(GenerateServiceTest, ContinuedSessionEqualsOneLongRequestAndReusesCache) {
  TestServer server;
  const std::string prompt = "the cat sat";
  const int n_prompt = static_cast<int>(TinyTokenizer()->Encode(prompt).size());

  Stream a(*server.stub);
  ASSERT_TRUE(a.Send(Start(prompt, 6, 9, "split")));
  const Collected first = Collect(a.ReadUntilDone());
  ASSERT_TRUE(first.has_done);
  EXPECT_EQ(first.opened.session_id(), "split");
  EXPECT_EQ(first.done.usage().prompt_tokens(), n_prompt);
  EXPECT_EQ(first.done.usage().cached_tokens(), 0);
  EXPECT_EQ(first.done.usage().generated_tokens(), 6);
  EXPECT_EQ(first.done.reason(), lanlm::v1::FINISH_REASON_LENGTH);
  ASSERT_TRUE(a.Finish().ok());  // clean end: the session stays for resumption

  Stream b(*server.stub);  // resumed from a new stream
  ASSERT_TRUE(b.Send(Continue("split", "", 7, 9)));
  const Collected second = Collect(b.ReadUntilDone());
  ASSERT_TRUE(second.has_done);
  EXPECT_TRUE(second.opened.resumed());
  EXPECT_EQ(second.done.usage().cached_tokens(), n_prompt + 5);  // only the last token is new
  EXPECT_EQ(second.done.usage().prompt_tokens(), 1);
  ASSERT_TRUE(b.Send(Close()));
  ASSERT_TRUE(b.Finish().ok());

  Stream c(*server.stub);
  ASSERT_TRUE(c.Send(Start(prompt, 13, 9)));
  const Collected whole = Collect(c.ReadUntilDone());
  ASSERT_TRUE(c.Send(Close()));
  ASSERT_TRUE(c.Finish().ok());

  std::vector<int32_t> joined = first.ids;
  joined.insert(joined.end(), second.ids.begin(), second.ids.end());
  EXPECT_EQ(joined, whole.ids);
  EXPECT_EQ(first.text + second.text, whole.text);
  EXPECT_TRUE(server.WaitNoSessions());
}

// What the engine alone generates for Start("the dog", 20, 4) on TinySnapshot(5, 1) in the
// given weight format: the reference the service's tokens must match.
struct EngineTokens {
  std::vector<int32_t> ids;
  std::string text;
};
EngineTokens EngineGeneration(engine::WeightFormat format) {
  auto snapshot = TinySnapshot(5, 1);
  auto weights = engine::ServingWeights::Convert(snapshot->config, snapshot->params.data(), format);
  EXPECT_TRUE(weights.ok());
  engine::ThreadPool pool(1);
  engine::Decoder decoder(snapshot->config);
  engine::DecodeState state(snapshot->config);
  engine::SamplingOptions sampling;
  sampling.temperature = 1.0f;
  sampling.top_k = 0;
  sampling.top_p = 1.0f;
  sampling.seed = 4;
  engine::StopOptions stop;
  stop.max_new_tokens = 20;
  stop.stop_on_eos = false;
  stop.confidence_threshold = 0.0f;
  EngineTokens out;
  auto r = engine::RunGeneration(
      decoder, *weights, *snapshot->tokenizer, state, snapshot->tokenizer->Encode("the dog"), sampling, stop,
      [&](const engine::Generation::Step& step) {
        out.ids.push_back(step.token);
        return true;
      },
      pool);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok()) out.text = r->text;
  return out;
}

// The same request through the engine alone gives the same tokens (the service's batched
// steps change nothing).
TEST(GenerateServiceTest, MatchesEngineGeneration) {
  TestServer server;
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the dog", 20, 4)));
  const Collected got = Collect(s.ReadUntilDone());
  ASSERT_TRUE(s.Finish().ok());

  const EngineTokens want = EngineGeneration(engine::WeightFormat::kF32);
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.text, want.text);
}

// --weights q8: the opened event names the format and the tokens are those of the engine's
// generation on the q8 weights (converted by the service from the fp32 snapshot).
TEST(GenerateServiceTest, ServesTheChosenWeightFormat) {
  GenerateServiceOptions options;
  options.weights = "q8";
  ASSERT_TRUE(options.Validate().ok());
  TestServer server(options);
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the dog", 20, 4)));
  const Collected got = Collect(s.ReadUntilDone());
  ASSERT_TRUE(s.Finish().ok());
  EXPECT_EQ(got.opened.weight_format(), "q8");

  EXPECT_EQ(got.ids, EngineGeneration(engine::WeightFormat::kQ8).ids);

  options.weights = "int4";
  EXPECT_EQ(options.Validate().message(), "--weights = 'int4' is not one of: fp32, bf16, q8");
}

// Concurrent streams are advanced together (Decoder::FeedBatch) and draw their tokens in
// parallel on a 2-thread pool; each still gets exactly the tokens it would get alone.
TEST(GenerateServiceTest, BatchedStreamsMatchSingleStreams) {
  GenerateServiceOptions options;
  options.max_batch = 8;
  TestServer server(options, SlowSnapshot(), 2);
  constexpr int kStreams = 8;
  std::vector<Collected> together(kStreams);
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      Stream s(*server.stub);
      s.Send(Start("the cat", 40, static_cast<uint64_t>(i)));
      together[static_cast<size_t>(i)] = Collect(s.ReadUntilDone());
      s.Send(Close());
      s.Finish();
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GT(server.service().Stats().largest_batch, 1) << "the streams were never batched";
  for (int i = 0; i < kStreams; ++i) {
    Stream s(*server.stub);
    ASSERT_TRUE(s.Send(Start("the cat", 40, static_cast<uint64_t>(i))));
    const Collected alone = Collect(s.ReadUntilDone());
    ASSERT_TRUE(s.Send(Close()));
    ASSERT_TRUE(s.Finish().ok());
    EXPECT_EQ(together[static_cast<size_t>(i)].ids, alone.ids) << "stream " << i;
    EXPECT_EQ(alone.ids.size(), 40u);
  }
}

TEST(GenerateServiceTest, DeltasAreValidUtf8AndConcatenateToDecodedText) {
  TestServer server;
  int multibyte = 0;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    Stream s(*server.stub);
    ASSERT_TRUE(s.Send(Start("h\xC3\xA9llo caf\xC3\xA9 \xE6\x97\xA5", 40, seed)));
    const Collected got = Collect(s.ReadUntilDone());
    ASSERT_TRUE(s.Send(Close()));
    ASSERT_TRUE(s.Finish().ok());
    for (const auto& d : got.deltas) EXPECT_TRUE(ValidUtf8(d)) << d;
    EXPECT_EQ(got.text, TinyTokenizer()->Decode(got.ids));
    for (char ch : got.text) multibyte += (static_cast<unsigned char>(ch) >= 0x80) ? 1 : 0;
  }
  EXPECT_GT(multibyte, 0) << "no multi-byte character was generated: the test proved nothing";
}

TEST(GenerateServiceTest, StopStringNeverLeaks) {
  TestServer server;
  // Greedy continuation without stop strings...
  auto greedy = [](const std::string& stop) {
    lanlm::v1::GenerateRequest r = Start("the cat", 30, 0);
    r.mutable_start()->mutable_sampling()->set_temperature(0.0f);
    if (!stop.empty()) r.mutable_start()->mutable_stopping()->add_stop(stop);
    return r;
  };
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(greedy("")));
  const Collected free_run = Collect(s.ReadUntilDone());
  ASSERT_TRUE(s.Send(Close()));
  ASSERT_TRUE(s.Finish().ok());
  ASSERT_GE(free_run.text.size(), 8u);
  // ...then with a stop string cut from the middle of that text (spanning several tokens).
  auto boundary = [&](size_t i) {  // the stop string must be valid UTF-8 itself
    while (i < free_run.text.size() && (static_cast<unsigned char>(free_run.text[i]) & 0xC0) == 0x80) ++i;
    return i;
  };
  const size_t from = boundary(free_run.text.size() / 2);
  const std::string stop = free_run.text.substr(from, boundary(from + 3) - from);
  ASSERT_FALSE(stop.empty());
  const std::string expected = free_run.text.substr(0, free_run.text.find(stop));
  Stream t(*server.stub);
  ASSERT_TRUE(t.Send(greedy(stop)));
  const Collected stopped = Collect(t.ReadUntilDone());
  ASSERT_TRUE(t.Send(Close()));
  ASSERT_TRUE(t.Finish().ok());
  EXPECT_EQ(stopped.done.reason(), lanlm::v1::FINISH_REASON_STOP_STRING);
  EXPECT_EQ(stopped.text, expected);
  for (const auto& d : stopped.deltas) EXPECT_EQ(d.find(stop), std::string::npos);
}

TEST(GenerateServiceTest, CancelMidStreamFreesTheSession) {
  TestServer server({}, SlowSnapshot());
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the cat", 240, 3)));
  lanlm::v1::GenerateEvent event;
  int tokens = 0;
  while (tokens < 2 && s.Read(&event)) tokens += event.has_token() ? 1 : 0;
  EXPECT_EQ(server.service().Stats().sessions, 1);
  ASSERT_TRUE(s.Send(Cancel()));
  const Collected rest = Collect(s.ReadUntilDone());
  ASSERT_TRUE(rest.has_done);
  EXPECT_EQ(rest.done.reason(), lanlm::v1::FINISH_REASON_CANCELLED);
  EXPECT_LT(rest.done.usage().generated_tokens(), 240);
  const SessionStats stats = server.service().Stats();
  EXPECT_EQ(stats.sessions, 0);
  EXPECT_EQ(stats.kv_bytes, 0);
  ASSERT_TRUE(s.Finish().ok());
  // The cancelled session is gone.
  Stream t(*server.stub);
  ASSERT_TRUE(t.Send(Continue(rest.done.session_id(), "", 2)));
  t.ReadUntilDone();
  EXPECT_EQ(t.Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(GenerateServiceTest, DisconnectFreesEverything) {
  TestServer server({}, SlowSnapshot());
  {
    Stream s(*server.stub);
    ASSERT_TRUE(s.Send(Start("the cat", 240, 3)));
    lanlm::v1::GenerateEvent event;
    while (s.Read(&event) && !event.has_token()) {
    }
    s.context.TryCancel();  // abrupt: no cancel request, no WritesDone
    s.Finish();
  }
  EXPECT_TRUE(server.WaitNoSessions());
}

TEST(GenerateServiceTest, SessionPinsItsParameterVersion) {
  TestServer server;
  Stream a(*server.stub);
  ASSERT_TRUE(a.Send(Start("the dog", 5, 2, "pinned")));
  const Collected first = Collect(a.ReadUntilDone());
  EXPECT_EQ(first.opened.parameter_version(), 1);

  server.box.Publish(TinySnapshot(77, 2));  // training moved on
  ASSERT_TRUE(a.Send(Continue("pinned", "", 5, 2)));
  const Collected second = Collect(a.ReadUntilDone());
  EXPECT_EQ(second.opened.parameter_version(), 1);
  ASSERT_TRUE(a.Send(Close()));
  ASSERT_TRUE(a.Finish().ok());

  // Version 1 alone, in one request, gives the same tokens.
  TestServer reference;
  Stream r(*reference.stub);
  ASSERT_TRUE(r.Send(Start("the dog", 10, 2)));
  const Collected whole = Collect(r.ReadUntilDone());
  ASSERT_TRUE(r.Finish().ok());
  std::vector<int32_t> joined = first.ids;
  joined.insert(joined.end(), second.ids.begin(), second.ids.end());
  EXPECT_EQ(joined, whole.ids);

  // A new session gets the new version, and its tokens differ.
  Stream n(*server.stub);
  ASSERT_TRUE(n.Send(Start("the dog", 10, 2)));
  const Collected fresh = Collect(n.ReadUntilDone());
  ASSERT_TRUE(n.Finish().ok());
  EXPECT_EQ(fresh.opened.parameter_version(), 2);
  EXPECT_NE(fresh.ids, whole.ids);
}

TEST(GenerateServiceTest, OneStreamHoldsSeveralSessionsInTurn) {
  TestServer server;
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the cat", 3, 1, "one")));
  EXPECT_TRUE(Collect(s.ReadUntilDone()).has_done);
  ASSERT_TRUE(s.Send(Start("the dog", 3, 1, "two")));
  EXPECT_TRUE(Collect(s.ReadUntilDone()).has_done);
  EXPECT_EQ(server.service().Stats().sessions, 2);
  ASSERT_TRUE(s.Send(Continue("one", " on", 3)));
  EXPECT_EQ(Collect(s.ReadUntilDone()).done.session_id(), "one");
  ASSERT_TRUE(s.Send(Close("one")));
  ASSERT_TRUE(s.Send(Close("two")));
  lanlm::v1::GenerateEvent event;
  int closed = 0;
  while (closed < 2 && s.Read(&event)) closed += event.has_closed() ? 1 : 0;
  EXPECT_EQ(closed, 2);
  ASSERT_TRUE(s.Finish().ok());
  EXPECT_EQ(server.service().Stats().sessions, 0);
}

TEST(GenerateServiceTest, IdleSessionExpiresAfterTtl) {
  GenerateServiceOptions options;
  options.session_ttl_s = 0.05;
  TestServer server(options);
  Stream s(*server.stub);
  ASSERT_TRUE(s.Send(Start("the cat", 2, 1, "brief")));
  s.ReadUntilDone();
  ASSERT_TRUE(s.Finish().ok());
  EXPECT_TRUE(server.WaitNoSessions());
  Stream t(*server.stub);
  ASSERT_TRUE(t.Send(Continue("brief", "", 2)));
  t.ReadUntilDone();
  EXPECT_EQ(t.Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace lanlm::coordinator
