// One client connection: read a request, classify it, decide its limits, then either forward it
// upstream (bodies streamed both ways) or answer it locally. Each step is one async operation whose
// handler is the next step, in the manner of Beast's advanced server. A session runs on its
// thread's single-threaded io_context, which serialises its handlers as a strand would.
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <vector>

#include <spdlog/spdlog.h>

#include <sluice/classify/key_builder.hpp>
#include <sluice/classify/path.hpp>
#include <sluice/classify/request.hpp>
#include <sluice/proxy/header_screen.hpp>
#include <sluice/proxy/http_headers.hpp>
#include <sluice/proxy/responses.hpp>
#include <sluice/proxy/session.hpp>

namespace sluice::proxy {
namespace {

using RequestParser = http::request_parser<http::buffer_body>;
using ResponseParser = http::response_parser<http::buffer_body>;
using RequestWriter = http::request_serializer<http::buffer_body>;
using ResponseWriter = http::response_serializer<http::buffer_body>;
using LocalReply = http::response<http::span_body<char>>;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kXForwardedFor = "X-Forwarded-For";
// How long and how much a closing connection reads and drops (see Session::close).
constexpr std::chrono::seconds kLingerTime{2};
constexpr std::size_t kLingerBytes = 1024 * 1024;
// Method, spaces and "HTTP/1.1" around the target in a request line.
constexpr std::size_t kRequestLineOverhead = 32;
// What a 503 limiter_unavailable tells the client: store outages are usually short.
constexpr std::int64_t kStoreErrorRetryAfterSeconds = 1;

// True for errors of Beast's HTTP parser (malformed input), as opposed to socket errors.
bool is_parse_error(const beast::error_code& ec) {
  return &ec.category() == &make_error_code(http::error::end_of_stream).category() &&
         ec != http::error::end_of_stream && ec != http::error::need_buffer;
}

classify::IpAddress to_ip(const net::ip::address& address) {
  classify::IpAddress ip;
  if (address.is_v4()) return classify::IpAddress::from_v4(address.to_v4().to_uint());
  const auto bytes = address.to_v6().to_bytes();
  std::copy(bytes.begin(), bytes.end(), ip.bytes.begin());
  return ip;
}

// A request whose body length two parsers could read differently is refused (request smuggling):
// Transfer-Encoding must be exactly one "chunked" on HTTP/1.1 (Beast already rejects it next to
// Content-Length, and conflicting Content-Length values). A list of equal Content-Length values
// ("5, 5") is rewritten as one value so the upstream cannot read it otherwise.
bool framing_is_unambiguous(RequestParser& parser) {
  auto& req = parser.get();
  const auto encodings = req.count(http::field::transfer_encoding);
  if (encodings > 1) return false;
  if (encodings == 1) {
    std::string_view coding = req[http::field::transfer_encoding];
    return req.version() >= 11 && beast::iequals(coding, "chunked");
  }
  if (req.count(http::field::content_length) > 1 ||
      req[http::field::content_length].find(',') != std::string_view::npos) {
    const auto length = parser.content_length();
    if (!length) return false;
    req.content_length(*length);
  }
  return true;
}

class Session final : public std::enable_shared_from_this<Session>, private limit::DecideWaiter {
 public:
  Session(tcp::socket socket, Worker& worker) : client_(std::move(socket)), worker_(worker) {}

  void start() {
    beast::error_code ec;
    client_.socket().set_option(tcp::no_delay(true), ec);
    const auto peer = client_.socket().remote_endpoint(ec);
    if (ec) return;  // the client left before we looked
    peer_ = to_ip(peer.address());
    peer_text_.resize(46);
    peer_text_.resize(peer_.format(std::span<char, 46>(peer_text_.data(), 46)));
    read_request_header();
  }

 private:
  // ---- reading a request ------------------------------------------------------------------------

  void read_request_header() {
    request_.emplace();
    request_->header_limit(static_cast<std::uint32_t>(worker_.limits.max_header_bytes));
    request_->body_limit(boost::none);  // bodies are streamed, never held
    screen_.reset();
    client_.expires_after(requests_served_ == 0 ? worker_.limits.header_timeout
                                                : worker_.limits.idle_timeout);
    parse_request_header();
  }

