// One client connection: read a request, classify it, decide its limits, then either forward it
// upstream (bodies streamed both ways) or answer it locally. Each step is one async operation whose
// handler is the next step, in the manner of Beast's advanced server. A session runs on its
// thread's single-threaded io_context, which serialises its handlers as a strand would.
//
// The HTTP layer is sluice's own (http1/): a request head is parsed once, in place, and forwarded
// as one rendered head plus the body bytes that came with it, in a single write. Bodies move as raw
// bytes through a pooled buffer; chunked ones are followed by a ChunkedScanner so their end is
// known without re-framing them. Nothing here allocates per request once a connection's buffers
// have grown.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include <sluice/classify/key_builder.hpp>
#include <sluice/classify/path.hpp>
#include <sluice/classify/request.hpp>
#include <sluice/http1/chunked.hpp>
#include <sluice/http1/head_writer.hpp>
#include <sluice/http1/message.hpp>
#include <sluice/proxy/drained_read.hpp>
#include <sluice/proxy/responses.hpp>
#include <sluice/proxy/session.hpp>

namespace sluice::proxy {
namespace {

using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr std::string_view kCrlf = "\r\n";
// How long and how much a closing connection reads and drops (see Session::close).
constexpr std::chrono::seconds kLingerTime{2};
constexpr std::size_t kLingerBytes = 1024 * 1024;
// What a 503 limiter_unavailable tells the client: store outages are usually short.
constexpr std::int64_t kStoreErrorRetryAfterSeconds = 1;
// A connection's input buffer starts at this size and doubles up to max_header_bytes.
constexpr std::size_t kInitialInputBytes = 4096;
// While the store decides, the store's own deadline applies.
constexpr std::chrono::hours kNoDeadline{24 * 365};

classify::IpAddress to_ip(const net::ip::address& address) {
  if (address.is_v4()) return classify::IpAddress::from_v4(address.to_v4().to_uint());
  classify::IpAddress ip;
  const auto bytes = address.to_v6().to_bytes();
  std::copy(bytes.begin(), bytes.end(), ip.bytes.begin());
  return ip;
}

std::string_view forwarding_header_name(const config::Config& cfg) noexcept {
  return cfg.client_ip_header == classify::ForwardingHeader::forwarded ? "Forwarded"
                                                                       : "X-Forwarded-For";
}

// A connection the peer ended, as opposed to one that broke in some other way.
bool is_disconnect(const error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe;
}

// Lets the classifier read the parsed head.
class HeadLookup final : public classify::HeaderLookup {
 public:
  explicit HeadLookup(const http1::MessageHead& head) : head_(head) {}
  std::string_view get(std::string_view name) const noexcept override { return head_.field(name); }

