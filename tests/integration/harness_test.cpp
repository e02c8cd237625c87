// The test upstream and the raw client on their own, without sluice: every proxy test reads its
// results through them, so they must be right first.
#include <signal.h>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"

namespace {

using namespace sluice::test;
namespace json = boost::json;

TEST_CASE("test upstream echoes what it received, in order, per connection", "[harness]") {
  TempDir dir;
  auto upstream = start_test_upstream(dir.path());
  HttpClient client(upstream.port);

  auto first = client.request(make_request(
      "POST", "/echo?x=1", {{"X-Trace", "a"}, {"x-trace", "b"}, {"X-One", "1"}}, "hello"));
  REQUIRE(first.status_line == "HTTP/1.1 200 OK");
  auto echo = parse_json(first.body).as_object();
  CHECK(echo.at("method") == "POST");
  CHECK(echo.at("target") == "/echo?x=1");
  CHECK(echo.at("bodyBytes") == 5);
  CHECK(echo.at("request") == 1);
  const auto& headers = echo.at("headers").as_object();
  CHECK(headers.at("X-Trace") == json::array{"a", "b"});  // a repeated name keeps every value
  CHECK(headers.at("X-One") == "1");
  CHECK(first.header("x-upstream-connection") == std::to_string(echo.at("connection").as_int64()));

  auto second = client.request(make_request("GET", "/again"));
  auto second_echo = parse_json(second.body).as_object();
  CHECK(second_echo.at("connection") == echo.at("connection"));
  CHECK(second_echo.at("request") == 2);

  HttpClient other(upstream.port);
  auto third = parse_json(other.request(make_request("GET", "/")).body).as_object();
  CHECK(third.at("connection") != echo.at("connection"));

  auto stats = upstream_stats(upstream.port);
  CHECK(stats.at("requests") == 3);  // /stats itself is not recorded
  CHECK(count_target(stats, "/echo?x=1") == 1);
  CHECK(count_target(stats, "/again") == 1);
}

TEST_CASE("test upstream status, close, slow and raw response framing", "[harness]") {
  TempDir dir;
  auto upstream = start_test_upstream(dir.path());

  auto created = fetch(upstream.port, make_request("GET", "/status/201"));
  CHECK(created.status_line == "HTTP/1.1 201 Created");
  CHECK(parse_json(created.body).at("target") == "/status/201");
  CHECK(created.raw.starts_with("HTTP/1.1 201 Created\r\n"));
  CHECK(created.raw.ends_with("\r\n\r\n" + created.body));

  HttpClient closing(upstream.port);
  auto closed = closing.request(make_request("GET", "/close"));
  CHECK(closed.header("Connection") == "close");
  CHECK(closing.peer_closed());

  HttpClient keeping(upstream.port);
  keeping.request(make_request("GET", "/"));
  CHECK_FALSE(keeping.peer_closed(std::chrono::milliseconds(50)));

  auto started = std::chrono::steady_clock::now();
  auto slow = fetch(upstream.port, make_request("GET", "/slow?ms=200"));
  CHECK(slow.status == 200);
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(200));
}

TEST_CASE("test upstream streams large bodies both ways, checked byte by byte", "[harness]") {
  TempDir dir;
  auto upstream = start_test_upstream(dir.path());
  HttpClient client(upstream.port);
  constexpr std::uint64_t kSize = 64ull << 20;

  auto fixed = client.download(make_request("GET", "/bytes?n=" + std::to_string(kSize)));
  CHECK(fixed.head.header_number("Content-Length") == static_cast<std::int64_t>(kSize));
  CHECK(fixed.body_bytes == kSize);
  CHECK(fixed.pattern_ok);

  auto chunked =
      client.download(make_request("GET", "/bytes?chunked=1&n=" + std::to_string(kSize + 7)));
  CHECK(chunked.head.header("Transfer-Encoding") == "chunked");
  CHECK(chunked.body_bytes == kSize + 7);
  CHECK(chunked.pattern_ok);

  for (auto framing : {Framing::content_length, Framing::chunked}) {
    auto uploaded =
        client.upload("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n", kSize + 3, framing);
    REQUIRE(uploaded.status == 200);
    auto body = parse_json(uploaded.body);
    CHECK(body.at("bodyBytes") == kSize + 3);
    CHECK(body.at("patternOk") == true);
  }
  // The upstream holds one 64 KiB piece at a time, never a body. Sanitizers' shadow memory and
  // quarantine add tens of MiB whatever the program does.
#ifdef SLUICE_SANITIZED
  constexpr std::uint64_t kPeakRssLimitKib = 128 * 1024;
#else
  constexpr std::uint64_t kPeakRssLimitKib = 16 * 1024;
#endif
  CHECK(upstream.process.peak_rss_kib().value() < kPeakRssLimitKib);
}

TEST_CASE("processes: exit codes, logs, termination, free ports", "[harness]") {
  TempDir dir;
  auto failing = Process::spawn({"/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3"},
                                dir.path(), "failing");
  CHECK(failing.wait_for_exit(std::chrono::seconds(5)) == 3);
  CHECK(failing.stdout_text() == "to-out\n");
  CHECK(failing.log_tail().find("to-err") != std::string::npos);

  auto sleeper =
      Process::spawn({"/bin/sleep", "30"}, dir.path(), "sleeper", {{"SLUICE_EXAMPLE", "1"}});
  CHECK(sleeper.is_running());
  CHECK(sleeper.terminate() == 128 + SIGTERM);

  CHECK_THROWS(Process::spawn({"/nonexistent/binary"}, dir.path(), "missing"));

  auto port = free_loopback_port();
  CHECK_FALSE(wait_for_port(port, std::chrono::milliseconds(30)));
  CHECK(substitute("listen: 127.0.0.1:${PORT}", {{"PORT", "8"}}) == "listen: 127.0.0.1:8");
  CHECK_THROWS(substitute("${MISSING}", {}));
}

}  // namespace
