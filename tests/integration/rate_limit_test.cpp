// Rate limiting as a client sees it through the real binary: the 429 contract byte for byte, the
// quota headers on allowed responses, path normalisation and spoofed X-Forwarded-For.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"

namespace {

using namespace sluice::test;
using namespace std::chrono_literals;

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double seconds_to_window_end(double window_seconds) {
  return window_seconds - std::fmod(unix_seconds(), window_seconds);
}

// Fixed and sliding windows are aligned to the Unix epoch. A test whose requests must all land in
// one window waits out the last seconds of a window (rarely: `margin` out of `window`) rather
// than straddle two and see counts it did not expect.
void start_clear_of_window_edge(std::chrono::seconds window, std::chrono::seconds margin = 5s) {
  double left = seconds_to_window_end(static_cast<double>(window.count()));
  if (left < static_cast<double>(margin.count())) {
    std::this_thread::sleep_for(std::chrono::duration<double>(left + 0.2));
  }
}

const std::string kLoginPost = make_request("POST", "/api/login", {}, R"({"user":"ann"})");

std::string login_config(std::string_view algorithm, std::string_view headers = "both") {
  return config_head(headers) + R"(routes:
  - name: login
    match: { path: /api/login, methods: [POST] }
    upstream: api
    limits:
      - { name: login-per-ip, key: [ip], algorithm: )" +
         std::string(algorithm) + R"(, limit: 5, window: 10m }
  - name: rest
    match: { path: /* }
    upstream: api
)";
}

// Sends a request on `client`, reconnecting first if sluice closed the previous one.
Response send_on(std::optional<HttpClient>& client, std::uint16_t port, std::string_view request) {
  if (!client) client.emplace(port);
  auto response = client->request(request);
  if (response.header("Connection") == std::optional<std::string>("close")) client.reset();
  return response;
}

// The five allowed logins: upstream's answer plus quota headers counting down 4..0.
void five_allowed_logins(ProxyStack& stack, std::optional<HttpClient>& client) {
  for (int i = 0; i < 5; ++i) {
    auto response = send_on(client, stack.port(), kLoginPost);
    INFO("login " << i + 1 << ":\n" << response.raw);
    REQUIRE(response.status_line == "HTTP/1.1 200 OK");
    CHECK(parse_json(response.body).at("target") == "/api/login");
    CHECK(response.header("X-RateLimit-Limit") == "5");
    CHECK(response.header_number("X-RateLimit-Remaining") == 4 - i);
    CHECK(response.header("RateLimit-Policy") == R"("login-per-ip";q=5;w=600)");
    CHECK(response.header("RateLimit")
              ->starts_with(R"("login-per-ip";r=)" + std::to_string(4 - i) + ";t="));
  }
}

// The 429 with every header and the body exactly as the contract writes them; returns N, the
// Retry-After, after checking it against the body, `X-RateLimit-Reset` against `t`.
std::int64_t check_exact_429(const Response& rejected) {
  INFO("the 429 as received:\n" << rejected.raw);
  REQUIRE(rejected.status_line == "HTTP/1.1 429 Too Many Requests");
  auto retry_after = rejected.header_number("Retry-After");
  REQUIRE(retry_after.has_value());
  const std::int64_t n = *retry_after;
  CHECK(n >= 1);
  const std::string body =
      R"({"error":"rate_limited","message":"Too many requests","route":"login",)"
      R"("limit":"login-per-ip","retryAfter":)" +
      std::to_string(n) + "}";
  CHECK(rejected.body == body);

  auto reset = rejected.header_number("X-RateLimit-Reset");
  REQUIRE(reset.has_value());
  const std::string n_text = std::to_string(n);
  const std::set<std::string> expected_names = {
      "Content-Type",          "Content-Length",    "Retry-After",      "X-RateLimit-Limit",
      "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit"};
  // Exact names and values, each once; the bytes on the wire spell them exactly so.
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"Content-Type", "application/json"},
           {"Content-Length", std::to_string(body.size())},
           {"Retry-After", n_text},
           {"X-RateLimit-Limit", "5"},
           {"X-RateLimit-Remaining", "0"},
           {"X-RateLimit-Reset", std::to_string(*reset)},
           {"RateLimit-Policy", R"("login-per-ip";q=5;w=600)"},
           {"RateLimit", R"("login-per-ip";r=0;t=)" + std::to_string(*reset)}}) {
    INFO("header " << name);
    CHECK(rejected.header_count(name) == 1);
    CHECK(rejected.raw.find("\r\n" + name + ": " + value + "\r\n") != std::string::npos);
  }
  // Nothing else but the usual Date/Server/Connection.
  for (const auto& header : rejected.headers) {
    INFO("unexpected header " << header.name);
    CHECK((expected_names.count(header.name) == 1 || header.name == "Date" ||
           header.name == "Server" || header.name == "Connection"));
  }
  CHECK(rejected.raw.ends_with("\r\n\r\n" + body));
  return n;
}

TEST_CASE("the sixth login in a fixed window gets the exact 429 and never reaches the upstream",
          "[rate_limit][contract]") {
  start_clear_of_window_edge(10min);
  ProxyStack stack(login_config("fixed_window"));
  std::optional<HttpClient> client;
  five_allowed_logins(stack, client);
  REQUIRE(upstream_stats(stack.upstream_port()).at("requests") == 5);

  const double window_left = seconds_to_window_end(600);
  auto rejected = send_on(client, stack.port(), kLoginPost);
  const std::int64_t n = check_exact_429(rejected);
  // Fixed window: the request could pass, and the quota is back, when this epoch-aligned window
  // ends.
  CHECK(n <= 600);
  CHECK(rejected.header_number("X-RateLimit-Reset") == n);
  CHECK(std::abs(static_cast<double>(n) - std::ceil(window_left)) <= 2);

  // Still rejected, and still nothing forwarded.
  auto again = send_on(client, stack.port(), kLoginPost);
  CHECK(again.status == 429);
  auto stats = upstream_stats(stack.upstream_port());
  CHECK(stats.at("requests") == 5);
  CHECK(count_target(stats, "/api/login") == 5);

  // Another route is not affected by the login limit.
  auto other = send_on(client, stack.port(), make_request("GET", "/api/profile"));
  CHECK(other.status == 200);
}

TEST_CASE("the issue's sliding-window login limit rejects the sixth login with the same 429",
          "[rate_limit][contract]") {
  start_clear_of_window_edge(10min);
  ProxyStack stack(login_config("sliding_window"));
  std::optional<HttpClient> client;
  five_allowed_logins(stack, client);

  const double window_left = seconds_to_window_end(600);
  auto rejected = send_on(client, stack.port(), kLoginPost);
  const std::int64_t n = check_exact_429(rejected);
  // Weighted two-window counter, all five logins in this window: the estimate falls to 4 (one
  // login may pass) a fifth of a window into the next one, and to 0 at the next one's end.
  CHECK(std::abs(static_cast<double>(n) - std::ceil(window_left + 120)) <= 2);
  auto reset = rejected.header_number("X-RateLimit-Reset").value();
  CHECK(std::abs(static_cast<double>(reset) - std::ceil(window_left + 600)) <= 2);
  CHECK(upstream_stats(stack.upstream_port()).at("requests") == 5);
}

std::string limited_route_config(std::string_view headers) {
  return config_head(headers) + R"(routes:
  - name: items
    match: { path: /items/* }
    upstream: api
    limits:
      - { name: items-per-ip, key: [ip], algorithm: fixed_window, limit: 2, window: 1h }
)";
}

// A connection refused again and again is answered from what it sent last time when nothing in
// the 429 changed (Session::render_reply); whatever did change must show.
TEST_CASE("every 429 on a kept-alive connection names its own route, limit and connection",
          "[rate_limit][contract]") {
  ProxyStack stack(config_head() + R"(routes:
  - name: one
    match: { path: /one/* }
    upstream: api
    limits:
      - { name: one-per-10m, key: [ip], algorithm: sliding_window, limit: 1, window: 10m }
  - name: two
    match: { path: /two/* }
    upstream: api
    limits:
      - { name: two-per-10m, key: [ip], algorithm: sliding_window, limit: 1, window: 10m }
)");
  HttpClient client(stack.port());
  auto expect_refusal = [&](std::string_view target, std::string_view route, std::string_view limit,
                            bool close) {
    std::vector<Header> headers;
    if (close) headers.push_back({"Connection", "close"});
    auto response = client.request(make_request("GET", target, headers));
    INFO(target << ":\n" << response.raw);
    REQUIRE(response.status == 429);
    const auto body = parse_json(response.body);
    CHECK(as_text(body.at("route")) == route);
    CHECK(as_text(body.at("limit")) == limit);
    CHECK(response.header_number("X-RateLimit-Limit") == 1);
    CHECK(response.header_number("X-RateLimit-Remaining") == 0);
    CHECK(response.header("RateLimit-Policy") == "\"" + std::string(limit) + "\";q=1;w=600");
    CHECK(response.header_number("Retry-After") == body.at("retryAfter").as_int64());
    if (close) {
      CHECK(response.header("Connection") == "close");
    } else {
      CHECK_FALSE(response.header("Connection").has_value());
    }
  };

  REQUIRE(client.request(make_request("GET", "/one/a")).status == 200);
  expect_refusal("/one/b", "one", "one-per-10m", false);
  expect_refusal("/one/c", "one", "one-per-10m", false);  // the same 429 again
  REQUIRE(client.request(make_request("GET", "/two/a")).status == 200);
  // Another route's 429, on the same connection, with the same numbers.
  expect_refusal("/two/b", "two", "two-per-10m", false);
  expect_refusal("/one/d", "one", "one-per-10m", false);  // and back
  expect_refusal("/one/e", "one", "one-per-10m", true);   // the last, announcing the close
  CHECK(client.peer_closed(2s));
  CHECK(upstream_stats(stack.upstream_port()).at("requests") == 2);
}

TEST_CASE("the headers setting decides which quota headers a client sees",
          "[rate_limit][headers]") {
  start_clear_of_window_edge(1h);
  const std::vector<std::string> legacy = {"X-RateLimit-Limit", "X-RateLimit-Remaining",
                                           "X-RateLimit-Reset"};
  const std::vector<std::string> ietf = {"RateLimit-Policy", "RateLimit"};
  auto count_present = [](const Response& response, const std::vector<std::string>& names) {
    std::size_t present = 0;
    for (const auto& name : names)
      present += response.header_count(name);
    return present;
  };
  const std::string request = make_request("GET", "/items/1");

  SECTION("legacy: X-RateLimit-* only") {
    ProxyStack stack(limited_route_config("legacy"));
    HttpClient client(stack.port());
    auto allowed = client.request(request);
    REQUIRE(allowed.status == 200);
    CHECK(count_present(allowed, legacy) == 3);
    CHECK(count_present(allowed, ietf) == 0);
    CHECK(allowed.header("X-RateLimit-Limit") == "2");
    CHECK(allowed.header("X-RateLimit-Remaining") == "1");
    client.request(request);
    auto rejected = fetch(stack.port(), request);
    REQUIRE(rejected.status == 429);
    CHECK(count_present(rejected, legacy) == 3);
    CHECK(count_present(rejected, ietf) == 0);
    CHECK(rejected.header_count("Retry-After") == 1);
  }
  SECTION("ietf: RateLimit-Policy and RateLimit only") {
    ProxyStack stack(limited_route_config("ietf"));
    HttpClient client(stack.port());
    auto allowed = client.request(request);
    REQUIRE(allowed.status == 200);
    CHECK(count_present(allowed, legacy) == 0);
    CHECK(allowed.header("RateLimit-Policy") == R"("items-per-ip";q=2;w=3600)");
    CHECK(allowed.header("RateLimit")->starts_with(R"("items-per-ip";r=1;t=)"));
    client.request(request);
    auto rejected = fetch(stack.port(), request);
    REQUIRE(rejected.status == 429);
    CHECK(count_present(rejected, legacy) == 0);
    CHECK(count_present(rejected, ietf) == 2);
    CHECK(rejected.header_count("Retry-After") == 1);
  }
  SECTION("none: no quota headers, but the 429 still says when to retry") {
    ProxyStack stack(limited_route_config("none"));
    HttpClient client(stack.port());
    auto allowed = client.request(request);
    REQUIRE(allowed.status == 200);
    CHECK(count_present(allowed, legacy) + count_present(allowed, ietf) == 0);
    client.request(request);
    auto rejected = fetch(stack.port(), request);
    REQUIRE(rejected.status == 429);
    CHECK(count_present(rejected, legacy) + count_present(rejected, ietf) == 0);
    CHECK(rejected.header_number("Retry-After") >= 1);
  }
}

TEST_CASE("an allowed response is the upstream's, untouched, plus the quota headers",
          "[rate_limit][headers]") {
  start_clear_of_window_edge(1h);
  ProxyStack stack(config_head() + R"(routes:
  - name: items
    match: { path: /items/* }
    upstream: api
    limits:
      - { name: items-wide, key: [route], algorithm: fixed_window, limit: 10, window: 1h }
      - { name: items-per-ip, key: [ip], algorithm: fixed_window, limit: 3, window: 1h }
  - name: free
    match: { path: /* }
    upstream: api
)");
  HttpClient client(stack.port());

  SECTION("status, body and the upstream's own headers pass through") {
    auto created = client.request(make_request("GET", "/items/x?status=201"));
    INFO(created.raw);
    REQUIRE(created.status_line == "HTTP/1.1 201 Created");
    auto echo = parse_json(created.body).as_object();
    CHECK(echo.at("target") == "/items/x?status=201");
    CHECK(created.header("Content-Type") == "application/json");
    CHECK(created.header("X-Upstream-Connection") ==
          std::to_string(echo.at("connection").as_int64()));
    CHECK(created.header_number("Content-Length") ==
          static_cast<std::int64_t>(created.body.size()));
    CHECK(created.header("X-RateLimit-Remaining") == "2");
  }
  SECTION("with two limits, the headers describe the one with fewer units left") {
    auto first = client.request(make_request("GET", "/items/a"));
    REQUIRE(first.status == 200);
    CHECK(first.header("X-RateLimit-Limit") == "3");
    CHECK(first.header("X-RateLimit-Remaining") == "2");
    CHECK(first.header("RateLimit-Policy") == R"("items-per-ip";q=3;w=3600)");
    CHECK(first.header_count("X-RateLimit-Limit") == 1);
    client.request(make_request("GET", "/items/b"));
    client.request(make_request("GET", "/items/c"));
    auto rejected = fetch(stack.port(), make_request("GET", "/items/d"));
    REQUIRE(rejected.status == 429);
    CHECK(parse_json(rejected.body).at("limit") == "items-per-ip");
    CHECK(rejected.header("X-RateLimit-Limit") == "3");
  }
  SECTION("a route without limits gets no quota headers") {
    auto response = client.request(make_request("GET", "/other?status=202"));
    REQUIRE(response.status_line == "HTTP/1.1 202 Accepted");
    CHECK(parse_json(response.body).at("target") == "/other?status=202");
    for (const char* name : {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                             "RateLimit-Policy", "RateLimit", "Retry-After"}) {
      INFO(name);
      CHECK(response.header_count(name) == 0);
    }
  }
}

TEST_CASE("spellings of one path share its limit and reach the upstream normalised",
          "[rate_limit][normalisation]") {
  start_clear_of_window_edge(10min);
  ProxyStack stack(login_config("fixed_window"));
  std::optional<HttpClient> client;

  int expected_remaining = 4;
  for (const char* target :
       {"/api//login", "/api/./login", "/api/%6Cogin", "/api/x/../login?next=%2Fhome"}) {
    auto response = send_on(client, stack.port(), make_request("POST", target, {}, "{}"));
    INFO(target << "\n" << response.raw);
    REQUIRE(response.status == 200);
    CHECK(response.header_number("X-RateLimit-Remaining") == expected_remaining--);
    const std::string query = std::string(target).ends_with("%2Fhome") ? "?next=%2Fhome" : "";
    CHECK(as_text(parse_json(response.body).at("target")) == "/api/login" + query);
  }
  send_on(client, stack.port(), kLoginPost);
  auto rejected = send_on(client, stack.port(), make_request("POST", "//api/%6cogin/.", {}, "{}"));
  CHECK(rejected.status == 429);

  auto stats = upstream_stats(stack.upstream_port());
  CHECK(stats.at("requests") == 5);
  CHECK(count_target(stats, "/api/login") == 4);
  CHECK(count_target(stats, "/api/login?next=%2Fhome") == 1);
}

TEST_CASE("a client cannot pick its own limit key with X-Forwarded-For",
          "[rate_limit][forwarding]") {
  start_clear_of_window_edge(10min);
  ProxyStack stack(login_config("fixed_window"));
  std::optional<HttpClient> client;
  for (int i = 0; i < 5; ++i) {
    // An untrusted peer rotating addresses: every request is still 127.0.0.1's.
    std::string spoofed = "203.0.113." + std::to_string(i + 1);
    auto response =
        send_on(client, stack.port(),
                make_request("POST", "/api/login", {{"X-Forwarded-For", spoofed}}, "{}"));
    REQUIRE(response.status == 200);
    CHECK(response.header_number("X-RateLimit-Remaining") == 4 - i);
    auto headers = parse_json(response.body).at("headers").as_object();
    CHECK(as_text(headers.at("X-Forwarded-For")) == spoofed + ", 127.0.0.1");
  }
  auto rejected =
      send_on(client, stack.port(),
              make_request("POST", "/api/login", {{"X-Forwarded-For", "198.51.100.7"}}, "{}"));
  CHECK(rejected.status == 429);
}

}  // namespace

TEST_CASE("threads: 2 share one memory store: 300 requests from 30 connections admit exactly 50",
          "[rate_limit][threads]") {
  // Each thread has its own listener (SO_REUSEPORT), so the kernel spreads the connections over
  // both event loops; the one memory store must still count every request once. Under
  // ThreadSanitizer (make test-tsan) this is the test of the threads sharing the store.
  ProxyStack stack(replace_once(config_head(), "threads: 1", "threads: 2") + R"(identities:
  api_key: { header: X-API-Key }
routes:
  - name: shared
    match: { path: /shared }
    upstream: api
    limits:
      - { name: per-key, key: [api_key], algorithm: fixed_window, limit: 50, window: 10m }
)");
  const StatusCounts counts = send_concurrently(
      {stack.port()}, 30, 10, make_request("GET", "/shared", {{"X-API-Key", "k-shared"}}));
  INFO(stack.log_tail());
  CHECK(counts.ok == 50);
  CHECK(counts.limited == 250);
  CHECK(counts.other == 0);
  CHECK(upstream_stats(stack.upstream_port()).at("requests") == 50);
}
