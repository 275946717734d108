// Protocol 7, the parameter relay (issue 9 item 4): workers started with a relay address get
// each step's parameters from a peer (a chain with --relay-fanout 1), so the coordinator sends
// one copy per step; the parameters stay bit-identical to the single-process LocalTrainer's.
// A peer that fails (unreachable, or gone halfway through a version) costs nothing but time:
// the worker asks the coordinator for the rest (ParamRequest) and the run ends on the same
// fingerprint. Real gRPC on localhost; the Relay servers are the worker's own (one test feeds
// a RelayServer by hand to stand for a peer that dies after two chunks).
#include "coordinator/coordinator_server.h"
#include "engine/model/parameters.h"
#include "tests/integration/cluster_harness.h"
#include "worker/param_relay.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

constexpr int64_t kChunkBytes = 4096;  // many parameter chunks, so relay hops pipeline

void RelayOn(worker::WorkerOptions& options) { options.relay_listen = "127.0.0.1:0"; }

class ClusterRelayTest : public CorpusTest {
 protected:
  coordinator::CoordinatorOptions Options(int64_t steps, int min_workers) {
    auto options = TinyOptions(corpus_, steps);
    options.min_workers = min_workers;
    options.param_chunk_bytes = kChunkBytes;
    // A fetch from a peer gives up after half the lease timeout; under ThreadSanitizer a chain
    // of three takes over 10 s to pass 27 chunks, so give it a minute.
    options.lease_timeout_ms = 120000;
    return options;
  }
  // fp32 bytes of one parameter copy.
  static int64_t CopyBytes(const coordinator::CoordinatorOptions& options) {
    auto setup = coordinator::PrepareRun(options, GivenFlags{"steps"});
    EXPECT_TRUE(setup.ok());
    return setup.ok() ? static_cast<int64_t>(setup->state.params.size()) * 4 : 0;
  }
  void PeerStopsAfterTwoChunks(bool drop);
};

TEST_F(ClusterRelayTest, ChainOfRelayingWorkersMatchesTheSingleProcessRunWithOneCopyPerStep) {
  const int64_t steps = 3;
  const auto options = Options(steps, /*min_workers=*/3);
  const std::string reference = Hex(ReferenceFingerprint(options));
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  WorkerGroup group((*server)->port(), 0, 1);
  for (int i = 0; i < 3; ++i) group.Add((*server)->port(), 1, true, RelayOn);
  const auto result = (*server)->Wait();
  group.JoinAll();
  ASSERT_TRUE(result.finished) << result.error;
  EXPECT_EQ(Hex(result.fingerprint), reference);

  int64_t received = 0, relayed = 0, served = 0, fallbacks = 0;
  for (int i = 0; i < 3; ++i) {
    const worker::WorkerStats stats = group.worker(i).stats();
    received += stats.param_bytes;
    relayed += stats.relayed_param_bytes;
    served += stats.relay_served_bytes;
    fallbacks += stats.relay_fallbacks;
  }
  EXPECT_EQ(fallbacks, 0);
  EXPECT_GT(relayed, 0);
  // The coordinator's view (/api/status, lanlm status): each worker relays; of their newest
  // versions, the first worker's came from the coordinator and a later one's from a peer.
  int from_coordinator = 0, from_peer = 0;
  for (const coordinator::WorkerRecord& w : (*server)->run().metrics().Workers()) {
    EXPECT_FALSE(w.relay_address.empty()) << w.id;
    EXPECT_EQ(w.relay_fallbacks, 0) << w.id;
    (w.params_from == "coordinator" ? from_coordinator : from_peer) += 1;
  }
  EXPECT_GE(from_coordinator, 1);
  EXPECT_GE(from_peer, 1);
  EXPECT_EQ(served, relayed);  // every byte a worker relayed was received by a peer
  // The coordinator sent exactly one copy per step; peers carried the rest.
  EXPECT_EQ(received - relayed, steps * CopyBytes(options));
}

