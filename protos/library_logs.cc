// Library log routing; see library_logs.h.
#include "protos/library_logs.h"

#include <cstdlib>

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

namespace lanlm::protos {
namespace {

void ProtobufLog(google::protobuf::LogLevel level, const char* /*file*/, int /*line*/, const std::string& message) {
  // At ERROR, protobuf reports a client's message that does not parse (invalid UTF-8 in a
  // string field): the client gets INVALID_ARGUMENT naming the message (protos/raw_message.h),
  // so here it is a debug line, never noise in the coordinator's or the worker's log. FATAL
  // still aborts.
  spdlog::log(level >= google::protobuf::LOGLEVEL_FATAL ? spdlog::level::err : spdlog::level::debug, "protobuf: {}",
              OneLine(message));
}

void GrpcLog(gpr_log_func_args* args) {
  const std::string text = std::string("grpc: ") + OneLine(args->message == nullptr ? "" : args->message);
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    spdlog::error("{}", text);
  } else {
    spdlog::debug("{}", text);
  }
}

void DropGrpcLog(gpr_log_func_args* /*args*/) {}

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

void QuietGrpcLogs() {
  if (std::getenv("GRPC_VERBOSITY") != nullptr || std::getenv("GRPC_TRACE") != nullptr) return;
  gpr_set_log_function(&DropGrpcLog);
}

}  // namespace lanlm::protos