  // Reads until the header section is buffered, screens it (HeaderScreen), then lets Beast parse
  // it. Bytes after the header stay in client_buffer_ for the body or the next request.
  void parse_request_header() {
    const auto data = client_buffer_.data();
    const std::string_view buffered(static_cast<const char*>(data.data()), data.size());
    switch (screen_.scan(buffered)) {
      case HeaderScreen::Verdict::complete:
        break;
      case HeaderScreen::Verdict::need_more: {
        if (buffered.size() >= worker_.limits.max_header_bytes) {
          return reply({.kind = screen_.in_request_line() ? ErrorKind::uri_too_long
                                                          : ErrorKind::header_fields_too_large},
                       true);
        }
        const std::size_t room = worker_.limits.max_header_bytes - buffered.size();
        client_.async_read_some(
            client_buffer_.prepare(std::min<std::size_t>(room, 16 * 1024)),
            beast::bind_front_handler(&Session::on_request_header_bytes, shared_from_this()));
        return;
      }
      case HeaderScreen::Verdict::request_line_too_long:
        return reply({.kind = ErrorKind::uri_too_long}, true);
      case HeaderScreen::Verdict::obs_fold:
        return reply({.kind = ErrorKind::bad_request, .message = "Obsolete line folding in header"},
                     true);
      case HeaderScreen::Verdict::bare_cr:
      case HeaderScreen::Verdict::control_byte:
        return reply({.kind = ErrorKind::bad_request, .message = "Invalid character in header"},
                     true);
    }
    beast::error_code ec;
    const std::size_t used = request_->put(client_buffer_.data(), ec);
    client_buffer_.consume(used);
    if (!ec && !request_->is_header_done()) ec = http::error::partial_message;
    on_request_header(ec, used);
  }

  void on_request_header_bytes(beast::error_code ec, std::size_t n) {
    if (ec) {
      if (ec == net::error::eof && client_buffer_.size() > 0) ec = http::error::partial_message;
      return on_request_header_error(ec);
    }
    client_buffer_.commit(n);
    parse_request_header();
  }

  void on_request_header(beast::error_code ec, std::size_t) {
    if (ec) return on_request_header_error(ec);
    auto& req = request_->get();
    client_keep_alive_ = req.keep_alive();
    if (!framing_is_unambiguous(*request_)) {
      return reply({.kind = ErrorKind::bad_request, .message = "Unsupported or ambiguous framing"},
                   true);
    }
    has_expect_continue_ = beast::iequals(req[http::field::expect], "100-continue");

    if (req.target().size() > worker_.limits.max_target_bytes) {
      return reply({.kind = ErrorKind::uri_too_long}, true);
    }
    std::string_view query;
    switch (classify::normalize_target(req.target(), path_, query)) {
      case classify::PathError::none:
        break;
      case classify::PathError::bad_percent_encoding:
        return reply(
            {.kind = ErrorKind::bad_request, .message = "Malformed percent-encoding in path"},
            true);
      default:
        return reply({.kind = ErrorKind::bad_request, .message = "Malformed request target"}, true);
    }
    forward_target_.assign(path_);
    if (!query.empty() || req.target().find('?') != std::string_view::npos) {
      forward_target_.push_back('?');
      forward_target_.append(query);
    }

    snapshot_ = worker_.snapshots.load();
    const auto& cfg = *snapshot_->config;
    route_ = snapshot_->router.match(req.method_string(), path_);
    if (route_ == nullptr) return reply({.kind = ErrorKind::not_found}, false);
    if (route_->limits.empty()) return forward();

    FieldsLookup headers(req.base());
    classify::RequestView view{
        .method = req.method_string(),
        .path = path_,
        .client = classify::client_ip(peer_, cfg.trusted_proxies,
                                      joined_values(req.base(), kXForwardedFor, scratch_),
                                      joined_values(req.base(), "Forwarded", scratch2_)),
        .headers = &headers,
    };
    const std::size_t n = route_->limits.size();
    if (checks_.size() < n) {
      checks_.resize(n);
      verdicts_.resize(n);
    }
    key_builder_.build(*route_, view, std::span(checks_.data(), n));
    call_.checks = std::span<const limit::LimitCheck>(checks_.data(), n);
    call_.verdicts = std::span<limit::Verdict>(verdicts_.data(), n);
    call_.mode = limit::Mode::charge_if_all_allowed;
    if (worker_.store.decide(call_, *this) == limit::Store::Completion::pending) {
      pending_self_ = shared_from_this();  // keeps the session alive until on_decided
      return;
    }
    act_on_decision();
  }

