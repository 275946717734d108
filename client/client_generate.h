// A small client library for lanlm-coordinator's Generate and ClusterStatus services: blocking
// calls that return StatusOr (never a raw grpc::Status) and carry a deadline. Each Generate
// call is one stream (start or continue, then optionally close), so a chat resumes its
// server-side session by id turn after turn. Not thread-safe per object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "protos/status.pb.h"
#include "protos/tls.h"

namespace grpc {
class Channel;
class ClientContext;
}

namespace lanlm::client {

struct GenerateCall {
  std::string prompt;
  std::string session_id;    // start: optional id; continue: the session to continue
  bool resume = false;       // continue session_id instead of starting a session
  bool close_after = false;  // close the session once done (one-shot generation)
  // Unset: the server's defaults (temperature 0.8, top_k 40, top_p 0.95, seed 0,
  // max_new_tokens 128 or what fits, stop_on_eos, confidence threshold 0.15, run 3).
  std::optional<float> temperature;
  std::optional<int> top_k;
  std::optional<float> top_p;
  uint64_t seed = 0;
  std::optional<int> max_new_tokens;
  std::vector<std::string> stop;
  std::optional<bool> stop_on_eos;
  std::optional<float> confidence_threshold;
};

struct GenerateOutcome {
  std::string session_id;
  int64_t parameter_version = 0;
  std::string model_config;
  std::string finish_reason;  // "length", "eos", "stop string", "low confidence", "cancelled", "evicted"
  int prompt_tokens = 0;
  int cached_tokens = 0;
  int generated_tokens = 0;
  double time_to_first_token_s = 0.0;
  double tokens_per_second = 0.0;
  std::string text;  // every delta concatenated
  std::vector<int32_t> token_ids;
};

class GenerateClient {
 public:
  // deadline_s bounds every call (a whole generation stream, a status query). Plaintext, no token.
  GenerateClient(const std::string& address, double deadline_s);
  // Over TLS when tls.enabled(); every call carries `token` (protos/client_auth.h) when it is
  // non-empty. INVALID_ARGUMENT naming the flag and file for a bad TLS file.
  static StatusOr<std::unique_ptr<GenerateClient>> Connect(const std::string& address, double deadline_s,
                                                           const protos::ClientTlsOptions& tls,
                                                           const std::string& token);
  ~GenerateClient();

  // One start or continue; on_text sees each text delta as it arrives. gRPC errors come back
  // as Status with the server's code and message.
  StatusOr<GenerateOutcome> Generate(const GenerateCall& call,
                                     const std::function<void(const std::string&)>& on_text = {});
  // Releases a session on the server.
  Status Close(const std::string& session_id);
  StatusOr<lanlm::v1::GetStatusReply> GetStatus();

  const std::string& address() const { return address_; }

 private:
  GenerateClient(const std::string& address, double deadline_s, std::shared_ptr<grpc::Channel> channel,
                 std::string token);
  void Prepare(grpc::ClientContext& context) const;  // deadline and token

  std::string address_;
  double deadline_s_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
};

// One clear line for a failed call: "cannot reach lanlm-coordinator at ADDR (...)" for
// UNAVAILABLE / DEADLINE_EXCEEDED (with what to check when TLS failed, from the client's `tls`
// options), else "CODE: message".
std::string DescribeError(const Status& status, const std::string& address, const protos::ClientTlsOptions& tls = {});

}  // namespace lanlm::client