TEST_F(ClusterRelayTest, UnreachablePeerMeansTheCoordinatorSendsTheParameters) {
  const auto options = Options(2, /*min_workers=*/2);
  const std::string reference = Hex(ReferenceFingerprint(options));
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  WorkerGroup group((*server)->port(), 0, 1);
  // Both listen, but tell peers an address nobody serves: whoever is told to fetch there
  // fails to connect and asks the coordinator.
  for (int i = 0; i < 2; ++i) {
    group.Add((*server)->port(), 1, true, [](worker::WorkerOptions& o) {
      o.relay_listen = "127.0.0.1:0";
      o.relay_address = "127.0.0.1:1";
    });
  }
  const auto result = (*server)->Wait();
  group.JoinAll();
  ASSERT_TRUE(result.finished) << result.error;
  EXPECT_EQ(Hex(result.fingerprint), reference);
  int64_t fallbacks = 0, relayed = 0;
  for (int i = 0; i < 2; ++i) {
    fallbacks += group.worker(i).stats().relay_fallbacks;
    relayed += group.worker(i).stats().relayed_param_bytes;
  }
  EXPECT_GE(fallbacks, 1);
  EXPECT_EQ(relayed, 0);
}

// A peer that delivers two chunks of a version and then gives it up (drop) or goes silent:
// the worker keeps them and the coordinator sends the rest from the third chunk on. Silence
// is noticed after the worker's relay_stall (5 s here: under TSan the call alone can take a
// second to connect), before half the lease timeout (60 s), which is past the 40 s this
// waits for the fallback.
void ClusterRelayTest::PeerStopsAfterTwoChunks(bool drop) {
  const auto options = Options(2, /*min_workers=*/1);
  const std::string reference = Hex(ReferenceFingerprint(options));
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto relay = worker::RelayServer::Start("127.0.0.1:0", kTestToken, std::chrono::milliseconds(2000));
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();

  // A hand-driven worker that relays at `relay`: it takes the first lease (and the
  // parameters, from the coordinator), so the next worker is pointed at it.
  RawClient raw((*server)->port());
  ASSERT_TRUE(raw.Connect("127.0.0.1:" + std::to_string((*relay)->port())));
  v1::Lease lease;
  ASSERT_TRUE(raw.TakeLease(&lease));
  ASSERT_EQ(lease.step(), 0);
  const int64_t n = raw.parameter_count();
  auto chunks = protos::MakeChunks(raw.params().data(), n, kChunkBytes);
  ASSERT_GE(chunks.size(), 4u);
  auto feed = std::make_shared<worker::ParamFeed>(raw.reply().run_id(), 0);
  for (int i = 0; i < 2; ++i) {
    auto message = std::make_shared<v1::ParamChunk>();
    message->set_version(0);
    message->set_run_id(raw.reply().run_id());
    *message->mutable_chunk() = chunks[static_cast<size_t>(i)];
    feed->Append(message);
  }
  if (drop) feed->Drop();
  (*relay)->service().Publish(feed);

  WorkerGroup group((*server)->port(), 0, 1);
  group.Add((*server)->port(), 1, true, [](worker::WorkerOptions& o) { o.relay_stall = std::chrono::seconds(5); });
  float loss = 0;
  std::vector<float> grad = raw.Gradient(lease, &loss);
  const v1::CommitResult committed = raw.Send(lease.lease_id(), protos::MakeChunks(grad.data(), n), n, loss);
  EXPECT_EQ(committed.code(), 0) << committed.message();
  // The relaying client stays in the tree until the worker has been pointed at it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (group.worker(0).stats().relay_fallbacks == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  raw.Close();  // its lease is committed; the rest is the real worker's
  const auto result = (*server)->Wait();
  group.JoinAll();
  ASSERT_TRUE(result.finished) << result.error;
  EXPECT_EQ(Hex(result.fingerprint), reference);
  const worker::WorkerStats stats = group.worker(0).stats();
  EXPECT_EQ(stats.relay_fallbacks, 1);
  EXPECT_EQ(stats.relayed_param_bytes, 2 * kChunkBytes);
  EXPECT_EQ((*relay)->service().bytes_served(), 2 * kChunkBytes);
  feed->Drop();  // ends a silent peer's stream before its server shuts down
}

