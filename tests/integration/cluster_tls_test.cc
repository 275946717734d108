// TLS, mutual TLS, client tokens and reflection with real lanlm-coordinator, lanlm-worker and
// lanlm processes on loopback (issue 12), certificates from deploy/make-certs.sh: bad flags
// exit 2 in one line before anything listens; an mTLS cluster (whose workers relay parameters
// to each other over mutual TLS) trains to the plaintext fingerprint; wrong credentials are
// refused in one line and the worker gives up; without --tls-ca a client trusts the system
// roots; tokens guard ClusterStatus while health stays open; reflection only with
// --reflection; Join bytes that do not parse get INVALID_ARGUMENT; plaintext beyond loopback
// warns. Skipped without openssl.
#include <cstdlib>
#include <filesystem>

#include "tests/integration/cluster_harness.h"
#include "tests/support/process.h"
#include "tests/support/raw_call.h"

namespace lanlm::testing {
namespace {

// The programs under test, from this build, and the certificate script of this tree.
std::string Built(const char* path) { return std::string(LANLM_BINARY_DIR) + "/" + path; }
const std::string kMakeCerts = std::string(LANLM_SOURCE_DIR) + "/deploy/make-certs.sh";
const std::string kCoordinator = Built("coordinator/lanlm-coordinator"), kWorker = Built("worker/lanlm-worker"),
                  kLanlm = Built("client/lanlm");

std::vector<std::string> RunFlags(const std::string& corpus, int64_t steps) {
  return {"--corpus",      corpus, "--config", "S",     "--vocab-size", "96", "--layers",  "2",
          "--seed",        "7",    "--lr",     "0.003", "--warmup",     "2",  "--steps",   std::to_string(steps),
          "--dim",         "32",   "--heads",  "2",     "--ffn-hidden", "64", "--context", "16",
          "--micro-batch", "2",    "--shards", "4",     "--threads",    "1"};
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int Lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

class TlsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& exe : {kCoordinator, kWorker, kLanlm}) {
      if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " is not built";
    }
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "openssl is not installed";
    dir_ = TempDir("tls");
    corpus_ = WriteCorpus(dir_);
    token_file_ = WriteTokenFile(dir_);
    // Two unrelated CAs; the server certificate names 127.0.0.1 only.
    for (const std::string ca : {"a", "b"}) {
      const std::string command = "bash " + kMakeCerts + " " + dir_ + "/" + ca + " 127.0.0.1 >/dev/null";
      ASSERT_EQ(std::system(command.c_str()), 0) << command;
    }
  }
  void TearDown() override { KillAll(pids_); }

  std::string Cert(const std::string& ca, const std::string& name) const { return dir_ + "/" + ca + "/" + name; }
  std::vector<std::string> ServerTls() const {
    return {"--tls-cert",      Cert("a", "server.crt"), "--tls-key", Cert("a", "server.key"),
            "--tls-client-ca", Cert("a", "ca.crt")};
  }
  std::vector<std::string> ClientTls(const std::string& ca, const std::string& who) const {
    return {"--tls-ca", Cert("a", "ca.crt"), "--tls-cert", Cert(ca, who + ".crt"), "--tls-key", Cert(ca, who + ".key")};
  }

  // Runs argv to its end; returns the exit code, the output in *out.
  int RunToEnd(const std::vector<std::string>& argv, const std::string& name, std::string* out, int seconds = 60) {
    const std::string log = dir_ + "/" + name + ".log";
    const pid_t pid = Spawn(argv, log);
    const int code = WaitExit(pid, std::chrono::seconds(seconds));
    *out = ReadAll(log);
    return code;
  }
  // Starts a coordinator on a port the kernel picks; returns the port (0 on failure).
  int StartCoordinator(const std::vector<std::string>& extra, const std::string& name, pid_t* pid,
                       const std::string& listen = "127.0.0.1:0") {
    const std::string log = dir_ + "/" + name + ".log";
    *pid = Spawn(Concat({kCoordinator, "--listen", listen, "--cluster-token-file", token_file_}, extra), log);
    pids_.push_back(*pid);
    return LoggedPort(log, std::chrono::seconds(60));
  }
  std::vector<std::string> Worker(int port, const std::string& host = "127.0.0.1") const {
    return {kWorker,    "--coordinator", host + ":" + std::to_string(port), "--threads", "1", "--cluster-token-file",
            token_file_};
  }

