// Log flags shared by lanlm-coordinator and lanlm-worker: --log-format text|json and
// --log-level. JSON lines carry stable keys for log shippers:
//   {"time":"2026-11-29T06:01:02.345Z","level":"info","program":"coordinator","pid":123,
//    "thread":456,"message":"..."}
// time is UTC with milliseconds; level is one of trace, debug, info, warn, error, critical.
#pragma once

#include <memory>
#include <string>

#include <spdlog/formatter.h>

#include "engine/base/status.h"
#include "engine/cli/flags.h"

namespace lanlm::ops {

struct LogOptions {
  std::string format = "text";  // text | json
  std::string level = "info";   // trace | debug | info | warn | error | critical | off

  void Register(FlagSet& flags);
  // INVALID_ARGUMENT naming the flag, its value and the accepted values.
  Status Validate() const;
};

// Installs a stderr logger named `program` as spdlog's default with the chosen format and
// level. text_pattern is the spdlog pattern of the text format (each program keeps its own).
Status ConfigureLogging(const std::string& program, const std::string& text_pattern, const LogOptions& options);

// The JSON-lines formatter (exposed for tests).
std::unique_ptr<spdlog::formatter> MakeJsonFormatter(const std::string& program);

// Appends s to out as the body of a JSON string (quotes, backslashes and control characters
// escaped; bytes >= 0x80 copied, so valid UTF-8 stays valid).
void AppendJsonEscaped(std::string& out, const std::string& s);

}  // namespace lanlm::ops
