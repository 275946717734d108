// Entry points of the `lanlm` subcommands. Each takes the arguments after the command name,
// parses its own flags (FlagSet), prints errors as one clear line on stderr and returns the
// process exit code (0 ok, 1 runtime failure, 2 bad usage).
// Offline commands (engine only) live in client/offline_*.cc; commands that talk to a
// server (protos + gRPC) in client/online_*.cc.
#pragma once

#include <string>
#include <vector>

namespace lanlm::client {

using Args = std::vector<std::string>;

// Offline (client/offline_*.cc)
int RunTokenizerTrain(const Args& args);   // lanlm tokenizer train
int RunTrain(const Args& args);            // lanlm train
int RunEval(const Args& args);             // lanlm eval
int RunTokenize(const Args& args);         // lanlm tokenize
int RunGenerateOffline(const Args& args);  // lanlm generate --checkpoint FILE

// Online (client/online_*.cc)
int RunGenerateOnline(const Args& args);   // lanlm generate --server ADDR
int RunChat(const Args& args);             // lanlm chat --server ADDR
int RunStatus(const Args& args);           // lanlm status --server ADDR

}  // namespace lanlm::client
