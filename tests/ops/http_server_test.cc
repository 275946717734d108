// ops::HttpServer over a real loopback socket: routing to the handler, HEAD, methods other
// than GET/HEAD, keep-alive, listen-address errors; ParseListenAddress and QueryParam.
#include "ops/http_server.h"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/ops/http_client.h"

namespace lanlm::ops {
namespace {

using testing::HttpGet;
using testing::HttpRequestTo;

std::unique_ptr<HttpServer> StartEcho(std::atomic<int>* calls) {
  auto server = HttpServer::Start("--http-listen", "127.0.0.1:0", [calls](const HttpRequest& request) {
    calls->fetch_add(1);
    HttpResponse response;
    if (request.path == "/missing") {
      response.status = 404;
      response.body = "nope\n";
    } else {
      response.content_type = "application/json";
      response.body = "{\"path\":\"" + request.path + "\",\"query\":\"" + request.query + "\"}";
    }
    return response;
  });
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(HttpServerTest, AnswersGetFromTheHandlerOverARealSocket) {
  std::atomic<int> calls{0};
  auto server = StartEcho(&calls);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  const auto ok = HttpGet(server->port(), "/api/history?after=5&max=10");
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_EQ(ok.content_type, "application/json");
  EXPECT_EQ(ok.body, "{\"path\":\"/api/history\",\"query\":\"after=5&max=10\"}");
  const auto missing = HttpGet(server->port(), "/missing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "nope\n");
  EXPECT_EQ(calls.load(), 2);
}

TEST(HttpServerTest, HeadHasNoBodyAndOtherMethodsAreRefused) {
  std::atomic<int> calls{0};
  auto server = StartEcho(&calls);
  ASSERT_NE(server, nullptr);
  const auto head = HttpRequestTo(server->port(), "/x", boost::beast::http::verb::head);
  EXPECT_EQ(head.status, 200) << head.error;
  EXPECT_TRUE(head.body.empty());
  const auto post = HttpRequestTo(server->port(), "/x", boost::beast::http::verb::post);
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.body.find("only GET and HEAD"), std::string::npos);
  EXPECT_EQ(calls.load(), 1);  // the POST never reaches the handler
}

TEST(HttpServerTest, ServesManyConnectionsAndStopsCleanly) {
  std::atomic<int> calls{0};
  auto server = StartEcho(&calls);
  ASSERT_NE(server, nullptr);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(HttpGet(server->port(), "/n").status, 200);
  EXPECT_EQ(calls.load(), 50);
  server.reset();  // joins its thread; must not hang with idle keep-alive state around
}

TEST(HttpServerTest, PortInUseIsUnavailableNamingTheFlag) {
  std::atomic<int> calls{0};
  auto first = StartEcho(&calls);
  ASSERT_NE(first, nullptr);
  const std::string taken = "127.0.0.1:" + std::to_string(first->port());
  auto second = HttpServer::Start("--http-listen", taken, [](const HttpRequest&) { return HttpResponse(); });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("--http-listen=" + taken), std::string::npos) << second.status().ToString();
}

TEST(HttpServerTest, ParseListenAddressAcceptsHostPortForms) {
  auto v4 = ParseListenAddress("--http-listen", "0.0.0.0:9090");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "0.0.0.0");
  EXPECT_EQ(v4->port, 9090);
  auto any = ParseListenAddress("--http-listen", ":9100");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->host, "0.0.0.0");
  auto v6 = ParseListenAddress("--http-listen", "[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
}

TEST(HttpServerTest, ParseListenAddressNamesTheBadValue) {
  for (const char* bad : {"9090", "localhost:9090", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:http", "1.2.3.4:-1"}) {
    auto parsed = ParseListenAddress("--http-listen", bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(std::string("--http-listen ") + bad), std::string::npos)
        << parsed.status().message();
  }
}

TEST(HttpServerTest, QueryParamFindsKeys) {
  EXPECT_EQ(QueryParam("after=5&max=10", "after"), "5");
  EXPECT_EQ(QueryParam("after=5&max=10", "max"), "10");
  EXPECT_EQ(QueryParam("after=5&max=10", "x"), "");
  EXPECT_EQ(QueryParam("", "after"), "");
  EXPECT_EQ(QueryParam("flag&after=1", "flag"), "");
  EXPECT_EQ(QueryParam("maxx=1&max=2", "max"), "2");
}

}  // namespace
}  // namespace lanlm::ops
