// How lanlm-coordinator admits callers (issue 12): TLS or mutual TLS (protos/tls.h), client
// bearer tokens for Generate and ClusterStatus (protos/client_auth.h) and whether gRPC
// reflection is served. Flags are parsed into SecurityOptions; LoadSecurity reads and checks
// every file before anything listens. Health stays open; the Cluster service has its own
// token (protos/cluster_auth.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "engine/base/status.h"
#include "engine/cli/flags.h"
#include "protos/client_auth.h"
#include "protos/tls.h"

namespace lanlm::coordinator {

struct SecurityOptions {
  protos::ServerTlsOptions tls;
  std::string client_token_file;
  bool reflection = false;

  // --tls-cert, --tls-key, --tls-client-ca, --client-token-file, --reflection.
  void Register(FlagSet& flags);
};

struct HostSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;  // null: plaintext (as InsecureServerCredentials)
  bool tls = false;
  std::shared_ptr<const protos::ClientTokens> client_tokens;  // null: Generate and ClusterStatus are open
  bool reflection = false;
};

// INVALID_ARGUMENT naming the flag and the file for anything unreadable or malformed.
StatusOr<HostSecurity> LoadSecurity(const SecurityOptions& options);

// OK when `tokens` is null or the call carries one of them; UNAUTHENTICATED otherwise.
grpc::Status CheckClientToken(const protos::ClientTokens* tokens, const grpc::ServerContextBase& context);

}  // namespace lanlm::coordinator
