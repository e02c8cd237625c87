#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/http1/message.hpp>

using namespace std::string_literals;
using sluice::http1::describe;
using sluice::http1::Field;
using sluice::http1::Framing;
using sluice::http1::HeadError;
using sluice::http1::HeadLimits;
using sluice::http1::ParseStatus;
using sluice::http1::RequestHead;
using sluice::http1::RequestParser;
using sluice::http1::ResponseHead;
using sluice::http1::ResponseParser;

namespace {

// Control bytes shown as \xNN, so a failing case says which input it was.
std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u >= 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

struct RequestResult {
  ParseStatus status = ParseStatus::need_more;
  HeadError error = HeadError::none;
  RequestHead head;
};

RequestResult parse_request(std::string_view text, HeadLimits limits = {}) {
  RequestParser parser(limits);
  RequestResult result;
  result.status = parser.parse(text, result.head);
  result.error = parser.error();
  return result;
}

// Feeds `text` one byte more per call, each time from a fresh copy of the bytes so far (a buffer
// that moves, as a growing receive buffer does). The views in the result point into `storage`.
RequestResult parse_request_bytewise(std::string_view text, std::string& storage,
                                     HeadLimits limits = {}) {
  RequestParser parser(limits);
  RequestResult result;
  for (std::size_t n = 1; n <= text.size(); ++n) {
    storage.assign(text.substr(0, n));
    result.status = parser.parse(storage, result.head);
    if (result.status != ParseStatus::need_more) break;
  }
  result.error = parser.error();
  return result;
}

struct ResponseResult {
  ParseStatus status = ParseStatus::need_more;
  HeadError error = HeadError::none;
  ResponseHead head;
};

ResponseResult parse_response(std::string_view text, bool request_was_head = false) {
  ResponseParser parser;
  parser.reset(request_was_head);
  ResponseResult result;
  result.status = parser.parse(text, result.head);
  result.error = parser.error();
  return result;
}

// A request with the given extra field lines (each ending in CRLF) and the blank line.
std::string request_with(std::string_view fields, std::string_view version = "HTTP/1.1") {
  return "POST /upload " + std::string(version) + "\r\nHost: example.com\r\n" +
         std::string(fields) + "\r\n";
}

std::string response_with(std::string_view status_line, std::string_view fields) {
  return std::string(status_line) + "\r\n" + std::string(fields) + "\r\n";
}

bool points_into(std::string_view view, std::string_view buffer) {
  return view.data() >= buffer.data() && view.data() + view.size() <= buffer.data() + buffer.size();
}

constexpr std::string_view kSimpleGet =
    "GET /search?q=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: wrk\r\n"
    "Accept: */*\r\n"
    "\r\n";

}  // namespace

TEST_CASE("A simple GET is parsed into method, target, version and fields", "[http1][parser]") {
  const auto r = parse_request(kSimpleGet);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.error == HeadError::none);
  CHECK(r.head.method == "GET");
  CHECK(r.head.target == "/search?q=1");
  CHECK(r.head.version_minor == 1);
  REQUIRE(r.head.fields.size() == 3);
  CHECK(r.head.fields[0].name == "Host");
  CHECK(r.head.fields[0].value == "example.com");
  CHECK(r.head.fields[1].name == "User-Agent");
  CHECK(r.head.fields[2].value == "*/*");
  CHECK(r.head.host == "example.com");
  CHECK(r.head.framing == Framing::none);
  CHECK(r.head.content_length == 0);
  CHECK(r.head.keep_alive);
  CHECK_FALSE(r.head.expect_continue);
  CHECK(r.head.head_bytes == kSimpleGet.size());
}

TEST_CASE("Parsed views point into the caller's buffer", "[http1][parser]") {
  const std::string buffer(kSimpleGet);
  const auto r = parse_request(buffer);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(points_into(r.head.method, buffer));
  CHECK(points_into(r.head.target, buffer));
  CHECK(points_into(r.head.host, buffer));
  for (const Field& field : r.head.fields) {
    CHECK(points_into(field.name, buffer));
    CHECK(points_into(field.value, buffer));
  }
  CHECK(r.head.target.data() == buffer.data() + 4);
}

TEST_CASE("An incomplete head asks for more bytes", "[http1][parser]") {
  for (std::size_t n = 0; n < kSimpleGet.size(); ++n) {
    INFO("first " << n << " bytes");
    const auto r = parse_request(kSimpleGet.substr(0, n));
    CHECK(r.status == ParseStatus::need_more);
    CHECK(r.error == HeadError::none);
  }
}

TEST_CASE("Field values have surrounding spaces and tabs removed, inner ones kept",
          "[http1][parser]") {
  const std::string text = request_with("X-A: \t a \t b\t \r\nX-Empty:\r\nX-Spaces:   \r\n");
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.field("x-a") == "a \t b");
  CHECK(r.head.field("X-Empty").empty());
  CHECK(r.head.field("X-Spaces").empty());
  CHECK(r.head.fields.size() == 4);
}

TEST_CASE("obs-text in a field value is accepted as is", "[http1][parser]") {
  const std::string text = request_with("X-Name: caf\xc3\xa9\xff\r\n");
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.field("X-Name") == "caf\xc3\xa9\xff");
}

