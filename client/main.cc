// `lanlm`: the command line a person uses. Dispatches to a subcommand (client/commands.h).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/commands.h"
#include "protos/library_logs.h"

namespace {

constexpr const char* kUsage =
    "usage: lanlm COMMAND [flags]   (lanlm COMMAND --help lists a command's flags)\n"
    "\n"
    "offline (one machine, no server):\n"
    "  tokenizer train   learn a BPE tokenizer from a text file\n"
    "  train             train a model on a text file with one process\n"
    "  eval              loss, perplexity and bits per byte of a checkpoint on a text file\n"
    "  tokenize          print the token ids of a text\n"
    "  generate          stream a generation from a checkpoint (--checkpoint) or a server (--server)\n"
    "\n"
    "online (talks to lanlm-coordinator):\n"
    "  chat              interactive session that keeps its KV cache across turns\n"
    "  status            training step, loss, workers and sessions of a cluster\n";

bool HasFlag(const std::vector<std::string>& args, const char* name) {
  const std::string eq = std::string(name) + "=";
  for (const auto& a : args) {
    if (a == name || a.rfind(eq, 0) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lanlm::client;
  lanlm::protos::QuietGrpcLogs();  // each failed call is reported in one line of ours
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "tokenizer") {
    if (rest.empty() || rest[0] != "train") {
      std::fprintf(stderr, "lanlm tokenizer: expected 'train' (lanlm tokenizer train --help)\n");
      return 2;
    }
    return RunTokenizerTrain(std::vector<std::string>(rest.begin() + 1, rest.end()));
  }
  if (command == "train") return RunTrain(rest);
  if (command == "eval") return RunEval(rest);
  if (command == "tokenize") return RunTokenize(rest);
  if (command == "generate") return HasFlag(rest, "--server") ? RunGenerateOnline(rest) : RunGenerateOffline(rest);
  if (command == "chat") return RunChat(rest);
  if (command == "status") return RunStatus(rest);
  std::fprintf(stderr, "lanlm: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}
