// Coordinator security flags; see security.h.
#include "coordinator/security.h"

#include "protos/convert.h"

namespace lanlm::coordinator {

void SecurityOptions::Register(FlagSet& flags) {
  tls.Register(flags);
  flags.String("client-token-file", &client_token_file,
               "Generate and ClusterStatus require `authorization: Bearer <token>` with one of this file's tokens "
               "(one per line); empty = open to anyone who can connect");
  flags.Bool("reflection", &reflection, "serve gRPC reflection (service discovery for grpcurl and the like)");
}

StatusOr<HostSecurity> LoadSecurity(const SecurityOptions& options) {
  HostSecurity security;
  LANLM_ASSIGN_OR_RETURN(security.credentials, protos::MakeServerCredentials(options.tls));
  security.tls = options.tls.enabled();
  if (!options.client_token_file.empty()) {
    LANLM_ASSIGN_OR_RETURN(security.client_tokens, protos::ClientTokens::Load(options.client_token_file));
  }
  security.reflection = options.reflection;
  return security;
}

grpc::Status CheckClientToken(const protos::ClientTokens* tokens, const grpc::ServerContextBase& context) {
  if (tokens == nullptr) return grpc::Status::OK;
  return protos::ToGrpcStatus(tokens->Check(context).status());
}

}  // namespace lanlm::coordinator
