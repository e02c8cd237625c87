// What one client or one upstream may cost, through the real binary: request bodies over
// max_body, connections past max_connections, malformed upstream responses, close-delimited
// bodies and HTTP/1.0 keep-alive, and the timeouts of the `client:` section and of an upstream.
// Each test starts a fresh sluice in front of a fresh test upstream, whose /stats and
// X-Upstream-Connection header tell what reached it and over which connection.
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/raw_connection.hpp"

namespace {

using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- helpers ---------------------------------------------------------------------------------

// Checks a response sluice wrote itself: the status, and the contract's JSON error shape.
void check_sluice_error(const Response& response, int status, std::string_view error,
                        std::optional<std::string_view> route = std::nullopt) {
  INFO("response:\n" << response.raw);
  CHECK(response.status == status);
  CHECK(response.header("Content-Type") == "application/json");
  CHECK(response.header_number("Content-Length") ==
        static_cast<std::int64_t>(response.body.size()));
  const auto body = parse_json(response.body);
  REQUIRE(body.is_object());
  CHECK(as_text(body.at("error")) == error);
  CHECK_FALSE(as_text(body.at("message")).empty());
  if (route) {
    CHECK(as_text(body.at("route")) == *route);
  } else {
    CHECK_FALSE(body.as_object().contains("route"));
  }
}

// The echoed target of a proxied response (the test upstream answers JSON naming it).
std::string echoed_target(const Response& response) {
  return as_text(parse_json(response.body).at("target"));
}

std::string upstream_connection(const Response& response) {
  return response.header("X-Upstream-Connection").value_or("<none>");
}

// Loopback TCP connections to `port` that the peer closed and whose owner has not (CLOSE_WAIT).
int close_wait_connections_to(std::uint16_t port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the column names
  int count = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    const auto colon = remote.find(':');
    if (colon == std::string::npos) continue;
    const auto remote_port = std::stoul(remote.substr(colon + 1), nullptr, 16);
    if (remote_port == port && state == "08") ++count;
  }
  return count;
}

std::string post_head(std::string_view target, std::string_view framing_line) {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
         std::string(framing_line) + "\r\n\r\n";
}

std::string chunk(std::size_t size, char fill = 'c') {
  char size_line[32];
  const int length = std::snprintf(size_line, sizeof size_line, "%zx\r\n", size);
  return std::string(size_line, static_cast<std::size_t>(length)) + std::string(size, fill) +
         "\r\n";
}

long long milliseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// ---- max_body --------------------------------------------------------------------------------

