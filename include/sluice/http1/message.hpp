#pragma once
// HTTP/1.1 message heads (RFC 9112), parsed strictly and in place: the parsers return views into
// the caller's buffer and allocate nothing per message (the field list reuses its capacity).
// Strict because sluice sits in front of other parsers: whatever two parsers could read
// differently (request smuggling, RFC 9112 11.2) is an error here, never a guess.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http1 {

struct Field {
  std::string_view name;   // as sent
  std::string_view value;  // leading and trailing spaces/tabs removed
};

// How the body of a message is delimited.
enum class Framing : std::uint8_t {
  none,            // no body
  content_length,  // exactly `content_length` bytes
  chunked,         // the chunked transfer coding, alone (see ChunkedScanner)
  until_close,     // responses only: the body ends when the upstream closes the connection
};

enum class HeadError : std::uint8_t {
  none,
  malformed,            // request line, status line or a field line is not valid syntax
  bad_version,          // not HTTP/1.0 or HTTP/1.1
  bad_character,        // NUL, a bare CR or LF, or another control byte
  obs_fold,             // a field line continued on the next one
  line_too_long,        // request line over HeadLimits::max_request_line (answered 414)
  head_too_large,       // over HeadLimits::max_head_bytes or max_fields (answered 431)
  bad_content_length,   // not a number, several different values, or over 2^62
  bad_transfer_coding,  // anything but exactly "chunked" on HTTP/1.1, or next to Content-Length
  bad_host,             // HTTP/1.1 without Host, or several Host fields (RFC 9112 3.2)
};

// A short human-readable reason, used as the message of a 400 answer.
std::string_view describe(HeadError error) noexcept;

// GET, HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110 9.2.2): methods a client may send twice
// with the effect of once, so a proxy may retry them. Method names are case-sensitive.
bool is_idempotent(std::string_view method) noexcept;

struct HeadLimits {
  std::size_t max_head_bytes = 32 * 1024;  // request/status line + fields + blank line
  std::size_t max_request_line = 8 * 1024 + 32;
  std::size_t max_fields = 100;
};

enum class ParseStatus : std::uint8_t { need_more, complete, error };

// What the parsers fill in; fields and views point into the buffer given to parse().
struct MessageHead {
  unsigned version_minor = 1;  // HTTP/1.<minor>, 0 or 1
  std::vector<Field> fields;   // in order received
  Framing framing = Framing::none;
  std::uint64_t content_length = 0;  // Framing::content_length only
  bool keep_alive = true;            // from the version and the Connection field
  std::size_t head_bytes = 0;        // bytes of the head, blank line included

  // The value of the first field named `name` (case-insensitive), or empty.
  std::string_view field(std::string_view name) const noexcept;
  // How many fields are named `name` (case-insensitive).
  std::size_t count(std::string_view name) const noexcept;
  // Every value of a repeatable field (X-Forwarded-For) joined with ", "; `storage` holds the
  // joined text when there is more than one field.
  std::string_view joined(std::string_view name, std::string& storage) const;
  // Whether the comma-separated Connection field(s) list `token` (case-insensitive).
  bool connection_lists(std::string_view token) const noexcept;
};

struct RequestHead : MessageHead {
  std::string_view method;
  std::string_view target;
  std::string_view host;         // the Host field
  bool expect_continue = false;  // Expect: 100-continue, in an HTTP/1.1 request
};

struct ResponseHead : MessageHead {
  unsigned status = 0;
  std::string_view reason;
};

// Incremental: call parse() with everything received for this message so far (the same bytes,
// possibly more, each time); only bytes not yet looked at are scanned for the end of the head, so a
// head sent one byte at a time costs linear work. Leading empty lines before a request line are
// skipped (RFC 9112 2.2) and counted in head_bytes. A request with "Content-Length: 0" has
// Framing::none. After complete or error, parse() repeats its answer until reset().
class RequestParser {
 public:
  explicit RequestParser(HeadLimits limits = {}) : limits_(limits) {}
  void reset() noexcept;
  ParseStatus parse(std::string_view buffered, RequestHead& head) noexcept;
  HeadError error() const noexcept { return error_; }
  // While need_more: the bytes so far have not finished the request line (tells 414 from 431).
  bool in_request_line() const noexcept { return !request_line_done_; }

 private:
  HeadLimits limits_;
  std::size_t scanned_ = 0;      // start of the first line not yet validated
  std::size_t searched_ = 0;     // no LF between scanned_ and here
  std::size_t fields_seen_ = 0;  // field lines validated so far
  bool request_line_done_ = false;
  bool complete_ = false;
  HeadError error_ = HeadError::none;
};

// Framing follows RFC 9112 6.3: no body for HEAD requests, 1xx, 204 and 304; Transfer-Encoding
// must be exactly "chunked"; without Content-Length or chunked the body runs until close (and
// keep_alive is then false). Unlike a request's, a response's "Content-Length: 0" gives
// Framing::content_length with 0, so the client is told the length.
class ResponseParser {
 public:
  explicit ResponseParser(HeadLimits limits = {}) : limits_(limits) {}
  void reset(bool request_was_head) noexcept;
  ParseStatus parse(std::string_view buffered, ResponseHead& head) noexcept;
  HeadError error() const noexcept { return error_; }

 private:
  HeadLimits limits_;
  std::size_t scanned_ = 0;      // start of the first line not yet validated
  std::size_t searched_ = 0;     // no LF between scanned_ and here
  std::size_t fields_seen_ = 0;  // field lines validated so far
  bool status_line_done_ = false;
  bool complete_ = false;
  bool request_was_head_ = false;
  HeadError error_ = HeadError::none;
};

}  // namespace sluice::http1
