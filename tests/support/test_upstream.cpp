// sluice_test_upstream --port N: a small real HTTP/1.1 server the integration tests put behind
// sluice. Single-threaded, one coroutine per connection; bodies are streamed both ways in 64 KiB
// pieces and never held whole, so it cannot hide buffering in the proxy in front of it.
//
//   any path        200, JSON echo of what arrived, plus X-Upstream-Connection: <connection id>
//   /slow?ms=N      the echo, after N ms (a timer; other connections keep being served)
//   /bytes?n=N      N bytes of a known pattern (&chunked=1 for chunked encoding)
//   /upload*        reads the body and answers {"bodyBytes":N,"patternOk":bool}
//   /status/NNN     status NNN with the echo as body (no body for 1xx/204/304); on any other
//                   echoing path, ?status=NNN does the same
//   /close          the echo with Connection: close, then closes
//   /stats          {"requests":R,"connections":C,"targets":[the last 100 targets]}; not itself
//                   recorded as a request (its connection is counted)
//   /until-close?n=N  N pattern bytes after a head with neither Content-Length nor
//                   Transfer-Encoding, then closes: a body delimited by the end of the connection
//   /raw/NAME       exact canned bytes, most of them a malformed response (see kRawResponses),
//                   "{C}" replaced by the connection id
//
// Pattern bytes: the byte at offset i of a body is i % 251, so both ends can check a stream of
// any length without storing it.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sluice/net.hpp>

namespace {

using sluice::tcp;
namespace net = sluice::net;
namespace beast = boost::beast;
namespace http = boost::beast::http;

constexpr std::size_t kPieceSize = 64 * 1024;
constexpr std::size_t kPatternPeriod = 251;
constexpr std::size_t kRecentTargets = 100;

// What the server has seen, so tests can check what reached it (and what did not).
struct Stats {
  std::uint64_t requests = 0;
  std::uint64_t connections = 0;
  std::deque<std::string> targets;

  void record(std::string_view target) {
    ++requests;
    targets.emplace_back(target);
    if (targets.size() > kRecentTargets) targets.pop_front();
  }
};

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::optional<std::uint64_t> query_number(std::string_view target, std::string_view name) {
  auto question = target.find('?');
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      std::uint64_t value = 0;
      auto digits = pair.substr(eq + 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (ec == std::errc{} && end == digits.data() + digits.size()) return value;
      return std::nullopt;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// Headers as a JSON object in arrival order, names as sent; a repeated name becomes an array of
// its values, so a test can tell "sent once" from "sent twice".
std::string headers_json(const http::fields& fields) {
  std::vector<std::pair<std::string_view, std::vector<std::string_view>>> grouped;
  for (const auto& field : fields) {
    auto name = field.name_string();
    auto found = std::find_if(grouped.begin(), grouped.end(),
                              [&](const auto& entry) { return iequals(entry.first, name); });
    if (found == grouped.end()) {
      grouped.push_back({name, {field.value()}});
    } else {
      found->second.push_back(field.value());
    }
  }
  std::string out = "{";
  for (const auto& [name, values] : grouped) {
    if (out.size() > 1) out.push_back(',');
    out += json_string(name);
    out.push_back(':');
    if (values.size() == 1) {
      out += json_string(values.front());
    } else {
      out.push_back('[');
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out.push_back(',');
        out += json_string(values[i]);
      }
      out.push_back(']');
    }
  }
  out.push_back('}');
  return out;
}

// A response written byte for byte, to show the proxy what no HTTP library would send.
struct RawResponse {
  std::string_view name;
  std::string first;                // written at once
  std::chrono::milliseconds pause;  // then this pause (none when zero)
  std::string second;               // and these bytes, in a separate write
  bool keep_open = false;           // serve further requests afterwards (else close)
};

std::string many_filler_fields(int count, std::size_t value_size) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += "X-Filler-" + std::to_string(i) + ": " + std::string(value_size, 'v') + "\r\n";
  }
  return out;
}

