// protos/tls.h and protos/client_auth.h helpers that need no server: which listen addresses
// are loopback (the plaintext warning), how failed calls are classified (a worker gives up on a
// refused handshake), and the client token file's rules.
#include "protos/tls.h"

#include <gtest/gtest.h>

#include <fstream>

#include "protos/client_auth.h"
#include "tests/support/temp_dir.h"

namespace lanlm::protos {
namespace {

TEST(TlsTest, LoopbackAddresses) {
  for (const char* a : {"127.0.0.1:50051", "127.1.2.3:0", "localhost:50051", "[::1]:50051", "ipv4:127.0.0.1:5"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0:50051", "192.168.1.10:50051", "[::]:50051", "coordinator.lan:50051", "128.0.0.1:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

TEST(TlsTest, FailedCallsAreClassified) {
  const grpc::StatusCode unavailable = grpc::StatusCode::UNAVAILABLE;
  EXPECT_TRUE(IsTlsFailure({unavailable,
                            "failed to connect to all addresses; last error: UNKNOWN: "
                            "ipv4:127.0.0.1:1: Peer name localhost is not in peer certificate"}));
  EXPECT_TRUE(IsTlsFailure({unavailable, "... Ssl handshake failed: SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED"}));
  EXPECT_FALSE(IsTlsFailure({unavailable, "failed to connect to all addresses; Connection refused"}));
  EXPECT_FALSE(IsTlsFailure({grpc::StatusCode::UNAUTHENTICATED, "Peer name"}));
  const std::string closed =
      "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Socket closed";
  EXPECT_TRUE(IsClosedBeforeHttp2({unavailable, closed}));
  EXPECT_FALSE(IsClosedBeforeHttp2({unavailable, "Socket closed"}));  // a call cut after the connection was up
  EXPECT_FALSE(IsClosedBeforeHttp2({unavailable, "failed to connect to all addresses; Connection refused"}));
  // A worker gives up on the third close in a row, not on the first.
  int closed_in_a_row = 0;
  EXPECT_TRUE(TlsRefusal({unavailable, closed}, "h:1", {}, &closed_in_a_row).ok());
  EXPECT_TRUE(TlsRefusal({unavailable, closed}, "h:1", {}, &closed_in_a_row).ok());
  const Status third = TlsRefusal({unavailable, closed}, "h:1", {}, &closed_in_a_row);
  EXPECT_NE(third.message().find("TLS handshake with h:1 refused by the server 3 times in a row"), std::string::npos)
      << third.ToString();
  ClientTlsOptions plain;
  EXPECT_NE(TlsHint(plain).find("give --tls-ca"), std::string::npos);
  ClientTlsOptions no_cert;
  no_cert.ca_file = "ca.crt";
  EXPECT_NE(TlsHint(no_cert).find("needs --tls-cert/--tls-key here"), std::string::npos);
  ClientTlsOptions system_roots;  // a client certificate, no --tls-ca
  system_roots.cert_file = "client.crt";
  system_roots.key_file = "client.key";
  EXPECT_NE(TlsHint(system_roots).find("without --tls-ca only the system's trusted roots are checked"),
            std::string::npos);
  EXPECT_EQ(TlsHint(no_cert).find("system's trusted roots"), std::string::npos);
}

TEST(ClientTokensTest, FileRules) {
  const std::string dir = test_support::TestTempDir("client-tokens");
  std::ofstream(dir + "/ok") << "# users\n\n  alpha-1  \nbeta-2\n";
  auto tokens = ClientTokens::Load(dir + "/ok");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ((*tokens)->size(), 2);
  std::ofstream(dir + "/empty") << "# nobody\n";
  EXPECT_EQ(ClientTokens::Load(dir + "/empty").status().message(),
            "--client-token-file " + dir + "/empty: holds no token");
  std::ofstream(dir + "/space") << "good\nhas space\n";
  const Status space = ClientTokens::Load(dir + "/space").status();
  EXPECT_NE(space.message().find("line 2 is not a token"), std::string::npos) << space.ToString();
  EXPECT_EQ(space.message().find("has space"), std::string::npos) << "never echo a token";
  EXPECT_EQ(ClientTokens::Load(dir + "/missing").status().code(), StatusCode::kInvalidArgument);
  auto first = ResolveClientToken(dir + "/ok");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, "alpha-1");
}

}  // namespace
}  // namespace lanlm::protos
