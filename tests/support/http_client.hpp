#pragma once
// A raw, blocking HTTP/1.1 client for the integration tests. It sends exactly the bytes a test
// gives it and keeps exactly the bytes it receives, so tests can assert a response byte for byte
// and send requests no well-behaved client library would.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

namespace sluice::test {

struct Header {
  std::string name;
  std::string value;
};

struct Response {
  std::string status_line;      // e.g. "HTTP/1.1 429 Too Many Requests", without CRLF
  int status = 0;               // e.g. 429
  std::vector<Header> headers;  // in arrival order, names as sent
  std::string body;             // decoded: chunked framing removed
  std::string raw;              // every byte of this response as it arrived
  bool ended_by_close = false;  // the body had no length and ended when the peer closed

  // The first value of a header (names compared case-insensitively).
  std::optional<std::string> header(std::string_view name) const;
  std::size_t header_count(std::string_view name) const;
  // header(name) as a whole number; nullopt when absent or not a number.
  std::optional<std::int64_t> header_number(std::string_view name) const;
};

// A response whose body was counted and checked against the pattern, not kept.
struct Download {
  Response head;  // status line and headers; body empty
  std::uint64_t body_bytes = 0;
  bool pattern_ok = true;  // byte i of the body was i % 251 (the test upstream's /bytes pattern)
};

enum class Framing { content_length, chunked };

// A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY and `timeout` on every send (and
// on every receive when `receive_timeout`). Throws std::system_error.
int connect_loopback(std::uint16_t port, std::chrono::milliseconds timeout,
                     bool receive_timeout = true);

// One connection to 127.0.0.1:port. Every blocking call has a deadline (`timeout` per socket
// read or write); a call that runs out of time, or meets a malformed response, throws
// std::runtime_error saying what arrived so far.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&&) = delete;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void send(std::string_view bytes);
  // Reads one response (skipping 1xx interim responses). `to_head_request`: no body follows.
  Response read_response(bool to_head_request = false);
  Response request(std::string_view raw_request) {
    send(raw_request);
    return read_response();
  }

  // Sends `head` (request line and headers, without the framing header or the blank line that
  // ends the head) and then a body of `size` pattern bytes made 64 KiB at a time as it is sent,
  // so the body never exists whole. If the server answers early and stops reading, the upload
  // stops and the response is read anyway.
  Response upload(std::string_view head, std::uint64_t size,
                  Framing framing = Framing::content_length);
  // Sends `raw_request` and reads the response, counting and checking its body without keeping it.
  Download download(std::string_view raw_request);

  // True when the peer closes the connection within `wait`; false if it sends more bytes or
  // keeps the connection open.
  bool peer_closed(std::chrono::milliseconds wait = std::chrono::seconds(2));

  std::uint16_t local_port() const;

 private:
  struct BodySink;
  Response read_response(bool to_head_request, BodySink& sink);
  bool fill();  // reads more bytes into buffer_; false at end of stream
  void need(std::size_t bytes, const Response& so_far);
  std::string take_line(Response& so_far);

  int fd_ = -1;
  std::string buffer_;   // received, not yet consumed
  std::size_t pos_ = 0;  // start of the unconsumed part of buffer_
  bool eof_ = false;
};

// "METHOD target HTTP/1.1" with `Host: 127.0.0.1` (unless `headers` has a Host), the headers in
// order, and Content-Length when there is a body or the method is POST, PUT or PATCH.
std::string make_request(std::string_view method, std::string_view target,
                         const std::vector<Header>& headers = {}, std::string_view body = {});

// A request on a fresh connection.
Response fetch(std::uint16_t port, std::string_view raw_request);

// The statuses `connections` clients got, each sending `per_connection` times `raw_request` on
// its own connection, all at once (a thread each, released together); client i goes to
// ports[i % ports.size()]. A client that fails counts all its requests as `other`.
struct StatusCounts {
  int ok = 0;       // 200
  int limited = 0;  // 429
  int other = 0;
};
StatusCounts send_concurrently(const std::vector<std::uint16_t>& ports, int connections,
                               int per_connection, std::string_view raw_request);

// Parses JSON, throwing with the text on error.
boost::json::value parse_json(std::string_view text);

// A JSON string's text; any other value serialised (so a comparison with text fails readably).
std::string as_text(const boost::json::value& value);

// The test upstream's /stats, asked directly (not through sluice).
boost::json::object upstream_stats(std::uint16_t upstream_port);

// How often `target` appears in `stats.targets` (the upstream's last 100 request targets).
std::size_t count_target(const boost::json::object& stats, std::string_view target);

// How often `what` occurs in `text`, overlapping occurrences included.
std::size_t count_of(std::string_view text, std::string_view what);

}  // namespace sluice::test
