// Cluster token handling; see cluster_auth.h.
#include "protos/cluster_auth.h"

#include <fstream>
#include <sstream>

#include "protos/convert.h"

namespace lanlm::protos {
namespace {

Status ValidateToken(const std::string& token, const std::string& source) {
  if (token.empty()) return InvalidArgumentError("cluster token from " + source + " is empty");
  if (token.size() > 4096) {
    return InvalidArgumentError("cluster token from " + source + " has " + std::to_string(token.size()) +
                                " bytes, more than 4096");
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgumentError("cluster token from " + source + " holds a non-printable or space character");
    }
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::string> ReadClusterTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read cluster token file " + path);
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string token = contents.str();
  if (token.size() > 65536) return InvalidArgumentError("cluster token file " + path + " is larger than 64 KiB");
  const auto first = token.find_first_not_of(" \t\r\n");
  const auto last = token.find_last_not_of(" \t\r\n");
  token = first == std::string::npos ? "" : token.substr(first, last - first + 1);
  LANLM_RETURN_IF_ERROR(ValidateToken(token, path));
  return token;
}

StatusOr<std::string> ResolveClusterToken(const std::string& token, const std::string& token_file) {
  if (token.empty() == token_file.empty()) {
    return InvalidArgumentError(std::string("give exactly one of --cluster-token-file FILE or the environment variable ") +
                                kClusterTokenEnv + " (a secret never goes on the command line)");
  }
  if (!token_file.empty()) return ReadClusterTokenFile(token_file);
  LANLM_RETURN_IF_ERROR(ValidateToken(token, kClusterTokenEnv));
  return token;
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Constant-time in the content (the length is not secret).
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff |= static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

void AttachClusterToken(grpc::ClientContext& context, const std::string& token) {
  context.AddMetadata(kTokenMetadataKey, token);
}

Status CheckClusterToken(const grpc::ServerContextBase& context, const std::string& expected) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kTokenMetadataKey);
  if (it == metadata.end()) return UnauthenticatedError("missing cluster token (metadata lanlm-cluster-token)");
  if (!ConstantTimeEquals(std::string(it->second.data(), it->second.size()), expected)) {
    return UnauthenticatedError("wrong cluster token");
  }
  return OkStatus();
}

}  // namespace lanlm::protos