  std::string dir_, corpus_, token_file_;
  std::vector<pid_t> pids_;
};

using SlowClusterTlsTest = TlsFixture;  // each test runs processes for a second or more

// Each bad flag: exit 2 and one line naming the flag and the file, before anything listens.
TEST_F(SlowClusterTlsTest, BadTlsAndTokenFlagsExitTwoInOneLine) {
  std::ofstream(dir_ + "/garbage.pem") << "-----BEGIN CERTIFICATE-----\nnot base64 at all\n";
  std::ofstream(dir_ + "/empty-tokens") << "# no token here\n\n";
  const std::string garbage = dir_ + "/garbage.pem", missing = dir_ + "/missing.pem";
  struct Case {
    std::vector<std::string> flags;
    std::string expect;
  };
  const std::vector<Case> coordinator_cases = {
      {{"--tls-cert", Cert("a", "server.crt")}, "--tls-cert " + Cert("a", "server.crt") + " needs --tls-key"},
      {{"--tls-cert", missing, "--tls-key", Cert("a", "server.key")}, "--tls-cert " + missing + ": cannot read"},
      {{"--tls-cert", garbage, "--tls-key", Cert("a", "server.key")}, "--tls-cert " + garbage + ": not a PEM"},
      {{"--tls-cert", Cert("a", "server.crt"), "--tls-key", Cert("a", "client.key")}, "is not the key of --tls-cert"},
      {{"--tls-cert", Cert("a", "server.crt"), "--tls-key", Cert("a", "server.crt")}, "not an unencrypted PEM private"},
      {Concat(ServerTls(), {"--tls-client-ca", garbage}), "--tls-client-ca " + garbage + ": not a PEM"},
      {{"--tls-client-ca", Cert("a", "ca.crt")}, "needs --tls-cert and --tls-key"},
      {{"--client-token-file", dir_ + "/empty-tokens"}, "--client-token-file " + dir_ + "/empty-tokens: holds no"},
      {{"--client-token-file", missing}, "--client-token-file " + missing + ": cannot read"},
  };
  int n = 0;
  for (const Case& c : coordinator_cases) {
    std::string out;
    const auto argv = Concat(
        Concat({kCoordinator, "--listen", "127.0.0.1:0", "--cluster-token-file", token_file_}, RunFlags(corpus_, 2)),
        c.flags);
    EXPECT_EQ(RunToEnd(argv, "bad" + std::to_string(n++), &out), 2) << out;
    EXPECT_NE(out.find(c.expect), std::string::npos) << out;
    EXPECT_EQ(Lines(out), 1) << out;
    EXPECT_EQ(out.find("listening"), std::string::npos) << out;
  }
  std::string out;
  EXPECT_EQ(RunToEnd(Concat(Worker(1), {"--tls-ca", garbage}), "badworker", &out), 2) << out;
  EXPECT_NE(out.find("--tls-ca " + garbage + ": not a PEM"), std::string::npos) << out;
  EXPECT_EQ(Lines(out), 1) << out;
  EXPECT_EQ(RunToEnd({kLanlm, "status", "--server", "127.0.0.1:1", "--tls-ca", Cert("a", "ca.crt"), "--tls-cert",
                      Cert("a", "client.crt")},
                     "badstatus", &out),
            2)
      << out;
  EXPECT_NE(out.find("--tls-cert " + Cert("a", "client.crt") + " needs --tls-key"), std::string::npos) << out;
  EXPECT_EQ(Lines(out), 1) << out;
}