 private:
  const http1::MessageHead& head_;
};

// The bytes received from the client and not yet used. A request head is parsed in place here, so
// the buffer grows (up to the head size limit) rather than ever splitting a head; it shrinks back
// when a connection goes idle after a large head.
class InputBuffer {
 public:
  std::string_view data() const noexcept { return {storage_.get() + begin_, end_ - begin_}; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }

  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Free space after the data: at least `want` bytes unless that would take the capacity past
  // `limit`. Views into data() stay valid only until the next call.
  std::span<char> prepare(std::size_t want, std::size_t limit) {
    if (capacity_ - end_ >= want) return room();
    if (begin_ > 0) {
      std::memmove(storage_.get(), storage_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (capacity_ - end_ >= want) return room();
    }
    if (capacity_ >= limit) return room();
    std::size_t next = std::max(capacity_ * 2, kInitialInputBytes);
    while (next - end_ < want && next < limit)
      next *= 2;
    next = std::max(std::min(next, limit), capacity_);
    auto grown = std::make_unique_for_overwrite<char[]>(next);     // only received bytes are read
    if (end_ > 0) std::memcpy(grown.get(), storage_.get(), end_);  // storage_ may still be null
    storage_ = std::move(grown);
    capacity_ = next;
    return room();
  }
  void commit(std::size_t n) noexcept { end_ += n; }

  void append(std::string_view bytes) {
    auto space = prepare(bytes.size(), std::max(capacity_, end_ - begin_ + bytes.size()));
    std::memcpy(space.data(), bytes.data(), bytes.size());
    commit(bytes.size());
  }

  void shrink_if_empty() {
    if (empty() && capacity_ > kInitialInputBytes) {
      storage_.reset();
      capacity_ = 0;
    }
  }

  // Trades storage with a closed connection's spares (SessionSpares): nothing buffered survives.
  void swap_storage(std::unique_ptr<char[]>& storage, std::size_t& capacity) noexcept {
    std::swap(storage_, storage);
    std::swap(capacity_, capacity);
    begin_ = end_ = 0;
  }

 private:
  std::span<char> room() noexcept { return {storage_.get() + end_, capacity_ - end_}; }

  std::unique_ptr<char[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// Writes `n` as lower-case hex, the size line of one chunk.
std::string_view chunk_size_line(std::size_t n, std::array<char, 24>& storage) {
  auto [end, ec] = std::to_chars(storage.data(), storage.data() + 16, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  return {storage.data(), static_cast<std::size_t>(end - storage.data())};
}

// Past this capacity a buffer goes with its connection rather than waiting for the next one, so
// one large head does not pin memory in the spares for good.
constexpr std::size_t kMaxSpareBytes = 16 * 1024;

template <typename Container>
void empty_or_free(Container& c) noexcept {
  if (c.capacity() * sizeof(typename Container::value_type) > kMaxSpareBytes) {
    Container().swap(c);
  } else {
    c.clear();
  }
}

}  // namespace

// The members of a Session whose capacity is worth keeping between connections.
struct SessionSpares::Parts {
  std::unique_ptr<char[]> input;
  std::size_t input_capacity = 0;
  std::vector<http1::Field> request_fields;
  std::vector<http1::Field> response_fields;
  std::vector<limit::LimitCheck> checks;
  std::vector<limit::Verdict> verdicts;
  std::string path, forward_target, scratch, upstream_head, response_head, reply_body, reply;

  // Empties what a session gave back; an input buffer that grew is dropped, as an idle
  // connection drops it.
  void trim() noexcept {
    if (input_capacity != kInitialInputBytes) {
      input.reset();
      input_capacity = 0;
    }
    empty_or_free(request_fields);
    empty_or_free(response_fields);
    empty_or_free(checks);
    empty_or_free(verdicts);
    for (auto* text :
         {&path, &forward_target, &scratch, &upstream_head, &response_head, &reply_body, &reply})
      empty_or_free(*text);
  }
};

SessionSpares::SessionSpares() = default;
SessionSpares::~SessionSpares() = default;

std::unique_ptr<SessionSpares::Parts> SessionSpares::take() {
  if (free_.empty()) return std::make_unique<Parts>();
  auto parts = std::move(free_.back());
  free_.pop_back();
  return parts;
}

void SessionSpares::give_back(std::unique_ptr<Parts> parts) {
  parts->trim();
  if (free_.size() < kMaxFree) free_.push_back(std::move(parts));
}

namespace {

// Everything the bytes of a 429 depend on besides the snapshot's config: its route and limit
// (names, window, header style), the verdict's numbers as they are written, and the connection
// header. The snapshot is held, so a later one cannot take its routes' addresses.
struct RenderedRefusal {
  std::shared_ptr<const Snapshot> snapshot;  // null: reply_ holds no 429
  const config::Route* route = nullptr;
  std::size_t limit_index = 0;
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  std::int64_t reset = 0;
  std::int64_t retry_after = 0;
  bool keep_alive = false;
  bool http10_client = false;

  bool same_bytes_as(const RenderedRefusal& o) const noexcept {
    return route == o.route && limit_index == o.limit_index && limit == o.limit &&
           remaining == o.remaining && reset == o.reset && retry_after == o.retry_after &&
           keep_alive == o.keep_alive && http10_client == o.http10_client;
  }
};

class Session final : public std::enable_shared_from_this<Session>,
                      private limit::DecideWaiter,
                      private YieldQueue::Member {
 public:
  Session(Socket socket, Worker& worker)
      : client_(std::move(socket)),
        worker_(worker),
        gate_(worker.connections),
        timer_(client_.get_executor()),
        upstream_(client_.get_executor()),
        request_parser_({.max_head_bytes = worker.limits.max_header_bytes,
                         .max_request_line = worker.limits.max_target_bytes + 32,
                         .max_fields = worker.limits.max_header_fields}),
        key_builder_(worker.digest_key),
        response_parser_({.max_head_bytes = response_head_limit(worker.limits),
                          .max_request_line = response_head_limit(worker.limits),
                          .max_fields = worker.limits.max_header_fields}),
        spares_(worker.spares),
        parts_(spares_.take()) {
    swap_buffers(*parts_);
  }

  // A response head is read into one relay buffer, so it can be no larger, whatever
  // max_header_bytes allows requests (nginx's default is a page).
  static std::size_t response_head_limit(const SessionLimits& limits) noexcept {
    return std::min<std::size_t>(limits.max_header_bytes, RelayBuffers::kBytes);
  }

  // Touches no Worker: at shutdown a session may outlive it (spares_ and gate_ outlive both).
  ~Session() {
    swap_buffers(*parts_);
    spares_.give_back(std::move(parts_));
    gate_.leave();
  }

  // Trades the buffers in SessionSpares::Parts with `parts`: at the start the spares come in, at
  // the end they go back.
  void swap_buffers(SessionSpares::Parts& parts) noexcept {
    input_.swap_storage(parts.input, parts.input_capacity);
    request_.fields.swap(parts.request_fields);
    response_.fields.swap(parts.response_fields);
    checks_.swap(parts.checks);
    verdicts_.swap(parts.verdicts);
    path_.swap(parts.path);
    forward_target_.swap(parts.forward_target);
    scratch_.swap(parts.scratch);
    upstream_head_.swap(parts.upstream_head);
    response_head_.swap(parts.response_head);
    reply_body_.swap(parts.reply_body);
    reply_.swap(parts.reply);
  }

  void start(const tcp::endpoint& peer) {
    // TCP_NODELAY comes from the listening socket (Listener).
    peer_ = to_ip(peer.address());
    std::array<char, 46> text;
    peer_text_.assign(text.data(), peer_.format(std::span<char, 46>(text)));
    wait_for_request();
  }

 private:
  const SessionLimits& limits() const noexcept { return worker_.limits; }
  const UpstreamTarget& upstream_target() const { return worker_.pool.target(route_->upstream); }

  // ---- deadlines --------------------------------------------------------------------------------
  // One timer per connection, moved lazily: a step that extends the deadline only stores it, and
  // the timer, when it fires early, re-arms itself for the stored deadline. Most requests then cost
  // no timer operation at all. A deadline that passes cancels the sockets; the step that was
  // waiting sees operation_aborted with timed_out_ set.

  // Starts the deadline of the next step. A timeout that hit a step which had already completed is
  // forgotten here.
  void set_deadline(SteadyClock::duration within) {
    timed_out_ = false;
    deadline_ = SteadyClock::now() + within;
    if (deadline_ < timer_expiry_) arm_timer(deadline_);
  }

  void arm_timer(SteadyClock::time_point when) {
    timer_expiry_ = when;
    timer_.expires_at(when);
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }

  void on_timer(error_code ec) {
    if (ec || finished_) return;  // re-armed or finished
    if (SteadyClock::now() < deadline_) return arm_timer(deadline_);
    timer_expiry_ = SteadyClock::time_point::max();
    timed_out_ = true;
    client_.cancel(ec);
    if (upstream_.is_open()) upstream_.cancel(ec);
  }

  // A key is built from the first copy of a header, while the upstream gets every copy and may
  // believe the last: sending "X-API-Key: <random>" before the real one would buy a fresh budget
  // per request. Two readings of one request are refused, as everywhere else.
  bool repeats_a_key_header() const noexcept {
    return std::any_of(route_->key_headers.begin(), route_->key_headers.end(),
                       [this](const std::string& name) { return request_.count(name) > 1; });
  }

  // Reads the flag and clears it: the next step starts a fresh deadline.
  bool take_timeout() noexcept { return std::exchange(timed_out_, false); }

  // ---- reading a request ------------------------------------------------------------------------

  void wait_for_request() {
    request_parser_.reset();
    head_started_ = !input_.empty();
    // A new connection or a started head gets header_timeout; a kept-alive one waits idle_timeout
    // for its next request's first byte.
    set_deadline(requests_served_ == 0 || head_started_ ? limits().header_timeout
                                                        : limits().idle_timeout);
    if (head_started_) return start_request_head();
    input_.shrink_if_empty();
    wait_for_client_bytes();
  }

  // async_read_some rather than a readiness wait plus read: one operation instead of two, and when
  // the next request is already there (a quick client), Asio's speculative read takes it at once
  // without a trip through epoll.
  void wait_for_client_bytes() {
    const auto room = input_.prepare(kInitialInputBytes, limits().max_header_bytes);
    client_.async_read_some(net::buffer(room.data(), room.size()),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              self->on_client_bytes(ec, n);
                            });
  }

  void on_client_bytes(error_code ec, std::size_t n) {
    if (ec) return on_request_head_error(ec);
    input_.commit(n);
    if (!head_started_) {
      head_started_ = true;
      // A kept-alive connection's wait for the next request ends here. A new connection's first
      // request has had header_timeout since the accept: restarting it at the first byte would
      // let a client hold a slot for twice that by waiting, then sending one byte.
      if (requests_served_ > 0) set_deadline(limits().header_timeout);
      return start_request_head();
    }
    parse_request_head();
  }

  // The first bytes of a request are here. A connection whose last request was over its limit
  // lets everyone else's ready work go first (YieldQueue): under a flood, a client within its
  // limits then waits for a few of the flooder's requests, not for a whole loop turn of them.
  void start_request_head() {
    if (!over_limit_) {
      worker_.yield_queue.note_other_request();
      return parse_request_head();
    }
    worker_.yield_queue.push(
        std::shared_ptr<YieldQueue::Member>(shared_from_this(), static_cast<Member*>(this)));
  }

  void resume() override {
    // Waiting here took longer than the head may: answered as if the client had been slow,
    // though the wait was sluice's (only under a backlog of over-limit work of many seconds).
    if (SteadyClock::now() >= deadline_) return reply({.kind = ErrorKind::request_timeout}, true);
    parse_request_head();
  }

  void parse_request_head() {
    switch (request_parser_.parse(input_.data(), request_)) {
      case http1::ParseStatus::need_more:
        if (input_.size() >= limits().max_header_bytes) {
          return reply(
              {.kind = request_parser_.in_request_line() ? ErrorKind::uri_too_long
                                                         : ErrorKind::header_fields_too_large},
              true);
        }
        return wait_for_client_bytes();
      case http1::ParseStatus::error:
        return reply_to_bad_head(request_parser_.error());
      case http1::ParseStatus::complete:
        return on_request_head();
    }
  }

  void reply_to_bad_head(http1::HeadError error) {
    switch (error) {
      case http1::HeadError::line_too_long:
        return reply({.kind = ErrorKind::uri_too_long}, true);
      case http1::HeadError::head_too_large:
        return reply({.kind = ErrorKind::header_fields_too_large}, true);
      default:
        return reply({.kind = ErrorKind::bad_request, .message = http1::describe(error)}, true);
    }
  }

  void on_request_head_error(error_code ec) {
    if (take_timeout()) {
      // A client that sent part of a head and stalled is told why; an idle one is just closed.
      if (!input_.empty()) return reply({.kind = ErrorKind::request_timeout}, true);
      return close();
    }
    if (ec == net::error::eof && !input_.empty()) {
      return reply({.kind = ErrorKind::bad_request, .message = "Incomplete request"}, true);
    }
    close();
  }

  void on_request_head() {
    // Whether this request waits in the yield queue was settled by the one before; only a limit
    // refusing this one sets it again (a 404, an unlimited route or a store error do not).
    over_limit_ = false;
    // The head's views point into input_, whose bytes stay where they are until the next read
    // into it, after this exchange: consuming only moves the read position.
    input_.consume(request_.head_bytes);
    client_keep_alive_ = request_.keep_alive;
    http10_client_ = request_.version_minor == 0;
    head_request_ = request_.method == "HEAD";
    expect_continue_ = request_.expect_continue && request_.framing != http1::Framing::none;
    body_left_ = request_.framing == http1::Framing::content_length ? request_.content_length : 0;
    if (request_.framing == http1::Framing::chunked) chunked_.reset();

    if (request_.target.size() > limits().max_target_bytes) {
      return reply({.kind = ErrorKind::uri_too_long}, true);
    }
    std::string_view query;
    switch (classify::normalize_target(request_.target, path_, query)) {
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
    if (!query.empty() || request_.target.find('?') != std::string_view::npos) {
      forward_target_.push_back('?');
      forward_target_.append(query);
    }

    const std::string_view routing = classify::routing_path(path_, scratch_, routing_path_);
    snapshot_ = worker_.snapshots.load();
    const auto& cfg = *snapshot_->config;
    route_ = snapshot_->router.match_request(request_.method, routing, path_);
    if (route_ == nullptr) return reply({.kind = ErrorKind::not_found}, false);
    // Refused before anything is read or charged: the client learns at once, and a body the route
    // will never accept costs no quota.
    if (route_->max_body > 0 && request_.framing == http1::Framing::content_length &&
        request_.content_length > route_->max_body) {
      return reply({.kind = ErrorKind::payload_too_large, .route = route_->name}, true);
    }
    if (route_->limits.empty()) return forward();
    if (repeats_a_key_header()) {
      return reply({.kind = ErrorKind::bad_request,
                    .message = "A header a rate limit is keyed on was sent more than once",
                    .route = route_->name},
                   true);
    }

    const HeadLookup headers(request_);
    classify::RequestView view{
        .method = request_.method,
        .path = routing,
        .client = classify::client_ip(peer_, cfg.trusted_proxies,
                                      cfg.trusted_proxies.empty()
                                          ? std::string_view()
                                          : request_.joined(forwarding_header_name(cfg), scratch_),
                                      cfg.client_ip_header),
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
      set_deadline(kNoDeadline);
      pending_self_ = shared_from_this();  // keeps the session alive until on_decided
      return;
    }
    act_on_decision();
  }

  void on_decided(limit::DecideCall&) override {
    auto self = std::move(pending_self_);
    act_on_decision();
  }

  void act_on_decision() {
    if (call_.outcome == limit::Outcome::store_error) return on_store_error();
    const bool allowed = call_.outcome == limit::Outcome::allowed;
    // A trusted proxy's connection carries many clients: one of them over its limit must not
    // make the next one wait.
    over_limit_ = !allowed && !classify::is_trusted(peer_, snapshot_->config->trusted_proxies);
    reported_ = verdict_to_report(call_.verdicts, allowed);
    const auto& verdict = call_.verdicts[reported_];
    if (allowed) {
      format_quota_headers(snapshot_->config->headers, route_->limits[reported_], verdict, quota_);
      return forward();
    }
    reply({.kind = ErrorKind::rate_limited,
           .route = route_->name,
           .limit = route_->limits[reported_].name,
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

  std::span<const HeaderLine> quota_lines() const noexcept { return {quota_.lines, quota_.count}; }

  // ---- forwarding the request -------------------------------------------------------------------

  void forward() {
    http1::write_upstream_request_head(
        request_,
        {.target = forward_target_,
         .client_address = peer_text_,
         .peer_trusted = classify::is_trusted(peer_, snapshot_->config->trusted_proxies)},
        upstream_head_);
    if (http10_client_) {
      // An HTTP/1.0 client cannot read chunks: asking in HTTP/1.0 makes the upstream send a length
      // or close, never chunks. Keep-alive is requested explicitly, as HTTP/1.0 needs.
      upstream_head_[upstream_head_.find("\r\n") - 1] = '0';
      upstream_head_.resize(upstream_head_.size() - 2);
      upstream_head_.append("Connection: keep-alive\r\n\r\n");
    }
    // The client waits for "100 Continue" before sending its body: sluice says it only now that the
    // request is allowed, so a rejected upload is never sent.
    if (expect_continue_ && input_.empty()) {
      set_deadline(limits().send_timeout);
      net::async_write(client_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](error_code ec, std::size_t) {
                         if (ec) return self->close();
                         self->acquire_upstream();
                       });
      return;
    }
    acquire_upstream();
  }

  void acquire_upstream() {
    retried_ = false;
    interim_seen_ = false;
    upstream_drained_ = false;
    // A request that could not be sent again if the connection turned out closed asks the kernel
    // whether it is; the others take the reactor's word (see UpstreamPool::take_idle).
    upstream_reused_ = worker_.pool.take_idle(
        route_->upstream, upstream_,
        http1::is_idempotent(request_.method) ? IdleCheck::reactor : IdleCheck::kernel);
    if (upstream_reused_) return send_request_head();
    connect_upstream();
  }

  void connect_upstream() {
    upstream_ = Socket(worker_.pool.executor());
    set_deadline(upstream_target().connect_timeout);
    upstream_.async_connect(worker_.pool.next_endpoint(route_->upstream),
                            [self = shared_from_this()](error_code ec) {
                              if (ec) return self->upstream_failed(ec, "connect");
                              self->upstream_.set_option(tcp::no_delay(true), ec);
                              self->send_request_head();
                            });
  }

  // One write carries the head and the body bytes that arrived with it: for most requests that is
  // the whole request. Those bytes stay in input_ until the upstream answers, so a request sent
  // into a pooled connection the upstream had closed can be sent again.
  void send_request_head() {
    sent_from_input_ = 0;
    request_body_done_ = true;
    const std::string_view buffered = input_.data();
    switch (request_.framing) {
      case http1::Framing::none:
      case http1::Framing::until_close:
        break;
      case http1::Framing::content_length:
        sent_from_input_ =
            static_cast<std::size_t>(std::min<std::uint64_t>(buffered.size(), body_left_));
        request_body_done_ = sent_from_input_ == body_left_;
        break;
      case http1::Framing::chunked:
        sent_from_input_ = chunked_.scan(buffered);
        if (!chunked_body_ok()) return;
        request_body_done_ = chunked_.done();
        break;
    }
    const std::array<net::const_buffer, 2> pieces{
        net::buffer(upstream_head_.data(), upstream_head_.size()),
        net::buffer(buffered.data(), sent_from_input_)};
    set_deadline(upstream_target().timeout);
    net::async_write(upstream_, pieces, [self = shared_from_this()](error_code ec, std::size_t) {
      self->on_request_head_sent(ec);
    });
  }

  // Checks the chunked request body seen so far; answers the client and returns false when it is
  // malformed or over the route's max_body.
  bool chunked_body_ok() {
    if (chunked_.failed()) {
      drop_upstream();
      reply({.kind = ErrorKind::bad_request, .message = "Malformed chunked body"}, true);
      return false;
    }
    if (route_->max_body > 0 && chunked_.data_bytes() > route_->max_body) {
      drop_upstream();
      reply({.kind = ErrorKind::payload_too_large, .route = route_->name}, true);
      return false;
    }
    return true;
  }

  void on_request_head_sent(error_code ec) {
    if (ec) return upstream_failed(ec, "send");
    if (request_body_done_) return read_response_head();
    // The rest of the body streams from the client: from here on the request cannot be replayed.
    body_streamed_ = true;
    release_sent_input();
    relay_request_body();
  }

  void release_sent_input() {
    input_.consume(sent_from_input_);
    if (request_.framing == http1::Framing::content_length) body_left_ -= sent_from_input_;
    sent_from_input_ = 0;
  }

  void relay_request_body() {
    std::size_t want = RelayBuffers::kBytes;
    if (request_.framing == http1::Framing::content_length) {
      want = static_cast<std::size_t>(std::min<std::uint64_t>(want, body_left_));
    }
    set_deadline(limits().body_timeout);
    client_.async_read_some(net::buffer(relay_buffer(), want),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              self->on_request_body_read(ec, n);
                            });
  }

  void on_request_body_read(error_code ec, std::size_t n) {
    if (ec) {
      // The upstream holds part of a request: that connection can never be reused.
      drop_upstream();
      if (take_timeout()) return reply({.kind = ErrorKind::request_timeout}, true);
      return close();
    }
    std::size_t body_part = n;
    if (request_.framing == http1::Framing::content_length) {
      body_left_ -= n;
      request_body_done_ = body_left_ == 0;
    } else {
      body_part = chunked_.scan({relay_buffer(), n});
      if (!chunked_body_ok()) return;
      request_body_done_ = chunked_.done();
      // Bytes past the body's end are the client's next request.
      if (body_part < n) input_.append({relay_buffer() + body_part, n - body_part});
    }
    set_deadline(upstream_target().timeout);
    net::async_write(upstream_, net::buffer(relay_buffer(), body_part),
                     [self = shared_from_this()](error_code write_ec, std::size_t) {
                       if (write_ec) return self->upstream_failed(write_ec, "send");
                       if (self->request_body_done_) return self->read_response_head();
                       self->relay_request_body();
                     });
  }

  // ---- the response -----------------------------------------------------------------------------
  // The response head is read into the relay buffer; the body bytes that follow it there go out
  // with the rendered head in one write.

  void read_response_head() {
    response_parser_.reset(head_request_);
    response_bytes_ = 0;
    set_deadline(upstream_target().timeout);
    wait_for_upstream_bytes();
  }

  void wait_for_upstream_bytes() {
    read_upstream(relay_buffer() + response_bytes_, RelayBuffers::kBytes - response_bytes_,
                  &Session::on_upstream_bytes);
  }

  void on_upstream_bytes(error_code ec, std::size_t n) {
    if (ec) return upstream_failed(ec, "response");
    response_bytes_ += n;
    parse_response_head();
  }

  // Every read from the upstream is a DrainingBuffer read: one that comes back short leaves Asio
  // sure the socket is empty until its next readiness event, which lets the pool check an idle
  // connection without a system call. A short read may still leave an end-of-file unreported (it
  // arrived with the data, under the same event), so the read after one first waits for
  // readiness: that wait re-arms epoll (one epoll_ctl), which reports a pending end-of-file too.
  // Only responses longer than one read pay it.
  void read_upstream(char* data, std::size_t size, void (Session::*next)(error_code, std::size_t)) {
    if (!upstream_drained_) return start_upstream_read(data, size, next);
    upstream_.async_wait(Socket::wait_read,
                         [self = shared_from_this(), data, size, next](error_code ec) {
                           if (ec) return ((*self).*next)(ec, 0);
                           self->start_upstream_read(data, size, next);
                         });
  }

  void start_upstream_read(char* data, std::size_t size,
                           void (Session::*next)(error_code, std::size_t)) {
    upstream_.async_read_some(DrainingBuffer(data, size), [self = shared_from_this(), size, next](
                                                              error_code ec, std::size_t n) {
      self->upstream_drained_ = !ec && n < size;
      ((*self).*next)(ec, n);
    });
  }

  void parse_response_head() {
    const std::string_view buffered(relay_buffer(), response_bytes_);
    switch (response_parser_.parse(buffered, response_)) {
      case http1::ParseStatus::need_more:
        // Past this the buffer is full: one more read would ask for 0 bytes and get them, forever.
        if (response_bytes_ >= response_head_limit(limits())) {
          return bad_upstream_response("response head too large");
        }
        return wait_for_upstream_bytes();
      case http1::ParseStatus::error:
        return bad_upstream_response(http1::describe(response_parser_.error()));
      case http1::ParseStatus::complete:
        break;
    }
    if (response_.status < 200) {
      // sluice never forwards Upgrade, so a 101 is a broken upstream. Other interim responses
      // (100 Continue, 103 Early Hints) are optional: dropped, and the final one awaited.
      if (response_.status == 101) return bad_upstream_response("unrequested 101");
      interim_seen_ = true;
      response_bytes_ -= response_.head_bytes;
      std::memmove(relay_buffer(), relay_buffer() + response_.head_bytes, response_bytes_);
      response_parser_.reset(head_request_);
      if (response_bytes_ > 0) return parse_response_head();
      return wait_for_upstream_bytes();
    }
    on_response_head();
  }

  void bad_upstream_response(std::string_view why) {
    spdlog::warn("route {}: malformed response from upstream: {}", route_->name, why);
    drop_upstream();
    release_sent_input();
    reply({.kind = ErrorKind::bad_gateway, .route = route_->name}, !request_complete());
  }

  void on_response_head() {
    release_sent_input();
    upstream_reusable_ = response_.keep_alive;
    response_framing_ = response_.framing;
    response_left_ = response_.content_length;
    // A body delimited by the upstream closing is re-framed as chunked so the client connection can
    // stay open; an HTTP/1.0 client cannot read chunks, so it gets the close-delimited body.
    bool keep_alive = client_keep_alive_;
    http1::Framing out = response_framing_;
    reframe_ = false;
    if (response_framing_ == http1::Framing::until_close) {
      upstream_reusable_ = false;
      if (http10_client_) {
        keep_alive = false;
        out = http1::Framing::none;
      } else {
        reframe_ = true;
        out = http1::Framing::chunked;
      }
    }
    if (response_framing_ == http1::Framing::chunked) chunked_.reset();
    client_keep_alive_ = keep_alive;
    http1::write_client_response_head(
        response_, reported_ != kNoReport ? quota_lines() : std::span<const HeaderLine>{}, out,
        response_.content_length, keep_alive, response_head_);
    if (keep_alive && http10_client_) {
      // HTTP/1.0 keeps a connection only when told so.
      response_head_.resize(response_head_.size() - 2);
      response_head_.append("Connection: keep-alive\r\n\r\n");
    }
    response_started_ = true;
    const std::size_t body_offset = response_.head_bytes;
    send_response_piece(response_head_, relay_buffer() + body_offset,
                        response_bytes_ - body_offset);
  }

  // Sends `head` (empty after the first piece) and the body bytes in [data, data + n) to the
  // client, taking from them only what belongs to the response body.
  void send_response_piece(std::string_view head, const char* data, std::size_t n) {
    std::size_t body_part = n;
    switch (response_framing_) {
      case http1::Framing::none:
        body_part = 0;
        response_done_ = true;
        break;
      case http1::Framing::content_length:
        body_part = static_cast<std::size_t>(std::min<std::uint64_t>(n, response_left_));
        response_left_ -= body_part;
        response_done_ = response_left_ == 0;
        break;
      case http1::Framing::chunked:
        body_part = chunked_.scan({data, n});
        if (chunked_.failed()) {
          if (!head.empty()) return bad_upstream_response("malformed chunked body");
          spdlog::warn("route {}: malformed chunked body from upstream", route_->name);
          drop_upstream();
          return close();
        }
        response_done_ = chunked_.done();
        break;
      case http1::Framing::until_close:
        response_done_ = false;  // until the upstream closes
        break;
    }
    // Bytes past the body mean the upstream broke framing: never reuse that connection.
    if (body_part < n) upstream_reusable_ = false;
    // The upstream's idle clock starts now, not when a slow client has taken the last byte.
    if (response_done_ && upstream_reusable_) upstream_idle_since_ = SteadyClock::now();
    std::array<net::const_buffer, 4> pieces{net::buffer(head.data(), head.size())};
    if (reframe_ && body_part > 0) {
      pieces[1] = net::buffer(chunk_size_line(body_part, chunk_line_));
      pieces[2] = net::buffer(data, body_part);
      pieces[3] = net::buffer(kCrlf.data(), kCrlf.size());
    } else {
      pieces[1] = net::buffer(data, body_part);
    }
    set_deadline(limits().send_timeout);
    net::async_write(client_, pieces, [self = shared_from_this()](error_code ec, std::size_t) {
      self->on_response_piece_sent(ec);
    });
  }

  void on_response_piece_sent(error_code ec) {
    if (ec) {
      drop_upstream();
      return close();
    }
    if (!response_done_) return relay_response_body();
    if (upstream_reusable_) {
      // Leaves upstream_ closed.
      worker_.pool.give_back(route_->upstream, std::move(upstream_), upstream_idle_since_);
    }
    drop_upstream();
    finish_exchange(client_keep_alive_);
  }

  void relay_response_body() {
    std::size_t want = RelayBuffers::kBytes;
    if (response_framing_ == http1::Framing::content_length) {
      want = static_cast<std::size_t>(std::min<std::uint64_t>(want, response_left_));
    }
    set_deadline(upstream_target().timeout);
    read_upstream(relay_buffer(), want, &Session::on_response_body_read);
  }

  void on_response_body_read(error_code ec, std::size_t n) {
    if (ec == net::error::eof && response_framing_ == http1::Framing::until_close) {
      drop_upstream();
      if (!reframe_) return finish_exchange(false);
      response_done_ = true;
      set_deadline(limits().send_timeout);
      net::async_write(client_, net::buffer(kLastChunk.data(), kLastChunk.size()),
                       [self = shared_from_this()](error_code write_ec, std::size_t) {
                         self->on_response_piece_sent(write_ec);
                       });
      return;
    }
    if (ec) {
      // Part of the response is already with the client: all that is left is to end both
      // connections, so the client sees a truncated response rather than a wrong one.
      spdlog::debug("route {}: upstream response broke off: {}", route_->name,
                    take_timeout() ? "timeout" : ec.message());
      drop_upstream();
      return close();
    }
    send_response_piece({}, relay_buffer(), n);
  }

  // ---- upstream failures ------------------------------------------------------------------------

  void upstream_failed(error_code ec, const char* phase) {
    const bool timed_out = take_timeout();
    drop_upstream();
    // A pooled connection the upstream closed while idle fails on first use. A request sent whole
    // in the first write is still in input_ and can be sent again, once, on a fresh connection;
    // but only an idempotent one (RFC 9110 9.2.2, RFC 9112 9.3.1): the upstream may have acted on
    // it before the connection broke, and did if it answered 100 Continue or 103 first.
    const bool stale = upstream_reused_ && !timed_out && is_disconnect(ec) &&
                       response_bytes_ == 0 && !response_started_ && !interim_seen_;
    if (stale && !retried_ && !body_streamed_ && http1::is_idempotent(request_.method)) {
      retried_ = true;
      upstream_reused_ = false;
      if (request_.framing == http1::Framing::chunked) chunked_.reset();
      return connect_upstream();
    }
    release_sent_input();
    spdlog::warn("route {}: upstream {} failed: {}", route_->name, phase,
                 timed_out ? "timeout" : ec.message());
    if (response_started_) return close();
    reply({.kind = timed_out ? ErrorKind::gateway_timeout : ErrorKind::bad_gateway,
           .route = route_->name},
          !request_complete());
  }

  void drop_upstream() {
    error_code ec;
    if (upstream_.is_open()) upstream_.close(ec);
  }

  bool request_complete() const noexcept {
    switch (request_.framing) {
      case http1::Framing::content_length:
        return body_left_ == 0;
      case http1::Framing::chunked:
        return chunked_.done();
      default:
        return true;
    }
  }

  // ---- local replies ----------------------------------------------------------------------------

  // Answers the current request from sluice itself. `must_close` when the connection cannot carry
  // another request (malformed input, a body we will not read).
  void reply(const ErrorReply& error, bool must_close) {
    // An unread body must be consumed before the next request can be parsed: a small one is
    // drained first; a large, chunked or not-yet-sent (Expect: 100-continue) one means closing.
    if (!must_close && !request_complete()) {
      if (request_.framing != http1::Framing::content_length ||
          body_left_ > limits().drain_body_bytes || expect_continue_) {
        must_close = true;
      } else {
        pending_error_ = error;
        return drain_request_body();
      }
    }
    const bool keep_alive = !must_close && client_keep_alive_;
    render_reply(error, keep_alive);
    set_deadline(limits().send_timeout);
    net::async_write(client_, net::buffer(reply_.data(), reply_.size()),
                     [self = shared_from_this(), keep_alive](error_code ec, std::size_t) {
                       if (ec) return self->close();
                       self->finish_exchange(keep_alive);
                     });
  }

  // Into reply_. A flooding client is refused the same way many times in a row (same limit,
  // nothing remaining, same Retry-After): when everything a 429's bytes depend on is as for the
  // last one this connection sent, reply_ still holds it and is sent again as it is.
  void render_reply(const ErrorReply& error, bool keep_alive) {
    if (error.kind != ErrorKind::rate_limited) {
      last_refusal_.snapshot.reset();
      return write_error_response(error, {}, keep_alive, http10_client_, reply_body_, reply_);
    }
    const auto& verdict = call_.verdicts[reported_];
    const RenderedRefusal refusal{
        .route = route_,
        .limit_index = reported_,
        .limit = verdict.limit,
        .remaining = std::max<std::int64_t>(0, verdict.remaining),
        .reset = limit::ceil_seconds(verdict.reset),
        .retry_after = error.retry_after,
        .keep_alive = keep_alive,
        .http10_client = http10_client_,
    };
    if (last_refusal_.snapshot == snapshot_ && last_refusal_.same_bytes_as(refusal)) return;
    format_quota_headers(snapshot_->config->headers, route_->limits[reported_], verdict, quota_);
    write_error_response(error, quota_lines(), keep_alive, http10_client_, reply_body_, reply_);
    last_refusal_ = refusal;
    last_refusal_.snapshot = snapshot_;
  }

  void drain_request_body() {
    const auto from_input =
        static_cast<std::size_t>(std::min<std::uint64_t>(input_.size(), body_left_));
    input_.consume(from_input);
    body_left_ -= from_input;
    if (body_left_ == 0) return reply(pending_error_, false);
    set_deadline(limits().body_timeout);
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(RelayBuffers::kBytes, body_left_));
    client_.async_read_some(net::buffer(relay_buffer(), want),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              if (ec) {
                                self->take_timeout();
                                return self->close();
                              }
                              self->body_left_ -= n;
                              self->drain_request_body();
                            });
  }

  // ---- between requests and at the end ----------------------------------------------------------

  // Taken from the thread's pool when a body or a response starts moving, returned when the
  // exchange ends: idle connections hold none.
  char* relay_buffer() {
    if (!relay_buffer_) relay_buffer_ = worker_.relay_buffers.take();
    return relay_buffer_.get();
  }

  void finish_exchange(bool keep_alive) {
    // Nothing unread from this client: closing cannot provoke a reset, so there is no need to
    // linger (most "Connection: close" exchanges; this is nginx's lingering_close heuristic too).
    const bool nothing_unread = request_complete() && input_.empty();
    if (relay_buffer_) worker_.relay_buffers.give_back(std::move(relay_buffer_));
    ++requests_served_;
    reported_ = kNoReport;
    quota_.count = 0;
    route_ = nullptr;
    snapshot_.reset();
    response_started_ = false;
    response_bytes_ = 0;
    sent_from_input_ = 0;
    upstream_reused_ = false;
    body_streamed_ = false;
    request_.framing = http1::Framing::none;
    body_left_ = 0;
    if (!keep_alive) return nothing_unread ? finish() : close();
    wait_for_request();
  }

  // Ends the connection. Sends FIN first, then reads and drops whatever the client still sends for
  // a moment: closing with unread bytes makes the kernel answer with a reset, which can destroy
  // the last response before the client has read it (the "lingering close" of RFC 9112 9.6).
  void close() {
    drop_upstream();
    error_code ec;
    client_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return finish();
    lingered_bytes_ = 0;
    set_deadline(kLingerTime);
    linger();
  }

  void linger() {
    client_.async_read_some(net::buffer(relay_buffer(), RelayBuffers::kBytes),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              self->lingered_bytes_ += n;
                              if (ec || self->lingered_bytes_ > kLingerBytes) return self->finish();
                              self->linger();
                            });
  }

  void finish() {
    finished_ = true;
    timer_.cancel();
    error_code ec;
    client_.close(ec);
    drop_upstream();
    if (relay_buffer_) worker_.relay_buffers.give_back(std::move(relay_buffer_));
  }

  static constexpr std::size_t kNoReport = ~std::size_t{0};

  Socket client_;
  Worker& worker_;
  ConnectionGate& gate_;  // outlives the worker: a session may be destroyed after it at shutdown
  SteadyTimer timer_;
  Socket upstream_;
  InputBuffer input_;
  std::unique_ptr<char[]> relay_buffer_;
  classify::IpAddress peer_;
  std::string peer_text_;
  std::size_t requests_served_ = 0;
  bool over_limit_ = false;  // the last request decided was refused by a limit
  std::size_t lingered_bytes_ = 0;

  // Deadlines.
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  SteadyClock::time_point timer_expiry_ = SteadyClock::time_point::max();
  bool timed_out_ = false;
  bool finished_ = false;

  // The current request.
  http1::RequestParser request_parser_;
  http1::RequestHead request_;
  bool head_started_ = false;
  bool client_keep_alive_ = false;
  bool http10_client_ = false;
  bool head_request_ = false;
  bool expect_continue_ = false;
  std::uint64_t body_left_ = 0;    // Content-Length body bytes not yet taken from the client
  http1::ChunkedScanner chunked_;  // the request's chunked body, then the response's
  std::shared_ptr<const Snapshot> snapshot_;
  const config::Route* route_ = nullptr;
  std::string path_;
  std::string forward_target_;
  std::string routing_path_;  // see classify::routing_path; used only when the path has "%2F"
  std::string scratch_;

  // Deciding.
  classify::KeyBuilder key_builder_;
  std::vector<limit::LimitCheck> checks_;
  std::vector<limit::Verdict> verdicts_;
  limit::DecideCall call_;
  std::shared_ptr<Session> pending_self_;
  std::size_t reported_ = kNoReport;  // the verdict the quota headers describe
  QuotaHeaders quota_;

  // Forwarding.
  std::string upstream_head_;
  std::size_t sent_from_input_ = 0;  // body bytes the first write took from input_
  bool request_body_done_ = true;
  bool body_streamed_ = false;  // part of the body was read after the first write
  bool upstream_reused_ = false;
  bool upstream_drained_ = false;  // the last read from upstream_ came back short (read_upstream)
  bool upstream_reusable_ = false;
  bool retried_ = false;
  bool interim_seen_ = false;  // this exchange's upstream answered 1xx before its final response
  SteadyClock::time_point upstream_idle_since_;  // when the upstream's response was complete

  // The response.
  http1::ResponseParser response_parser_;
  http1::ResponseHead response_;
  std::string response_head_;
  std::size_t response_bytes_ = 0;  // bytes of the response head read into the relay buffer
  http1::Framing response_framing_ = http1::Framing::none;
  std::uint64_t response_left_ = 0;
  bool response_started_ = false;
  bool response_done_ = false;
  bool reframe_ = false;  // a close-delimited body sent on as chunks
  std::array<char, 24> chunk_line_{};

  // Local replies.
  std::string reply_body_;
  std::string reply_;
  RenderedRefusal last_refusal_;  // what reply_ holds, when it holds a 429
  ErrorReply pending_error_;

  SessionSpares& spares_;
  // Swapped with the members above at the start and at the end (swap_buffers).
  std::unique_ptr<SessionSpares::Parts> parts_;
};

}  // namespace

void start_session(Socket socket, const tcp::endpoint& peer, Worker& worker) {
  std::make_shared<Session>(std::move(socket), worker)->start(peer);
}

}  // namespace sluice::proxy
