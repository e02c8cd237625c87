// Raw bytes from a client, read the way proxy::Session reads them: a Beast request_parser with a
// buffer_body (header limit 32 KiB, no body limit), the header first, then the body streamed
// through a small relay buffer, then the next request on a kept-alive connection. Each parsed
// header is classified against a fixed policy as the session does (see Classifier::classify), and
// a routed request loses its hop-by-hop headers as it would before being forwarded.
//
// TCP may split the bytes anywhere, so the whole exchange is run twice, once with the input
// arriving at once and once in 7-byte pieces: both must decide the same, request by request
// (allowing for which error Beast names, see ReadStatus).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/net.hpp>
#include <sluice/proxy/http_headers.hpp>
#include <sluice/proxy/session.hpp>

#include "fuzz_support.hpp"

namespace {

using sluice::fuzz::Classification;
using sluice::fuzz::Classifier;
using sluice::fuzz::RequestInput;
using sluice::fuzz::require;
namespace beast = sluice::beast;
namespace http = sluice::http;
namespace net = sluice::net;

using RequestParser = http::request_parser<http::buffer_body>;

// The session's own limits, but a smaller relay buffer so that bodies take many rounds.
const sluice::proxy::SessionLimits kLimits;
constexpr std::size_t kRelayBytes = 64;
constexpr std::size_t kMaxRequests = 8;  // pipelined on one connection

// A synchronous stream over the input that hands out at most `piece` bytes per read.
class InputStream {
 public:
  InputStream(std::string_view bytes, std::size_t piece) : rest_(bytes), piece_(piece) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, beast::error_code& ec) {
    if (rest_.empty()) {
      ec = net::error::eof;
      return 0;
    }
    ec = {};
    const std::size_t n =
        net::buffer_copy(buffers, net::buffer(rest_.data(), std::min(piece_, rest_.size())));
    rest_.remove_prefix(n);
    return n;
  }

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    beast::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  std::string_view rest_;
  std::size_t piece_;
};

// Removes the hop-by-hop headers as the session does before forwarding, and checks that the
// connection's headers are gone while the message's framing and Host stay.
void strip_hop_by_hop(http::fields& fields) {
  const auto framing_before =
      std::array{fields.count(http::field::content_length),
                 fields.count(http::field::transfer_encoding), fields.count(http::field::host)};
  sluice::proxy::remove_hop_by_hop(fields);
  const auto framing_after =
      std::array{fields.count(http::field::content_length),
                 fields.count(http::field::transfer_encoding), fields.count(http::field::host)};
  require(framing_before == framing_after,
          "Content-Length, Transfer-Encoding and Host survive removing hop-by-hop headers");
  for (const auto field : {http::field::connection, http::field::keep_alive,
                           http::field::proxy_connection, http::field::te, http::field::upgrade,
                           http::field::proxy_authorization, http::field::proxy_authenticate}) {
    require(fields.count(field) == 0, "no hop-by-hop header is forwarded");
  }
}

// How a read ended, as the session answers it. Which parse error Beast reports can depend on how
// much was buffered when it gave up ("bad method" at once, "partial message" in pieces), and so
// can 400 versus 431 for a long broken header: those differences are Beast's, and sluice answers
// every one of them with an error and a close.
enum class ReadStatus { ok, closed, rejected };

ReadStatus status_of(const beast::error_code& ec) {
  if (!ec) return ReadStatus::ok;
  if (ec == http::error::end_of_stream) return ReadStatus::closed;  // nothing of a request
  return ReadStatus::rejected;
}

// What happened to one request on the connection.
struct Exchange {
  beast::error_code header_error;
  bool target_too_long = false;
  bool keep_alive = false;
  Classification classification;
  std::uint64_t body_bytes = 0;
  beast::error_code body_error;

  // Equal when the session would answer both alike.
  friend bool operator==(const Exchange& a, const Exchange& b) {
    const auto body_status = status_of(a.body_error);
    return status_of(a.header_error) == status_of(b.header_error) &&
           a.target_too_long == b.target_too_long && a.keep_alive == b.keep_alive &&
           a.classification == b.classification && body_status == status_of(b.body_error) &&
           (body_status != ReadStatus::ok || a.body_bytes == b.body_bytes);
  }
};

// Serves one connection's bytes as the session would, up to kMaxRequests requests.
void serve(std::string_view input, std::size_t piece, Classifier& classifier,
           std::vector<Exchange>& out) {
  // A trusted proxy, so X-Forwarded-For and Forwarded decide the client.
  static const auto peer = *sluice::classify::IpAddress::parse("10.0.0.7");
  static std::array<char, kRelayBytes> relay;
  static std::string forwarded_for;
  static std::string forwarded;

  InputStream stream(input, piece);
  beast::flat_buffer buffer;
  out.clear();
  for (std::size_t i = 0; i < kMaxRequests; ++i) {
    Exchange& exchange = out.emplace_back();
    RequestParser parser;
    parser.header_limit(static_cast<std::uint32_t>(kLimits.max_header_bytes));
    parser.body_limit(boost::none);
    http::read_header(stream, buffer, parser, exchange.header_error);
    if (exchange.header_error) return;

    auto& request = parser.get();
    exchange.keep_alive = request.keep_alive();
    if (request.target().size() > kLimits.max_target_bytes) {
      exchange.target_too_long = true;  // 414, and the connection closes
      return;
    }
    const sluice::proxy::FieldsLookup headers(request.base());
    classifier.classify(
        RequestInput{
            .peer = peer,
            .x_forwarded_for =
                sluice::proxy::joined_values(request.base(), "X-Forwarded-For", forwarded_for),
            .forwarded = sluice::proxy::joined_values(request.base(), "Forwarded", forwarded),
            .method = request.method_string(),
            .target = request.target(),
            .headers = &headers,
        },
        exchange.classification);
    if (exchange.classification.path_error != sluice::classify::PathError::none) return;  // 400
    if (exchange.classification.route != nullptr) strip_hop_by_hop(request.base());

    // Forwarded or drained, a body is read through the relay buffer either way.
    std::size_t rounds = 0;
    while (!parser.is_done()) {
      auto& body = request.body();
      body.data = relay.data();
      body.size = relay.size();
      http::read_some(stream, buffer, parser, exchange.body_error);
      if (exchange.body_error == http::error::need_buffer) exchange.body_error = {};
      if (exchange.body_error) return;
      exchange.body_bytes += relay.size() - body.size;
      require(++rounds <= 2 * input.size() + 8, "reading a body makes progress");
    }
    if (const auto length = parser.content_length()) {
      require(exchange.body_bytes == *length, "a Content-Length body is read exactly");
    }
    if (!exchange.keep_alive) return;
  }
}

// For the report when the two runs disagree.
void print(const char* title, const std::vector<Exchange>& exchanges) {
  std::fprintf(stderr, "%s:\n", title);
  for (const Exchange& e : exchanges) {
    std::fprintf(stderr,
                 "  header: %s; target too long: %d; keep-alive: %d; path error: %d; path: %s; "
                 "route: %s; keys: %zu; body: %llu bytes, %s\n",
                 e.header_error.message().c_str(), e.target_too_long, e.keep_alive,
                 static_cast<int>(e.classification.path_error), e.classification.path.c_str(),
                 e.classification.route ? e.classification.route->name.c_str() : "-",
                 e.classification.digests.size(), static_cast<unsigned long long>(e.body_bytes),
                 e.body_error.message().c_str());
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