TEST_F(ClusterRelayTest, PeerGoneHalfwayMeansTheCoordinatorSendsTheRest) { PeerStopsAfterTwoChunks(true); }

TEST_F(ClusterRelayTest, PeerSilentHalfwayIsGivenUpAfterTheStallTimeAndTheCoordinatorSendsTheRest) {
  PeerStopsAfterTwoChunks(false);
}

TEST_F(ClusterRelayTest, ParamRequestSendsTheRestFromAChunkBoundaryAndRefusesOtherOffsets) {
  auto server = TrainingServer::Start(Options(2, 1), GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int64_t floats_per_chunk = kChunkBytes / 4;
  {
    RawClient raw((*server)->port());
    ASSERT_TRUE(raw.Connect());
    v1::Lease lease;
    ASSERT_TRUE(raw.TakeLease(&lease));
    v1::WorkerMessage ask;
    ask.mutable_param_request()->set_version(lease.step());
    ask.mutable_param_request()->set_run_id(raw.reply().run_id());
    ask.mutable_param_request()->set_offset(2 * floats_per_chunk);
    ASSERT_TRUE(raw.Write(ask));
    v1::CoordinatorMessage message;
    ASSERT_TRUE(raw.Read(&message));
    ASSERT_TRUE(message.has_param_chunk());
    EXPECT_EQ(message.param_chunk().chunk().offset(), 2 * floats_per_chunk);
    EXPECT_EQ(message.param_chunk().version(), lease.step());

    ask.mutable_param_request()->set_offset(floats_per_chunk + 1);  // inside a chunk
    ASSERT_TRUE(raw.Write(ask));
    const grpc::Status ended = raw.Drain();
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(ended.error_message().find("offset " + std::to_string(floats_per_chunk + 1)), std::string::npos)
        << ended.error_message();
  }
  {
    RawClient raw((*server)->port());
    ASSERT_TRUE(raw.Connect());
    v1::WorkerMessage ask;
    ask.mutable_param_request()->set_version(7);  // not the run's step
    ask.mutable_param_request()->set_run_id(raw.reply().run_id());
    ASSERT_TRUE(raw.Write(ask));
    const grpc::Status ended = raw.Drain();
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::ABORTED);
    EXPECT_NE(ended.error_message().find("version 7"), std::string::npos) << ended.error_message();
  }
  (*server)->Stop("test over");
}

