// Raw bytes from a client, read the way proxy::Session reads them with the in-house HTTP/1.1
// layer: http1::RequestParser over everything buffered so far, then the body (a ChunkedScanner
// over chunked bytes, a count for Content-Length), then the next request on a kept-alive
// connection. Each parsed head is classified against a fixed policy as the session does (see
// Classifier::classify) and written for the upstream by write_upstream_request_head, whose output
// must be a clean head that parses back to the same framing, with no hop-by-hop field left.
//
// TCP may split the bytes anywhere, so the whole exchange is run twice, once with the input
// arriving at once and once in 7-byte pieces: both must decide the same, request by request.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/http1/chunked.hpp>
#include <sluice/http1/head_writer.hpp>
#include <sluice/http1/message.hpp>

#include "fuzz_support.hpp"

namespace {

using sluice::fuzz::Classification;
using sluice::fuzz::Classifier;
using sluice::fuzz::HeaderList;
using sluice::fuzz::RequestInput;
using sluice::fuzz::require;
namespace http1 = sluice::http1;

constexpr std::size_t kMaxRequests = 8;  // pipelined on one connection
constexpr std::string_view kClient = "10.0.0.7";

// What happened to one request on the connection.
struct Exchange {
  http1::ParseStatus status = http1::ParseStatus::need_more;
  http1::HeadError error = http1::HeadError::none;
  std::size_t head_bytes = 0;
  http1::Framing framing = http1::Framing::none;
  std::uint64_t content_length = 0;
  bool keep_alive = false;
  Classification classification;
  std::string upstream_head;
  std::uint64_t body_bytes = 0;  // framing bytes included
  std::uint64_t data_bytes = 0;
  bool body_done = false;
  bool body_failed = false;

  // Equal when the session would answer both alike: which 400 reason the parser names may
  // depend on which bad byte it saw first, so only the status of an error must agree.
  friend bool operator==(const Exchange& a, const Exchange& b) {
    return a.status == b.status && answer_to(a.error) == answer_to(b.error) &&
           a.head_bytes == b.head_bytes && a.framing == b.framing &&
           a.content_length == b.content_length && a.keep_alive == b.keep_alive &&
           a.classification == b.classification && a.upstream_head == b.upstream_head &&
           a.body_bytes == b.body_bytes && a.data_bytes == b.data_bytes &&
           a.body_done == b.body_done && a.body_failed == b.body_failed;
  }

  static int answer_to(http1::HeadError error) {
    switch (error) {
      case http1::HeadError::none:
        return 0;
      case http1::HeadError::line_too_long:
        return 414;
      case http1::HeadError::head_too_large:
        return 431;
      default:
        return 400;
    }
  }
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// Checks what the parser promises about a complete head read from `buffered`.
void check_head(const http1::RequestHead& head, std::string_view buffered) {
  require(head.head_bytes > 0 && head.head_bytes <= buffered.size(),
          "a complete head lies within the bytes given");
  const std::string_view bytes = buffered.substr(0, head.head_bytes);
  require(bytes.ends_with("\r\n\r\n"), "a head ends with an empty line, CRLF only");
  require(!head.method.empty() && !head.target.empty(), "a request has a method and a target");
  require(inside(head.method, bytes) && inside(head.target, bytes) && inside(head.host, bytes),
          "the request line's views point into the head");
  require(head.version_minor <= 1, "only HTTP/1.0 and HTTP/1.1");
  for (const http1::Field& field : head.fields) {
    require(!field.name.empty() && inside(field.name, bytes) && inside(field.value, bytes),
            "field views point into the head");
    for (const char c : field.value) {
      require(c != '\r' && c != '\n' && c != '\0', "no line end or NUL in a field value");
    }
    require(field.value.empty() || (field.value.front() != ' ' && field.value.front() != '\t' &&
                                    field.value.back() != ' ' && field.value.back() != '\t'),
            "field values are trimmed");
  }
  require(head.framing != http1::Framing::until_close, "a request body never runs until close");
  if (head.framing == http1::Framing::content_length) {
    require(head.content_length <= (std::uint64_t{1} << 62), "Content-Length at most 2^62");
  }
}

// Whether one of the request's Connection fields lists `name`.
bool connection_names(const http1::RequestHead& head, std::string_view name) {
  for (const http1::Field& field : head.fields) {
    if (!iequals(field.name, "connection")) continue;
    std::string_view list = field.value;
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      std::string_view element = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) {
        element.remove_prefix(1);
      }
      while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
        element.remove_suffix(1);
      }
      if (iequals(element, name)) return true;
    }
  }
  return false;
}