TEST_CASE("Request lines that are not exactly method SP target SP version are refused",
          "[http1][parser]") {
  struct Case {
    std::string line;
    HeadError error;
  };
  const std::vector<Case> cases = {
      {"GET  / HTTP/1.1", HeadError::malformed},            // two spaces
      {"GET / HTTP/1.1 ", HeadError::malformed},            // trailing space
      {"GET /a b HTTP/1.1", HeadError::malformed},          // space in the target
      {" GET / HTTP/1.1", HeadError::malformed},            // leading space
      {"GET\t/ HTTP/1.1", HeadError::malformed},            // tab as separator
      {"GET /\tx HTTP/1.1", HeadError::malformed},          // tab in the target
      {"G(T / HTTP/1.1", HeadError::malformed},             // method not a token
      {"GET / http/1.1", HeadError::malformed},             // version is case-sensitive
      {"GET / HTTP/1.1x", HeadError::malformed},            //
      {"GET / HTTP/11", HeadError::malformed},              //
      {"GET /", HeadError::malformed},                      // HTTP/0.9
      {"GET", HeadError::malformed},                        //
      {"GET /caf\xc3\xa9 HTTP/1.1", HeadError::malformed},  // obs-text in the target
      {"GET / HTTP/2.0", HeadError::bad_version},
      {"GET / HTTP/1.2", HeadError::bad_version},
      {"GET / HTTP/0.9", HeadError::bad_version},
      {"GET /\x01 HTTP/1.1", HeadError::bad_character},
      {"GET /\x7f HTTP/1.1", HeadError::bad_character},
      {"GET /\r HTTP/1.1", HeadError::bad_character},  // bare CR
      {"GE\0T / HTTP/1.1"s, HeadError::bad_character},
      {"GET /12\x01"
       "45678901234 HTTP/1.1",
       HeadError::bad_character},  // in an 8-byte word
      {"GET /12\x7f"
       "45678901234 HTTP/1.1",
       HeadError::bad_character},
      {"GET /12\xff"
       "45678901234 HTTP/1.1",
       HeadError::malformed},
      {"GET /1234567 9012345 HTTP/1.1", HeadError::malformed},
  };
  for (const Case& c : cases) {
    const std::string text = c.line + "\r\nHost: a\r\n\r\n";
    INFO(printable(text));
    const auto r = parse_request(text);
    CHECK(r.status == ParseStatus::error);
    CHECK(r.error == c.error);
  }
}

TEST_CASE("Any token is a method; any visible target is taken as sent", "[http1][parser]") {
  const std::string text = "M-SEARCH! *?a=%20&b=[]{}| HTTP/1.0\r\n\r\n";
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.method == "M-SEARCH!");
  CHECK(r.head.target == "*?a=%20&b=[]{}|");
  CHECK(r.head.version_minor == 0);
}

TEST_CASE("Field lines that are not token ':' value are refused", "[http1][parser]") {
  struct Case {
    std::string line;
    HeadError error;
  };
  const std::vector<Case> cases = {
      {"Host : a", HeadError::malformed},  // space before the colon
      {"X-A\t: a", HeadError::malformed},
      {"Transfer-Encoding : chunked", HeadError::malformed},
      {": a", HeadError::malformed},    // empty name
      {"X-A a", HeadError::malformed},  // no colon
      {"X(A: a", HeadError::malformed},
      {"X-\xc3\xa9: a", HeadError::malformed},
      {"X-A: a\0b"s, HeadError::bad_character},  // NUL
      {"X-A: a\rb", HeadError::bad_character},   // bare CR
      {"X-A: a\x7f", HeadError::bad_character},
      {"X-A: \x1b[31m", HeadError::bad_character},
      {"X\x01: a", HeadError::bad_character},
      {"X-A: 12345678\x01", HeadError::bad_character},  // past the first 8-byte word
      {"X-A: 123456\x7f"
       "8901234",
       HeadError::bad_character},  // inside an 8-byte word
      {"X-A: 123\x00"
       "5678901234"s,
       HeadError::bad_character},
      {"X-A: \t234567\t9012345\t", HeadError::none},  // tabs are fine, wherever they are
      {" X-A: a", HeadError::obs_fold},               // whitespace before the first field
  };
  for (const Case& c : cases) {
    const std::string text = request_with(c.line + "\r\n");
    INFO(printable(text));
    const auto r = parse_request(text);
    CHECK(r.status == (c.error == HeadError::none ? ParseStatus::complete : ParseStatus::error));
    CHECK(r.error == c.error);
  }
}

TEST_CASE("A folded field line is refused as obs-fold", "[http1][parser]") {
  for (std::string_view fold : {" ", "\t", "  \t"}) {
    const std::string text = request_with("X-A: one\r\n" + std::string(fold) + "two\r\n");
    INFO(printable(text));
    const auto r = parse_request(text);
    CHECK(r.status == ParseStatus::error);
    CHECK(r.error == HeadError::obs_fold);
  }
}

TEST_CASE("A bare LF anywhere in the head is refused", "[http1][parser]") {
  const std::vector<std::string> cases = {
      "GET / HTTP/1.1\nHost: a\r\n\r\n",     "GET / HTTP/1.1\r\nHost: a\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",     "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nc\r\n\r\n",
      "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (const std::string& text : cases) {
    INFO(printable(text));
    const auto r = parse_request(text);
    CHECK(r.status == ParseStatus::error);
    CHECK(r.error == HeadError::bad_character);
  }
}

