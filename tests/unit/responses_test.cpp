#include <catch2/catch.hpp>

#include <sluice/proxy/responses.hpp>

using namespace sluice;
using proxy::ErrorKind;

namespace {

config::Limit login_limit() {
  config::Limit limit;
  limit.name = "login-per-ip";
  limit.algorithm = limit::Algorithm::fixed_window;
  limit.quota = {.limit = 5, .window = 600 * limit::kMicrosPerSecond, .burst = 5};
  return limit;
}

std::string header(const proxy::QuotaHeaders& q, std::string_view name) {
  for (std::size_t i = 0; i < q.count; ++i) {
    if (q.lines[i].name == name) return std::string(q.lines[i].value);
  }
  return "<absent>";
}

}  // namespace

TEST_CASE("the 429 body is the documented JSON, byte for byte", "[responses]") {
  std::string body;
  proxy::write_error_body({.kind = ErrorKind::rate_limited,
                           .route = "login",
                           .limit = "login-per-ip",
                           .retry_after = 7},
                          body);
  CHECK(
      body ==
      R"({"error":"rate_limited","message":"Too many requests","route":"login","limit":"login-per-ip","retryAfter":7})");
  CHECK(proxy::status_code(ErrorKind::rate_limited) == 429);
}

TEST_CASE("every local error has its status, code and the same shape", "[responses]") {
  struct Row {
    ErrorKind kind;
    unsigned status;
    std::string_view body;
  };
  const Row rows[] = {
      {ErrorKind::bad_request, 400, R"({"error":"bad_request","message":"Malformed request"})"},
      {ErrorKind::not_found, 404,
       R"({"error":"not_found","message":"No route matches this request"})"},
      {ErrorKind::request_timeout, 408,
       R"({"error":"request_timeout","message":"The request was not received in time"})"},
      {ErrorKind::payload_too_large, 413,
       R"({"error":"payload_too_large","message":"Request body too large"})"},
      {ErrorKind::uri_too_long, 414,
       R"({"error":"uri_too_long","message":"Request target too long"})"},
      {ErrorKind::header_fields_too_large, 431,
       R"({"error":"header_fields_too_large","message":"Request header fields too large"})"},
      {ErrorKind::bad_gateway, 502,
       R"({"error":"bad_gateway","message":"The upstream could not be reached"})"},
      {ErrorKind::limiter_unavailable, 503,
       R"({"error":"limiter_unavailable","message":"The rate limiter is unavailable"})"},
      {ErrorKind::gateway_timeout, 504,
       R"({"error":"gateway_timeout","message":"The upstream did not answer in time"})"},
  };
  std::string body;
  for (const auto& row : rows) {
    proxy::write_error_body({.kind = row.kind}, body);
    CHECK(body == row.body);
    CHECK(proxy::status_code(row.kind) == row.status);
  }
}

TEST_CASE("JSON values are escaped, so a name can never break the body", "[responses]") {
  std::string body;
  proxy::write_error_body(
      {.kind = ErrorKind::bad_gateway, .message = "bad \"quote\"\n", .route = "a\\b"}, body);
  CHECK(body == R"({"error":"bad_gateway","message":"bad \"quote\"\u000a","route":"a\\b"})");
}

TEST_CASE("quota headers follow the configured style", "[responses]") {
  const auto limit = login_limit();
  const limit::Verdict verdict{.allowed = false,
                               .limit = 5,
                               .remaining = 0,
                               .reset = 6'500'000,  // 6.5 s → 7
                               .retry_after = 6'500'000};
  proxy::QuotaHeaders q;

  proxy::format_quota_headers(config::HeaderStyle::both, limit, verdict, q);
  CHECK(q.count == 5);
  CHECK(header(q, "X-RateLimit-Limit") == "5");
  CHECK(header(q, "X-RateLimit-Remaining") == "0");
  CHECK(header(q, "X-RateLimit-Reset") == "7");
  CHECK(header(q, "RateLimit-Policy") == R"("login-per-ip";q=5;w=600)");
  CHECK(header(q, "RateLimit") == R"("login-per-ip";r=0;t=7)");

  proxy::format_quota_headers(config::HeaderStyle::legacy, limit, verdict, q);
  CHECK(q.count == 3);
  CHECK(header(q, "RateLimit") == "<absent>");

  proxy::format_quota_headers(config::HeaderStyle::ietf, limit, verdict, q);
  CHECK(q.count == 2);
  CHECK(header(q, "X-RateLimit-Limit") == "<absent>");

  proxy::format_quota_headers(config::HeaderStyle::none, limit, verdict, q);
  CHECK(q.count == 0);
}

TEST_CASE("headers describe the limit closest to rejecting", "[responses]") {
  std::vector<limit::Verdict> v(3);
  v[0] = {.allowed = true, .limit = 100, .remaining = 40};
  v[1] = {.allowed = true, .limit = 5, .remaining = 3};
  v[2] = {.allowed = true, .limit = 10, .remaining = 3};

  SECTION("allowed: fewest remaining, first on ties") {
    CHECK(proxy::verdict_to_report(v, true) == 1);
  }
  SECTION("rejected: the rejecting limit with the longest wait") {
    v[0] = {.allowed = false, .limit = 100, .remaining = 0, .retry_after = 2'000'000};
    v[2] = {.allowed = false, .limit = 10, .remaining = 0, .retry_after = 9'000'000};
    CHECK(proxy::verdict_to_report(v, false) == 2);
  }
  SECTION("rejected: an allowed limit is never reported over a rejecting one") {
    v[2] = {.allowed = false, .limit = 10, .remaining = 0, .retry_after = 1};
    CHECK(proxy::verdict_to_report(v, false) == 2);
  }
}

TEST_CASE("a whole error response is rendered in one buffer, head and body", "[responses]") {
  std::string body;
  std::string out;
  const proxy::HeaderLine quota[] = {{"X-RateLimit-Limit", "5"}, {"X-RateLimit-Remaining", "0"}};
  const proxy::ErrorReply reply{
      .kind = ErrorKind::rate_limited, .route = "login", .limit = "login-per-ip", .retry_after = 7};

  SECTION("a kept-alive 429 carries Retry-After and the quota headers, and no Connection") {
    proxy::write_error_response(reply, quota, true, false, body, out);
    const std::string json =
        R"({"error":"rate_limited","message":"Too many requests","route":"login","limit":"login-per-ip","retryAfter":7})";
    CHECK(out ==
          "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(json.size()) +
              "\r\nRetry-After: 7\r\nX-RateLimit-Limit: 5\r\nX-RateLimit-Remaining: 0\r\n\r\n" +
              json);
  }
  SECTION("closing after the answer says so") {
    proxy::write_error_response({.kind = ErrorKind::bad_request, .message = "Invalid character"},
                                {}, false, false, body, out);
    CHECK(out.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    CHECK(out.find("\r\nConnection: close\r\n\r\n{") != std::string::npos);
    CHECK(out.find("Retry-After") == std::string::npos);
  }
  SECTION("an HTTP/1.0 client that asked to keep the connection is told it is kept") {
    proxy::write_error_response({.kind = ErrorKind::not_found}, {}, true, true, body, out);
    CHECK(out.starts_with("HTTP/1.1 404 Not Found\r\n"));
    CHECK(out.find("\r\nConnection: keep-alive\r\n\r\n") != std::string::npos);
  }
  SECTION("the connection limit answer is a 503 with its own code") {
    proxy::write_error_response({.kind = ErrorKind::overloaded, .retry_after = 1}, {}, false, false,
                                body, out);
    CHECK(out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(out.find(R"({"error":"overloaded",)") != std::string::npos);
  }
}
