// HttpServer: a small HTTP/1.1 server on Boost.Beast for operators' endpoints (/metrics,
// /healthz, the dashboard). It runs its own io_context on its own thread, so a slow client or
// a slow handler never blocks the gRPC or training threads; handlers must be thread-safe and
// quick (they read snapshots under short locks). GET and HEAD only; bodies are not accepted.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/base/status.h"

namespace lanlm::ops {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // target up to '?', e.g. "/metrics"
  std::string query;   // after '?', undecoded ("" when none)
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string cache_control = "no-store";
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Splits "host:port", "[v6]:port" or ":port" (= all IPv4 interfaces). Port in [0, 65535];
// 0 picks a free port. INVALID_ARGUMENT naming the flag value otherwise.
struct ListenAddress {
  std::string host;
  int port = 0;
};
StatusOr<ListenAddress> ParseListenAddress(const std::string& flag, const std::string& value);

// The value of `key` in an application/x-www-form-urlencoded query ("" when absent); no
// percent-decoding (our parameters are numbers).
std::string QueryParam(const std::string& query, const std::string& key);

class HttpServer {
 public:
  // Binds `listen` (flag names the flag in errors, e.g. "--http-listen") and starts serving.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& flag, const std::string& listen,
                                                     HttpHandler handler);
  ~HttpServer();  // stops accepting, closes connections, joins the thread
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lanlm::ops
