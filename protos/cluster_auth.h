// The cluster token shared by coordinator and workers (DESIGN.md §6): read from a file or the
// environment (never a flag, which the process list shows; never a default), sent as call
// metadata, compared in constant time by the server.
// Not a substitute for TLS: it keeps strangers on the LAN from joining, nothing more.
#pragma once

#include <string>

#include <grpcpp/grpcpp.h>

#include "engine/base/status.h"

namespace lanlm::protos {

// The environment variable that may hold the cluster token instead of --cluster-token-file.
inline constexpr char kClusterTokenEnv[] = "LANLM_CLUSTER_TOKEN";

// Reads a token file: surrounding whitespace is trimmed. INVALID_ARGUMENT for an empty token,
// one longer than 4096 bytes or one with characters outside printable ASCII; NOT_FOUND when
// the file cannot be read.
StatusOr<std::string> ReadClusterTokenFile(const std::string& path);
// Exactly one of (token: from kClusterTokenEnv or set in-process, token_file) must be
// non-empty; validates as above.
StatusOr<std::string> ResolveClusterToken(const std::string& token, const std::string& token_file);

// a == b, in time that depends on their lengths only, never on where they differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// Adds the token to a client call's metadata.
void AttachClusterToken(grpc::ClientContext& context, const std::string& token);
// OK when the call carries `expected`; UNAUTHENTICATED otherwise (the message never echoes
// the token).
Status CheckClusterToken(const grpc::ServerContextBase& context, const std::string& expected);

}  // namespace lanlm::protos
