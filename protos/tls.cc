// TLS flags and credentials; see tls.h.
#include "protos/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

namespace lanlm::protos {
namespace {

// A PEM file's text, read before anything listens; INVALID_ARGUMENT naming flag and file.
StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(flag + " " + path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (size_t{1} << 20)) return InvalidArgumentError(flag + " " + path + ": larger than 1 MiB");
  return text.str();
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

Bio MemoryBio(const std::string& pem) { return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))); }

// An encrypted key must fail here, not prompt for a passphrase on the terminal.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

// The first certificate of a PEM text (a chain's leaf, or a CA bundle's first).
StatusOr<Cert> ParseCertificate(const std::string& flag, const std::string& path, const std::string& pem) {
  Bio bio = MemoryBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, &NoPassphrase, nullptr));
  ERR_clear_error();
  if (!cert) return InvalidArgumentError(flag + " " + path + ": not a PEM certificate (-----BEGIN CERTIFICATE-----)");
  return cert;
}

StatusOr<Key> ParseKey(const std::string& flag, const std::string& path, const std::string& pem) {
  Bio bio = MemoryBio(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr));
  ERR_clear_error();
  if (!key) return InvalidArgumentError(flag + " " + path + ": not an unencrypted PEM private key");
  return key;
}

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

// Reads and checks a certificate and its key; both flags or neither.
StatusOr<KeyPair> LoadKeyPair(const std::string& cert_path, const std::string& key_path) {
  if (cert_path.empty() != key_path.empty()) {
    return InvalidArgumentError(cert_path.empty() ? "--tls-key " + key_path + " needs --tls-cert FILE"
                                                  : "--tls-cert " + cert_path + " needs --tls-key FILE");
  }
  KeyPair pair;
  LANLM_ASSIGN_OR_RETURN(pair.cert_pem, ReadPem("--tls-cert", cert_path));
  LANLM_ASSIGN_OR_RETURN(pair.key_pem, ReadPem("--tls-key", key_path));
  LANLM_ASSIGN_OR_RETURN(Cert cert, ParseCertificate("--tls-cert", cert_path, pair.cert_pem));
  LANLM_ASSIGN_OR_RETURN(Key key, ParseKey("--tls-key", key_path, pair.key_pem));
  const int matches = X509_check_private_key(cert.get(), key.get());
  ERR_clear_error();
  if (matches != 1) {
    return InvalidArgumentError("--tls-key " + key_path + " is not the key of --tls-cert " + cert_path);
  }
  return pair;
}

StatusOr<std::string> LoadCa(const std::string& flag, const std::string& path) {
  LANLM_ASSIGN_OR_RETURN(std::string pem, ReadPem(flag, path));
  LANLM_RETURN_IF_ERROR(ParseCertificate(flag, path, pem).status());
  return pem;
}

}  // namespace

void ServerTlsOptions::Register(FlagSet& flags) {
  flags.String("tls-cert", &cert_file, "serve over TLS with this PEM certificate (chain); needs --tls-key");
  flags.String("tls-key", &key_file, "PEM private key of --tls-cert");
  flags.String("tls-client-ca", &client_ca_file,
               "mutual TLS: refuse every client (worker, lanlm) without a certificate signed by this PEM CA");
}

