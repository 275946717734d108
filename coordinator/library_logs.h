// RouteLibraryLogs: protobuf's and gRPC's own log lines (a client's malformed message makes
// libprotobuf print several lines to stderr) go through spdlog as one line each, prefixed with
// the library's name, so a client's mistake never floods the coordinator's log with noise.
#pragma once

#include <string>

namespace lanlm::coordinator {

// Call once at the start of main, before any server or channel exists (neither library's
// setter is thread-safe).
void RouteLibraryLogs();

// Collapses line breaks and runs of spaces into single spaces (exposed for tests).
std::string OneLine(const std::string& text);

}  // namespace lanlm::coordinator
