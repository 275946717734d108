// HttpGet: a blocking HTTP/1.1 client for tests (Boost.Beast over a real socket). Returns the
// status code (0 when the connection fails) and fills body and content_type.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>

namespace lanlm::testing {

struct HttpResult {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string error;
};

inline HttpResult HttpRequestTo(int port, const std::string& target, boost::beast::http::verb verb) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  HttpResult result;
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                  static_cast<unsigned short>(port)));
    http::request<http::empty_body> request(verb, target, 11);
    request.set(http::field::host, "127.0.0.1");
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(verb == http::verb::head);
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream, buffer, parser);
    const auto& response = parser.get();
    result.status = static_cast<int>(response.result_int());
    result.body = response.body();
    result.content_type = std::string(response[http::field::content_type]);
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

inline HttpResult HttpGet(int port, const std::string& target) {
  return HttpRequestTo(port, target, boost::beast::http::verb::get);
}

}  // namespace lanlm::testing