TEST_F(SlowClusterTlsTest, MutualTlsClusterTrainsToThePlaintextFingerprint) {
  std::string fingerprints[2];
  for (int tls = 0; tls < 2; ++tls) {
    const std::string name = tls ? "mtls" : "plain";
    pid_t coordinator = 0;
    const int port = StartCoordinator(
        Concat(Concat(RunFlags(corpus_, 4), {"--min-workers", "2"}), tls ? ServerTls() : std::vector<std::string>{}),
        name, &coordinator);
    ASSERT_GT(port, 0) << ReadAll(dir_ + "/" + name + ".log");
    std::vector<pid_t> workers;
    for (int i = 0; i < 2; ++i) {
      // With TLS the workers also relay parameters to each other over mutual TLS (protocol 7).
      const auto argv = tls ? Concat(Concat(Worker(port), ClientTls("a", "worker")),
                                     {"--relay-listen", "127.0.0.1:0", "--log-level", "debug"})
                            : Worker(port);
      workers.push_back(Spawn(argv, dir_ + "/" + name + ".worker" + std::to_string(i) + ".log"));
      pids_.push_back(workers.back());
    }
    const std::string log = dir_ + "/" + name + ".log";
    EXPECT_EQ(WaitExit(coordinator, std::chrono::seconds(120)), 0) << ReadAll(log);
    for (pid_t w : workers) EXPECT_EQ(WaitExit(w, std::chrono::seconds(30)), 0);
    pids_.clear();
    fingerprints[tls] = LastFingerprint(ReadAll(log));
    EXPECT_EQ(ReadAll(log).find("plaintext beyond this host"), std::string::npos) << "loopback: no warning";
  }
  EXPECT_EQ(fingerprints[0].size(), 16u);
  EXPECT_EQ(fingerprints[1], fingerprints[0]);
  const std::string relayed = ReadAll(dir_ + "/mtls.worker0.log") + ReadAll(dir_ + "/mtls.worker1.log");
  EXPECT_NE(relayed.find("relayed by peer 127.0.0.1:"), std::string::npos) << relayed;
  EXPECT_EQ(relayed.find("asking the coordinator for the rest"), std::string::npos) << relayed;
}

// Every wrong credential against an mTLS coordinator: the worker exits non-zero with one line
// saying the TLS handshake failed (rather than retrying forever); clients fail clearly; the
// right client certificate works.
TEST_F(SlowClusterTlsTest, WrongCredentialsAreRefusedInOneLine) {
  pid_t coordinator = 0;
  const int port = StartCoordinator(Concat(RunFlags(corpus_, 100000), ServerTls()), "server", &coordinator);
  ASSERT_GT(port, 0) << ReadAll(dir_ + "/server.log");
  struct Case {
    std::string name;
    std::vector<std::string> argv;
  };
  const std::vector<Case> workers = {
      {"no-certificate", Concat(Worker(port), {"--tls-ca", Cert("a", "ca.crt")})},
      {"other-ca", Concat(Worker(port), ClientTls("b", "worker"))},
      {"name-not-in-certificate", Concat(Worker(port, "localhost"), ClientTls("a", "worker"))},
      {"plaintext", Worker(port)},
  };
  for (const Case& c : workers) {
    std::string out;
    EXPECT_NE(RunToEnd(c.argv, c.name, &out, 60), 0) << c.name << ": " << out;
    const std::string last = out.substr(out.rfind("lanlm-worker: "));
    EXPECT_NE(last.find("TLS handshake with"), std::string::npos) << c.name << ": " << out;
    EXPECT_EQ(Lines(last), 1) << c.name << ": " << last;
  }
  std::string out;
  const std::string address = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(RunToEnd({kLanlm, "status", "--server", address}, "status-plain", &out), 1) << out;
  EXPECT_NE(out.find("cannot reach lanlm-coordinator at " + address), std::string::npos) << out;
  EXPECT_EQ(Lines(out), 1) << out;
  EXPECT_EQ(RunToEnd({kLanlm, "status", "--server", address, "--tls-ca", Cert("a", "ca.crt")}, "status-nocert", &out),
            1)
      << out;
  EXPECT_NE(out.find("a server with --tls-client-ca needs --tls-cert/--tls-key here"), std::string::npos) << out;
  EXPECT_EQ(RunToEnd(Concat({kLanlm, "status", "--server", address}, ClientTls("a", "client")), "status-ok", &out), 0)
      << out;
  EXPECT_NE(out.find("mode           training"), std::string::npos) << out;

  // No --tls-ca: the client trusts the system's roots, which do not hold this private CA; with
  // gRPC's default roots pointed at it (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, as a CA installed in
  // the system store would be), the same command gets through.
  const std::vector<std::string> no_ca = {kLanlm,       "status", "--server", address, "--tls-cert",
                                          Cert("a", "client.crt"), "--tls-key", Cert("a", "client.key")};
  EXPECT_EQ(RunToEnd(no_ca, "status-system-roots", &out), 1) << out;
  EXPECT_NE(out.find("without --tls-ca only the system's trusted roots are checked"), std::string::npos) << out;
  EXPECT_EQ(Lines(out), 1) << out;  // gRPC's own handshake log line is not printed
  setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", Cert("a", "ca.crt").c_str(), 1);
  const int with_default_roots = RunToEnd(no_ca, "status-default-roots", &out);
  unsetenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
  EXPECT_EQ(with_default_roots, 0) << out;
  EXPECT_NE(out.find("mode           training"), std::string::npos) << out;
}