const std::vector<RawResponse>& raw_responses() {
  using std::chrono::milliseconds;
  static const std::string ok = "HTTP/1.1 200 OK\r\nX-Upstream-Connection: {C}\r\n";
  // A complete response hidden after a body: whoever reads it as the next response was smuggled.
  static const std::string smuggled =
      "HTTP/1.1 200 OK\r\nX-Smuggled: yes\r\nContent-Length: 8\r\n\r\nsmuggled";
  static const std::vector<RawResponse> responses = {
      {"garbage-status-line", "HTTP/1.1 2x0 Broken\r\nContent-Length: 2\r\n\r\nok", {}, {}},
      {"te-and-cl",
       ok + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       {},
       {}},
      {"xchunked", ok + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", {}, {}},
      {"two-lengths", ok + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {}, {}},
      {"obs-fold", ok + "X-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok", {}, {}},
      {"nul-in-value", ok + "X-Bad: a" + '\0' + "b\r\nContent-Length: 2\r\n\r\nok", {}, {}},
      {"huge-head", ok + many_filler_fields(40, 1000) + "Content-Length: 2\r\n\r\nok", {}, {}},
      // Larger than a relay buffer (64 KiB) in fewer than 100 fields.
      {"huger-head", ok + many_filler_fields(80, 1000) + "Content-Length: 2\r\n\r\nok", {}, {}},
      {"switching-protocols",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       {},
       {}},
      {"bad-chunk-size",
       ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
       {},
       {}},
      // The head and a good chunk go first, so the proxy has started the response when the bad
      // chunk size arrives.
      {"bad-chunk-size-later", ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
       milliseconds(150), "zz\r\nworld\r\n0\r\n\r\n"},
      {"extra-bytes", ok + "Content-Length: 5\r\n\r\nhello" + smuggled, {}, {}, true},
      {"extra-bytes-later", ok + "Content-Length: 5\r\n\r\nhello", milliseconds(150), smuggled,
       true},
      // A body cut short: the upstream closes right after its second piece, so the close is
      // likely there before sluice has read that piece.
      {"truncated", ok + "Content-Length: 100\r\n\r\nhello", milliseconds(150), "world"},
      // A keep-alive response, then the close at once: the close may arrive with the response.
      {"close-at-once", ok + "Content-Length: 5\r\n\r\nhello", {}, {}},
      // A keep-alive response, then the close of an idle connection (as Node's keepAliveTimeout).
      {"close-later", ok + "Content-Length: 5\r\n\r\nhello", milliseconds(150), {}},
      // A keep-alive response; the connection's next request is read and left unanswered, the
      // connection closed (the race of an idle timeout with a reused connection).
      {"drop-next", ok + "Content-Length: 5\r\n\r\nhello", {}, {}, true},
  };
  return responses;
}

const RawResponse* find_raw_response(std::string_view name) {
  for (const auto& response : raw_responses()) {
    if (response.name == name) return &response;
  }
  return nullptr;
}

// Counts body bytes and checks them against the pattern without keeping them.
struct BodyTally {
  std::uint64_t bytes = 0;
  bool pattern_ok = true;

  void add(const char* data, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
      if (static_cast<unsigned char>(data[i]) != (bytes + i) % kPatternPeriod) {
        pattern_ok = false;
        break;
      }
    }
    bytes += size;
  }
};

class ConnectionHandler {
 public:
  ConnectionHandler(tcp::socket socket, Stats& stats, std::uint64_t id)
      : stream_(std::move(socket)), stats_(stats), id_(id), piece_(kPieceSize) {
    // A pattern buffer one period longer than a piece: any offset's piece is a slice of it.
    pattern_.resize(kPieceSize + kPatternPeriod);
    for (std::size_t i = 0; i < pattern_.size(); ++i) {
      pattern_[i] = static_cast<char>(i % kPatternPeriod);
    }
  }

