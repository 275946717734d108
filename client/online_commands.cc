// `lanlm generate --server`, `lanlm chat` and `lanlm status`: the commands that talk to a
// running lanlm-coordinator (client_generate.h). Text goes to stdout as it arrives; finish
// reasons, speeds and errors go to stderr, errors as one line.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "client/client_generate.h"
#include "client/commands.h"
#include "engine/cli/flags.h"
#include "protos/client_auth.h"
#include "protos/tls.h"

namespace lanlm::client {
namespace {

// How generate, chat and status reach the server: address, deadline, TLS, client token.
struct ServerFlags {
  std::string server = "localhost:50051";
  double deadline_s = 600.0;
  protos::ClientTlsOptions tls;
  std::string token_file;

  void Register(FlagSet& flags, const char* deadline_help) {
    flags.String("server", &server, "address of lanlm-coordinator (host:port)");
    flags.Double("deadline", &deadline_s, deadline_help, 0.001, 1e7);
    tls.Register(flags);
    flags.String("token-file", &token_file,
                 std::string("file holding the client token the server's --client-token-file accepts (or the "
                             "environment variable ") +
                     protos::kClientTokenEnv + ")");
  }

  // The client, or one line on stderr and null (bad TLS or token file).
  std::unique_ptr<GenerateClient> Connect(const char* command) const {
    StatusOr<std::string> token = protos::ResolveClientToken(token_file);
    StatusOr<std::unique_ptr<GenerateClient>> client =
        token.ok() ? GenerateClient::Connect(server, deadline_s, tls, *token) : token.status();
    if (!client.ok()) {
      std::fprintf(stderr, "lanlm %s: %s\n", command, client.status().ToString().c_str());
      return nullptr;
    }
    return std::move(*client);
  }
};

// Flags shared by generate and chat.
struct SamplingFlags : ServerFlags {
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
  int max_new_tokens = 0;
  std::string stop;
  bool stop_on_eos = true;
  float confidence_threshold = 0.15f;

  void Register(FlagSet& flags) {
    ServerFlags::Register(flags, "seconds each call may take at most");
    flags.Float("temperature", &temperature, "sampling temperature; 0 = greedy", 0.0, 1000.0);
    flags.Int("top-k", &top_k, "sample among the k most likely tokens; 0 = all", 0, 1 << 20);
    flags.Float("top-p", &top_p, "sample within this probability mass (0, 1]", 1e-6, 1.0);
    flags.Uint64("seed", &seed, "sampling seed (same seed and prompt = same text)");
    flags.Int("max-new-tokens", &max_new_tokens, "tokens to generate at most; 0 = 128 or what fits the context", 0,
              1 << 20);
    flags.String("stop", &stop, "stop when the text contains this string (never printed); empty = none");
    flags.Bool("stop-on-eos", &stop_on_eos, "stop at the end-of-sequence token");
    flags.Float("confidence-threshold", &confidence_threshold,
                "stop after 3 tokens in a row whose top probability is below this; 0 = never", 0.0, 0.999999);
  }

