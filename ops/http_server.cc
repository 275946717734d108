// HttpServer on Boost.Beast; see http_server.h. One acceptor and one thread; each connection
// is a Session that reads a request (headers at most 16 KiB, no body), answers it from the
// handler and keeps the connection alive until the client closes it or idles for 30 s.
#include "ops/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace lanlm::ops {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

StatusOr<ListenAddress> ParseListenAddress(const std::string& flag, const std::string& value) {
  const auto colon = value.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError(flag + " " + value + " is not host:port (e.g. 0.0.0.0:9090 or :9090)");
  }
  ListenAddress address;
  address.host = value.substr(0, colon);
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  if (address.host.empty()) address.host = "0.0.0.0";
  const std::string port = value.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return InvalidArgumentError(flag + " " + value + ": port '" + port + "' is not a number in [0, 65535]");
  }
  address.port = std::stoi(port);
  boost::system::error_code ec;
  asio::ip::make_address(address.host, ec);
  if (ec) return InvalidArgumentError(flag + " " + value + ": '" + address.host + "' is not an IP address");
  return address;
}

std::string QueryParam(const std::string& query, const std::string& key) {
  size_t at = 0;
  while (at <= query.size()) {
    size_t end = query.find('&', at);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(at, end - at);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    at = end + 1;
  }
  return "";
}

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(30);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpHandler& handler) : stream_(std::move(socket)), handler_(handler) {}

  void Read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(0);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) {  // closed, timed out or malformed: nothing more to say on this connection
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
    const auto& request = parser_->get();
    auto response = std::make_shared<http::response<http::string_body>>();
    response->version(request.version());
    response->keep_alive(request.keep_alive());
    response->set(http::field::server, "lanlm");
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response->result(http::status::method_not_allowed);
      response->set(http::field::allow, "GET, HEAD");
      response->set(http::field::content_type, "text/plain; charset=utf-8");
      response->body() = "only GET and HEAD are served\n";
    } else {
      HttpRequest req;
      req.method = std::string(request.method_string());
      const std::string target(request.target());
      const auto q = target.find('?');
      req.path = target.substr(0, q);
      req.query = q == std::string::npos ? "" : target.substr(q + 1);
      HttpResponse out = handler_(req);
      response->result(static_cast<unsigned>(out.status));
      response->set(http::field::content_type, out.content_type);
      response->set(http::field::cache_control, out.cache_control);
      response->body() = std::move(out.body);
    }
    response->prepare_payload();
    if (request.method() == http::verb::head) response->body().clear();
    http::async_write(stream_, *response, [self = shared_from_this(), response](beast::error_code write_ec, size_t) {
      if (write_ec || !response->keep_alive()) {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->Read();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  const HttpHandler& handler_;
};

}  // namespace

struct HttpServer::Impl {
  HttpHandler handler;  // first: outlives the sessions the io_context destroys
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;

  void Accept() {
    acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(socket), handler)->Read();
      Accept();
    });
  }
};

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& flag, const std::string& listen,
                                                        HttpHandler handler) {
  LANLM_ASSIGN_OR_RETURN(ListenAddress address, ParseListenAddress(flag, listen));
  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  const tcp::endpoint endpoint(asio::ip::make_address(address.host), static_cast<unsigned short>(address.port));
  beast::error_code ec;
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return UnavailableError("cannot listen on " + flag + "=" + listen + ": " + ec.message());
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace lanlm::ops