TEST_CASE("A bare CR at the end of a field value is refused", "[http1][parser]") {
  const auto r = parse_request("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n");
  CHECK(r.status == ParseStatus::error);
  CHECK(r.error == HeadError::bad_character);
}

TEST_CASE("Empty lines before the request line are skipped and counted", "[http1][parser]") {
  const std::string text = "\r\n\r\n" + std::string(kSimpleGet);
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.method == "GET");
  CHECK(r.head.head_bytes == text.size());

  SECTION("but not without bound") {
    std::string flood;
    for (int i = 0; i < 100; ++i)
      flood += "\r\n";
    HeadLimits limits;
    limits.max_head_bytes = 150;
    const auto flooded = parse_request(flood + std::string(kSimpleGet), limits);
    CHECK(flooded.status == ParseStatus::error);
    CHECK(flooded.error == HeadError::head_too_large);
  }
}

TEST_CASE("Bytes after the blank line are left for the next message", "[http1][parser]") {
  const std::string second = "GET /two HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string text = std::string(kSimpleGet) + second + "garbage \x01\n";
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.head_bytes == kSimpleGet.size());
  CHECK(r.head.target == "/search?q=1");

  const auto next = parse_request(std::string_view(text).substr(r.head.head_bytes));
  REQUIRE(next.status == ParseStatus::complete);
  CHECK(next.head.target == "/two");
  CHECK(next.head.head_bytes == second.size());
}

TEST_CASE("Fed one byte at a time, a head parses as it does at once", "[http1][parser]") {
  const std::vector<std::string> cases = {
      std::string(kSimpleGet),
      "\r\n\r\n" + std::string(kSimpleGet),
      request_with("Content-Length: 5, 5\r\nConnection: close\r\nExpect: 100-continue\r\n"),
      request_with("Transfer-Encoding: chunked\r\nX-Long: " + std::string(300, 'v') + "\r\n"),
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /next",
      request_with("X-A: one\r\n two\r\n"),
      request_with("X-A: a\0b\r\n"s),
      request_with("Host : a\r\n"),
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      request_with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
      "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
  };
  for (const std::string& text : cases) {
    INFO(printable(text));
    const auto at_once = parse_request(text);
    std::string storage;
    const auto bytewise = parse_request_bytewise(text, storage);
    REQUIRE(bytewise.status == at_once.status);
    CHECK(bytewise.error == at_once.error);
    if (at_once.status != ParseStatus::complete) continue;
    CHECK(bytewise.head.method == at_once.head.method);
    CHECK(bytewise.head.target == at_once.head.target);
    CHECK(bytewise.head.host == at_once.head.host);
    CHECK(bytewise.head.version_minor == at_once.head.version_minor);
    CHECK(bytewise.head.framing == at_once.head.framing);
    CHECK(bytewise.head.content_length == at_once.head.content_length);
    CHECK(bytewise.head.keep_alive == at_once.head.keep_alive);
    CHECK(bytewise.head.expect_continue == at_once.head.expect_continue);
    CHECK(bytewise.head.head_bytes == at_once.head.head_bytes);
    REQUIRE(bytewise.head.fields.size() == at_once.head.fields.size());
    for (std::size_t i = 0; i < at_once.head.fields.size(); ++i) {
      CHECK(bytewise.head.fields[i].name == at_once.head.fields[i].name);
      CHECK(bytewise.head.fields[i].value == at_once.head.fields[i].value);
      // The buffer moved between calls: the views must follow it.
      CHECK(points_into(bytewise.head.fields[i].value, storage));
    }
    CHECK(points_into(bytewise.head.target, storage));
  }
}

TEST_CASE("A 30 KB head fed one byte at a time costs linear work", "[http1][parser]") {
  std::string text = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; text.size() < 30 * 1024; ++i) {
    text += "X-Field-" + std::to_string(i) + ": " + std::string(300, 'a' + i % 26) + "\r\n";
  }
  text += "\r\n";
  REQUIRE(text.size() < HeadLimits{}.max_head_bytes);

  // Quadratic rescanning would take seconds here; give up well before that.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(1);
  RequestParser parser;
  RequestHead head;
  ParseStatus status = ParseStatus::need_more;
  std::size_t fed = 0;
  bool late = false;
  while (status == ParseStatus::need_more && fed < text.size() && !late) {
    ++fed;
    status = parser.parse(std::string_view(text).substr(0, fed), head);
    late = fed % 512 == 0 && std::chrono::steady_clock::now() > deadline;
  }
  CHECK_FALSE(late);
  CHECK(status == ParseStatus::complete);
  CHECK(fed == text.size());
  CHECK(head.head_bytes == text.size());
  CHECK(head.fields.size() > 90);
}