std::string max_body_config() {
  return config_head() + R"(routes:
  - name: small
    match: { path: /small/* }
    upstream: api
    max_body: 1KiB
    limits:
      - { name: small-once, key: [ip], algorithm: token_bucket, limit: 1, window: 1m }
  - name: chunks
    match: { path: /chunks/* }
    upstream: api
    max_body: 1KiB
  - name: rest
    match: { path: /* }
    upstream: api
)";
}

TEST_CASE("max_body: a Content-Length over it is a 413 before the body is sent, never charged",
          "[limits][max_body]") {
  ProxyStack stack(max_body_config());

  // Only the head is sent: the answer must come without waiting for the body.
  HttpClient client(stack.port(), 3s);
  client.send(post_head("/small/big", "Content-Length: 2000"));
  const auto refused = client.read_response();
  check_sluice_error(refused, 413, "payload_too_large", "small");
  // RFC 9110 renamed it from "Payload Too Large".
  CHECK(refused.status_line == "HTTP/1.1 413 Content Too Large");
  CHECK(refused.header("Connection") == "close");
  CHECK(client.peer_closed());

  // One byte over is refused too; exactly at the limit passes, and uses the route's only token.
  const auto one_over =
      fetch(stack.port(), make_request("POST", "/small/over", {}, std::string(1025, 'b')));
  CHECK(one_over.status == 413);
  const auto at_limit =
      fetch(stack.port(), make_request("POST", "/small/at-limit", {}, std::string(1024, 'b')));
  INFO(at_limit.raw);
  REQUIRE(at_limit.status == 200);
  CHECK(parse_json(at_limit.body).at("bodyBytes") == 1024);
  // The token is gone now: the limit is real, so the 413s above would have spent it if charged.
  const auto limited = fetch(stack.port(), make_request("POST", "/small/again", {}, "x"));
  CHECK(limited.status == 429);

  const auto stats = upstream_stats(stack.upstream_port());
  INFO("the upstream saw: " << boost::json::serialize(stats));
  CHECK(count_target(stats, "/small/big") == 0);
  CHECK(count_target(stats, "/small/over") == 0);
  CHECK(count_target(stats, "/small/at-limit") == 1);
  CHECK(stats.at("requests") == 1);
}

TEST_CASE("max_body: a chunked body growing past it is a 413 and its upstream connection dropped",
          "[limits][max_body]") {
  ProxyStack stack(max_body_config());
  // A pooled upstream connection, which the oversized request will take.
  const auto warm = fetch(stack.port(), make_request("GET", "/chunks/warm"));
  REQUIRE(warm.status == 200);
  const std::string pooled = upstream_connection(warm);
  bool upstream_holds_part = false;

  SECTION("the body grows past the limit after the head went upstream") {
    upstream_holds_part = true;
    RawConnection connection(stack.port());
    REQUIRE(connection.send(post_head("/chunks/grow", "Transfer-Encoding: chunked") + chunk(512)));
    // Let sluice forward the head and the first chunk before the rest arrives, so the upstream
    // holds part of a request when the limit is crossed.
    std::this_thread::sleep_for(200ms);
    connection.send(chunk(512) + chunk(512) + "0\r\n\r\n");
    const auto received = connection.read_until_close(Clock::now() + 3s);
    INFO("received:\n" << received.bytes);
    CHECK(received.closed);
    // The 413 may be lost only when sluice could not send it; nothing else may come.
    if (!received.bytes.empty()) {
      REQUIRE(received.bytes.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
      CHECK(received.bytes.find("\"error\":\"payload_too_large\"") != std::string::npos);
      CHECK(received.bytes.find("\r\nConnection: close\r\n") != std::string::npos);
      CHECK(count_of(received.bytes, "HTTP/1.1 ") == 1);
    }
  }
  SECTION("the whole oversized body arrives with the head") {
    HttpClient client(stack.port(), 3s);
    client.send(post_head("/chunks/grow", "Transfer-Encoding: chunked") + chunk(512) + chunk(512) +
                chunk(1) + "0\r\n\r\n");
    const auto refused = client.read_response();
    check_sluice_error(refused, 413, "payload_too_large", "chunks");
    CHECK(refused.header("Connection") == "close");
    CHECK(client.peer_closed());
  }

  // The next request works, on an upstream connection that never carried the broken request.
  const auto next = fetch(stack.port(), make_request("GET", "/chunks/next"));
  INFO(next.raw);
  REQUIRE(next.status == 200);
  CHECK(echoed_target(next) == "/chunks/next");
  if (upstream_holds_part) {
    CHECK(upstream_connection(next) != pooled);
  }

  // A chunked body of exactly the limit passes.
  HttpClient client(stack.port(), 3s);
  client.send(post_head("/chunks/exact", "Transfer-Encoding: chunked") + chunk(1000) + chunk(24) +
              "0\r\n\r\n");
  const auto exact = client.read_response();
  INFO(exact.raw);
  REQUIRE(exact.status == 200);
  CHECK(parse_json(exact.body).at("bodyBytes") == 1024);

  const auto stats = upstream_stats(stack.upstream_port());
  INFO("the upstream saw: " << boost::json::serialize(stats));
  CHECK(count_target(stats, "/chunks/grow") == 0);
  CHECK(count_target(stats, "/chunks/next") == 1);
  CHECK(count_target(stats, "/chunks/exact") == 1);
}

TEST_CASE("max_body: client.max_body is the default of routes without their own",
          "[limits][max_body]") {
  ProxyStack stack(config_head() + R"(client: { max_body: 1KiB }
routes:
  - name: own
    match: { path: /own/* }
    upstream: api
    max_body: 4KiB
  - name: free
    match: { path: /free/* }
    upstream: api
    max_body: unlimited
  - name: rest
    match: { path: /* }
    upstream: api
)");
  HttpClient over_default(stack.port(), 3s);
  over_default.send(post_head("/default", "Content-Length: 2000"));
  check_sluice_error(over_default.read_response(), 413, "payload_too_large", "rest");

  const auto under_default =
      fetch(stack.port(), make_request("POST", "/default", {}, std::string(1024, 'd')));
  CHECK(under_default.status == 200);

  const auto under_own =
      fetch(stack.port(), make_request("POST", "/own/x", {}, std::string(2000, 'o')));
  INFO(under_own.raw);
  CHECK(under_own.status == 200);
  HttpClient over_own(stack.port(), 3s);
  over_own.send(post_head("/own/y", "Content-Length: 5000"));
  check_sluice_error(over_own.read_response(), 413, "payload_too_large", "own");

  HttpClient free_client(stack.port(), 10s);
  const auto large =
      free_client.upload("POST /free/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n", 1024 * 1024);
  INFO(large.raw);
  CHECK(large.status == 200);

  const auto stats = upstream_stats(stack.upstream_port());
  CHECK(count_target(stats, "/own/y") == 0);
  CHECK(stats.at("requests") == 3);
}

// ---- max_connections -------------------------------------------------------------------------

TEST_CASE("max_connections: past it a new connection is answered 503 overloaded and closed",
          "[limits][max_connections]") {
  ProxyStack stack(config_head() + R"(client: { max_connections: 3 }
routes:
  - name: rest
    match: { path: /* }
    upstream: api
)");
  std::vector<std::unique_ptr<HttpClient>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<HttpClient>(stack.port(), 3s));
    const auto response = open.back()->request(make_request("GET", "/open/" + std::to_string(i)));
    INFO("connection " << i << ":\n" << response.raw);
    REQUIRE(response.status == 200);
  }

  auto check_turned_away = [&](HttpClient& fourth) {
    const auto response = fourth.read_response();
    check_sluice_error(response, 503, "overloaded");
    CHECK(response.status_line == "HTTP/1.1 503 Service Unavailable");
    CHECK(response.header("Retry-After") == "1");
    CHECK(response.header("Connection") == "close");
    CHECK(fourth.peer_closed());
  };
  SECTION("a client that waits for the server to speak") {
    HttpClient fourth(stack.port(), 3s);
    check_turned_away(fourth);
  }
  SECTION("a client that sends its request at once") {
    HttpClient fourth(stack.port(), 3s);
    fourth.send(make_request("GET", "/turned-away"));
    check_turned_away(fourth);
  }

  // The three admitted connections are unaffected.
  for (int i = 0; i < 3; ++i) {
    CHECK(open[static_cast<std::size_t>(i)]->request(make_request("GET", "/again")).status == 200);
  }

  // Once one closes, there is room again. sluice notices the close asynchronously, so a new
  // connection may still be turned away for a moment.
  open.erase(open.begin());
  const auto deadline = Clock::now() + 3s;
  int status = 0;
  while (Clock::now() < deadline) {
    const auto response = fetch(stack.port(), make_request("GET", "/after-close"));
    status = response.status;
    if (status != 503) break;
    std::this_thread::sleep_for(20ms);
  }
  CHECK(status == 200);

  const auto stats = upstream_stats(stack.upstream_port());
  CHECK(count_target(stats, "/turned-away") == 0);
  CHECK(count_target(stats, "/after-close") == 1);
}

// ---- strict upstream responses -----------------------------------------------------------------

std::string open_config(std::string_view client = "", std::string_view api_timeout = "30s") {
  return config_head("both", api_timeout) + std::string(client) + R"(routes:
  - name: rest
    match: { path: /* }
    upstream: api
)";
}

TEST_CASE("malformed upstream responses are a 502 and the client connection goes on",
          "[limits][upstream_response]") {
  const char* const malformed[] = {
      "garbage-status-line",
      "te-and-cl",
      "xchunked",
      "two-lengths",
      "obs-fold",
      "nul-in-value",
      "huge-head",
      "switching-protocols",
      "bad-chunk-size",
  };
  for (const char* name : malformed) {
    DYNAMIC_SECTION(name) {
      ProxyStack stack(open_config());
      HttpClient client(stack.port(), 3s);
      const auto response = client.request(make_request("GET", std::string("/raw/") + name));
      INFO("response:\n" << response.raw);
      CHECK(response.status_line == "HTTP/1.1 502 Bad Gateway");
      CHECK(
          response.body ==
          R"({"error":"bad_gateway","message":"The upstream could not be reached","route":"rest"})");
      CHECK(response.header("Content-Type") == "application/json");
      CHECK(response.header("Connection") != std::optional<std::string>("close"));
      // Nothing of the upstream's head leaks through.
      CHECK_FALSE(response.header("X-Upstream-Connection"));

      const auto next = client.request(make_request("GET", "/after"));
      INFO("next:\n" << next.raw);
      CHECK(next.status == 200);
      CHECK(echoed_target(next) == "/after");
      CHECK(count_target(upstream_stats(stack.upstream_port()), "/after") == 1);
    }
  }
}

TEST_CASE("a response head over 64 KiB is a 502 even when max_header_bytes allows more",
          "[limits][upstream_response]") {
  // Requests may have 256 KiB of head here; a response head is read into one 64 KiB buffer.
  ProxyStack stack(open_config("client: { max_header_bytes: 256KiB }\n"));
  HttpClient client(stack.port(), 3s);
  const auto started = Clock::now();
  const auto response = client.request(make_request("GET", "/raw/huger-head"));
  INFO("response:\n" << response.raw);
  CHECK(response.status_line == "HTTP/1.1 502 Bad Gateway");
  CHECK(milliseconds_since(started) < 2000);
  const auto next = client.request(make_request("GET", "/after"));
  CHECK(next.status == 200);
  CHECK(echoed_target(next) == "/after");
}

// Asks the test upstream for its raw response `name` and reads until sluice closes (3 s at most):
// for responses sluice must cut short.
Received get_raw_until_close(const ProxyStack& stack, std::string_view name) {
  RawConnection connection(stack.port());
  REQUIRE(connection.send(make_request("GET", "/raw/" + std::string(name))));
  return connection.read_until_close(Clock::now() + 3s);
}

TEST_CASE("a malformed chunk after the response started: truncated, then closed",
          "[limits][upstream_response]") {
  ProxyStack stack(open_config());
  const auto received = get_raw_until_close(stack, "bad-chunk-size-later");
  INFO("received:\n" << received.bytes);
  CHECK(received.closed);
  CHECK(received.bytes.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(received.bytes.find("\r\n\r\n5\r\nhello\r\n") != std::string::npos);
  // Neither the bad chunk nor an end of the body nor a second response: the client can tell the
  // response is cut short.
  CHECK(received.bytes.find("zz") == std::string::npos);
  CHECK_FALSE(received.bytes.ends_with("0\r\n\r\n"));
  CHECK(count_of(received.bytes, "HTTP/1.1 ") == 1);

  const auto next = fetch(stack.port(), make_request("GET", "/after"));
  CHECK(next.status == 200);
}

TEST_CASE("bytes after a Content-Length body are dropped with the upstream connection",
          "[limits][upstream_response]") {
  ProxyStack stack(open_config());
  HttpClient client(stack.port(), 3s);
  // The extra bytes are a whole response: a proxy that reused the connection would hand it to the
  // next request.
  for (const char* name : {"extra-bytes", "extra-bytes-later"}) {
    DYNAMIC_SECTION(name) {
      const auto response = client.request(make_request("GET", std::string("/raw/") + name));
      INFO("response:\n" << response.raw);
      REQUIRE(response.status == 200);
      CHECK(response.body == "hello");
      CHECK(response.header_number("Content-Length") == 5);
      CHECK_FALSE(response.header("X-Smuggled"));
      const std::string broken = upstream_connection(response);
      // "extra-bytes-later" sends them 150 ms after the body: wait until they are there.
      std::this_thread::sleep_for(300ms);

      const auto next = client.request(make_request("GET", "/after"));
      INFO("next:\n" << next.raw);
      REQUIRE(next.status == 200);
      CHECK_FALSE(next.header("X-Smuggled"));
      CHECK(echoed_target(next) == "/after");
      CHECK(upstream_connection(next) != broken);
      CHECK_FALSE(client.peer_closed(50ms));
    }
  }
}

TEST_CASE("a body the upstream cuts short by closing is cut short for the client at once",
          "[limits][upstream_response]") {
  ProxyStack stack(open_config());  // the upstream's timeout is 30 s: the close must be noticed
  const auto received = get_raw_until_close(stack, "truncated");
  INFO("received:\n" << received.bytes);
  CHECK(received.closed);
  CHECK(received.bytes.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(received.bytes.ends_with("\r\n\r\nhelloworld"));
}

TEST_CASE("a pooled connection the upstream closed with its last response is not reused",
          "[limits][upstream_response]") {
  ProxyStack stack(open_config());
  HttpClient client(stack.port(), 3s);
  // Each round leaves a connection whose close may have come in with its response, where only
  // the kernel can tell (see IdleCheck): a GET may meet it and is sent again, a POST must not.
  for (int round = 0; round < 20; ++round) {
    const auto closing = client.request(make_request("GET", "/raw/close-at-once"));
    REQUIRE(closing.status == 200);
    CHECK(closing.body == "hello");
    // The close is in sluice's kernel by now: anything else is the race every proxy has.
    std::this_thread::sleep_for(20ms);
    const auto response = round % 2 == 0
                              ? client.request(make_request("GET", "/next"))
                              : client.request(make_request("POST", "/next", {}, "order=1"));
    INFO("round " << round << ":\n" << response.raw);
    REQUIRE(response.status == 200);
    CHECK(echoed_target(response) == "/next");
    CHECK(upstream_connection(response) != upstream_connection(closing));
  }
}

TEST_CASE("upstreams.idle_timeout: pooled connections are closed after it, dead ones not reused",
          "[limits][upstream_response]") {
  ProxyStack stack(config_head("both", "30s, idle_timeout: 300ms") + R"(routes:
  - name: rest
    match: { path: /* }
    upstream: api
)");
  HttpClient client(stack.port(), 3s);
  SECTION("sluice closes an unused connection first") {
    const auto first = client.request(make_request("GET", "/first"));
    REQUIRE(first.status == 200);
    std::this_thread::sleep_for(100ms);
    const auto soon = client.request(make_request("GET", "/soon"));
    REQUIRE(soon.status == 200);
    CHECK(upstream_connection(soon) == upstream_connection(first));
    // The test upstream never closes an idle connection itself: only sluice can have.
    std::this_thread::sleep_for(700ms);
    const auto late = client.request(make_request("GET", "/late"));
    REQUIRE(late.status == 200);
    CHECK(upstream_connection(late) != upstream_connection(first));
  }
  SECTION("the upstream closes it first (as Node does after its keepAliveTimeout)") {
    const auto response = client.request(make_request("GET", "/raw/close-later"));
    REQUIRE(response.status == 200);
    CHECK(response.body == "hello");
    // The upstream closes 150 ms after its response. Until idle_timeout the half-closed
    // connection waits in the pool; after it, no descriptor is held for it.
    std::this_thread::sleep_for(700ms);
    CHECK(close_wait_connections_to(stack.upstream_port()) == 0);
    const auto next = client.request(make_request("GET", "/after-close"));
    INFO("next:\n" << next.raw);
    REQUIRE(next.status == 200);
    CHECK(echoed_target(next) == "/after-close");
    CHECK(upstream_connection(next) != upstream_connection(response));
  }
}

TEST_CASE("a pooled connection dropped under a request: GET is sent again, POST is a 502",
          "[limits][upstream_response]") {
  ProxyStack stack(open_config());
  HttpClient client(stack.port(), 3s);
  // The upstream will read this connection's next request and close it unanswered.
  const auto first = client.request(make_request("GET", "/raw/drop-next"));
  REQUIRE(first.status == 200);
  SECTION("an idempotent request goes again on a fresh connection") {
    const auto response = client.request(make_request("GET", "/again"));
    INFO(response.raw);
    REQUIRE(response.status == 200);
    CHECK(echoed_target(response) == "/again");
    CHECK(upstream_connection(response) != upstream_connection(first));
    CHECK(count_target(upstream_stats(stack.upstream_port()), "/again") == 2);
  }
  SECTION("a POST is not: the upstream may have acted on it") {
    const auto response = client.request(make_request("POST", "/once", {}, "order=1"));
    INFO(response.raw);
    CHECK(response.status == 502);
    CHECK(count_target(upstream_stats(stack.upstream_port()), "/once") == 1);
  }
}

// ---- close-delimited bodies and HTTP/1.0 -----------------------------------------------------

TEST_CASE("a close-delimited upstream body: chunked to HTTP/1.1, close-delimited to HTTP/1.0",
          "[limits][framing]") {
  ProxyStack stack(open_config());
  constexpr std::uint64_t kSize = 200'000;  // several relay pieces
  const std::string target = "/until-close?n=" + std::to_string(kSize);

  SECTION("HTTP/1.1: chunked, and the connection stays open") {
    HttpClient client(stack.port(), 3s);
    const auto download = client.download(make_request("GET", target));
    INFO(download.head.raw);
    REQUIRE(download.head.status == 200);
    CHECK(download.head.header("Transfer-Encoding") == "chunked");
    CHECK_FALSE(download.head.header("Content-Length"));
    CHECK_FALSE(download.head.ended_by_close);
    CHECK(download.body_bytes == kSize);
    CHECK(download.pattern_ok);
    const auto next = client.request(make_request("GET", "/after"));
    CHECK(next.status == 200);
    CHECK(echoed_target(next) == "/after");
  }
  for (const char* connection_field : {"", "Connection: keep-alive\r\n"}) {
    DYNAMIC_SECTION("HTTP/1.0 " << (*connection_field ? "with" : "without")
                                << " keep-alive: close-delimited, then closed") {
      HttpClient client(stack.port(), 3s);
      const auto download =
          client.download("GET " + target + " HTTP/1.0\r\n" + connection_field + "\r\n");
      INFO(download.head.raw);
      REQUIRE(download.head.status == 200);
      CHECK_FALSE(download.head.header("Transfer-Encoding"));
      CHECK_FALSE(download.head.header("Content-Length"));
      CHECK(download.head.ended_by_close);
      CHECK(download.body_bytes == kSize);
      CHECK(download.pattern_ok);
      CHECK(download.head.header("Connection") != std::optional<std::string>("keep-alive"));
    }
  }
}

TEST_CASE("HTTP/1.0 clients keep the connection only when they ask", "[limits][framing]") {
  ProxyStack stack(open_config());
  SECTION("with Connection: keep-alive") {
    HttpClient client(stack.port(), 3s);
    for (int i = 1; i <= 2; ++i) {
      const std::string target = "/one-oh/" + std::to_string(i);
      const auto response =
          client.request("GET " + target + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      INFO("request " << i << ":\n" << response.raw);
      REQUIRE(response.status == 200);
      CHECK(response.status_line.starts_with("HTTP/1.1 200"));
      CHECK(response.header("Connection") == "keep-alive");
      CHECK(response.header("Content-Length"));
      CHECK(echoed_target(response) == target);
      CHECK_FALSE(client.peer_closed(100ms));
    }
  }
  SECTION("without it") {
    HttpClient client(stack.port(), 3s);
    const auto response = client.request("GET /one-oh/once HTTP/1.0\r\n\r\n");
    INFO(response.raw);
    REQUIRE(response.status == 200);
    CHECK(echoed_target(response) == "/one-oh/once");
    CHECK(response.header("Connection") != std::optional<std::string>("keep-alive"));
    CHECK(client.peer_closed());
  }
}

// ---- timeouts ----------------------------------------------------------------------------------

TEST_CASE("client.idle_timeout closes a quiet connection without a response",
          "[limits][timeouts]") {
  ProxyStack stack(open_config("client: { idle_timeout: 500ms }\n"));
  SECTION("a kept-alive connection after a request") {
    HttpClient client(stack.port(), 3s);
    REQUIRE(client.request(make_request("GET", "/before-idle")).status == 200);
    const auto started = Clock::now();
    // peer_closed is false when bytes arrive instead: no response may be sent.
    CHECK(client.peer_closed(3s));
    const auto waited = milliseconds_since(started);
    CHECK(waited >= 300);
    CHECK(waited < 3000);
  }
  SECTION("a new connection is not cut by idle_timeout: its first request has header_timeout") {
    HttpClient client(stack.port(), 3s);
    std::this_thread::sleep_for(1s);
    CHECK(client.request(make_request("GET", "/late-first")).status == 200);
  }
  // A connection used within the timeout is not closed.
  HttpClient busy(stack.port(), 3s);
  for (int i = 0; i < 4; ++i) {
    CHECK(busy.request(make_request("GET", "/busy")).status == 200);
    std::this_thread::sleep_for(200ms);
  }
  CHECK(busy.request(make_request("GET", "/busy")).status == 200);
}

TEST_CASE("client.header_timeout: a new connection that never sends anything is closed silently",
          "[limits][timeouts]") {
  ProxyStack stack(open_config("client: { header_timeout: 500ms }\n"));
  HttpClient client(stack.port(), 3s);
  const auto started = Clock::now();
  // peer_closed is false when bytes arrive instead: nothing was asked, so nothing is answered.
  CHECK(client.peer_closed(3s));
  const auto waited = milliseconds_since(started);
  CHECK(waited >= 300);
  CHECK(waited < 3000);
}

TEST_CASE("client.body_timeout: a stalled upload is a 408, closed, its upstream connection dropped",
          "[limits][timeouts]") {
  ProxyStack stack(open_config("client: { body_timeout: 500ms }\n"));
  const auto warm = fetch(stack.port(), make_request("GET", "/warm"));
  REQUIRE(warm.status == 200);
  const std::string pooled = upstream_connection(warm);

  RawConnection connection(stack.port());
  REQUIRE(connection.send(post_head("/stalled", "Content-Length: 1000") + std::string(100, 's')));
  const auto started = Clock::now();
  const auto received = connection.read_until_close(Clock::now() + 4s);
  const auto waited = milliseconds_since(started);
  INFO("received after " << waited << " ms:\n" << received.bytes);
  CHECK(received.closed);
  CHECK(waited >= 300);
  CHECK(waited < 3000);
  if (!received.bytes.empty()) {
    CHECK(received.bytes.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    CHECK(received.bytes.find("\"error\":\"request_timeout\"") != std::string::npos);
    CHECK(received.bytes.find("\r\nConnection: close\r\n") != std::string::npos);
  }

  // The upstream connection that held half a request is not reused.
  const auto next = fetch(stack.port(), make_request("GET", "/after"));
  INFO(next.raw);
  REQUIRE(next.status == 200);
  CHECK(echoed_target(next) == "/after");
  CHECK(upstream_connection(next) != pooled);
  CHECK(count_target(upstream_stats(stack.upstream_port()), "/stalled") == 0);
}

TEST_CASE("an upstream slower than its timeout is a 504 gateway_timeout", "[limits][timeouts]") {
  ProxyStack stack(open_config("", "300ms"));
  HttpClient client(stack.port(), 5s);
  const auto started = Clock::now();
  const auto response = client.request(make_request("GET", "/slow?ms=2000"));
  const auto waited = milliseconds_since(started);
  INFO("after " << waited << " ms:\n" << response.raw);
  CHECK(response.status_line == "HTTP/1.1 504 Gateway Timeout");
  CHECK(
      response.body ==
      R"({"error":"gateway_timeout","message":"The upstream did not answer in time","route":"rest"})");
  CHECK(response.header("Content-Type") == "application/json");
  CHECK(waited >= 250);
  CHECK(waited < 1900);  // the upstream itself answers after 2 s
  // Just under the timeout passes, on the same client connection.
  const auto quick = client.request(make_request("GET", "/slow?ms=50"));
  CHECK(quick.status == 200);
}

}  // namespace