  void on_request_header_error(beast::error_code ec) {
    if (ec == net::error::eof || ec == http::error::end_of_stream ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return close();
    }
    if (ec == beast::error::timeout) {
      // A client that sent part of a header and stalled is told why; an idle one is just closed.
      if (client_buffer_.size() > 0) return reply({.kind = ErrorKind::request_timeout}, true);
      return close();
    }
    if (ec == http::error::header_limit) {
      return reply({.kind = ErrorKind::header_fields_too_large}, true);
    }
    if (is_parse_error(ec)) {
      return reply({.kind = ErrorKind::bad_request, .message = "Malformed HTTP request"}, true);
    }
    close();
  }

  void on_decided(limit::DecideCall&) override {
    auto self = std::move(pending_self_);
    act_on_decision();
  }

  void act_on_decision() {
    if (call_.outcome == limit::Outcome::store_error) return on_store_error();
    const bool allowed = call_.outcome == limit::Outcome::allowed;
    reported_ = verdict_to_report(call_.verdicts, allowed);
    const auto& verdict = call_.verdicts[*reported_];
    format_quota_headers(snapshot_->config->headers, route_->limits[*reported_], verdict, quota_);
    if (allowed) return forward();
    reply({.kind = ErrorKind::rate_limited,
           .route = route_->name,
           .limit = route_->limits[*reported_].name,
           .retry_after = limit::retry_after_seconds(verdict.retry_after)},
          false);
  }

  // The store could not decide. Never a 429: the route's on_store_error says what it means. The
  // store logs its own state changes, so nothing is logged per request here.
  void on_store_error() {
    switch (route_->on_store_error) {
      case config::OnStoreError::allow:
        return forward();
      case config::OnStoreError::deny:
        return reply({.kind = ErrorKind::limiter_unavailable,
                      .route = route_->name,
                      .retry_after = kStoreErrorRetryAfterSeconds},
                     false);
      case config::OnStoreError::local:
        if (worker_.fallback_store == nullptr) return forward();
        // The memory store always completes at once.
        worker_.fallback_store->decide(call_, *this);
        if (call_.outcome == limit::Outcome::store_error) return forward();
        return act_on_decision();
    }
  }

  // ---- forwarding -------------------------------------------------------------------------------

  void forward() {
    auto& req = request_->get();
    const std::string_view host = req[http::field::host];
    forwarded_host_.assign(host);
    std::string_view prior = joined_values(req.base(), kXForwardedFor, scratch_);
    forwarded_for_.assign(prior);
    if (!forwarded_for_.empty()) forwarded_for_.append(", ");
    forwarded_for_.append(peer_text_);

    remove_hop_by_hop(req.base());
    if (has_expect_continue_) req.erase(http::field::expect);  // sluice answers it itself
    req.target(forward_target_);
    req.version(11);
    req.set(kXForwardedFor, forwarded_for_);
    req.set("X-Forwarded-Proto", "http");
    if (!forwarded_host_.empty()) req.set("X-Forwarded-Host", forwarded_host_);
    req.keep_alive(true);

    if (has_expect_continue_ && !request_->is_done()) {
      net::async_write(client_, net::buffer(kContinue.data(), kContinue.size()),
                       beast::bind_front_handler(&Session::on_continue_sent, shared_from_this()));
      return;
    }
    acquire_upstream();
  }

  void on_continue_sent(beast::error_code ec, std::size_t) {
    if (ec) return close();
    acquire_upstream();
  }

  void acquire_upstream() {
    retried_ = false;
    upstream_ = worker_.pool.take_idle(route_->upstream);
    upstream_reused_ = upstream_ != nullptr;
    if (upstream_reused_) return send_request();
    connect_upstream();
  }

  void connect_upstream() {
    upstream_ = std::make_unique<beast::tcp_stream>(worker_.pool.executor());
    upstream_buffer_.clear();
    upstream_->expires_after(worker_.pool.target(route_->upstream).connect_timeout);
    upstream_->async_connect(
        worker_.pool.next_endpoint(route_->upstream),
        beast::bind_front_handler(&Session::on_upstream_connect, shared_from_this()));
  }

  void on_upstream_connect(beast::error_code ec) {
    if (ec) return upstream_failed(ec, "connect");
    upstream_->socket().set_option(tcp::no_delay(true), ec);
    send_request();
  }