TEST_F(ClusterRelayTest, JoinRefusesARelayAddressThatIsNotHostPort) {
  auto server = TrainingServer::Start(Options(1, 1), GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  RawClient raw((*server)->port());
  for (const std::string bad : {"nohost", "10.0.0.5:0", "10.0.0.5:70000", ":7000", "a b:7", "::1:7"}) {
    v1::JoinRequest request;
    request.set_relay_address(bad);
    v1::JoinReply reply;
    const grpc::Status joined = raw.Join(request, &reply);
    EXPECT_EQ(joined.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_NE(joined.error_message().find("relay_address"), std::string::npos) << joined.error_message();
  }
  v1::JoinRequest good;
  good.set_relay_address("[::1]:7000");
  v1::JoinReply reply;
  EXPECT_TRUE(raw.Join(good, &reply).ok());
  (*server)->Stop("test over");
}

TEST(RelayServiceTest, RefusesAWrongTokenABadRequestAndAVersionItDoesNotHold) {
  auto relay = worker::RelayServer::Start("127.0.0.1:0", kTestToken, std::chrono::milliseconds(200));
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  const std::string run(32, 'a');
  (*relay)->service().Publish(std::make_shared<worker::ParamFeed>(run, 5));
  const std::string address = "127.0.0.1:" + std::to_string((*relay)->port());
  auto fetch = [&](const std::string& token, const std::string& run_id, int64_t version) {
    grpc::ClientContext context;
    if (!token.empty()) protos::AttachClusterToken(context, token);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return worker::FetchFromPeer(address, run_id, version, &context, [](const v1::ParamChunk&) { return OkStatus(); },
                                 std::chrono::seconds(10));
  };
  EXPECT_EQ(fetch("wrong-token", run, 5).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(fetch("", run, 5).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(fetch(kTestToken, "not-a-run", 5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fetch(kTestToken, run, -1).code(), StatusCode::kInvalidArgument);
  const Status older = fetch(kTestToken, run, 4);
  EXPECT_EQ(older.code(), StatusCode::kNotFound);
  EXPECT_NE(older.message().find("holds version 5"), std::string::npos) << older.ToString();
  EXPECT_EQ(fetch(kTestToken, run, 6).code(), StatusCode::kNotFound);  // after waiting 200 ms
  EXPECT_EQ(fetch(kTestToken, std::string(32, 'b'), 5).code(), StatusCode::kNotFound);
}

// A feed that stops growing: the fetch is cancelled after `stall` without a chunk (not at
// its 30 s deadline), keeps what came, and says why. The stall also covers the wait for the
// first chunk, so it is 2 s, not less: under ThreadSanitizer on a loaded 2-core machine the
// connection alone once took over 300 ms, and the fetch gave up before its one chunk came.
TEST(RelayServiceTest, FetchGivesUpAPeerThatSendsNothingForTheStallTime) {
  auto relay = worker::RelayServer::Start("127.0.0.1:0", kTestToken, std::chrono::milliseconds(200));
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  const std::string run(32, 'a');
  auto feed = std::make_shared<worker::ParamFeed>(run, 3);
  const std::vector<float> values(64, 0.5f);
  auto chunk = std::make_shared<v1::ParamChunk>();
  chunk->set_version(3);
  chunk->set_run_id(run);
  *chunk->mutable_chunk() = protos::MakeChunks(values.data(), 64, 1 << 20)[0];
  feed->Append(chunk);
  (*relay)->service().Publish(feed);
  grpc::ClientContext context;
  protos::AttachClusterToken(context, kTestToken);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  int chunks = 0;
  const Status fetched = worker::FetchFromPeer("127.0.0.1:" + std::to_string((*relay)->port()), run, 3, &context,
                                               [&](const v1::ParamChunk&) {
                                                 ++chunks;
                                                 return OkStatus();
                                               },
                                               std::chrono::milliseconds(2000));
  EXPECT_EQ(fetched.code(), StatusCode::kUnavailable) << fetched.ToString();
  EXPECT_NE(fetched.message().find("no parameter chunk for 2000 ms"), std::string::npos) << fetched.ToString();
  EXPECT_EQ(chunks, 1);
  feed->Complete();
}

TEST(RelayOptionsTest, RelayFlagsAreCheckedBeforeTheWorkerStarts) {
  worker::WorkerOptions options;
  options.token = kTestToken;
  options.relay_listen = "0.0.0.0:7000";
  Status status = options.Validate();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--relay-address"), std::string::npos) << status.ToString();
  options.relay_address = "10.0.0.5:7000";
  EXPECT_TRUE(options.Validate().ok());
  options.relay_address = "10.0.0.5";
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
  options.relay_listen = "";
  options.relay_address = "10.0.0.5:7000";
  EXPECT_NE(options.Validate().message().find("--relay-listen"), std::string::npos);
  options.relay_listen = "127.0.0.1:0";
  options.relay_address = "";
  EXPECT_TRUE(options.ValidateRelay().ok());
  options.tls.ca_file = "ca.pem";
  status = options.ValidateRelay();  // TLS without the worker's own certificate: nothing to present
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--tls-cert"), std::string::npos) << status.ToString();
  options.tls.cert_file = "worker.crt";
  options.tls.key_file = "worker.key";
  EXPECT_TRUE(options.ValidateRelay().ok());
}

}  // namespace
}  // namespace lanlm::testing
