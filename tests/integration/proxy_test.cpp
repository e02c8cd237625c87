// Forwarding as a client and an upstream see it through the real binary: keep-alive both ways,
// the headers the upstream receives, and the JSON errors sluice answers itself (400, 404, 502,
// 504), after each of which it keeps serving.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"

namespace {

using namespace sluice::test;
using namespace std::chrono_literals;
namespace json = boost::json;

std::string open_config() {
  return config_head() + R"(routes:
  - name: rest
    match: { path: /* }
    upstream: api
)";
}

// A proxied request still works: sluice survived whatever the test did before.
void check_still_serving(ProxyStack& stack, std::string_view target = "/still-serving") {
  auto response = fetch(stack.port(), make_request("GET", target));
  INFO(response.raw);
  CHECK(response.status == 200);
  CHECK(as_text(parse_json(response.body).at("target")) == target);
}

TEST_CASE("keep-alive: one client connection carries many requests over one upstream connection",
          "[proxy][keep_alive]") {
  ProxyStack stack(open_config());
  HttpClient client(stack.port());

  std::string first_upstream_connection;
  for (int i = 1; i <= 5; ++i) {
    std::string target = "/k/" + std::to_string(i);
    auto response = client.request(make_request("GET", target));
    INFO("request " << i << ":\n" << response.raw);
    REQUIRE(response.status == 200);
    CHECK(response.header("Connection") != std::optional<std::string>("close"));
    auto echo = parse_json(response.body).as_object();
    CHECK(as_text(echo.at("target")) == target);
    // The upstream numbers requests per connection: 1..5 means they all shared one.
    CHECK(echo.at("request") == i);
    auto upstream_connection = response.header("X-Upstream-Connection").value();
    if (i == 1) first_upstream_connection = upstream_connection;
    CHECK(upstream_connection == first_upstream_connection);
  }
  CHECK_FALSE(client.peer_closed(100ms));

  // A later client reuses the pooled upstream connection too (one thread, one pool).
  auto later = fetch(stack.port(), make_request("GET", "/k/later"));
  CHECK(later.header("X-Upstream-Connection") == first_upstream_connection);

  // Requests pipelined in one write are all answered, in order.
  client.send(make_request("GET", "/p/1") + make_request("GET", "/p/2") +
              make_request("GET", "/p/3"));
  for (int i = 1; i <= 3; ++i) {
    auto response = client.read_response();
    CHECK(as_text(parse_json(response.body).at("target")) == "/p/" + std::to_string(i));
  }

  auto stats = upstream_stats(stack.upstream_port());
  CHECK(stats.at("requests") == 9);
  CHECK(stats.at("connections") == 2);  // the one sluice kept, and this /stats request's
}

// The headers the upstream received, as the test upstream echoed them, looked up by name.
class SeenHeaders {
 public:
  explicit SeenHeaders(const Response& response)
      : headers_(parse_json(response.body).at("headers").as_object()) {}

  // The value (a string, or an array when the name came more than once); null when absent.
  const json::value* find(std::string_view wanted) const {
    for (const auto& [name, value] : headers_) {
      if (name.size() == wanted.size() &&
          std::equal(name.begin(), name.end(), wanted.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          })) {
        return &value;
      }
    }
    return nullptr;
  }
  std::string text(std::string_view name) const {
    const auto* value = find(name);
    return value == nullptr ? "<absent>" : as_text(*value);
  }
  std::string all() const { return json::serialize(headers_); }

 private:
  json::object headers_;
};

TEST_CASE("the upstream gets X-Forwarded-For, -Proto and -Host", "[proxy][forwarding]") {
  ProxyStack stack(open_config());
  HttpClient client(stack.port());
  auto response = client.request(make_request(
      "GET", "/hdr?q=a%20b", {{"Host", "api.example.test"}, {"Authorization", "Bearer e2e"}}));
  INFO(response.raw);
  REQUIRE(response.status == 200);
  CHECK(as_text(parse_json(response.body).at("target")) == "/hdr?q=a%20b");
  SeenHeaders seen(response);
  INFO("the upstream saw: " << seen.all());
  CHECK(seen.text("X-Forwarded-For") == "127.0.0.1");
  CHECK(seen.text("X-Forwarded-Proto") == "http");
  CHECK(seen.text("X-Forwarded-Host") == "api.example.test");
  CHECK(seen.text("Host") == "api.example.test");
  CHECK(seen.text("Authorization") == "Bearer e2e");  // end-to-end: passed on

  // X-Forwarded-For sent on two lines by an (untrusted) client: kept, with the peer appended.
  auto two_lines = client.request(make_request(
      "GET", "/xff", {{"X-Forwarded-For", "198.51.100.1"}, {"X-Forwarded-For", "198.51.100.2"}}));
  REQUIRE(two_lines.status == 200);
  CHECK(SeenHeaders(two_lines).text("X-Forwarded-For") == "198.51.100.1, 198.51.100.2, 127.0.0.1");
}

TEST_CASE("a trusted proxy's Forwarded and X-Real-IP reach the upstream; a client's do not",
          "[proxy][forwarding]") {
  const std::vector<Header> claims = {{"Host", "api.example.test"},
                                      {"X-Forwarded-Proto", "https"},
                                      {"X-Forwarded-Host", "www.example.test"},
                                      {"Forwarded", "for=203.0.113.9;proto=https"},
                                      {"X-Real-IP", "203.0.113.9"}};
  SECTION("from a trusted proxy") {
    std::string config = open_config();
    config.replace(config.find("trusted_proxies: []"), 19, "trusted_proxies: [127.0.0.1]");
    ProxyStack stack(config);
    const auto response = fetch(stack.port(), make_request("GET", "/behind", claims));
    REQUIRE(response.status == 200);
    SeenHeaders seen(response);
    INFO("the upstream saw: " << seen.all());
    CHECK(seen.text("Forwarded") == "for=203.0.113.9;proto=https");
    CHECK(seen.text("X-Real-IP") == "203.0.113.9");
    // Scheme and host stay sluice's: a proxy may have left a client's copy in.
    CHECK(seen.text("X-Forwarded-Proto") == "http");
    CHECK(seen.text("X-Forwarded-Host") == "api.example.test");
  }
  SECTION("from a client") {
    ProxyStack stack(open_config());
    const auto response = fetch(stack.port(), make_request("GET", "/direct", claims));
    REQUIRE(response.status == 200);
    SeenHeaders seen(response);
    INFO("the upstream saw: " << seen.all());
    CHECK(seen.text("X-Forwarded-Proto") == "http");
    CHECK(seen.text("X-Forwarded-Host") == "api.example.test");
    CHECK(seen.find("Forwarded") == nullptr);
    CHECK(seen.find("X-Real-IP") == nullptr);
  }
}

// Each thread hands a closed connection's buffers to the next connection it accepts
// (SessionSpares). Whatever the first connection left in them must not reach the upstream as part
// of someone else's request.
TEST_CASE("a closed connection leaves nothing behind for the next one", "[proxy][keep_alive]") {
  ProxyStack stack(open_config());
  {
    std::vector<Header> many;
    for (int i = 0; i < 40; ++i) {
      many.push_back({"X-From-First-" + std::to_string(i), "secret-" + std::to_string(i)});
    }
    HttpClient first(stack.port());
    auto response = first.request(make_request("GET", "/first", many));
    REQUIRE(response.status == 200);
    // The start of a second request, never finished: the client goes away mid-head.
    first.send("GET /first/unfinished HTTP/1.1\r\nHost: 127.0.0.1\r\nX-From-First-Partial: 1");
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(100ms);  // the session ends, and its buffers go back

  for (int i = 1; i <= 3; ++i) {
    const std::string target = "/next/" + std::to_string(i);
    auto response = fetch(stack.port(), make_request("GET", target));
    INFO(response.raw);
    REQUIRE(response.status == 200);
    CHECK(as_text(parse_json(response.body).at("target")) == target);
    const SeenHeaders seen(response);
    INFO(seen.all());
    CHECK(seen.find("X-From-First-0") == nullptr);
    CHECK(seen.find("X-From-First-39") == nullptr);
    CHECK(seen.find("X-From-First-Partial") == nullptr);
  }
  CHECK(upstream_stats(stack.upstream_port()).at("requests") == 4);
}

TEST_CASE("hop-by-hop headers, and those named in Connection, are not forwarded",
          "[proxy][forwarding]") {
  ProxyStack stack(open_config());
  HttpClient client(stack.port(), std::chrono::seconds(3));
  auto response =
      client.request(make_request("GET", "/hop",
                                  {{"Connection", "keep-alive, X-Private-Hop"},
                                   {"X-Private-Hop", "must not be forwarded"},
                                   {"Keep-Alive", "timeout=5"},
                                   {"Proxy-Connection", "keep-alive"},
                                   {"TE", "trailers"},
                                   {"Upgrade", "example/1"},
                                   {"Proxy-Authorization", "Basic c2VjcmV0OnNlY3JldA=="},
                                   {"X-Keep-Me", "yes"}}));
  INFO(response.raw);
  REQUIRE(response.status == 200);
  SeenHeaders seen(response);
  INFO("the upstream saw: " << seen.all());
  for (const char* hop : {"Keep-Alive", "Proxy-Connection", "TE", "Upgrade", "Proxy-Authorization",
                          "X-Private-Hop"}) {
    INFO("hop-by-hop header " << hop);
    CHECK(seen.find(hop) == nullptr);
  }
  // sluice may keep its upstream connection alive, but not with the client's Connection options.
  CHECK(seen.text("Connection").find("X-Private-Hop") == std::string::npos);
  CHECK(seen.text("X-Keep-Me") == "yes");
  CHECK(seen.text("X-Forwarded-For") == "127.0.0.1");

  // And the client's connection stays usable: "Connection: keep-alive" was honoured.
  auto next = client.request(make_request("GET", "/next"));
  CHECK(next.status == 200);
}

TEST_CASE("an unreachable upstream is a 502 and a slow one a 504, both JSON", "[proxy][errors]") {
  ProxyStack stack(
      config_head("both", "500ms") +
      R"(  gone: { servers: ["127.0.0.1:${CLOSED_PORT}"], connect_timeout: 1s, timeout: 5s }
routes:
  - name: legacy
    match: { path: /legacy/* }
    upstream: gone
  - name: rest
    match: { path: /* }
    upstream: api
)");

  SECTION("502 when nothing listens on the upstream's port") {
    HttpClient client(stack.port());
    auto response = client.request(make_request("GET", "/legacy/report"));
    INFO(response.raw);
    REQUIRE(response.status_line == "HTTP/1.1 502 Bad Gateway");
    const std::string body =
        R"({"error":"bad_gateway","message":"The upstream could not be reached","route":"legacy"})";
    CHECK(response.body == body);
    CHECK(response.header("Content-Type") == "application/json");
    CHECK(response.header_number("Content-Length") == static_cast<std::int64_t>(body.size()));
    check_still_serving(stack);
  }
  SECTION("504 when the upstream takes longer than the route upstream's timeout") {
    HttpClient client(stack.port());
    auto started = std::chrono::steady_clock::now();
    auto response = client.request(make_request("GET", "/slow?ms=4000"));
    auto waited = std::chrono::steady_clock::now() - started;
    INFO(response.raw);
    REQUIRE(response.status_line == "HTTP/1.1 504 Gateway Timeout");
    const std::string body =
        R"({"error":"gateway_timeout","message":"The upstream did not answer in time","route":"rest"})";
    CHECK(response.body == body);
    CHECK(response.header("Content-Type") == "application/json");
    CHECK(response.header_number("Content-Length") == static_cast<std::int64_t>(body.size()));
    // timeout: 500ms, not the upstream's 4 s
    CHECK(waited >= 450ms);
    CHECK(waited < 3s);
    // A request just under the timeout still passes, and sluice serves on.
    auto quick = fetch(stack.port(), make_request("GET", "/slow?ms=100"));
    CHECK(quick.status == 200);
    check_still_serving(stack);
  }
}

TEST_CASE("a request no route matches is a 404 JSON and never forwarded", "[proxy][errors]") {
  ProxyStack stack(config_head() + R"(routes:
  - name: api
    match: { path: /api/* }
    upstream: api
)");
  HttpClient client(stack.port());
  auto response = client.request(make_request("GET", "/elsewhere/thing"));
  INFO(response.raw);
  REQUIRE(response.status_line == "HTTP/1.1 404 Not Found");
  const std::string body = R"({"error":"not_found","message":"No route matches this request"})";
  CHECK(response.body == body);
  CHECK(response.header("Content-Type") == "application/json");
  CHECK(response.header_number("Content-Length") == static_cast<std::int64_t>(body.size()));

  // The same connection goes on to a route that exists.
  if (response.header("Connection") != std::optional<std::string>("close")) {
    auto next = client.request(make_request("GET", "/api/thing"));
    CHECK(next.status == 200);
  }
  auto stats = upstream_stats(stack.upstream_port());
  CHECK(count_target(stats, "/elsewhere/thing") == 0);
}

TEST_CASE("a malformed request is a 400 JSON, then the connection closes", "[proxy][errors]") {
  ProxyStack stack(open_config());
  auto bad_request = [&](std::string_view raw) {
    HttpClient client(stack.port());
    client.send(raw);
    auto response = client.read_response();
    INFO("sent: " << raw << "\nreceived:\n" << response.raw);
    CHECK(response.status_line == "HTTP/1.1 400 Bad Request");
    CHECK(response.header("Content-Type") == "application/json");
    CHECK(response.header("Connection") == "close");
    auto body = parse_json(response.body).as_object();
    CHECK(response.body.starts_with(R"({"error":"bad_request","message":")"));
    CHECK(body.size() == 2);
    CHECK(body.at("message").as_string().size() > 0);
    CHECK(client.peer_closed());
  };

  SECTION("not HTTP at all") {
    bad_request("THIS IS NOT HTTP\r\n\r\n");
  }
  SECTION("a request line with a space in the target") {
    bad_request("GET /a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  }
  SECTION("a broken percent escape in the path") {
    bad_request("GET /api/%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  }
  CHECK(upstream_stats(stack.upstream_port()).at("requests") == 0);
  check_still_serving(stack);
}

}  // namespace
