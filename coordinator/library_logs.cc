// Library log routing; see library_logs.h.
#include "coordinator/library_logs.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

namespace lanlm::coordinator {
namespace {

void ProtobufLog(google::protobuf::LogLevel level, const char* /*file*/, int /*line*/, const std::string& message) {
  const std::string text = "protobuf: " + OneLine(message);
  if (level >= google::protobuf::LOGLEVEL_ERROR) {
    spdlog::warn("{}", text);  // a client's malformed message, not an error of this process
  } else {
    spdlog::debug("{}", text);
  }
}

void GrpcLog(gpr_log_func_args* args) {
  const std::string text = std::string("grpc: ") + OneLine(args->message == nullptr ? "" : args->message);
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    spdlog::error("{}", text);
  } else {
    spdlog::debug("{}", text);
  }
}

}  // namespace

std::string OneLine(const std::string& text) {
  std::string out;
  for (char c : text) {
    const char d = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (d == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += d;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void RouteLibraryLogs() {
  google::protobuf::SetLogHandler(&ProtobufLog);
  gpr_set_log_function(&GrpcLog);
}

}  // namespace lanlm::coordinator