TEST_CASE("A 256 KB field value fed one byte at a time costs linear work", "[http1][parser]") {
  HeadLimits limits;
  limits.max_head_bytes = 512 * 1024;
  const std::string text = request_with("X-Big: " + std::string(256 * 1024, 'b') + "\r\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  RequestParser parser(limits);
  RequestHead head;
  ParseStatus status = ParseStatus::need_more;
  std::size_t fed = 0;
  bool late = false;
  while (status == ParseStatus::need_more && fed < text.size() && !late) {
    ++fed;
    status = parser.parse(std::string_view(text).substr(0, fed), head);
    late = fed % 512 == 0 && std::chrono::steady_clock::now() > deadline;
  }
  CHECK_FALSE(late);
  REQUIRE(status == ParseStatus::complete);
  CHECK(head.field("x-big").size() == 256 * 1024);
}

TEST_CASE("A request line over the limit fails as soon as it is too long", "[http1][parser]") {
  const HeadLimits limits;
  const std::string text = "GET /" + std::string(1024 * 1024, 'a') + " HTTP/1.1\r\n\r\n";
  RequestParser parser(limits);
  RequestHead head;
  std::size_t fed = 0;
  ParseStatus status = ParseStatus::need_more;
  bool in_request_line_while_waiting = true;
  while (status == ParseStatus::need_more && fed < text.size()) {
    ++fed;
    status = parser.parse(std::string_view(text).substr(0, fed), head);
    if (status == ParseStatus::need_more) in_request_line_while_waiting &= parser.in_request_line();
  }
  CHECK(status == ParseStatus::error);
  CHECK(parser.error() == HeadError::line_too_long);
  CHECK(fed == limits.max_request_line + 1);
  CHECK(in_request_line_while_waiting);
}

TEST_CASE("A request line of exactly the limit is accepted, one byte more is not",
          "[http1][parser]") {
  HeadLimits limits;
  limits.max_request_line = 64;
  const auto line_of = [](std::size_t length) {
    const std::string frame = "GET / HTTP/1.1";
    return "GET /" + std::string(length - frame.size(), 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  };
  const auto fits = parse_request(line_of(64), limits);
  CHECK(fits.status == ParseStatus::complete);
  CHECK(fits.head.target.size() == 64 - 13);
  std::string storage;
  const auto trickled = parse_request_bytewise(line_of(64), storage, limits);
  CHECK(trickled.status == ParseStatus::complete);  // its CR alone does not make it too long
  const auto over = parse_request(line_of(65), limits);
  CHECK(over.status == ParseStatus::error);
  CHECK(over.error == HeadError::line_too_long);
}

TEST_CASE("in_request_line tells a long request line from long fields", "[http1][parser]") {
  RequestParser parser;
  RequestHead head;
  const std::string text = "GET /path HTTP/1.1\r\nHost: a\r\nX-Long: aaaa";
  CHECK(parser.parse(std::string_view(text).substr(0, 10), head) == ParseStatus::need_more);
  CHECK(parser.in_request_line());
  CHECK(parser.parse(std::string_view(text).substr(0, 19), head) == ParseStatus::need_more);
  CHECK(parser.in_request_line());  // CR seen, LF not yet
  CHECK(parser.parse(text, head) == ParseStatus::need_more);
  CHECK_FALSE(parser.in_request_line());
}

TEST_CASE("A head over max_head_bytes fails with head_too_large", "[http1][parser]") {
  HeadLimits limits;
  limits.max_head_bytes = 64;
  const std::string fits =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(64 - 36, 'p') + "\r\n\r\n";
  REQUIRE(fits.size() == 64);
  const auto exact = parse_request(fits, limits);
  CHECK(exact.status == ParseStatus::complete);

  const std::string over =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(64 - 35, 'p') + "\r\n\r\n";
  const auto r = parse_request(over, limits);
  CHECK(r.status == ParseStatus::error);
  CHECK(r.error == HeadError::head_too_large);

  SECTION("without waiting for the end of the head") {
    RequestParser parser(limits);
    RequestHead head;
    const std::string endless = "GET / HTTP/1.1\r\nX-Pad: " + std::string(1000, 'p');
    CHECK(parser.parse(std::string_view(endless).substr(0, 63), head) == ParseStatus::need_more);
    CHECK(parser.parse(std::string_view(endless).substr(0, 64), head) == ParseStatus::error);
    CHECK(parser.error() == HeadError::head_too_large);
    CHECK_FALSE(parser.in_request_line());
  }
}

TEST_CASE("More fields than max_fields fail with head_too_large", "[http1][parser]") {
  HeadLimits limits;
  limits.max_fields = 3;
  const auto three = parse_request(request_with("X-A: 1\r\nX-B: 2\r\n"), limits);
  CHECK(three.status == ParseStatus::complete);
  const auto four = parse_request(request_with("X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n"), limits);
  CHECK(four.status == ParseStatus::error);
  CHECK(four.error == HeadError::head_too_large);
}

TEST_CASE("Content-Length values: one number, or the same number repeated", "[http1][parser]") {
  struct Case {
    std::string fields;
    HeadError error;
    Framing framing;
    std::uint64_t length;
  };
  const std::vector<Case> cases = {
      {"", HeadError::none, Framing::none, 0},
      {"Content-Length: 5\r\n", HeadError::none, Framing::content_length, 5},
      {"content-length:5\r\n", HeadError::none, Framing::content_length, 5},
      {"Content-Length: 0\r\n", HeadError::none, Framing::none, 0},
      {"Content-Length: 5, 5\r\n", HeadError::none, Framing::content_length, 5},
      {"Content-Length: 5,5 ,\t5\r\n", HeadError::none, Framing::content_length, 5},
      {"Content-Length: 5\r\nContent-Length: 5\r\n", HeadError::none, Framing::content_length, 5},
      {"Content-Length: 4611686018427387904\r\n", HeadError::none, Framing::content_length,
       4611686018427387904ULL},
      {"Content-Length: 5\r\nContent-Length: 6\r\n", HeadError::bad_content_length},
      {"Content-Length: 5, 6\r\n", HeadError::bad_content_length},
      {"Content-Length: +5\r\n", HeadError::bad_content_length},
      {"Content-Length: -1\r\n", HeadError::bad_content_length},
      {"Content-Length: 0x5\r\n", HeadError::bad_content_length},
      {"Content-Length: \r\n", HeadError::bad_content_length},
      {"Content-Length:  \r\n", HeadError::bad_content_length},
      {"Content-Length: 5 5\r\n", HeadError::bad_content_length},
      {"Content-Length: 5,\r\n", HeadError::bad_content_length},
      {"Content-Length: ,5\r\n", HeadError::bad_content_length},
      {"Content-Length: 5.0\r\n", HeadError::bad_content_length},
      {"Content-Length: 4611686018427387905\r\n", HeadError::bad_content_length},
      {"Content-Length: 99999999999999999999999\r\n", HeadError::bad_content_length},
  };
  for (const Case& c : cases) {
    const std::string text = request_with(c.fields);
    INFO(printable(text));
    const auto r = parse_request(text);
    if (c.error == HeadError::none) {
      REQUIRE(r.status == ParseStatus::complete);
      CHECK(r.head.framing == c.framing);
      CHECK(r.head.content_length == c.length);
    } else {
      CHECK(r.status == ParseStatus::error);
      CHECK(r.error == c.error);
    }
  }
}

TEST_CASE("Transfer-Encoding must be exactly chunked, alone, on HTTP/1.1", "[http1][parser]") {
  struct Case {
    std::string fields;
    std::string version;
    HeadError error;
  };
  const std::vector<Case> cases = {
      {"Transfer-Encoding: chunked\r\n", "HTTP/1.1", HeadError::none},
      {"transfer-encoding: CHUNKED\r\n", "HTTP/1.1", HeadError::none},
      {"Transfer-Encoding: \t chunked \t\r\n", "HTTP/1.1", HeadError::none},
      {"Transfer-Encoding: chunked, identity\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: gzip, chunked\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: chunked,chunked\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: xchunked\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: chunkedx\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: identity\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: \"chunked\"\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding:\r\n", "HTTP/1.1", HeadError::bad_transfer_coding},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1",
       HeadError::bad_transfer_coding},
      {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "HTTP/1.1",
       HeadError::bad_transfer_coding},
      {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1",
       HeadError::bad_transfer_coding},
      {"Content-Length: x\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1",
       HeadError::bad_transfer_coding},
      {"Transfer-Encoding: chunked\r\n", "HTTP/1.0", HeadError::bad_transfer_coding},
  };
  for (const Case& c : cases) {
    const std::string text = request_with(c.fields, c.version);
    INFO(printable(text));
    const auto r = parse_request(text);
    if (c.error == HeadError::none) {
      REQUIRE(r.status == ParseStatus::complete);
      CHECK(r.head.framing == Framing::chunked);
    } else {
      CHECK(r.status == ParseStatus::error);
      CHECK(r.error == c.error);
    }
  }
}

TEST_CASE("Host: one on HTTP/1.1, at most one on HTTP/1.0, a single authority", "[http1][parser]") {
  struct Case {
    std::string text;
    HeadError error;
    std::string_view host;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nhost: a.example:8080\r\n\r\n", HeadError::none, "a.example:8080"},
      {"GET / HTTP/1.1\r\nHost:\r\n\r\n", HeadError::none, ""},  // no authority (RFC 9112 3.2)
      {"GET / HTTP/1.0\r\n\r\n", HeadError::none, ""},
      {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", HeadError::none, "a"},
      {"GET / HTTP/1.1\r\n\r\n", HeadError::bad_host},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HeadError::bad_host},
      {"GET / HTTP/1.0\r\nHost: a\r\nhOST: b\r\n\r\n", HeadError::bad_host},
      {"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", HeadError::bad_host},
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HeadError::bad_host},
  };
  for (const Case& c : cases) {
    INFO(printable(c.text));
    const auto r = parse_request(c.text);
    if (c.error == HeadError::none) {
      REQUIRE(r.status == ParseStatus::complete);
      CHECK(r.head.host == c.host);
    } else {
      CHECK(r.status == ParseStatus::error);
      CHECK(r.error == c.error);
    }
  }
}

