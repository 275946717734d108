// Flag parsing, error lines and formatting for the offline commands.
#include "client/offline_common.h"

#include <cmath>
#include <cstdio>

namespace lanlm::client {

int ParseFlagsOrExit(FlagSet& flags, const Args& args, const std::string& command) {
  if (Status s = flags.Parse(args); !s.ok()) {
    return Fail(command, s.message() + " (lanlm " + command + " --help lists the flags)", kExitUsage);
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return kExitOk;
  }
  return -1;
}

int Fail(const std::string& command, const std::string& message, int code) {
  std::fprintf(stderr, "lanlm %s: %s\n", command.c_str(), message.c_str());
  return code;
}

int Fail(const std::string& command, const Status& status, int code) { return Fail(command, status.message(), code); }

std::string FormatDuration(double seconds) {
  char buf[48];
  if (!(seconds >= 0.0) || seconds > 1e9) return "?";
  if (seconds < 1.0) {
    std::snprintf(buf, sizeof(buf), "%.0fms", seconds * 1000.0);
  } else if (seconds < 60.0) {
    std::snprintf(buf, sizeof(buf), "%.1fs", seconds);
  } else if (seconds < 3600.0) {
    const auto s = static_cast<long long>(std::lround(seconds));
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  } else {
    const auto m = static_cast<long long>(std::lround(seconds / 60.0));
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", m / 60, m % 60);
  }
  return buf;
}

std::string FormatFixed(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, x);
  return buf;
}

}  // namespace lanlm::client