  net::awaitable<void> run() {
    for (std::uint64_t request_number = 1;; ++request_number) {
      http::request_parser<http::buffer_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(boost::none);
      beast::error_code ec;
      co_await http::async_read_header(stream_, buffer_, parser,
                                       net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        // A closed idle connection is normal; anything else helps explain a failing test.
        if (ec != http::error::end_of_stream && ec != net::error::eof &&
            ec != net::error::connection_reset && ec != net::error::operation_aborted) {
          log_error(request_number, "reading the request head", ec);
        }
        co_return;
      }
      auto& request = parser.get();
      if (drop_next_request_) {
        // As an upstream whose idle timeout fired just as this request arrived: read, unanswered.
        std::cout << "connection " << id_ << " request " << request_number << ": "
                  << request.method_string() << " " << request.target() << " dropped unanswered"
                  << std::endl;
        stats_.record(std::string(request.target()));
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        co_return;
      }

      if (iequals(request[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go_on{http::status::continue_, request.version()};
        co_await http::async_write(stream_, go_on, net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
      }

      BodyTally body;
      while (!parser.is_done()) {
        request.body().data = piece_.data();
        request.body().size = piece_.size();
        co_await http::async_read(stream_, buffer_, parser,
                                  net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
          log_error(request_number, "reading the request body", ec);
          co_return;
        }
        body.add(piece_.data(), piece_.size() - request.body().size);
      }

      std::string target(request.target());
      std::string_view path = path_of(target);
      bool keep_alive = request.keep_alive();
      if (path != "/stats") stats_.record(target);

      if (path == "/stats") {
        ec = co_await send_json(http::status::ok, request.version(), keep_alive, stats_json());
      } else if (path == "/bytes") {
        ec = co_await send_bytes(request.version(), keep_alive,
                                 query_number(target, "n").value_or(0),
                                 query_number(target, "chunked").value_or(0) != 0);
      } else if (path == "/until-close") {
        ec = co_await send_until_close(query_number(target, "n").value_or(0));
        keep_alive = false;
      } else if (const RawResponse* raw =
                     path.starts_with("/raw/") ? find_raw_response(path.substr(5)) : nullptr) {
        ec = co_await send_raw(*raw);
        keep_alive = keep_alive && raw->keep_open;
        drop_next_request_ = raw->name == "drop-next";
      } else if (path.starts_with("/upload")) {
        ec = co_await send_json(http::status::ok, request.version(), keep_alive,
                                "{\"bodyBytes\":" + std::to_string(body.bytes) +
                                    ",\"patternOk\":" + (body.pattern_ok ? "true" : "false") + "}");
      } else {
        if (path == "/slow") {
          net::steady_timer timer(stream_.get_executor());
          timer.expires_after(std::chrono::milliseconds(query_number(target, "ms").value_or(0)));
          co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
        if (path == "/close") keep_alive = false;
        auto status = query_number(target, "status").value_or(200);
        if (path.starts_with("/status/")) {
          auto digits = path.substr(8);
          std::from_chars(digits.data(), digits.data() + digits.size(), status);
        }
        if (status < 100 || status > 999) status = 500;
        ec = co_await send_json(static_cast<http::status>(status), request.version(), keep_alive,
                                echo_json(request, body.bytes, request_number));
      }
      // One line per request: with sluice's log, it shows what reached the upstream.
      std::cout << "connection " << id_ << " request " << request_number << ": "
                << request.method_string() << " " << target << " bodyBytes=" << body.bytes
                << (ec ? " (response not sent: " + ec.message() + ")" : std::string()) << std::endl;
      if (ec || !keep_alive) break;
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

 private:
  void log_error(std::uint64_t request_number, std::string_view doing,
                 const beast::error_code& ec) const {
    std::cerr << "connection " << id_ << " request " << request_number << ": " << doing << ": "
              << ec.message() << std::endl;
  }

  std::string echo_json(const http::request<http::buffer_body>& request, std::uint64_t body_bytes,
                        std::uint64_t request_number) const {
    std::string out = "{\"method\":" + json_string(request.method_string());
    out += ",\"target\":" + json_string(request.target());
    out += ",\"headers\":" + headers_json(request.base());
    out += ",\"bodyBytes\":" + std::to_string(body_bytes);
    out += ",\"connection\":" + std::to_string(id_);
    out += ",\"request\":" + std::to_string(request_number) + "}";
    return out;
  }

  std::string stats_json() const {
    std::string out = "{\"requests\":" + std::to_string(stats_.requests) +
                      ",\"connections\":" + std::to_string(stats_.connections) + ",\"targets\":[";
    for (std::size_t i = 0; i < stats_.targets.size(); ++i) {
      if (i > 0) out.push_back(',');
      out += json_string(stats_.targets[i]);
    }
    out += "]}";
    return out;
  }

  net::awaitable<beast::error_code> send_json(http::status status, unsigned version,
                                              bool keep_alive, std::string body) {
    http::response<http::string_body> response{status, version};
    response.set(http::field::content_type, "application/json");
    response.set("X-Upstream-Connection", std::to_string(id_));
    response.keep_alive(keep_alive);
    unsigned code = static_cast<unsigned>(status);
    // 1xx, 204 and 304 carry no body and no Content-Length.
    if (code >= 200 && code != 204 && code != 304) {
      response.body() = std::move(body);
      response.prepare_payload();
    }
    beast::error_code ec;
    co_await http::async_write(stream_, response, net::redirect_error(net::use_awaitable, ec));
    co_return ec;
  }

  // No Content-Length, no Transfer-Encoding: the body ends when the connection does (the caller
  // closes it).
  net::awaitable<beast::error_code> send_until_close(std::uint64_t total) {
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Upstream-Connection: " +
        std::to_string(id_) + "\r\n\r\n";
    beast::error_code ec;
    co_await net::async_write(stream_, net::buffer(head),
                              net::redirect_error(net::use_awaitable, ec));
    for (std::uint64_t sent = 0; sent < total && !ec;) {
      std::size_t size =
          static_cast<std::size_t>(std::min<std::uint64_t>(kPieceSize, total - sent));
      co_await net::async_write(stream_, net::buffer(pattern_.data() + sent % kPatternPeriod, size),
                                net::redirect_error(net::use_awaitable, ec));
      sent += size;
    }
    co_return ec;
  }

  net::awaitable<beast::error_code> send_raw(const RawResponse& raw) {
    auto with_id = [&](std::string bytes) {
      const std::string id = std::to_string(id_);
      for (auto at = bytes.find("{C}"); at != std::string::npos; at = bytes.find("{C}", at)) {
        bytes.replace(at, 3, id);
      }
      return bytes;
    };
    const std::string first = with_id(raw.first);
    beast::error_code ec;
    co_await net::async_write(stream_, net::buffer(first),
                              net::redirect_error(net::use_awaitable, ec));
    if (ec || raw.pause.count() == 0) co_return ec;
    net::steady_timer timer(stream_.get_executor());
    timer.expires_after(raw.pause);
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (ec || raw.second.empty()) co_return ec;
    const std::string second = with_id(raw.second);
    co_await net::async_write(stream_, net::buffer(second),
                              net::redirect_error(net::use_awaitable, ec));
    co_return ec;
  }

  net::awaitable<beast::error_code> send_bytes(unsigned version, bool keep_alive,
                                               std::uint64_t total, bool chunked) {
    http::response<http::buffer_body> response{http::status::ok, version};
    response.set(http::field::content_type, "application/octet-stream");
    response.set("X-Upstream-Connection", std::to_string(id_));
    response.keep_alive(keep_alive);
    if (chunked) {
      response.chunked(true);
    } else {
      response.content_length(total);
    }
    response.body().data = nullptr;
    response.body().more = true;
    http::response_serializer<http::buffer_body> serializer{response};
    beast::error_code ec;
    co_await http::async_write_header(stream_, serializer,
                                      net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return ec;
    for (std::uint64_t sent = 0; sent < total;) {
      std::size_t size =
          static_cast<std::size_t>(std::min<std::uint64_t>(kPieceSize, total - sent));
      response.body().data = pattern_.data() + sent % kPatternPeriod;
      response.body().size = size;
      response.body().more = true;
      co_await http::async_write(stream_, serializer, net::redirect_error(net::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return ec;
      sent += size;
    }
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = false;
    co_await http::async_write(stream_, serializer, net::redirect_error(net::use_awaitable, ec));
    co_return ec;
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Stats& stats_;
  std::uint64_t id_;
  bool drop_next_request_ = false;  // after /raw/drop-next
  std::vector<char> piece_;
  std::vector<char> pattern_;
};

net::awaitable<void> serve(tcp::socket socket, Stats& stats, std::uint64_t id) {
  ConnectionHandler handler(std::move(socket), stats, id);
  co_await handler.run();
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, Stats& stats) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec == net::error::operation_aborted) co_return;
    if (ec) continue;
    socket.set_option(tcp::no_delay(true), ec);
    net::co_spawn(acceptor.get_executor(), serve(std::move(socket), stats, ++stats.connections),
                  net::detached);
  }
}

int usage() {
  std::cerr << "usage: sluice_test_upstream --port N   (0 picks a free port)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<unsigned short> port;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      std::string_view digits = argv[++i];
      unsigned short value = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (ec != std::errc{} || end != digits.data() + digits.size()) return usage();
      port = value;
    } else {
      return usage();
    }
  }
  if (!port) return usage();

  try {
    net::io_context io{1};
    tcp::acceptor acceptor(io);
    tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), *port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(net::socket_base::max_listen_connections);

    Stats stats;
    net::co_spawn(io, accept_loop(acceptor, stats), net::detached);
    net::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const beast::error_code&, int) { io.stop(); });

    std::cout << "ready " << acceptor.local_endpoint().port() << std::endl;
    io.run();
  } catch (const std::exception& e) {
    std::cerr << "sluice_test_upstream: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
