// Log format and level flags; see logging.h.
#include "ops/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace lanlm::ops {

void LogOptions::Register(FlagSet& flags) {
  flags.String("log-format", &format, "log line format on stderr: text (for people) or json (one object per line)");
  flags.String("log-level", &level, "least severe level logged: trace, debug, info, warn, error, critical or off");
}

Status LogOptions::Validate() const {
  if (format != "text" && format != "json") {
    return InvalidArgumentError("--log-format " + format + " is not one of: text, json");
  }
  const auto parsed = spdlog::level::from_str(level);
  // from_str answers "off" for any name it does not know.
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgumentError("--log-level " + level + " is not one of: trace, debug, info, warn, error, critical, off");
  }
  return OkStatus();
}

void AppendJsonEscaped(std::string& out, const std::string& s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string program) : program_(std::move(program)), pid_(static_cast<long>(getpid())) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const long millis = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char time[40];
    std::snprintf(time, sizeof(time), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    std::string line = "{\"time\":\"";
    line += time;
    line += "\",\"level\":\"";
    const auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += "\",\"program\":\"";
    AppendJsonEscaped(line, program_);
    line += "\",\"pid\":" + std::to_string(pid_) + ",\"thread\":" + std::to_string(msg.thread_id) + ",\"message\":\"";
    AppendJsonEscaped(line, std::string(msg.payload.data(), msg.payload.size()));
    line += "\"}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(program_); }

 private:
  std::string program_;
  long pid_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> MakeJsonFormatter(const std::string& program) {
  return std::make_unique<JsonFormatter>(program);
}

Status ConfigureLogging(const std::string& program, const std::string& text_pattern, const LogOptions& options) {
  LANLM_RETURN_IF_ERROR(options.Validate());
  auto logger = spdlog::get(program);
  if (!logger) {
    logger = options.format == "json" ? spdlog::stderr_logger_mt(program) : spdlog::stderr_color_mt(program);
  }
  spdlog::set_default_logger(logger);
  if (options.format == "json") {
    logger->set_formatter(MakeJsonFormatter(program));
  } else {
    logger->set_pattern(text_pattern);
  }
  logger->set_level(spdlog::level::from_str(options.level));
  return OkStatus();
}

}  // namespace lanlm::ops
