#include <catch2/catch.hpp>

#include <sluice/proxy/header_screen.hpp>

using sluice::proxy::HeaderScreen;
using Verdict = HeaderScreen::Verdict;

namespace {

Verdict screen_all(std::string_view bytes, std::size_t max_line = 8192) {
  HeaderScreen screen(max_line);
  return screen.scan(bytes);
}

// Feeds the bytes one at a time, as a slow client would; the verdict must not depend on it.
Verdict screen_bytewise(std::string_view bytes, std::size_t max_line = 8192) {
  HeaderScreen screen(max_line);
  Verdict v = Verdict::need_more;
  for (std::size_t n = 1; n <= bytes.size() && v == Verdict::need_more; ++n) {
    v = screen.scan(bytes.substr(0, n));
  }
  return v;
}

}  // namespace

TEST_CASE("a clean header section is complete once its empty line arrives", "[header_screen]") {
  const std::string_view request = "GET /a HTTP/1.1\r\nHost: x\r\nX-A: b\tc\r\n\r\nBODY";
  CHECK(screen_all(request) == Verdict::complete);
  CHECK(screen_bytewise(request) == Verdict::complete);
  CHECK(screen_all("GET /a HTTP/1.1\r\nHost: x\r\n") == Verdict::need_more);
  CHECK(screen_all("GET /a HTTP/1.1\r\nHost: x\r\n\r") == Verdict::need_more);
  // Empty lines before the request line are allowed (RFC 9112 2.2).
  CHECK(screen_all("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n") == Verdict::complete);
  // Bare LF line ends are tolerated: sluice re-serialises every header with CRLF.
  CHECK(screen_all("GET / HTTP/1.1\nHost: x\n\n") == Verdict::complete);
}

TEST_CASE("what a proxy must refuse in a header section", "[header_screen]") {
  struct Row {
    std::string_view bytes;
    Verdict expected;
  };
  const Row rows[] = {
      {"GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", Verdict::obs_fold},
      {"GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n", Verdict::obs_fold},
      {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", Verdict::obs_fold},
      {"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", Verdict::bare_cr},
      {"GET / HTTP/1.1\r\nX-A: a\r\r\n\r\n", Verdict::bare_cr},
      {std::string_view("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 27), Verdict::control_byte},
      {"GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", Verdict::control_byte},
      {"GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n", Verdict::control_byte},
  };
  for (const auto& row : rows) {
    INFO(row.bytes);
    CHECK(screen_all(row.bytes) == row.expected);
    CHECK(screen_bytewise(row.bytes) == row.expected);
  }
}

TEST_CASE("a request line longer than the limit is told apart from a large header",
          "[header_screen]") {
  const std::string long_target = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n";
  CHECK(screen_all(long_target, 64) == Verdict::request_line_too_long);
  CHECK(screen_bytewise(long_target, 64) == Verdict::request_line_too_long);

  HeaderScreen screen(64);
  CHECK(screen.scan("GET / HTTP/1.1\r\nX-Big: " + std::string(500, 'b')) == Verdict::need_more);
  CHECK_FALSE(screen.in_request_line());
}
