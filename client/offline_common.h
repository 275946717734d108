// Helpers shared by the offline `lanlm` commands (client/offline_*.cc): flag parsing with the
// exit-code convention of client/commands.h, one-line error reporting, and number formatting.
// Engine only; no gRPC here.
#pragma once

#include <cstdint>
#include <string>

#include "client/commands.h"
#include "engine/cli/flags.h"
#include "engine/base/hash.h"
#include "engine/base/status.h"

namespace lanlm::client {

// Exit codes (client/commands.h).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Parses args into flags. Returns -1 when the command should run; otherwise the exit code to
// return at once, having printed --help (0) or one error line naming the command (2).
int ParseFlagsOrExit(FlagSet& flags, const Args& args, const std::string& command);

// Prints "lanlm <command>: <message>" on stderr and returns `code`.
int Fail(const std::string& command, const std::string& message, int code = kExitFailure);
int Fail(const std::string& command, const Status& status, int code = kExitFailure);

// 16 lowercase hex digits, as in fingerprint=0123456789abcdef.
using engine::Hex16;
// "850ms", "12.3s", "3m12s", "2h05m".
std::string FormatDuration(double seconds);
// printf("%.*f")
std::string FormatFixed(double x, int decimals);

}  // namespace lanlm::client
