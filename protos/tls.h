// TLS for every lanlm program that serves or dials gRPC: the flags, their validation (each
// file read and parsed as PEM with OpenSSL before anything listens or dials, so a bad file is
// one line naming the flag and the file) and the gRPC credentials built from them. The one
// place credentials are made: lanlm-coordinator (server), lanlm-worker and `lanlm` (clients).
//
//   server: --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]  (mutual TLS with the CA)
//   client: --tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]
// No flag: plaintext (InsecureCredentials), as before.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "engine/base/status.h"
#include "engine/cli/flags.h"

namespace lanlm::protos {

struct ServerTlsOptions {
  std::string cert_file;       // PEM certificate chain the server presents
  std::string key_file;        // its PEM private key
  std::string client_ca_file;  // non-empty: require client certificates signed by this CA

  void Register(FlagSet& flags);  // --tls-cert, --tls-key, --tls-client-ca
  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !client_ca_file.empty(); }
};

struct ClientTlsOptions {
  std::string ca_file;    // PEM CA the server's certificate must chain to
  std::string cert_file;  // non-empty: present this certificate (mutual TLS)
  std::string key_file;
  std::string server_name;  // non-empty: check the server's certificate for this name instead

  // --tls-ca, --tls-cert, --tls-key, --tls-server-name.
  void Register(FlagSet& flags);
  bool enabled() const { return !ca_file.empty() || !cert_file.empty() || !key_file.empty(); }
};

// Plaintext when no flag is set. INVALID_ARGUMENT naming the flag and the file when a file is
// unreadable or not PEM of the right kind, the key does not match the certificate, or a flag
// needs another (--tls-cert without --tls-key, --tls-client-ca without --tls-cert, ...).
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerTlsOptions& options);

// A channel to `address` with the options' credentials and `args` (the server-name override
// is added to them). Errors as MakeServerCredentials.
StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address, const ClientTlsOptions& options,
                                                     grpc::ChannelArguments args = {});

// OK for "host:port" with a non-empty host (a bracketed IPv6 host is fine), no spaces, at most
// 255 bytes and a port in [1, 65535] ([0, 65535] with port_zero_ok: a listen address);
// INVALID_ARGUMENT naming `what` and the value otherwise.
Status CheckHostPort(const std::string& address, const std::string& what, bool port_zero_ok = false);
// The host part of a host:port CheckHostPort accepts ("[::1]:7" -> "::1").
std::string HostOf(const std::string& address);

// True for listen addresses only this host can reach: 127.0.0.0/8, [::1], localhost.
bool IsLoopbackAddress(const std::string& host_port);

// True when a failed call's message says this side's TLS handshake failed (the server's
// certificate is not of the trusted CA or does not name the host dialled): retrying the same
// credentials cannot help.
bool IsTlsFailure(const grpc::Status& status);

// True when the server closed the connection before HTTP/2 began ("failed to connect to all
// addresses ... Socket closed"). A gRPC server does that to a plaintext client when it serves
// TLS, and under TLS 1.3 to a client whose certificate it refuses (missing, or of another CA):
// the client's handshake has already succeeded, so it only sees the close.
bool IsClosedBeforeHttp2(const grpc::Status& status);

// The hint for either failure, from the dialling side's TLS options.
std::string TlsHint(const ClientTlsOptions& tls);

// Joins in a row closed before HTTP/2 after which a worker takes it for a refused handshake
// rather than a coordinator that was just stopping.
inline constexpr int kMaxClosedBeforeHttp2 = 3;

// For a failed call to `address`: UNAVAILABLE "TLS handshake with ADDRESS failed (what to
// check): ..." when IsTlsFailure, or when IsClosedBeforeHttp2 for the kMaxClosedBeforeHttp2-th
// time in a row (*closed_in_a_row counts; the caller zeroes it after a success); else OK.
Status TlsRefusal(const grpc::Status& status, const std::string& address, const ClientTlsOptions& tls,
                  int* closed_in_a_row);

}  // namespace lanlm::protos