// Client tokens guard ClusterStatus (and Generate); health stays open; reflection only when
// asked; Join bytes that do not parse get INVALID_ARGUMENT naming the message.
TEST_F(SlowClusterTlsTest, TokensHealthReflectionAndMalformedJoin) {
  std::ofstream(dir_ + "/tokens") << "# users\nfirst-user-token\nsecond-user-token\n";
  std::ofstream(dir_ + "/user2") << "second-user-token\n";
  pid_t with = 0, without = 0;
  const int port = StartCoordinator(
      Concat(RunFlags(corpus_, 100000), {"--client-token-file", dir_ + "/tokens", "--reflection"}), "tokens", &with);
  ASSERT_GT(port, 0) << ReadAll(dir_ + "/tokens.log");
  const std::string address = "127.0.0.1:" + std::to_string(port);
  std::string out;
  EXPECT_EQ(RunToEnd({kLanlm, "status", "--server", address}, "status-none", &out), 1) << out;
  EXPECT_NE(out.find("UNAUTHENTICATED"), std::string::npos) << out;
  EXPECT_EQ(RunToEnd({kLanlm, "status", "--server", address, "--token-file", dir_ + "/user2"}, "status-file", &out), 0)
      << out;
  setenv(protos::kClientTokenEnv, "first-user-token", 1);
  EXPECT_EQ(RunToEnd({kLanlm, "status", "--server", address}, "status-env", &out), 0) << out;
  setenv(protos::kClientTokenEnv, "not-a-user-token", 1);
  EXPECT_EQ(RunToEnd({kLanlm, "generate", "--server", address, "--prompt", "the"}, "generate-wrong", &out), 1) << out;
  EXPECT_NE(out.find("UNAUTHENTICATED: client token not accepted"), std::string::npos) << out;
  unsetenv(protos::kClientTokenEnv);

  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const RawResult health = RawCall(channel, "/grpc.health.v1.Health/Check", {""});
  EXPECT_TRUE(health.status.ok()) << health.status.error_message();
  const std::string list_services("\x3a\x00", 2);  // ServerReflectionRequest{list_services: ""}
  const std::string reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  const RawResult listed = RawCall(channel, reflection, {list_services});
  ASSERT_TRUE(listed.status.ok()) << listed.status.error_message();
  ASSERT_EQ(listed.replies.size(), 1u);
  EXPECT_NE(listed.replies[0].find("lanlm.v1.Generate"), std::string::npos);

  const std::multimap<std::string, std::string> cluster = {{"lanlm-cluster-token", kTestToken}};
  const RawResult join = RawCall(channel, "/lanlm.v1.Cluster/Join", {std::string("\x0a\xff\xff", 3)}, cluster);
  EXPECT_EQ(join.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(join.status.error_message().find("malformed lanlm.v1.JoinRequest"), std::string::npos)
      << join.status.error_message();

  // Plaintext on every interface: served, with a one-line warning.
  const int plain_port = StartCoordinator(RunFlags(corpus_, 100000), "no-reflection", &without, "0.0.0.0:0");
  ASSERT_GT(plain_port, 0);
  const std::string plain_log = ReadAll(dir_ + "/no-reflection.log");
  EXPECT_NE(plain_log.find("--listen=0.0.0.0:0 serves in plaintext beyond this host"), std::string::npos) << plain_log;
  auto plain = grpc::CreateChannel("127.0.0.1:" + std::to_string(plain_port), grpc::InsecureChannelCredentials());
  EXPECT_EQ(RawCall(plain, reflection, {list_services}).status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  const std::string log = ReadAll(dir_ + "/tokens.log");
  EXPECT_EQ(log.find("protobuf: "), std::string::npos) << "no library noise for a client's mistake at info: " << log;
}

}  // namespace
}  // namespace lanlm::testing
