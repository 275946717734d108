// Client credentials for Generate and ClusterStatus (issue 12): the coordinator's
// --client-token-file holds one or more bearer tokens; a client sends one as call metadata
// `authorization: Bearer <token>` (lanlm --token-file FILE, or kClientTokenEnv). Compared in
// constant time; which token matched identifies the client (the per-client session cap).
// Only meaningful over TLS: in plaintext the token crosses the network readable.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::protos {

// The environment variable that may hold a client's token instead of --token-file.
inline constexpr char kClientTokenEnv[] = "LANLM_CLIENT_TOKEN";

class ClientTokens {
 public:
  // One token per line; surrounding whitespace is trimmed, blank lines and lines starting with
  // '#' are skipped. INVALID_ARGUMENT naming --client-token-file and the file when it cannot
  // be read, holds no token, or a line is not a token (printable ASCII without spaces, at
  // most 4096 bytes; the message gives the line number, never the token).
  static StatusOr<std::shared_ptr<const ClientTokens>> Load(const std::string& path);
  explicit ClientTokens(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}

  // The index of the token the call carries; UNAUTHENTICATED (never echoing what was sent)
  // when the metadata is missing, not "Bearer <token>", or no token matches.
  StatusOr<int> Check(const grpc::ServerContextBase& context) const;
  int size() const { return static_cast<int>(tokens_.size()); }

 private:
  std::vector<std::string> tokens_;
};

// The client's token: from token_file when given (its first token, as Load reads it), else
// kClientTokenEnv, else "" (send none).
StatusOr<std::string> ResolveClientToken(const std::string& token_file);
// Adds `authorization: Bearer <token>` to a call; nothing for an empty token.
void AttachBearerToken(grpc::ClientContext& context, const std::string& token);

}  // namespace lanlm::protos