  void send_request() {
    upstream_buffer_.clear();
    request_writer_.emplace(request_->get());
    auto& req = request_->get();
    if (!request_->is_done() && !req.chunked() && request_->content_length()) {
      // A body of known length moves as raw bytes (see relay_raw); chunked ones go through the
      // parser, which removes and re-applies the chunk framing.
      raw_[kRequestLeg] = {.active = true, .remaining = *request_->content_length()};
      upstream_->expires_after(worker_.pool.target(route_->upstream).timeout);
      http::async_write_header(*upstream_, *request_writer_,
                               beast::bind_front_handler(&Session::on_raw_header_written,
                                                         shared_from_this(), kRequestLeg));
      return;
    }
    relay_request_body();
  }

  // The request body moves in pieces of relay_buffer_bytes: read some from the client, write it to
  // the upstream, repeat. The first write carries the header too.
  void relay_request_body() {
    auto& body = request_->get().body();
    if (request_->is_done()) {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
      return write_request_piece();
    }
    body.data = relay_buffer();
    body.size = RelayBuffers::kBytes;
    // Beast reads as much as the flat buffer's spare capacity (512 bytes at least): give it room.
    client_buffer_.reserve(RelayBuffers::kBytes);
    client_.expires_after(worker_.limits.body_timeout);
    http::async_read_some(
        client_, client_buffer_, *request_,
        beast::bind_front_handler(&Session::on_request_piece, shared_from_this()));
  }

  void on_request_piece(beast::error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      // The client went away or sent a broken body: the upstream has a partial request, so its
      // connection cannot be reused.
      upstream_.reset();
      if (is_parse_error(ec)) {
        return reply({.kind = ErrorKind::bad_request, .message = "Malformed request body"}, true);
      }
      return close();
    }
    auto& body = request_->get().body();
    body.size = RelayBuffers::kBytes - body.size;
    // An empty piece must carry no pointer: Beast's chunked serializer would write an empty chunk,
    // which is the end-of-body marker.
    body.data = body.size == 0 ? nullptr : relay_buffer();
    body.more = !request_->is_done();
    body_bytes_sent_ += body.size;
    write_request_piece();
  }

  void write_request_piece() {
    upstream_->expires_after(worker_.pool.target(route_->upstream).timeout);
    http::async_write(
        *upstream_, *request_writer_,
        beast::bind_front_handler(&Session::on_request_piece_written, shared_from_this()));
  }

  void on_request_piece_written(beast::error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return upstream_failed(ec, "send");
    if (request_writer_->is_done()) return read_response_header();
    relay_request_body();
  }

  void read_response_header() {
    response_.emplace();
    response_->header_limit(static_cast<std::uint32_t>(worker_.limits.max_header_bytes));
    response_->body_limit(boost::none);
    if (request_->get().method() == http::verb::head) response_->skip(true);
    upstream_->expires_after(worker_.pool.target(route_->upstream).timeout);
    http::async_read_header(
        *upstream_, upstream_buffer_, *response_,
        beast::bind_front_handler(&Session::on_response_header, shared_from_this()));
  }

  void on_response_header(beast::error_code ec, std::size_t) {
    if (ec) return upstream_failed(ec, "response");
    auto& res = response_->get();
    if (res.result_int() / 100 == 1 && res.result() != http::status::switching_protocols) {
      // Interim responses (100 Continue, 103 Early Hints) were already handled or are optional:
      // drop them and wait for the final response.
      return read_response_header();
    }
    const bool upstream_keep_alive = res.keep_alive();
    upstream_reusable_ = upstream_keep_alive;
    remove_hop_by_hop(res.base());
    if (reported_) {
      for (std::size_t i = 0; i < quota_.count; ++i) {
        res.set(quota_.lines[i].name, quota_.lines[i].value);
      }
    }
    // A body delimited by the upstream closing cannot be relayed that way on a kept-alive client
    // connection: re-frame it as chunked.
    if (!response_->is_done() && !res.has_content_length() && !res.chunked() &&
        !response_->skip()) {
      res.chunked(true);
    }
    res.version(11);
    res.keep_alive(client_keep_alive_);
    response_writer_.emplace(res);
    if (!response_->is_done() && !res.chunked() && response_->content_length()) {
      raw_[kResponseLeg] = {.active = true, .remaining = *response_->content_length()};
      client_.expires_after(worker_.limits.send_timeout);
      response_started_ = true;
      http::async_write_header(client_, *response_writer_,
                               beast::bind_front_handler(&Session::on_raw_header_written,
                                                         shared_from_this(), kResponseLeg));
      return;
    }
    relay_response_body();
  }