// Checks the head written for the upstream: clean lines, none of them hop-by-hop, one framing
// field agreeing with the request's, and it parses back to the same request.
void check_upstream_head(const http1::RequestHead& head, std::string_view written) {
  require(written.ends_with("\r\n\r\n") && written.find("\r\n\r\n") == written.size() - 4,
          "the written head ends at its first empty line");
  for (std::size_t i = 0; i < written.size(); ++i) {
    if (written[i] == '\r') require(written[i + 1] == '\n', "no bare CR in the written head");
    if (written[i] == '\n') require(i > 0 && written[i - 1] == '\r', "no bare LF either");
  }
  std::string_view lines = written.substr(0, written.size() - 4);
  const std::size_t first_end = lines.find("\r\n");
  require(lines.substr(0, first_end).ends_with(" HTTP/1.1"), "the request line says HTTP/1.1");
  lines = first_end == std::string_view::npos ? std::string_view{} : lines.substr(first_end + 2);
  std::size_t framing_fields = 0;
  std::size_t forwarded_for = 0;
  while (!lines.empty()) {
    const std::size_t end = lines.find("\r\n");
    const std::string_view line = lines.substr(0, end);
    lines = end == std::string_view::npos ? std::string_view{} : lines.substr(end + 2);
    const std::size_t colon = line.find(':');
    require(colon != std::string_view::npos && colon > 0, "every field line has a name");
    const std::string_view name = line.substr(0, colon);
    require(!http1::is_hop_by_hop(name), "no hop-by-hop field is forwarded");
    require(!iequals(name, "expect"), "Expect is answered by sluice, not forwarded");
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) ++framing_fields;
    if (iequals(name, "x-forwarded-for")) ++forwarded_for;
    // Framing and Host cannot be stripped; X-Forwarded-* are sluice's own fields (the client's
    // X-Forwarded-For is consumed, then restated with the peer appended).
    if (!iequals(name, "content-length") && !iequals(name, "transfer-encoding") &&
        !iequals(name, "host") && !iequals(name, "x-forwarded-for") &&
        !iequals(name, "x-forwarded-proto") && !iequals(name, "x-forwarded-host")) {
      require(!connection_names(head, name), "no field named by Connection is forwarded");
    }
  }
  require(framing_fields == (head.framing == http1::Framing::none ? 0u : 1u),
          "exactly the request's framing field is written");
  require(forwarded_for == 1, "one X-Forwarded-For line");

  // Read back as the upstream would (limits widened for the fields sluice adds).
  bool has_host = false;
  for (const http1::Field& field : head.fields)
    has_host = has_host || iequals(field.name, "host");
  if (!has_host) return;  // HTTP/1.0 without Host: HTTP/1.1 would require one
  static http1::RequestHead again;
  http1::RequestParser parser(http1::HeadLimits{
      .max_head_bytes = written.size() + 1, .max_request_line = written.size(), .max_fields = 512});
  const auto status = parser.parse(written, again);
  require(status == http1::ParseStatus::complete, "the written head parses");
  require(again.head_bytes == written.size(), "and is all head");
  require(again.method == head.method && again.framing == head.framing &&
              again.content_length == head.content_length && again.keep_alive,
          "with the request's method and framing, kept alive");
}

// Feeds `rest` to a ChunkedScanner in pieces; how much of it the body took.
void scan_chunked(std::string_view rest, std::size_t piece, Exchange& exchange) {
  static http1::ChunkedScanner scanner;
  scanner.reset();
  std::uint64_t last_data = 0;
  while (!rest.empty() && !scanner.done() && !scanner.failed()) {
    const std::string_view next = rest.substr(0, piece);
    const std::size_t taken = scanner.scan(next);
    require(taken <= next.size(), "the scanner takes at most what it is given");
    require(scanner.done() || scanner.failed() || taken == next.size(),
            "an unfinished body takes every byte");
    require(scanner.data_bytes() >= last_data && scanner.data_bytes() - last_data <= taken,
            "payload counted is payload seen");
    last_data = scanner.data_bytes();
    exchange.body_bytes += taken;
    rest.remove_prefix(next.size());
  }
  exchange.body_done = scanner.done();
  exchange.body_failed = scanner.failed();
  exchange.data_bytes = scanner.data_bytes();
  require(exchange.data_bytes < exchange.body_bytes || exchange.body_bytes == 0,
          "a chunked body has more bytes than its payload");
}

