#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/http1/chunked.hpp>

using sluice::http1::ChunkedScanner;

namespace {

enum class Outcome { need_more, done, failed };

struct Result {
  Outcome outcome = Outcome::need_more;
  std::size_t body_bytes = 0;  // bytes the scanner claimed for the body
  std::uint64_t data_bytes = 0;

  friend bool operator==(const Result&, const Result&) = default;
};

Outcome outcome_of(const ChunkedScanner& scanner) {
  if (scanner.done()) return Outcome::done;
  if (scanner.failed()) return Outcome::failed;
  return Outcome::need_more;
}

// Feeds `bytes` in pieces of `piece` bytes, as TCP may deliver them, until the body ends.
Result scan_in_pieces(std::string_view bytes, std::size_t piece) {
  ChunkedScanner scanner;
  Result result;
  while (!bytes.empty() && outcome_of(scanner) == Outcome::need_more) {
    const std::string_view next = bytes.substr(0, piece);
    const std::size_t taken = scanner.scan(next);
    REQUIRE(taken <= next.size());
    if (outcome_of(scanner) == Outcome::need_more) REQUIRE(taken == next.size());
    result.body_bytes += taken;
    bytes.remove_prefix(next.size());
  }
  result.outcome = outcome_of(scanner);
  result.data_bytes = scanner.data_bytes();
  return result;
}

Result scan_at_once(std::string_view bytes) {
  return scan_in_pieces(bytes, bytes.size() + 1);
}

std::string repeated(char c, std::size_t n) {
  return std::string(n, c);
}

std::string operator""_s(const char* text, std::size_t size) {
  return std::string(text, size);
}

struct Row {
  std::string name;
  std::string bytes;
  Outcome outcome;
  std::size_t body_bytes;  // done: up to the final LF; failed: where the error is
  std::uint64_t data_bytes;
};

std::vector<Row> rows() {
  const std::string long_extension = "5;" + repeated('a', ChunkedScanner::kMaxLineBytes) + "\r\n";
  // Trailer lines of 100 bytes each: 163 of them fit in 16 KiB, the 164th does not.
  const std::string trailer_line = "X-T: " + repeated('t', 93) + "\r\n";
  std::string many_trailers = "0\r\n";
  for (int i = 0; i < 170; ++i)
    many_trailers += trailer_line;
  many_trailers += "\r\n";
  std::string fitting_trailers = "0\r\n";
  for (int i = 0; i < 163; ++i)
    fitting_trailers += trailer_line;
  fitting_trailers += "\r\n";  // 163 * 100 + 2 bytes of trailer section
  return {
      // Bodies that end.
      {"only the last chunk", "0\r\n\r\n", Outcome::done, 5, 0},
      {"one chunk", "5\r\nhello\r\n0\r\n\r\n", Outcome::done, 15, 5},
      {"two chunks", "5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", Outcome::done, 37, 21},
      {"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", Outcome::done, 20, 10},
      {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", Outcome::done, 20, 5},
      {"sixteen digits", "000000000000000a\r\n0123456789\r\n0\r\n\r\n", Outcome::done, 35, 10},
      {"data that looks like framing", "7\r\n0\r\n\r\nab\r\n0\r\n\r\n", Outcome::done, 17, 7},
      {"extension name", "5;ext\r\nhello\r\n0\r\n\r\n", Outcome::done, 19, 5},
      {"extension token value", "5;a=b;c\r\nhello\r\n0\r\n\r\n", Outcome::done, 21, 5},
      {"extension quoted value", "5;a=\"b c;d\"\r\nhello\r\n0\r\n\r\n", Outcome::done, 25, 5},
      {"extension quoted escape", "5;a=\"x\\\"y\\\\\"\r\nhello\r\n0\r\n\r\n", Outcome::done, 26, 5},
      {"extension bad whitespace", "5 ;\ta = b ; c=\"d\"\r\nhello\r\n0\r\n\r\n", Outcome::done, 31,
       5},
      {"extension on the last chunk", "0;last=\"yes\"\r\n\r\n", Outcome::done, 16, 0},
      {"trailer field", "0\r\nX-Trailer: t\r\n\r\n", Outcome::done, 19, 0},
      {"trailer fields, tab and empty value", "0\r\nX-A: a\tb\r\nX-B:\r\n\r\n", Outcome::done, 21,
       0},
      {"trailers up to the limit", fitting_trailers, Outcome::done, fitting_trailers.size(), 0},
      {"next request follows", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
       Outcome::done, 13, 3},
      // Bodies not finished yet.
      {"inside the data", "5\r\nhel", Outcome::need_more, 6, 3},
      {"inside the size", "1f", Outcome::need_more, 2, 0},
      {"before the final line end", "0\r\nX-A: b\r\n\r", Outcome::need_more, 12, 0},
      {"largest size", "7fffffffffffffff\r\nabc", Outcome::need_more, 21, 3},
      // Sizes.
      {"no size", "\r\n\r\n", Outcome::failed, 0, 0},
      {"not hex", "g\r\n", Outcome::failed, 0, 0},
      {"0x prefix", "0x5\r\nhello", Outcome::failed, 1, 0},
      {"negative size", "-5\r\n", Outcome::failed, 0, 0},
      {"size over 64 bits", "fffffffffffffffff\r\n", Outcome::failed, 15, 0},
      {"size over 63 bits", "8000000000000000\r\n", Outcome::failed, 15, 0},
      {"seventeen digits", "00000000000000001\r\n", Outcome::failed, 16, 0},
      {"size line too long", long_extension, Outcome::failed, ChunkedScanner::kMaxLineBytes, 0},
      // Line ends.
      {"bare LF after the size", "5\nhello\r\n0\r\n\r\n", Outcome::failed, 1, 0},
      {"CR without LF after the size", "5\rhello", Outcome::failed, 2, 0},
      {"blank before the line end", "5 \r\nhello", Outcome::failed, 2, 0},
      {"data longer than the size", "5\r\nhelloX\r\n0\r\n\r\n", Outcome::failed, 8, 5},
      {"bare LF after the data", "5\r\nhello\n0\r\n\r\n", Outcome::failed, 8, 5},
      {"CR without LF after the data", "5\r\nhello\rX", Outcome::failed, 9, 5},
      {"bare LF ending the body", "0\r\n\n", Outcome::failed, 3, 0},
      {"CR without LF ending the body", "0\r\n\rX", Outcome::failed, 4, 0},
      // Extensions.
      {"extension without a name", "5;\r\nhello", Outcome::failed, 2, 0},
      {"extension value without a name", "5;=b\r\nhello", Outcome::failed, 2, 0},
      {"extension without a value", "5;a=\r\nhello", Outcome::failed, 4, 0},
      {"extension value not a token", "5;a=b@c\r\nhello", Outcome::failed, 5, 0},
      {"blank after an extension", "5;a=b \r\nhello", Outcome::failed, 6, 0},
      {"two names without ';'", "5;a b\r\nhello", Outcome::failed, 4, 0},
      {"control byte in an extension", "5;a\x01\r\nhello", Outcome::failed, 3, 0},
      {"control byte in a quoted value", "5;a=\"b\x7f\"\r\nhello", Outcome::failed, 6, 0},
      {"escaped control byte", "5;a=\"\\\x01\"\r\nhello", Outcome::failed, 6, 0},
      {"NUL in a quoted value", "5;a=\"\0\"\r\nhello"_s, Outcome::failed, 5, 0},
      {"unterminated quoted value", "5;a=\"b\r\nhello", Outcome::failed, 6, 0},
      {"text after a quoted value", "5;a=\"b\"c\r\nhello", Outcome::failed, 7, 0},
      // Trailers.
      {"trailer obs-fold", "0\r\nX-A: a\r\n b\r\n\r\n", Outcome::failed, 11, 0},
      {"trailer starting with a blank", "0\r\n X-A: a\r\n\r\n", Outcome::failed, 3, 0},
      {"trailer without a colon", "0\r\nX-A\r\n\r\n", Outcome::failed, 6, 0},
      {"blank before a trailer colon", "0\r\nX-A : a\r\n\r\n", Outcome::failed, 6, 0},
      {"empty trailer name", "0\r\n: a\r\n\r\n", Outcome::failed, 3, 0},
      {"control byte in a trailer", "0\r\nX-A: a\x01\r\n\r\n", Outcome::failed, 9, 0},
      {"bare LF ending a trailer", "0\r\nX-A: a\n\r\n", Outcome::failed, 9, 0},
      {"trailer line too long", "0\r\nX: " + repeated('v', ChunkedScanner::kMaxLineBytes),
       Outcome::failed, 3 + ChunkedScanner::kMaxLineBytes, 0},
      {"trailers over the limit", many_trailers, Outcome::failed,
       3 + ChunkedScanner::kMaxTrailerBytes, 0},
  };
}

}  // namespace

TEST_CASE("chunked bodies: where they end and what is refused", "[http1][chunked]") {
  for (const Row& row : rows()) {
    INFO(row.name);
    const Result expected{row.outcome, row.body_bytes, row.data_bytes};
    CHECK(scan_at_once(row.bytes) == expected);
    // TCP may split the bytes anywhere: one byte at a time, or in two pieces cut anywhere.
    CHECK(scan_in_pieces(row.bytes, 1) == expected);
    if (row.bytes.size() < 200) {
      for (std::size_t cut = 1; cut < row.bytes.size(); ++cut) {
        INFO("cut at " << cut);
        ChunkedScanner scanner;
        Result split;
        split.body_bytes = scanner.scan(std::string_view(row.bytes).substr(0, cut));
        if (outcome_of(scanner) == Outcome::need_more) {
          split.body_bytes += scanner.scan(std::string_view(row.bytes).substr(cut));
        }
        split.outcome = outcome_of(scanner);
        split.data_bytes = scanner.data_bytes();
        CHECK(split == expected);
      }
    }
  }
}

TEST_CASE("chunked: the body ends before the next pipelined request", "[http1][chunked]") {
  const std::string_view bytes = "4\r\nwiki\r\n0\r\nX-Checksum: 1\r\n\r\nPOST /next HTTP/1.1\r\n";
  ChunkedScanner scanner;
  const std::size_t body = scanner.scan(bytes);
  CHECK(scanner.done());
  CHECK(bytes.substr(body).starts_with("POST /next"));
  CHECK(scanner.data_bytes() == 4);
  // Nothing more belongs to a finished body.
  CHECK(scanner.scan("more") == 0);
  CHECK(scanner.done());
  // reset() starts the next body.
  scanner.reset();
  CHECK(!scanner.done());
  CHECK(scanner.data_bytes() == 0);
  CHECK(scanner.scan("2\r\nok\r\n0\r\n\r\n") == 12);
  CHECK(scanner.done());
}

TEST_CASE("chunked: a failure is final", "[http1][chunked]") {
  ChunkedScanner scanner;
  CHECK(scanner.scan("5\r\nhelloXX") == 8);
  CHECK(scanner.failed());
  CHECK(scanner.scan("\r\n0\r\n\r\n") == 0);
  CHECK(scanner.failed());
  CHECK(!scanner.done());
}

TEST_CASE("chunked: data_bytes counts payload as it streams", "[http1][chunked]") {
  ChunkedScanner scanner;
  CHECK(scanner.scan("a\r\n01234") == 8);
  CHECK(scanner.data_bytes() == 5);
  CHECK(scanner.scan("56789\r\n14\r\n") == 11);
  CHECK(scanner.data_bytes() == 10);
  // Announcing a large chunk counts nothing until its bytes arrive.
  CHECK(scanner.data_bytes() == 10);
  CHECK(scanner.scan("0123456789") == 10);
  CHECK(scanner.data_bytes() == 20);
  CHECK(!scanner.done());
}

TEST_CASE("chunked: a 1 GiB chunk is skipped, not walked byte by byte", "[http1][chunked]") {
  // Data made of line ends and zeros: a scanner that looked at payload bytes would misread it.
  const std::string piece(64 * 1024, '\n');
  constexpr std::uint64_t kChunk = 1ULL << 30;
  ChunkedScanner scanner;
  REQUIRE(scanner.scan("40000000\r\n") == 10);
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t seen = 0; seen < kChunk; seen += piece.size()) {
    REQUIRE(scanner.scan(piece) == piece.size());
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(scanner.data_bytes() == kChunk);
  CHECK(!scanner.done());
  CHECK(!scanner.failed());
  // 16384 calls of O(1) take well under a millisecond; walking 1 GiB takes most of a second.
  CHECK(elapsed < std::chrono::milliseconds(200));
  CHECK(scanner.scan("\r\n0\r\n\r\n") == 7);
  CHECK(scanner.done());
}