TEST_CASE("keep_alive follows the version and the Connection field", "[http1][parser]") {
  struct Case {
    std::string version;
    std::string fields;
    bool keep_alive;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1", "", true},
      {"HTTP/1.1", "Connection: close\r\n", false},
      {"HTTP/1.1", "Connection: Keep-Alive, CLOSE\r\n", false},
      {"HTTP/1.1", "Connection: keep-alive\r\n", true},
      {"HTTP/1.1", "Connection: closed\r\n", true},
      {"HTTP/1.1", "Connection: x\r\nConnection: close\r\n", false},
      {"HTTP/1.0", "", false},
      {"HTTP/1.0", "Connection: keep-alive\r\n", true},
      {"HTTP/1.0", "connection: Keep-Alive\r\n", true},
      {"HTTP/1.0", "Connection: upgrade ,\tkeep-alive \r\n", true},
      {"HTTP/1.0", "Connection: keep-alive, close\r\n", false},
      {"HTTP/1.0", "Connection: keep-alives\r\n", false},
  };
  for (const Case& c : cases) {
    const std::string text = request_with(c.fields, c.version);
    INFO(printable(text));
    const auto r = parse_request(text);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head.keep_alive == c.keep_alive);
  }
}

TEST_CASE("expect_continue is set by Expect: 100-continue only", "[http1][parser]") {
  struct Case {
    std::string fields;
    bool expect_continue;
  };
  const std::vector<Case> cases = {
      {"", false},
      {"Expect: 100-continue\r\n", true},
      {"expect:  100-Continue \r\n", true},
      {"Expect: 100-continuex\r\n", false},
      {"Expect: 200-ok\r\n", false},
  };
  for (const Case& c : cases) {
    const std::string text = request_with(c.fields);
    INFO(printable(text));
    const auto r = parse_request(text);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head.expect_continue == c.expect_continue);
  }
  // HTTP/1.0: ignored (RFC 9110 10.1.1).
  const auto old =
      parse_request("POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
  REQUIRE(old.status == ParseStatus::complete);
  CHECK_FALSE(old.head.expect_continue);
}

