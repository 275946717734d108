// RouteLibraryLogs (the services): protobuf's and gRPC's own log lines (a client's malformed
// message makes libprotobuf print several lines to stderr) go through spdlog as one line each,
// prefixed with the library's name, so a client's mistake never floods a service's log.
// QuietGrpcLogs (the lanlm command line): gRPC's lines are dropped, because every failed call
// is reported in one line of lanlm's own that names the cause (a failed TLS handshake otherwise
// adds gRPC's "E1205 ... ssl_transport_security.cc ..." line before it).
#pragma once

#include <string>

namespace lanlm::protos {

// Call once at the start of main, before any server or channel exists (neither library's
// setter is thread-safe).
void RouteLibraryLogs();

// Drops gRPC's log lines unless GRPC_VERBOSITY or GRPC_TRACE is set in the environment (then a
// user asking for gRPC's own diagnostics gets them as gRPC prints them). Same timing rule.
void QuietGrpcLogs();

// Collapses line breaks and runs of spaces into single spaces (exposed for tests).
std::string OneLine(const std::string& text);

}  // namespace lanlm::protos