// Serves one connection's bytes as the session would, up to kMaxRequests requests.
void serve(std::string_view input, std::size_t piece, Classifier& classifier,
           std::vector<Exchange>& out) {
  // A trusted proxy, so X-Forwarded-For and Forwarded decide the client.
  static const auto peer = *sluice::classify::IpAddress::parse("10.0.0.7");
  static http1::RequestHead head;
  static HeaderList headers;
  static std::string forwarded_for;
  static std::string forwarded;
  static std::string target;

  out.clear();
  std::string_view rest = input;
  for (std::size_t i = 0; i < kMaxRequests && !rest.empty(); ++i) {
    Exchange& exchange = out.emplace_back();
    http1::RequestParser parser;
    std::size_t fed = 0;
    do {
      fed = std::min(rest.size(), fed + piece);
      exchange.status = parser.parse(rest.substr(0, fed), head);
    } while (exchange.status == http1::ParseStatus::need_more && fed < rest.size());
    exchange.error = parser.error();
    require((exchange.status == http1::ParseStatus::error) ==
                (exchange.error != http1::HeadError::none),
            "an error is named exactly when parsing fails");
    if (exchange.status != http1::ParseStatus::complete) return;  // answered and closed

    const std::string_view buffered = rest.substr(0, fed);
    check_head(head, buffered);
    exchange.head_bytes = head.head_bytes;
    exchange.framing = head.framing;
    exchange.content_length = head.content_length;
    exchange.keep_alive = head.keep_alive;

    headers.clear();
    for (const http1::Field& field : head.fields)
      headers.add(field.name, field.value);
    classifier.classify(
        RequestInput{
            .peer = peer,
            .x_forwarded_for = head.joined("X-Forwarded-For", forwarded_for),
            .forwarded = head.joined("Forwarded", forwarded),
            .method = head.method,
            .target = head.target,
            .headers = &headers,
        },
        exchange.classification);
    if (exchange.classification.path_error != sluice::classify::PathError::none) return;  // 400

    // Forwarded with the normalised path and the raw query, as the session does.
    target = exchange.classification.path;
    if (const std::size_t query = head.target.find('?'); query != std::string_view::npos) {
      target.append(head.target.substr(query));
    }
    http1::write_upstream_request_head(head, {target, kClient}, exchange.upstream_head);
    check_upstream_head(head, exchange.upstream_head);

    rest.remove_prefix(head.head_bytes);
    if (head.framing == http1::Framing::chunked) {
      scan_chunked(rest, piece, exchange);
      if (!exchange.body_done) return;
    } else if (head.framing == http1::Framing::content_length) {
      if (head.content_length > rest.size()) {
        exchange.body_bytes = rest.size();
        return;  // the connection ended inside the body
      }
      exchange.body_bytes = head.content_length;
    }
    rest.remove_prefix(exchange.body_bytes);
    exchange.body_done = true;
    if (!head.keep_alive) return;
  }
}

const char* framing_name(http1::Framing framing) {
  switch (framing) {
    case http1::Framing::none:
      return "none";
    case http1::Framing::content_length:
      return "content-length";
    case http1::Framing::chunked:
      return "chunked";
    case http1::Framing::until_close:
      return "until-close";
  }
  return "?";
}

// For the report when the two runs disagree.
void print(const char* title, const std::vector<Exchange>& exchanges) {
  std::fprintf(stderr, "%s:\n", title);
  for (const Exchange& e : exchanges) {
    std::fprintf(stderr,
                 "  status: %d; error: %d; head: %zu bytes; framing: %s %llu; "
                 "keep-alive: %d; path error: %d; path: %s; route: %s; keys: %zu; body: %llu "
                 "bytes, %llu payload, done %d, failed %d\n",
                 static_cast<int>(e.status), static_cast<int>(e.error), e.head_bytes,
                 framing_name(e.framing), static_cast<unsigned long long>(e.content_length),
                 e.keep_alive, static_cast<int>(e.classification.path_error),
                 e.classification.path.c_str(),
                 e.classification.route ? e.classification.route->name.c_str() : "-",
                 e.classification.digests.size(), static_cast<unsigned long long>(e.body_bytes),
                 static_cast<unsigned long long>(e.data_bytes), e.body_done, e.body_failed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Classifier classifier;
  static std::vector<Exchange> at_once;
  static std::vector<Exchange> in_pieces;

  const std::string_view input(reinterpret_cast<const char*>(data), size);
  serve(input, input.size() + 1, classifier, at_once);
  serve(input, 7, classifier, in_pieces);
  if (at_once != in_pieces) {
    print("bytes at once", at_once);
    print("bytes in 7-byte pieces", in_pieces);
    require(false, "how the bytes are split decides nothing");
  }
  return 0;
}