TEST_CASE("field() finds the first value case-insensitively", "[http1][parser]") {
  const std::string text = request_with("X-Tag: one\r\nx-tag: two\r\n");
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.field("X-TAG") == "one");
  CHECK(r.head.field("host") == "example.com");
  CHECK(r.head.field("X-Missing").empty());
  CHECK(r.head.field("X-Ta").empty());
}

TEST_CASE("joined() returns one value in place and several joined with commas", "[http1][parser]") {
  const std::string text = request_with(
      "X-Forwarded-For: 10.0.0.1\r\nX-One: only\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\n"
      "X-Forwarded-For:\r\n");
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  std::string storage = "stale";
  CHECK(r.head.joined("X-Forwarded-For", storage) == "10.0.0.1, 10.0.0.2, 10.0.0.3");
  CHECK(storage == "10.0.0.1, 10.0.0.2, 10.0.0.3");

  std::string untouched = "stale";
  const std::string_view one = r.head.joined("x-one", untouched);
  CHECK(one == "only");
  CHECK(points_into(one, text));  // no copy
  CHECK(untouched == "stale");
  CHECK(r.head.joined("X-None", untouched).empty());
}

TEST_CASE("connection_lists() matches whole tokens of every Connection field", "[http1][parser]") {
  const std::string text =
      request_with("Connection: keep-alive , X-Secret\r\nConnection: Upgrade\r\n");
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(r.head.connection_lists("x-secret"));
  CHECK(r.head.connection_lists("upgrade"));
  CHECK(r.head.connection_lists("Keep-Alive"));
  CHECK_FALSE(r.head.connection_lists("close"));
  CHECK_FALSE(r.head.connection_lists("secret"));
  CHECK_FALSE(r.head.connection_lists(""));
}

TEST_CASE("A reused parser and head start afresh and keep the field capacity", "[http1][parser]") {
  RequestParser parser;
  RequestHead head;
  const std::string first = request_with("A: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 7\r\n");
  REQUIRE(parser.parse(first, head) == ParseStatus::complete);
  const std::size_t capacity = head.fields.capacity();
  const Field* storage = head.fields.data();

  parser.reset();
  const std::string second = "GET /b HTTP/1.0\r\n\r\n";
  REQUIRE(parser.parse(second, head) == ParseStatus::complete);
  CHECK(head.target == "/b");
  CHECK(head.fields.empty());
  CHECK(head.fields.capacity() == capacity);
  CHECK(head.fields.data() == storage);
  CHECK(head.framing == Framing::none);
  CHECK(head.content_length == 0);
  CHECK(head.host.empty());
  CHECK_FALSE(head.keep_alive);
}

TEST_CASE("After an error the parser keeps answering error until reset", "[http1][parser]") {
  RequestParser parser;
  RequestHead head;
  CHECK(parser.parse("GET / HTTP/1.1\r\nHost : a\r\n", head) == ParseStatus::error);
  CHECK(parser.parse(kSimpleGet, head) == ParseStatus::error);
  CHECK(parser.error() == HeadError::malformed);
  parser.reset();
  CHECK(parser.parse(kSimpleGet, head) == ParseStatus::complete);
  CHECK(parser.error() == HeadError::none);
}

TEST_CASE("Status lines: version SP 3DIGIT, then SP and a reason, possibly empty",
          "[http1][parser]") {
  struct Case {
    std::string line;
    HeadError error;
    unsigned status;
    std::string_view reason;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 200 OK", HeadError::none, 200, "OK"},
      {"HTTP/1.1 404 Not  Found", HeadError::none, 404, "Not  Found"},
      {"HTTP/1.1 200 ", HeadError::none, 200, ""},
      {"HTTP/1.1 200", HeadError::none, 200, ""},
      {"HTTP/1.0 999 Odd\tbut \xe2\x9c\x93", HeadError::none, 999, "Odd\tbut \xe2\x9c\x93"},
      {"HTTP/2.0 200 OK", HeadError::bad_version},
      {"HTTP/1.2 200 OK", HeadError::bad_version},
      {"HTTP/1.1 20 OK", HeadError::malformed},
      {"HTTP/1.1 2000 OK", HeadError::malformed},
      {"HTTP/1.1 099 Low", HeadError::malformed},
      {"HTTP/1.1  200 OK", HeadError::malformed},
      {"HTTP/1.1 2x0 OK", HeadError::malformed},
      {"http/1.1 200 OK", HeadError::malformed},
      {"ICY 200 OK", HeadError::malformed},
      {"", HeadError::malformed},  // no empty lines before a status line
      {"HTTP/1.1 200 O\x01K", HeadError::bad_character},
      {"HTTP/1.1 200 O\rK", HeadError::bad_character},
  };
  for (const Case& c : cases) {
    const std::string text = response_with(c.line, "Content-Length: 0\r\n");
    INFO(printable(text));
    const auto r = parse_response(text);
    if (c.error == HeadError::none) {
      REQUIRE(r.status == ParseStatus::complete);
      CHECK(r.head.status == c.status);
      CHECK(r.head.reason == c.reason);
      CHECK(r.head.head_bytes == text.size());
    } else {
      CHECK(r.status == ParseStatus::error);
      CHECK(r.error == c.error);
    }
  }
}

