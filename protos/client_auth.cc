// Client bearer tokens; see client_auth.h.
#include "protos/client_auth.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "protos/cluster_auth.h"

namespace lanlm::protos {
namespace {

constexpr char kAuthorization[] = "authorization";
constexpr char kBearer[] = "Bearer ";

std::string Trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

StatusOr<std::vector<std::string>> ReadTokens(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(flag + " " + path + ": cannot read the file");
  std::vector<std::string> tokens;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string token = Trim(line);
    if (token.empty() || token[0] == '#') continue;
    bool printable = token.size() <= 4096;
    for (char c : token) printable = printable && c >= 0x21 && c <= 0x7e;
    if (!printable) {
      return InvalidArgumentError(flag + " " + path + ": line " + std::to_string(number) +
                                  " is not a token (printable ASCII without spaces, at most 4096 bytes)");
    }
    tokens.push_back(token);
    if (tokens.size() > 100000) return InvalidArgumentError(flag + " " + path + ": more than 100000 tokens");
  }
  if (tokens.empty()) return InvalidArgumentError(flag + " " + path + ": holds no token");
  return tokens;
}

}  // namespace

StatusOr<std::shared_ptr<const ClientTokens>> ClientTokens::Load(const std::string& path) {
  LANLM_ASSIGN_OR_RETURN(std::vector<std::string> tokens, ReadTokens("--client-token-file", path));
  return std::make_shared<const ClientTokens>(std::move(tokens));
}

StatusOr<int> ClientTokens::Check(const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorization);
  if (it == metadata.end()) {
    return UnauthenticatedError(
        "this server requires a client token: metadata authorization: Bearer <token> "
        "(lanlm --token-file FILE or " +
        std::string(kClientTokenEnv) + ")");
  }
  const std::string value(it->second.data(), it->second.size());
  if (value.rfind(kBearer, 0) != 0) return UnauthenticatedError("authorization metadata is not \"Bearer <token>\"");
  const std::string sent = value.substr(sizeof(kBearer) - 1);
  // Every token is compared, each in constant time: the time taken says nothing of which
  // token, if any, matched.
  int match = -1;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (ConstantTimeEquals(sent, tokens_[i]) && match < 0) match = static_cast<int>(i);
  }
  if (match < 0) return UnauthenticatedError("client token not accepted");
  return match;
}

StatusOr<std::string> ResolveClientToken(const std::string& token_file) {
  if (!token_file.empty()) {
    LANLM_ASSIGN_OR_RETURN(std::vector<std::string> tokens, ReadTokens("--token-file", token_file));
    return tokens.front();
  }
  const char* env = std::getenv(kClientTokenEnv);
  if (env == nullptr || *env == '\0') return std::string();
  const std::string token = Trim(env);
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgumentError(std::string(kClientTokenEnv) + " holds a non-printable or space character");
    }
  }
  return token;
}

void AttachBearerToken(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata(kAuthorization, kBearer + token);
}

}  // namespace lanlm::protos
