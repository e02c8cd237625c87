#pragma once
// The responses sluice writes itself: the uniform JSON errors (429, 400, 404, 408, 413, 414, 431,
// 502, 503, 504) and the quota headers added to every response of a limited route. Socket-free, so
// the exact bytes of the contract are unit-tested.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <sluice/config/config.hpp>
#include <sluice/http1/message.hpp>
#include <sluice/limit/algorithm.hpp>

namespace sluice::proxy {

enum class ErrorKind : std::uint8_t {
  bad_request,
  request_timeout,
  payload_too_large,
  uri_too_long,
  header_fields_too_large,
  not_found,
  rate_limited,
  bad_gateway,
  limiter_unavailable,
  gateway_timeout,
  overloaded,  // 503: the connection limit is reached
};

struct ErrorReply {
  ErrorKind kind = ErrorKind::bad_request;
  std::string_view message;      // empty: the kind's standard message
  std::string_view route;        // empty: omitted
  std::string_view limit;        // empty: omitted
  std::int64_t retry_after = 0;  // seconds; 0: omitted (and no Retry-After header)
};

unsigned status_code(ErrorKind kind) noexcept;
std::string_view error_code(ErrorKind kind) noexcept;  // the "error" field, e.g. "rate_limited"

// Writes the compact JSON body into `out` (cleared first, capacity reused):
// {"error":"rate_limited","message":"Too many
// requests","route":"login","limit":"login-per-ip","retryAfter":7}
void write_error_body(const ErrorReply& reply, std::string& out);

// One header to add to a response; the value points into storage owned by the caller.
using HeaderLine = http1::Field;

// Room for the values of the quota headers of one response, reused per session.
struct QuotaHeaders {
  HeaderLine lines[5];
  std::size_t count = 0;
  char storage[512];
};

// Writes a whole error response, head and JSON body, into `out` (cleared first, capacity reused):
// Content-Type, Content-Length, Retry-After when retry_after > 0, the `quota` headers, and
// "Connection: close" when !keep_alive (or "Connection: keep-alive" for an HTTP/1.0 client that
// asked to keep the connection). `body` is scratch storage for the JSON.
void write_error_response(const ErrorReply& reply, std::span<const HeaderLine> quota,
                          bool keep_alive, bool http10_client, std::string& body, std::string& out);

// Formats the quota headers for `verdict` of `limit` in `style` (none → no lines).
void format_quota_headers(config::HeaderStyle style, const config::Limit& limit,
                          const limit::Verdict& verdict, QuotaHeaders& out) noexcept;

// Which verdict the headers describe: when `allowed`, the one with the fewest remaining units
// (first on ties); otherwise the rejecting one with the longest wait. Returns an index into
// `verdicts`.
std::size_t verdict_to_report(std::span<const limit::Verdict> verdicts, bool allowed) noexcept;

}  // namespace sluice::proxy