TEST_CASE("Response framing follows RFC 9112 6.3", "[http1][parser]") {
  struct Case {
    bool request_was_head;
    std::string status_line;
    std::string fields;
    HeadError error;
    Framing framing;
    std::uint64_t length;
  };
  const std::vector<Case> cases = {
      {true, "HTTP/1.1 200 OK", "Content-Length: 100\r\n", HeadError::none, Framing::none, 0},
      {true, "HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\n", HeadError::none, Framing::none},
      {false, "HTTP/1.1 204 No Content", "Content-Length: 5\r\n", HeadError::none, Framing::none},
      {false, "HTTP/1.1 304 Not Modified", "Transfer-Encoding: chunked\r\n", HeadError::none,
       Framing::none},
      {false, "HTTP/1.1 100 Continue", "", HeadError::none, Framing::none},
      {false, "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket\r\n", HeadError::none,
       Framing::none},
      {false, "HTTP/1.1 200 OK", "Content-Length: 0\r\n", HeadError::none, Framing::content_length,
       0},
      {false, "HTTP/1.1 200 OK", "Content-Length: 12\r\n", HeadError::none, Framing::content_length,
       12},
      {false, "HTTP/1.1 200 OK", "Content-Length: 12, 12\r\n", HeadError::none,
       Framing::content_length, 12},
      {false, "HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\n", HeadError::none,
       Framing::chunked},
      {false, "HTTP/1.1 200 OK", "", HeadError::none, Framing::until_close},
      {false, "HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
       HeadError::bad_transfer_coding},
      {false, "HTTP/1.1 200 OK", "Transfer-Encoding: gzip\r\n", HeadError::bad_transfer_coding},
      {false, "HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked\r\n",
       HeadError::bad_transfer_coding},
      {false, "HTTP/1.0 200 OK", "Transfer-Encoding: chunked\r\n", HeadError::bad_transfer_coding},
      {false, "HTTP/1.1 200 OK", "Content-Length: 5, 6\r\n", HeadError::bad_content_length},
      {false, "HTTP/1.1 200 OK", "Content-Length: -1\r\n", HeadError::bad_content_length},
      // Passed on with a 304, so it must still be a number.
      {false, "HTTP/1.1 304 Not Modified", "Content-Length: abc\r\n",
       HeadError::bad_content_length},
  };
  for (const Case& c : cases) {
    const std::string text = response_with(c.status_line, c.fields);
    INFO(printable(text) << (c.request_was_head ? " (to HEAD)" : ""));
    const auto r = parse_response(text, c.request_was_head);
    if (c.error == HeadError::none) {
      REQUIRE(r.status == ParseStatus::complete);
      CHECK(r.head.framing == c.framing);
      CHECK(r.head.content_length == c.length);
    } else {
      CHECK(r.status == ParseStatus::error);
      CHECK(r.error == c.error);
    }
  }
}

TEST_CASE("Response keep_alive: version, Connection, and never with a body until close",
          "[http1][parser]") {
  struct Case {
    std::string status_line;
    std::string fields;
    bool keep_alive;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 200 OK", "Content-Length: 1\r\n", true},
      {"HTTP/1.1 200 OK", "Content-Length: 1\r\nConnection: close\r\n", false},
      {"HTTP/1.0 200 OK", "Content-Length: 1\r\n", false},
      {"HTTP/1.0 200 OK", "Content-Length: 1\r\nConnection: keep-alive\r\n", true},
      {"HTTP/1.1 200 OK", "", false},  // until close
      {"HTTP/1.1 204 No Content", "", true},
  };
  for (const Case& c : cases) {
    const std::string text = response_with(c.status_line, c.fields);
    INFO(printable(text));
    const auto r = parse_response(text);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head.keep_alive == c.keep_alive);
  }
}

TEST_CASE("Responses need no Host and share the field rules", "[http1][parser]") {
  const auto ok = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK(ok.status == ParseStatus::complete);
  CHECK(ok.head.fields.size() == 1);

  const auto folded = parse_response("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n");
  CHECK(folded.status == ParseStatus::error);
  CHECK(folded.error == HeadError::obs_fold);

  const auto bare_lf = parse_response("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n");
  CHECK(bare_lf.status == ParseStatus::error);
  CHECK(bare_lf.error == HeadError::bad_character);
}