  GenerateCall Call() const {
    GenerateCall call;
    call.temperature = temperature;
    call.top_k = top_k;
    call.top_p = top_p;
    call.seed = seed;
    if (max_new_tokens > 0) call.max_new_tokens = max_new_tokens;
    if (!stop.empty()) call.stop.push_back(stop);
    call.stop_on_eos = stop_on_eos;
    call.confidence_threshold = confidence_threshold;
    return call;
  }
};

// Parses flags; returns -1 to go on, else the exit code.
int ParseFlags(FlagSet& flags, const Args& args, const char* command) {
  const Status status = flags.Parse(args);
  if (!status.ok()) {
    std::fprintf(stderr, "lanlm %s: %s\n", command, status.message().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  return -1;
}

void PrintText(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void PrintSummary(const GenerateOutcome& o) {
  std::fprintf(stderr, "[%s] %d tokens (prompt %d, cached %d), first token %.3f s, %.1f tokens/s\n",
               o.finish_reason.c_str(), o.generated_tokens, o.prompt_tokens, o.cached_tokens, o.time_to_first_token_s,
               o.tokens_per_second);
}

}  // namespace

int RunGenerateOnline(const Args& args) {
  SamplingFlags sampling;
  std::string prompt;
  std::string session;
  bool keep = false;
  FlagSet flags("lanlm generate --server ADDR --prompt TEXT [flags]: stream a generation from a server");
  sampling.Register(flags);
  flags.String("prompt", &prompt, "text to continue (required)");
  flags.String("session", &session, "session id to use (start) or continue (with --continue)");
  bool resume = false;
  flags.Bool("continue", &resume, "continue the session --session instead of starting one");
  flags.Bool("keep", &keep, "keep the session open on the server afterwards (prints its id)");
  if (int code = ParseFlags(flags, args, "generate"); code >= 0) return code;
  if (prompt.empty() && !resume) {
    std::fprintf(stderr, "lanlm generate: --prompt is required\n");
    return 2;
  }
  if (resume && session.empty()) {
    std::fprintf(stderr, "lanlm generate: --continue needs --session\n");
    return 2;
  }
  std::unique_ptr<GenerateClient> connected = sampling.Connect("generate");
  if (!connected) return 2;
  GenerateClient& client = *connected;
  GenerateCall call = sampling.Call();
  call.prompt = prompt;
  call.session_id = session;
  call.resume = resume;
  call.close_after = !keep;
  auto outcome = client.Generate(call, PrintText);
  if (!outcome.ok()) {
    std::fprintf(stderr, "\nlanlm generate: %s\n",
                 DescribeError(outcome.status(), sampling.server, sampling.tls).c_str());
    return 1;
  }
  std::fputc('\n', stdout);
  PrintSummary(*outcome);
  if (keep) std::fprintf(stderr, "session %s kept open\n", outcome->session_id.c_str());
  return 0;
}

int RunChat(const Args& args) {
  SamplingFlags sampling;
  std::string session;
  FlagSet flags("lanlm chat --server ADDR [flags]: interactive generation that keeps one server session");
  sampling.Register(flags);
  flags.String("session", &session, "session id to continue (empty = start a new one)");
  if (int code = ParseFlags(flags, args, "chat"); code >= 0) return code;
  std::unique_ptr<GenerateClient> connected = sampling.Connect("chat");
  if (!connected) return 2;
  GenerateClient& client = *connected;
  std::fprintf(stderr, "lanlm chat: one line per turn; the model continues your text. Ctrl-D or /quit ends.\n");
  bool have_session = !session.empty();
  std::string line;
  while (true) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/quit") break;
    GenerateCall call = sampling.Call();
    call.prompt = line + "\n";
    call.session_id = session;
    call.resume = have_session;
    auto outcome = client.Generate(call, PrintText);
    if (!outcome.ok()) {
      std::fprintf(stderr, "\nlanlm chat: %s\n",
                   DescribeError(outcome.status(), sampling.server, sampling.tls).c_str());
      if (outcome.status().code() == StatusCode::kOutOfRange) {
        std::fprintf(stderr, "lanlm chat: the session's context is full; starting a new session\n");
        if (have_session) (void)client.Close(session);
        session.clear();
        have_session = false;
        continue;
      }
      return 1;
    }
    session = outcome->session_id;
    have_session = true;
    std::fputc('\n', stdout);
    PrintSummary(*outcome);
  }
  if (have_session) {
    const Status closed = client.Close(session);
    if (!closed.ok())
      std::fprintf(stderr, "lanlm chat: %s\n", DescribeError(closed, sampling.server, sampling.tls).c_str());
  }
  return 0;
}

namespace {

// The status snapshot as aligned lines.
void PrintStatus(const v1::GetStatusReply& r) {
  std::printf("mode           %s\n", r.mode().c_str());
  if (r.mode() == "serving") {
    // A checkpoint served on its own: no run, so no progress, loss or workers to show.
    std::printf("step           %lld (parameter version of the checkpoint)\n", static_cast<long long>(r.step()));
  } else {
    std::printf("step           %lld / %lld\n", static_cast<long long>(r.step()),
                static_cast<long long>(r.total_steps()));
    if (r.validation_loss() > 0.0f) {
      std::printf("loss           %.4f (validation %.4f)\n", r.loss(), r.validation_loss());
    } else {
      std::printf("loss           %.4f\n", r.loss());
    }
    std::printf("tokens/s       %.0f\n", r.tokens_per_second());
    std::printf("workers        %d\n", r.workers());
    // One line per connected worker: who, how much, and where its parameters come from.
    int left = 0;
    for (const v1::WorkerStatus& w : r.worker_list()) {
      if (!w.connected()) {
        ++left;
        continue;
      }
      std::string from = w.params_from().empty() ? "-" : w.params_from();
      if (w.relay_fallbacks() > 0) from += " (" + std::to_string(w.relay_fallbacks()) + " relay fallbacks)";
      std::printf("  %-4s %-24s %6lld leases %8.0f tok/s  parameters from %s%s\n", w.id().c_str(),
                  w.name().substr(0, 24).c_str(), static_cast<long long>(w.leases()), w.tokens_per_second(),
                  from.c_str(), w.relay_address().empty() ? "" : (", relays at " + w.relay_address()).c_str());
    }
    if (left > 0) std::printf("  (%d worker(s) left)\n", left);
  }
  std::printf("sessions       %d (KV cache %.1f MiB)\n", r.sessions(),
              static_cast<double>(r.kv_cache_bytes()) / (1 << 20));
  std::printf("model          %s\n", r.model_config().c_str());
  if (!r.weight_format().empty()) std::printf("weights        %s\n", r.weight_format().c_str());
  std::printf("fingerprint    %s\n", r.fingerprint().c_str());
}

}  // namespace

int RunStatus(const Args& args) {
  ServerFlags connection;
  connection.deadline_s = 10.0;
  double watch_s = 0.0;
  FlagSet flags("lanlm status --server ADDR [--watch SECONDS]: training step, loss, workers and sessions of a cluster");
  connection.Register(flags, "seconds the call may take at most");
  flags.Double("watch", &watch_s, "redraw every SECONDS until interrupted (Ctrl-C); 0 = print once", 0.0, 86400.0);
  if (int code = ParseFlags(flags, args, "status"); code >= 0) return code;
  std::unique_ptr<GenerateClient> connected = connection.Connect("status");
  if (!connected) return 2;
  GenerateClient& client = *connected;
  const std::string& server = connection.server;
  while (true) {
    auto reply = client.GetStatus();
    if (watch_s <= 0.0) {
      if (!reply.ok()) {
        std::fprintf(stderr, "lanlm status: %s\n", DescribeError(reply.status(), server, connection.tls).c_str());
        return 1;
      }
      PrintStatus(*reply);
      return 0;
    }
    // Watching: home the cursor and clear the screen (ANSI), then draw; a coordinator that
    // is down or restarting shows as an error line until it answers again.
    std::printf("\033[H\033[2Jlanlm status --server %s   (every %g s, Ctrl-C to quit)\n\n", server.c_str(), watch_s);
    if (reply.ok()) {
      PrintStatus(*reply);
    } else {
      std::printf("unreachable: %s\n", DescribeError(reply.status(), server, connection.tls).c_str());
    }
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(watch_s));
  }
}

}  // namespace lanlm::client