void ClientTlsOptions::Register(FlagSet& flags) {
  flags.String("tls-ca", &ca_file, "dial over TLS, trusting server certificates signed by this PEM CA");
  flags.String("tls-cert", &cert_file, "present this PEM client certificate (mutual TLS); needs --tls-key");
  flags.String("tls-key", &key_file, "PEM private key of --tls-cert");
  flags.String("tls-server-name", &server_name,
               "expect this name in the server's certificate instead of the host dialled (TLS only)");
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerTlsOptions& options) {
  if (!options.enabled()) return grpc::InsecureServerCredentials();
  if (options.cert_file.empty()) {
    return InvalidArgumentError(options.key_file.empty()
                                    ? "--tls-client-ca " + options.client_ca_file + " needs --tls-cert and --tls-key"
                                    : "--tls-key " + options.key_file + " needs --tls-cert FILE");
  }
  LANLM_ASSIGN_OR_RETURN(KeyPair pair, LoadKeyPair(options.cert_file, options.key_file));
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({pair.key_pem, pair.cert_pem});
  if (!options.client_ca_file.empty()) {
    LANLM_ASSIGN_OR_RETURN(ssl.pem_root_certs, LoadCa("--tls-client-ca", options.client_ca_file));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address, const ClientTlsOptions& options,
                                                     grpc::ChannelArguments args) {
  if (!options.enabled()) {
    if (!options.server_name.empty()) {
      return InvalidArgumentError("--tls-server-name " + options.server_name + " needs --tls-ca FILE (TLS)");
    }
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  // No --tls-ca: the system's trusted roots (a certificate from a public CA).
  if (!options.ca_file.empty()) {
    LANLM_ASSIGN_OR_RETURN(ssl.pem_root_certs, LoadCa("--tls-ca", options.ca_file));
  }
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    LANLM_ASSIGN_OR_RETURN(KeyPair pair, LoadKeyPair(options.cert_file, options.key_file));
    ssl.pem_private_key = pair.key_pem;
    ssl.pem_cert_chain = pair.cert_pem;
  }
  if (!options.server_name.empty()) args.SetSslTargetNameOverride(options.server_name);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

Status CheckHostPort(const std::string& address, const std::string& what, bool port_zero_ok) {
  const std::string shown = address.size() > 64 ? address.substr(0, 64) + "..." : address;
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError(what + " = '" + shown + "' is not host:port (" + why + ")");
  };
  if (address.size() > 255) return bad(std::to_string(address.size()) + " bytes, more than 255");
  for (char c : address) {
    if (c <= ' ' || c > '~') return bad("a space or control or non-ASCII character");
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  const std::string host = address.substr(0, colon), port = address.substr(colon + 1);
  if (host.empty() || host == "[]") return bad("empty host");
  if (host.front() == '[' ? host.back() != ']' : host.find(':') != std::string::npos) {
    return bad("an IPv6 host needs brackets: [::1]:7000");
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return bad("the port is not a number");
  }
  const int value = std::stoi(port);
  if (value > 65535 || (value == 0 && !port_zero_ok)) {
    return bad("port " + port + " outside [" + (port_zero_ok ? "0" : "1") + ", 65535]");
  }
  return OkStatus();
}

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

bool IsLoopbackAddress(const std::string& host_port) {
  std::string host = host_port;
  if (host.rfind("ipv4:", 0) == 0) host = host.substr(5);
  if (host.rfind("ipv6:", 0) == 0) host = host.substr(5);
  if (!host.empty() && host[0] == '[') {
    const auto close = host.find(']');
    host = close == std::string::npos ? host : host.substr(1, close - 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string::npos && host.find(':') == colon) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool IsTlsFailure(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  const std::string& m = status.error_message();
  for (const char* needle : {"Ssl handshake failed", "SSL_ERROR", "Handshake failed", "Peer name", "TSI_"}) {
    if (m.find(needle) != std::string::npos) return true;
  }
  return false;
}

bool IsClosedBeforeHttp2(const grpc::Status& status) {
  const std::string& m = status.error_message();
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         m.find("failed to connect to all addresses") != std::string::npos &&
         m.find("Socket closed") != std::string::npos;
}

Status TlsRefusal(const grpc::Status& status, const std::string& address, const ClientTlsOptions& tls,
                  int* closed_in_a_row) {
  std::string what;
  if (IsTlsFailure(status)) {
    what = "failed";
  } else if (IsClosedBeforeHttp2(status) && ++*closed_in_a_row >= kMaxClosedBeforeHttp2) {
    what = "refused by the server " + std::to_string(*closed_in_a_row) + " times in a row";
  } else {
    return OkStatus();
  }
  return UnavailableError("TLS handshake with " + address + " " + what + " (" + TlsHint(tls) +
                          "): " + status.error_message());
}

std::string TlsHint(const ClientTlsOptions& tls) {
  if (!tls.enabled()) return "this side dials in plaintext: if the server serves TLS, give --tls-ca";
  std::string hint = tls.ca_file.empty()
                         ? "without --tls-ca only the system's trusted roots are checked: give --tls-ca with the CA "
                           "that signed the server's certificate (a private one such as deploy/make-certs.sh's)"
                         : "check that --tls-ca signed the server's certificate and that it names the host dialled";
  hint += tls.cert_file.empty() ? "; a server with --tls-client-ca needs --tls-cert/--tls-key here"
                                : "; and that the server's --tls-client-ca signed --tls-cert";
  return hint;
}

}  // namespace lanlm::protos