TEST_CASE("A response fed one byte at a time parses as it does at once", "[http1][parser]") {
  const std::string text =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
  ResponseParser parser;
  parser.reset(false);
  ResponseHead head;
  std::string storage;
  ParseStatus status = ParseStatus::need_more;
  for (std::size_t n = 1; n <= text.size() && status == ParseStatus::need_more; ++n) {
    storage.assign(text, 0, n);
    status = parser.parse(storage, head);
  }
  REQUIRE(status == ParseStatus::complete);
  CHECK(head.status == 200);
  CHECK(head.reason == "OK");
  CHECK(points_into(head.reason, storage));
  CHECK(head.framing == Framing::content_length);
  CHECK(head.content_length == 5);
  CHECK(head.head_bytes == text.size() - 5);
  CHECK(head.field("content-type") == "text/plain");
}

TEST_CASE("A parser reset for a HEAD request reads the next response as bodiless",
          "[http1][parser]") {
  const std::string text = "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n";
  ResponseParser parser;
  ResponseHead head;
  parser.reset(true);
  REQUIRE(parser.parse(text, head) == ParseStatus::complete);
  CHECK(head.framing == Framing::none);
  parser.reset(false);
  REQUIRE(parser.parse(text, head) == ParseStatus::complete);
  CHECK(head.framing == Framing::content_length);
  CHECK(head.content_length == 42);
}

TEST_CASE("describe() gives every error its own short sentence", "[http1][parser]") {
  const std::vector<HeadError> errors = {
      HeadError::malformed,          HeadError::bad_version,         HeadError::bad_character,
      HeadError::obs_fold,           HeadError::line_too_long,       HeadError::head_too_large,
      HeadError::bad_content_length, HeadError::bad_transfer_coding, HeadError::bad_host,
  };
  for (std::size_t i = 0; i < errors.size(); ++i) {
    INFO("error " << i);
    CHECK_FALSE(describe(errors[i]).empty());
    CHECK(describe(errors[i]).size() < 60);
    for (std::size_t j = 0; j < i; ++j)
      CHECK(describe(errors[i]) != describe(errors[j]));
  }
  CHECK(describe(HeadError::obs_fold) == "Obsolete line folding in header");
  CHECK(describe(HeadError::bad_content_length) == "Invalid Content-Length");
  CHECK(describe(HeadError::bad_transfer_coding) == "Unsupported or ambiguous Transfer-Encoding");
}

TEST_CASE("Every split of a head into two reads gives the same result", "[http1][parser]") {
  const std::string text =
      "\r\nPUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nX-A:  v \r\n\r\nabc";
  for (std::size_t split = 0; split <= text.size(); ++split) {
    INFO("split at " << split);
    RequestParser parser;
    RequestHead head;
    const std::string first = text.substr(0, split);
    const ParseStatus early = parser.parse(first, head);
    CHECK((early == ParseStatus::complete) == (split >= text.size() - 3));
    const std::string whole = text;  // a different buffer for the second read
    if (early == ParseStatus::need_more) {
      REQUIRE(parser.parse(whole, head) == ParseStatus::complete);
    }
    const std::string& last = early == ParseStatus::need_more ? whole : first;
    CHECK(head.target == "/a");
    CHECK(head.content_length == 3);
    CHECK(head.field("X-A") == "v");
    CHECK(points_into(head.field("X-A"), last));
    CHECK(points_into(head.method, last));
    CHECK(head.head_bytes == text.size() - 3);
  }
}

TEST_CASE("Errors are found before the head is complete", "[http1][parser]") {
  struct Case {
    std::string partial;  // no blank line yet
    HeadError error;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nHost: a\r\n b", HeadError::obs_fold},
      {"GET / HTTP/1.1\r\nHost: a\nX", HeadError::bad_character},
      {"GET / HTTP/1.1\r\nHost\0: a\r\nX"s, HeadError::bad_character},
      {"GET / HTTP/3.0\r\n", HeadError::bad_version},
      {"GET / HTTP/1.1\r\nContent-Length : 5\r\n", HeadError::malformed},
  };
  for (const Case& c : cases) {
    INFO(printable(c.partial));
    RequestParser parser;
    RequestHead head;
    // The first call sees the start line only, so later lines go through the incremental path.
    const auto first_line = c.partial.find('\n') + 1;
    const ParseStatus early = parser.parse(std::string_view(c.partial).substr(0, first_line), head);
    if (early == ParseStatus::need_more) {
      CHECK(parser.parse(c.partial, head) == ParseStatus::error);
    }
    CHECK(parser.error() == c.error);
  }
}

TEST_CASE("More fields than max_fields fail before the head is complete", "[http1][parser]") {
  HeadLimits limits;
  limits.max_fields = 2;
  RequestParser parser(limits);
  RequestHead head;
  const std::string text = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-C";
  CHECK(parser.parse(std::string_view(text).substr(0, 16), head) == ParseStatus::need_more);
  CHECK(parser.parse(std::string_view(text).substr(0, 33), head) == ParseStatus::need_more);
  CHECK(parser.parse(text, head) == ParseStatus::error);
  CHECK(parser.error() == HeadError::head_too_large);
}

TEST_CASE("is_idempotent: the methods RFC 9110 lets a proxy retry", "[http1]") {
  for (const char* method : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    CHECK(sluice::http1::is_idempotent(method));
  }
  for (const char* method : {"POST", "PATCH", "CONNECT", "get", "PROPFIND", ""}) {
    CHECK_FALSE(sluice::http1::is_idempotent(method));
  }
}