  // ---- raw relay: bodies of known length
  // --------------------------------------------------------- Once the header is written, a
  // Content-Length body is copied as bytes, socket to socket through one pooled 64 KiB buffer: no
  // parser in the way, and each read is as large as the kernel has. Bytes that arrived with the
  // header (in the flat buffer) go first.

  beast::tcp_stream& raw_source(int leg) { return leg == kRequestLeg ? client_ : *upstream_; }
  beast::tcp_stream& raw_destination(int leg) { return leg == kRequestLeg ? *upstream_ : client_; }
  beast::flat_buffer& raw_source_buffer(int leg) {
    return leg == kRequestLeg ? client_buffer_ : upstream_buffer_;
  }
  std::chrono::milliseconds raw_read_timeout(int leg) const {
    return leg == kRequestLeg ? worker_.limits.body_timeout
                              : worker_.pool.target(route_->upstream).timeout;
  }
  std::chrono::milliseconds raw_write_timeout(int leg) const {
    return leg == kRequestLeg ? worker_.pool.target(route_->upstream).timeout
                              : worker_.limits.send_timeout;
  }

  void on_raw_header_written(int leg, beast::error_code ec, std::size_t) {
    if (ec) return raw_failed(leg, ec, false);
    relay_raw(leg);
  }

  void relay_raw(int leg) {
    auto& raw = raw_[leg];
    if (raw.remaining == 0) return raw_done(leg);
    auto& buffered = raw_source_buffer(leg);
    if (buffered.size() > 0) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffered.size(), raw.remaining));
      raw.from_buffer = true;
      raw_destination(leg).expires_after(raw_write_timeout(leg));
      net::async_write(
          raw_destination(leg), net::buffer(buffered.data().data(), n),
          beast::bind_front_handler(&Session::on_raw_written, shared_from_this(), leg));
      return;
    }
    raw.from_buffer = false;
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(RelayBuffers::kBytes, raw.remaining));
    raw_source(leg).expires_after(raw_read_timeout(leg));
    raw_source(leg).async_read_some(
        net::buffer(relay_buffer(), n),
        beast::bind_front_handler(&Session::on_raw_read, shared_from_this(), leg));
  }

  void on_raw_read(int leg, beast::error_code ec, std::size_t n) {
    if (ec) return raw_failed(leg, ec, true);
    raw_destination(leg).expires_after(raw_write_timeout(leg));
    net::async_write(raw_destination(leg), net::buffer(relay_buffer(), n),
                     beast::bind_front_handler(&Session::on_raw_written, shared_from_this(), leg));
  }

  void on_raw_written(int leg, beast::error_code ec, std::size_t n) {
    if (ec) return raw_failed(leg, ec, false);
    auto& raw = raw_[leg];
    if (raw.from_buffer) raw_source_buffer(leg).consume(n);
    raw.remaining -= n;
    if (leg == kRequestLeg) body_bytes_sent_ += n;
    relay_raw(leg);
  }

  void raw_done(int leg) {
    if (leg == kRequestLeg) return read_response_header();
    // Bytes past the body mean the upstream broke framing: never reuse that connection.
    if (upstream_reusable_ && upstream_buffer_.size() == 0) {
      worker_.pool.give_back(route_->upstream, std::move(upstream_));
    }
    upstream_.reset();
    finish_exchange(client_keep_alive_);
  }

  void raw_failed(int leg, beast::error_code ec, bool reading) {
    if (leg == kRequestLeg && !reading) return upstream_failed(ec, "send");
    if (leg == kResponseLeg) {
      spdlog::debug("route {}: response relay broke off: {}", route_->name, ec.message());
    }
    // The client left mid-upload, or part of the response is already with the client: all that
    // is left is to end both connections.
    upstream_.reset();
    close();
  }

  bool request_complete() const {
    const auto& raw = raw_[kRequestLeg];
    return raw.active ? raw.remaining == 0 : request_->is_done();
  }

  void relay_response_body() {
    auto& body = response_->get().body();
    if (response_->is_done()) {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
      return write_response_piece();
    }
    body.data = relay_buffer();
    body.size = RelayBuffers::kBytes;
    upstream_buffer_.reserve(RelayBuffers::kBytes);
    upstream_->expires_after(worker_.pool.target(route_->upstream).timeout);
    http::async_read_some(
        *upstream_, upstream_buffer_, *response_,
        beast::bind_front_handler(&Session::on_response_piece, shared_from_this()));
  }

  void on_response_piece(beast::error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      // Part of the response is already with the client: all we can do is end both connections.
      spdlog::debug("route {}: upstream response broke off: {}", route_->name, ec.message());
      upstream_.reset();
      return close();
    }
    auto& body = response_->get().body();
    body.size = RelayBuffers::kBytes - body.size;
    // An empty piece must carry no pointer: Beast's chunked serializer would write an empty chunk,
    // which is the end-of-body marker.
    body.data = body.size == 0 ? nullptr : relay_buffer();
    body.more = !response_->is_done();
    write_response_piece();
  }

  void write_response_piece() {
    client_.expires_after(worker_.limits.send_timeout);
    response_started_ = true;
    http::async_write(
        client_, *response_writer_,
        beast::bind_front_handler(&Session::on_response_piece_written, shared_from_this()));
  }

  void on_response_piece_written(beast::error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      upstream_.reset();
      return close();
    }
    if (!response_writer_->is_done()) return relay_response_body();
    if (upstream_reusable_ && response_->is_done()) {
      worker_.pool.give_back(route_->upstream, std::move(upstream_));
    }
    upstream_.reset();
    finish_exchange(client_keep_alive_);
  }

  void upstream_failed(beast::error_code ec, const char* phase) {
    upstream_.reset();
    // A pooled connection the upstream closed while idle fails on first use. A request without a
    // body is safe to send again, once, on a fresh connection.
    const bool stale =
        upstream_reused_ && (ec == net::error::eof || ec == http::error::end_of_stream ||
                             ec == net::error::connection_reset || ec == net::error::broken_pipe);
    if (stale && !retried_ && body_bytes_sent_ == 0 && request_complete()) {
      retried_ = true;
      upstream_reused_ = false;
      return connect_upstream();
    }
    spdlog::warn("route {}: upstream {} failed: {}", route_->name, phase, ec.message());
    if (response_started_) return close();
    const bool timed_out = ec == beast::error::timeout;
    reply({.kind = timed_out ? ErrorKind::gateway_timeout : ErrorKind::bad_gateway,
           .route = route_->name},
          !request_complete());
  }

  // ---- local replies ----------------------------------------------------------------------------

  // Answers the current request from sluice itself. `must_close` when the connection cannot carry
  // another request (malformed input, a body we will not read).
  void reply(const ErrorReply& error, bool must_close) {
    // An unread body must be consumed before the next request can be parsed; a small one is
    // drained first, a large or unknown-length one means closing.
    if (!must_close && request_ && !request_complete()) {
      const auto length = request_->content_length();
      if (!length || *length > worker_.limits.drain_body_bytes || has_expect_continue_) {
        must_close = true;
      } else {
        pending_error_ = error;
        return drain_request_body();
      }
    }
    write_error_body(error, reply_body_);
    reply_.emplace();
    auto& res = *reply_;
    res.result(status_code(error.kind));
    res.version(11);
    res.set(http::field::content_type, "application/json");
    if (error.retry_after > 0) res.set(http::field::retry_after, std::to_string(error.retry_after));
    if (error.kind == ErrorKind::rate_limited) {
      for (std::size_t i = 0; i < quota_.count; ++i) {
        res.set(quota_.lines[i].name, quota_.lines[i].value);
      }
    }
    res.body() = http::span_body<char>::value_type(reply_body_.data(), reply_body_.size());
    res.keep_alive(!must_close && client_keep_alive_);
    res.prepare_payload();
    client_.expires_after(worker_.limits.send_timeout);
    http::async_write(client_, res,
                      beast::bind_front_handler(&Session::on_reply_written, shared_from_this(),
                                                must_close || !client_keep_alive_));
  }

  void drain_request_body() {
    auto& body = request_->get().body();
    body.data = relay_buffer();
    body.size = RelayBuffers::kBytes;
    client_.expires_after(worker_.limits.body_timeout);
    http::async_read(client_, client_buffer_, *request_,
                     beast::bind_front_handler(&Session::on_drained, shared_from_this()));
  }

  void on_drained(beast::error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) return drain_request_body();
    if (ec) return close();
    reply(*pending_error_, false);
  }

  void on_reply_written(bool close_after, beast::error_code ec, std::size_t) {
    if (ec) return close();
    finish_exchange(!close_after);
  }

  // Taken from the thread's pool when a body starts moving, returned when the exchange ends.
  char* relay_buffer() {
    if (!relay_buffer_) relay_buffer_ = worker_.relay_buffers.take();
    return relay_buffer_.get();
  }

  void finish_exchange(bool keep_alive) {
    if (relay_buffer_) worker_.relay_buffers.give_back(std::move(relay_buffer_));
    ++requests_served_;
    reply_.reset();
    request_writer_.reset();
    response_writer_.reset();
    response_.reset();
    reported_.reset();
    quota_.count = 0;
    route_ = nullptr;
    snapshot_.reset();
    body_bytes_sent_ = 0;
    response_started_ = false;
    raw_[kRequestLeg] = {};
    raw_[kResponseLeg] = {};
    if (!keep_alive) return close();
    read_request_header();
  }

  // Ends the connection. Sends FIN first, then reads and drops whatever the client still sends for
  // a moment: closing with unread bytes makes the kernel answer with a reset, which can destroy
  // the last response before the client has read it (the "lingering close" of RFC 9112 9.6).
  void close() {
    beast::error_code ec;
    client_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return client_.socket().close(ec);
    lingered_bytes_ = 0;
    linger();
  }

  void linger() {
    client_.expires_after(kLingerTime);
    client_.async_read_some(net::buffer(relay_buffer(), RelayBuffers::kBytes),
                            beast::bind_front_handler(&Session::on_linger, shared_from_this()));
  }

  void on_linger(beast::error_code ec, std::size_t n) {
    lingered_bytes_ += n;
    if (ec || lingered_bytes_ > kLingerBytes) {
      client_.socket().close(ec);
      return;
    }
    linger();
  }

  beast::tcp_stream client_;
  Worker& worker_;
  beast::flat_buffer client_buffer_;
  HeaderScreen screen_{worker_.limits.max_target_bytes + kRequestLineOverhead};
  std::unique_ptr<char[]> relay_buffer_;
  classify::IpAddress peer_;
  std::string peer_text_;
  std::size_t requests_served_ = 0;
  std::size_t lingered_bytes_ = 0;

  // The current request.
  std::optional<RequestParser> request_;
  std::shared_ptr<const Snapshot> snapshot_;
  const config::Route* route_ = nullptr;
  std::string path_;
  std::string forward_target_;
  std::string forwarded_for_;
  std::string forwarded_host_;
  std::string scratch_;
  std::string scratch2_;
  bool client_keep_alive_ = false;
  bool has_expect_continue_ = false;

  // Deciding.
  classify::KeyBuilder key_builder_;
  std::vector<limit::LimitCheck> checks_;
  std::vector<limit::Verdict> verdicts_;
  limit::DecideCall call_;
  std::shared_ptr<Session> pending_self_;
  std::optional<std::size_t> reported_;  // the verdict the quota headers describe
  QuotaHeaders quota_;

  // Forwarding.
  std::unique_ptr<beast::tcp_stream> upstream_;
  beast::flat_buffer upstream_buffer_;
  bool upstream_reused_ = false;
  bool upstream_reusable_ = false;
  bool retried_ = false;
  bool response_started_ = false;
  std::uint64_t body_bytes_sent_ = 0;
  std::optional<RequestWriter> request_writer_;
  struct RawBody {
    bool active = false;
    std::uint64_t remaining = 0;  // body bytes still to copy
    bool from_buffer = false;     // the write in flight comes from the source's flat buffer
  };
  static constexpr int kRequestLeg = 0;
  static constexpr int kResponseLeg = 1;
  RawBody raw_[2];
  std::optional<ResponseParser> response_;
  std::optional<ResponseWriter> response_writer_;

  // Local replies.
  std::string reply_body_;
  std::optional<LocalReply> reply_;
  std::optional<ErrorReply> pending_error_;
};

}  // namespace

void start_session(tcp::socket socket, Worker& worker) {
  std::make_shared<Session>(std::move(socket), worker)->start();
}

}  // namespace sluice::proxy
