#include <algorithm>
#include <charconv>

#include <sluice/proxy/responses.hpp>

namespace sluice::proxy {
namespace {

struct KindInfo {
  unsigned status;
  std::string_view code;
  std::string_view message;
};

constexpr KindInfo info(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::bad_request:
      return {400, "bad_request", "Malformed request"};
    case ErrorKind::request_timeout:
      return {408, "request_timeout", "The request was not received in time"};
    case ErrorKind::payload_too_large:
      return {413, "payload_too_large", "Request body too large"};
    case ErrorKind::uri_too_long:
      return {414, "uri_too_long", "Request target too long"};
    case ErrorKind::header_fields_too_large:
      return {431, "header_fields_too_large", "Request header fields too large"};
    case ErrorKind::not_found:
      return {404, "not_found", "No route matches this request"};
    case ErrorKind::rate_limited:
      return {429, "rate_limited", "Too many requests"};
    case ErrorKind::bad_gateway:
      return {502, "bad_gateway", "The upstream could not be reached"};
    case ErrorKind::limiter_unavailable:
      return {503, "limiter_unavailable", "The rate limiter is unavailable"};
    case ErrorKind::gateway_timeout:
      return {504, "gateway_timeout", "The upstream did not answer in time"};
    case ErrorKind::overloaded:
      return {503, "overloaded", "Too many connections, try again shortly"};
  }
  return {500, "internal_error", "Internal error"};
}

// JSON string escaping for the few values that come from config (route and limit names) or from
// parser error text; all ASCII in practice, but a quote or control byte must never break the body.
void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  // Route and limit names never need escaping (the loader restricts them): append them whole.
  const bool plain = std::none_of(s.begin(), s.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
  if (plain) {
    out.append(s);
    out.push_back('"');
    return;
  }
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      static constexpr char hex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// Appends to a fixed buffer; values are bounded (names are limited by the loader), so truncation
// is a programming error caught by the unit tests, not a runtime path.
class FixedWriter {
 public:
  FixedWriter(char* begin, char* end) : pos_(begin), end_(end) {}
  char* pos() const noexcept { return pos_; }
  void text(std::string_view s) noexcept {
    const auto n = std::min<std::size_t>(s.size(), static_cast<std::size_t>(end_ - pos_));
    pos_ = std::copy_n(s.data(), n, pos_);
  }
  void number(std::int64_t v) noexcept {
    auto [p, ec] = std::to_chars(pos_, end_, v);
    if (ec == std::errc{}) pos_ = p;
  }

 private:
  char* pos_;
  char* end_;
};

}  // namespace

unsigned status_code(ErrorKind kind) noexcept {
  return info(kind).status;
}
std::string_view error_code(ErrorKind kind) noexcept {
  return info(kind).code;
}

void write_error_body(const ErrorReply& reply, std::string& out) {
  const KindInfo k = info(reply.kind);
  out.clear();
  out.append(R"({"error":)");
  append_json_string(out, k.code);
  out.append(R"(,"message":)");
  append_json_string(out, reply.message.empty() ? k.message : reply.message);
  if (!reply.route.empty()) {
    out.append(R"(,"route":)");
    append_json_string(out, reply.route);
  }
  if (!reply.limit.empty()) {
    out.append(R"(,"limit":)");
    append_json_string(out, reply.limit);
  }
  if (reply.retry_after > 0) {
    out.append(R"(,"retryAfter":)");
    append_int(out, reply.retry_after);
  }
  out.push_back('}');
}

namespace {

std::string_view reason_phrase(unsigned status) noexcept {
  switch (status) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
  }
  return "Error";
}

}  // namespace

void write_error_response(const ErrorReply& reply, std::span<const HeaderLine> quota,
                          bool keep_alive, bool http10_client, std::string& body,
                          std::string& out) {
  write_error_body(reply, body);
  const unsigned status = info(reply.kind).status;
  out.clear();
  out.append("HTTP/1.1 ");
  append_int(out, status);
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\nContent-Type: application/json\r\nContent-Length: ");
  append_int(out, static_cast<std::int64_t>(body.size()));
  if (reply.retry_after > 0) {
    out.append("\r\nRetry-After: ");
    append_int(out, reply.retry_after);
  }
  for (const auto& line : quota) {
    out.append("\r\n");
    out.append(line.name);
    out.append(": ");
    out.append(line.value);
  }
  if (!keep_alive) {
    out.append("\r\nConnection: close");
  } else if (http10_client) {
    out.append("\r\nConnection: keep-alive");
  }
  out.append("\r\n\r\n");
  out.append(body);
}

void format_quota_headers(config::HeaderStyle style, const config::Limit& limit,
                          const limit::Verdict& verdict, QuotaHeaders& out) noexcept {
  out.count = 0;
  if (style == config::HeaderStyle::none) return;
  const std::int64_t reset = limit::ceil_seconds(verdict.reset);
  const std::int64_t remaining = std::max<std::int64_t>(0, verdict.remaining);
  FixedWriter w(out.storage, out.storage + sizeof out.storage);
  auto add = [&](std::string_view name, char* begin) {
    out.lines[out.count++] = {name,
                              std::string_view(begin, static_cast<std::size_t>(w.pos() - begin))};
  };
  if (style == config::HeaderStyle::legacy || style == config::HeaderStyle::both) {
    char* b = w.pos();
    w.number(verdict.limit);
    add("X-RateLimit-Limit", b);
    b = w.pos();
    w.number(remaining);
    add("X-RateLimit-Remaining", b);
    b = w.pos();
    w.number(reset);
    add("X-RateLimit-Reset", b);
  }
  if (style == config::HeaderStyle::ietf || style == config::HeaderStyle::both) {
    // draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy: "name";q=5;w=600
    char* b = w.pos();
    w.text("\"");
    w.text(limit.name);
    w.text("\";q=");
    w.number(verdict.limit);
    w.text(";w=");
    w.number(limit::ceil_seconds(limit.quota.window));
    add("RateLimit-Policy", b);
    b = w.pos();
    w.text("\"");
    w.text(limit.name);
    w.text("\";r=");
    w.number(remaining);
    w.text(";t=");
    w.number(reset);
    add("RateLimit", b);
  }
}

std::size_t verdict_to_report(std::span<const limit::Verdict> verdicts, bool allowed) noexcept {
  std::size_t best = 0;
  for (std::size_t i = 1; i < verdicts.size(); ++i) {
    const auto& v = verdicts[i];
    const auto& b = verdicts[best];
    if (allowed) {
      if (v.remaining < b.remaining) best = i;
    } else if (!v.allowed && (b.allowed || v.retry_after > b.retry_after)) {
      best = i;
    }
  }
  return best;
}

}  // namespace sluice::proxy
