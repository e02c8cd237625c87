// The Redis client: connection life cycle (resolve, connect, handshake, watchdog, backoff) and
// pipelined eval() calls with one deadline each.
//
// Lifetime rules that shape this file (hiredis 0.14):
//  - hiredis may free the context from inside any call into it (a read error, a failed connect),
//    and then runs every pending reply callback with a null reply, then the adapter's cleanup
//    hook (on_context_gone). After that the context pointer is never used again.
//  - redisAsyncFree() from inside a reply callback only marks the context; hiredis frees it when
//    the callback returns. Elsewhere it frees at once, running the null-reply callbacks inline.
//  - Every entry into hiredis happens in a handler that holds a shared_ptr to the Impl, so a
//    user handler that destroys the Client from a callback cannot pull the Impl away.
#include <array>
#include <charconv>
#include <iterator>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <random>
#include <stdexcept>
#include <sys/socket.h>
#include <utility>
#include <vector>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <sluice/redis/client.hpp>

#include "asio_events.hpp"

namespace sluice::redis {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kNotConnected = "redis is not connected";
constexpr std::string_view kConnectionLost = "redis connection lost before the reply";
constexpr std::string_view kTimedOut = "redis call timed out";
constexpr std::string_view kUnknownScript = "unknown redis script id";

// Error replies after which this connection cannot serve us: the server became a replica or is
// cut off from its master (a failover may have moved the master: reconnecting may reach the new
// one), is still loading its data, or no longer knows our AUTH.
bool means_reconnect(std::string_view error) {
  for (std::string_view code : {"READONLY", "LOADING", "MASTERDOWN", "NOAUTH"}) {
    if (error.starts_with(code) && (error.size() == code.size() || error[code.size()] == ' ')) {
      return true;
    }
  }
  return false;
}

void validate(const Settings& settings) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(std::string("redis settings: ") + what);
  };
  require(!settings.host.empty(), "host is empty");
  require(settings.port != 0, "port is 0");
  require(settings.db >= 0, "db is negative");
  require(settings.username.empty() || !settings.password.empty(), "a username needs a password");
  require(settings.call_timeout.count() > 0, "call timeout must be positive");
  require(settings.connect_timeout.count() > 0, "connect timeout must be positive");
  require(settings.ping_interval.count() > 0, "ping interval must be positive");
  require(settings.ping_timeout.count() > 0, "ping timeout must be positive");
  require(settings.reconnect_min.count() > 0, "reconnect delay must be positive");
  require(settings.reconnect_max >= settings.reconnect_min,
          "reconnect maximum is below the minimum");
}

// Handshake replies carry their step in the callback's privdata.
enum HandshakeStep : std::uintptr_t { kAuth, kSelect, kPing, kFirstScript };

void* step_data(std::uintptr_t step) {
  return reinterpret_cast<void*>(step);
}
std::uintptr_t step_of(void* data) {
  return reinterpret_cast<std::uintptr_t>(data);
}

}  // namespace

class Client::Impl final : public std::enable_shared_from_this<Client::Impl>,
                           private detail::AsioEvents::Owner {
 public:
  Impl(net::any_io_executor executor, Settings settings, StateHandler on_state)
      : executor_(executor),
        settings_(std::move(settings)),
        on_state_(std::move(on_state)),
        endpoint_(settings_.host + ":" + std::to_string(settings_.port)),
        backoff_(settings_.reconnect_min, settings_.reconnect_max,
                 settings_.jitter_seed ? *settings_.jitter_seed : std::random_device{}()),
        events_(executor),
        resolver_(executor),
        phase_timer_(executor),
        ping_timer_(executor),
        deadline_timer_(executor) {}

  ~Impl() {
    // Normally stop() has freed the context long before; if not, free it without delivering
    // anything (there is no shared_ptr left to post with).
    destroying_ = true;
    phase_ = Phase::stopped;
    if (context_ != nullptr) redisAsyncFree(context_);
  }

  ScriptId add_script(std::string source) {
    scripts_.push_back(Script{std::move(source), {}, false});
    const auto id = static_cast<ScriptId>(scripts_.size() - 1);
    if (usable()) load_script_in_background(id);
    return id;
  }

  void run() {
    if (phase_ != Phase::idle) return;
    start_connect();
  }

  void stop() {
    if (phase_ == Phase::stopped) return;
    phase_ = Phase::stopped;
    ++phase_epoch_;
    ++ping_epoch_;
    phase_timer_.cancel();
    ping_timer_.cancel();
    deadline_timer_.cancel();
    resolver_.cancel();
    close_connection("client stopped");
  }

  void eval(ScriptId script, std::span<const std::string_view> keys,
            std::span<const std::string_view> args, EvalHandler& handler) {
    if (script >= scripts_.size()) {
      return fail_soon(handler, ErrorKind::server_error, kUnknownScript);
    }
    if (!usable()) return fail_soon(handler, ErrorKind::disconnected, kNotConnected);

    Call& call = acquire();
    call.handler = &handler;
    call.script = script;
    // Formatted here once (hiredis' own formatter costs several times more per argument), and
    // kept for a NOSCRIPT retry.
    call.tail_arguments = 1 + keys.size() + args.size();
    char numkeys[24];
    const auto [end, error] = std::to_chars(numkeys, numkeys + sizeof numkeys, keys.size());
    append_bulk(call.tail, std::string_view(numkeys, end - numkeys));
    for (auto part : {keys, args}) {
      for (std::string_view value : part)
        append_bulk(call.tail, value);
    }
    // EVAL with the source until the script's sha is known (a script added after connecting).
    const bool sha_known = !scripts_[script].sha.empty();
    if (!sha_known) load_script_in_background(script);
    if (!send(call, /*with_source=*/!sha_known)) {
      call.done = true;
      release_if_idle(call);
      return fail_soon(handler, ErrorKind::disconnected, kNotConnected);
    }
    call.deadline = SteadyClock::now() + settings_.call_timeout;
    link(call);
    arm_deadline_timer();
  }

  State state() const noexcept { return reported_; }
  const std::string& last_error() const noexcept { return last_error_; }
  std::size_t in_flight() const noexcept { return sent_count_; }

 private:
  enum class Phase : std::uint8_t { idle, connecting, up, waiting, stopped };

  struct Script {
    std::string source;
    std::string sha;  // from SCRIPT LOAD; empty until the first load succeeds
    bool loading = false;
  };

  // One eval() call. Pooled and reused: its buffers (and its Result's reply) keep their capacity,
  // so a steady stream of calls allocates nothing here.
  struct Call {
    EvalHandler* handler = nullptr;
    ScriptId script = 0;
    SteadyClock::time_point deadline;
    Call* prev = nullptr;  // the deadline list: calls with no result yet, oldest first
    Call* next = nullptr;
    bool linked = false;
    bool sent = false;        // hiredis holds a reply callback for it
    bool done = false;        // its result is decided
    bool delivering = false;  // its handler is running or posted
    // The command after the script: numkeys, the keys, the args, in the protocol's bulk strings.
    std::string tail;
    std::size_t tail_arguments = 0;
    Result result;
  };

  // --- connection life cycle -------------------------------------------------------------------

  bool usable() const noexcept { return phase_ == Phase::up && !closing_; }

  template <typename Then>
  void arm_phase_timer(Milliseconds delay, Then then) {
    const auto epoch = ++phase_epoch_;
    phase_timer_.expires_after(delay);
    phase_timer_.async_wait(
        [self = shared_from_this(), epoch, then](const boost::system::error_code& error) {
          if (error || epoch != self->phase_epoch_ || self->phase_ == Phase::stopped) return;
          then(*self);
        });
  }

  void start_connect() {
    phase_ = Phase::connecting;
    arm_phase_timer(settings_.connect_timeout, [](Impl& impl) { impl.on_connect_timeout(); });
    boost::system::error_code not_numeric;
    const auto address = net::ip::make_address(settings_.host, not_numeric);
    if (!not_numeric) return connect_to(address);
    // hiredis would resolve with a blocking getaddrinfo on the event loop: resolve here instead.
    resolver_.async_resolve(
        settings_.host, std::to_string(settings_.port),
        [self = shared_from_this(), epoch = phase_epoch_](
            const boost::system::error_code& error, const tcp::resolver::results_type& found) {
          self->on_resolved(epoch, error, found);
        });
  }

  void on_resolved(std::uint64_t epoch, const boost::system::error_code& error,
                   const tcp::resolver::results_type& found) {
    if (epoch != phase_epoch_ || phase_ != Phase::connecting) return;  // timed out or stopped
    if (error || found.empty()) {
      return connection_failed("cannot resolve " + settings_.host + ": " +
                               (error ? error.message() : "no address"));
    }
    // Each attempt takes the next address, so one unreachable address (say ::1 while the server
    // listens on IPv4 only) cannot keep the client down for good.
    auto entry = found.begin();
    std::advance(entry, resolve_rotation_++ % found.size());
    connect_to(entry->endpoint().address());
  }

  void connect_to(const net::ip::address& address) {
    redisAsyncContext* context = redisAsyncConnect(address.to_string().c_str(), settings_.port);
    if (context == nullptr) {
      return connection_failed("cannot connect to " + endpoint_ + ": no memory");
    }
    if (context->err != 0) {
      std::string reason = "cannot connect to " + endpoint_ + ": " + context->errstr;
      redisAsyncFree(context);
      return connection_failed(std::move(reason));
    }
    context->data = this;
    // Pipelined small writes must not wait for Nagle (hiredis versions differ on setting this).
    const int on = 1;
    ::setsockopt(context->c.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (!events_.attach(*context, weak_from_this(), *this)) {
      redisAsyncFree(context);
      return connection_failed("cannot connect to " + endpoint_ + ": cannot watch its socket");
    }
    context_ = context;
    // Pipelined behind the connect: hiredis writes them once the socket is connected. PING comes
    // last, so its reply means every step before it succeeded.
    bool queued = true;
    if (!settings_.password.empty()) {
      if (settings_.username.empty()) {
        queued &= command(&Impl::on_handshake_reply, step_data(kAuth), "AUTH", settings_.password);
      } else {
        queued &= command(&Impl::on_handshake_reply, step_data(kAuth), "AUTH", settings_.username,
                          settings_.password);
      }
    }
    if (settings_.db != 0) {
      queued &= command(&Impl::on_handshake_reply, step_data(kSelect), "SELECT",
                        std::to_string(settings_.db));
    }
    for (std::size_t i = 0; i < scripts_.size(); ++i) {
      queued &= command(&Impl::on_handshake_reply, step_data(kFirstScript + i), "SCRIPT", "LOAD",
                        scripts_[i].source);
    }
    queued &= command(&Impl::on_handshake_reply, step_data(kPing), "PING");
    if (!queued) {
      close_connection("cannot connect to " + endpoint_ + ": cannot queue the handshake");
    }
  }

  void on_connect_timeout() {
    if (phase_ != Phase::connecting) return;
    std::string reason = "connecting to " + endpoint_ + " timed out after " +
                         std::to_string(settings_.connect_timeout.count()) + "ms";
    if (context_ != nullptr) return close_connection(std::move(reason));
    resolver_.cancel();
    connection_failed(std::move(reason));
  }

  static void on_handshake_reply(redisAsyncContext* context, void* reply, void* step) {
    static_cast<Impl*>(context->data)
        ->handshake_reply(static_cast<const redisReply*>(reply), step_of(step));
  }

  void handshake_reply(const redisReply* reply, std::uintptr_t step) {
    // A null reply means the context is being freed: on_context_gone says why.
    if (reply == nullptr || closing_ || phase_ != Phase::connecting) return;
    if (reply->type == REDIS_REPLY_ERROR) {
      std::string what = step == kAuth     ? std::string("AUTH")
                         : step == kSelect ? "SELECT " + std::to_string(settings_.db)
                         : step == kPing
                             ? std::string("PING")
                             : "SCRIPT LOAD of script " + std::to_string(step - kFirstScript);
      return close_connection(endpoint_ + ": " + what +
                              " failed: " + std::string(reply->str, reply->len));
    }
    if (step >= kFirstScript) {
      const std::size_t index = step - kFirstScript;
      if (reply->type != REDIS_REPLY_STRING) {
        return close_connection(endpoint_ + ": SCRIPT LOAD returned no sha");
      }
      scripts_[index].sha.assign(reply->str, reply->len);
    }
    if (step == kPing) become_up();
  }

  // The backoff is not reset here but at the first call the server answers without a reconnect
  // error: a replica completes the handshake and answers PING, then refuses every script with
  // READONLY, and resetting on either would reconnect every 25-50 ms (or once per PING).
  void become_up() {
    phase_ = Phase::up;
    ++phase_epoch_;
    phase_timer_.cancel();
    ping_outstanding_ = false;
    report(State::up, {});
    schedule_ping(SteadyClock::now() + settings_.ping_interval);
  }

  // Drops the current context. Inside a reply callback hiredis frees it when the callback
  // returns; elsewhere now. Either way on_context_gone follows and decides what comes next.
  void close_connection(std::string reason) {
    if (context_ == nullptr || closing_) return;
    closing_ = true;
    closing_reason_ = std::move(reason);
    redisAsyncFree(context_);
  }

  void on_context_gone(const redisAsyncContext& context) override {
    context_ = nullptr;
    std::string reason = std::exchange(closing_reason_, {});
    closing_ = false;
    if (reason.empty()) {
      const std::string detail = context.c.err != 0 ? context.c.errstr : "closed";
      reason = phase_ == Phase::up ? "connection to " + endpoint_ + " lost: " + detail
                                   : "cannot connect to " + endpoint_ + ": " + detail;
    }
    ++ping_epoch_;
    ping_timer_.cancel();
    ping_outstanding_ = false;
    for (auto& script : scripts_)
      script.loading = false;
    if (phase_ == Phase::stopped) return;
    connection_failed(std::move(reason));
  }

  void connection_failed(std::string reason) {
    phase_ = Phase::waiting;
    last_error_ = reason;
    report(State::down, reason);
    arm_phase_timer(backoff_.next(), [](Impl& impl) { impl.start_connect(); });
  }

  void report(State state, std::string_view reason) {
    if (state == reported_) return;
    reported_ = state;
    if (!on_state_) return;
    net::post(executor_, [self = shared_from_this(), state, reason = std::string(reason)] {
      if (self->phase_ != Phase::stopped) self->on_state_(state, reason);
    });
  }

  // --- PING watchdog --------------------------------------------------------------------------

  void schedule_ping(SteadyClock::time_point at) {
    const auto epoch = ++ping_epoch_;
    ping_timer_.expires_at(at);
    ping_timer_.async_wait(
        [self = shared_from_this(), epoch](const boost::system::error_code& error) {
          if (error || epoch != self->ping_epoch_) return;
          self->on_ping_timer();
        });
  }

  void on_ping_timer() {
    if (!usable()) return;
    if (ping_outstanding_) {
      return close_connection(endpoint_ + " did not answer PING within " +
                              std::to_string(settings_.ping_timeout.count()) + "ms");
    }
    if (!command(&Impl::on_ping_reply, nullptr, "PING")) {
      return close_connection(endpoint_ + ": cannot send PING");
    }
    ping_outstanding_ = true;
    ping_sent_at_ = SteadyClock::now();
    schedule_ping(ping_sent_at_ + settings_.ping_timeout);
  }

  static void on_ping_reply(redisAsyncContext* context, void* reply, void*) {
    static_cast<Impl*>(context->data)->ping_reply(static_cast<const redisReply*>(reply));
  }

  void ping_reply(const redisReply* reply) {
    if (reply == nullptr || !usable()) return;
    ping_outstanding_ = false;
    if (reply->type == REDIS_REPLY_ERROR && means_reconnect({reply->str, reply->len})) {
      return close_connection(endpoint_ +
                              " replied to PING: " + std::string(reply->str, reply->len));
    }
    schedule_ping(ping_sent_at_ + settings_.ping_interval);
  }

  // --- scripts --------------------------------------------------------------------------------

  void load_script_in_background(ScriptId id) {
    Script& script = scripts_[id];
    if (script.loading || !usable()) return;
    if (command(&Impl::on_script_loaded, step_data(id), "SCRIPT", "LOAD", script.source)) {
      script.loading = true;
    }
  }

  static void on_script_loaded(redisAsyncContext* context, void* reply, void* id) {
    static_cast<Impl*>(context->data)
        ->script_loaded(static_cast<const redisReply*>(reply), static_cast<ScriptId>(step_of(id)));
  }

  void script_loaded(const redisReply* reply, ScriptId id) {
    scripts_[id].loading = false;
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
      scripts_[id].sha.assign(reply->str, reply->len);
    }
  }

  // --- calls ----------------------------------------------------------------------------------

  // Sends a command whose arguments are all strings (binary safe). False if hiredis refused it
  // (the context is closing); then no callback was registered.
  template <typename... Parts>
  bool command(redisCallbackFn* callback, void* data, const Parts&... parts) {
    std::array<const char*, sizeof...(Parts)> argv{std::string_view(parts).data()...};
    std::array<std::size_t, sizeof...(Parts)> lengths{std::string_view(parts).size()...};
    return redisAsyncCommandArgv(context_, callback, data, static_cast<int>(argv.size()),
                                 argv.data(), lengths.data()) == REDIS_OK;
  }

  static void append_number(std::string& out, std::size_t value) {
    char digits[24];
    const auto [end, error] = std::to_chars(digits, digits + sizeof digits, value);
    out.append(digits, end);
  }

  // A bulk string of the Redis protocol: $<length>\r\n<bytes>\r\n (binary safe).
  static void append_bulk(std::string& out, std::string_view value) {
    out += '$';
    append_number(out, value.size());
    out += "\r\n";
    out += value;
    out += "\r\n";
  }

  bool send(Call& call, bool with_source) {
    const Script& script = scripts_[call.script];
    command_.clear();
    command_ += '*';
    append_number(command_, 2 + call.tail_arguments);
    command_ += "\r\n";
    if (with_source) {
      append_bulk(command_, "EVAL");
      append_bulk(command_, script.source);
    } else {
      append_bulk(command_, "EVALSHA");
      append_bulk(command_, script.sha);
    }
    command_ += call.tail;
    if (redisAsyncFormattedCommand(context_, &Impl::on_eval_reply, &call, command_.data(),
                                   command_.size()) != REDIS_OK) {
      return false;
    }
    call.sent = true;
    ++sent_count_;
    return true;
  }

  static void on_eval_reply(redisAsyncContext* context, void* reply, void* call) {
    static_cast<Impl*>(context->data)
        ->eval_reply(*static_cast<Call*>(call), static_cast<const redisReply*>(reply));
  }

  void eval_reply(Call& call, const redisReply* reply) {
    call.sent = false;
    --sent_count_;
    if (call.done) return release_if_idle(call);  // the late reply of a timed-out call
    if (reply == nullptr) {
      closing_ = true;  // the context is being freed: no new calls on it
      return complete(call, ErrorKind::disconnected, kConnectionLost);
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      const std::string_view text(reply->str, reply->len);
      if (text.starts_with("NOSCRIPT")) {
        // The server lost its script cache (restart, SCRIPT FLUSH): run this call with the source
        // and load the script again for the next ones. The caller sees one result.
        load_script_in_background(call.script);
        if (usable() && send(call, /*with_source=*/true)) return;
        return complete(call, ErrorKind::disconnected, kConnectionLost);
      }
      call.result.reply.assign(*reply);
      if (means_reconnect(text)) {
        close_connection(endpoint_ + " replied " + std::string(text));
      } else {
        backoff_.reset();
      }
      return complete(call, ErrorKind::server_error, call.result.reply.text());
    }
    backoff_.reset();
    call.result.reply.assign(*reply);
    complete(call, ErrorKind::none, {});
  }

  void complete(Call& call, ErrorKind error, std::string_view message) {
    call.done = true;
    unlink(call);
    call.result.error = error;
    call.result.message = message;
    if (error != ErrorKind::none && error != ErrorKind::server_error) call.result.reply.set_nil();
    if (destroying_) return release_if_idle(call);
    call.delivering = true;
    if (phase_ == Phase::stopped) {
      // stop() may run inside the caller's own code (a destructor): never call back into it there.
      net::post(executor_, [self = shared_from_this(), &call] { self->deliver(call); });
    } else {
      deliver(call);
    }
  }

  void deliver(Call& call) {
    EvalHandler* handler = std::exchange(call.handler, nullptr);
    handler->on_eval_result(call.result);
    call.delivering = false;
    release_if_idle(call);
  }

  void fail_soon(EvalHandler& handler, ErrorKind error, std::string_view message) {
    net::post(executor_, [self = shared_from_this(), &handler, error, message] {
      Result result;
      result.error = error;
      result.message = message;
      handler.on_eval_result(result);
    });
  }

  Call& acquire() {
    Call* call = nullptr;
    if (free_calls_.empty()) {
      calls_.push_back(std::make_unique<Call>());
      call = calls_.back().get();
    } else {
      call = free_calls_.back();
      free_calls_.pop_back();
    }
    call->handler = nullptr;
    call->linked = call->sent = call->done = call->delivering = false;
    call->tail.clear();
    call->tail_arguments = 0;
    call->result.error = ErrorKind::none;
    call->result.message = {};
    return *call;
  }

  void release_if_idle(Call& call) {
    if (call.done && !call.sent && !call.delivering) free_calls_.push_back(&call);
  }

  // --- deadlines ------------------------------------------------------------------------------
  // All calls share one timeout, so deadlines come in the order calls were made: one timer for the
  // oldest pending call is enough. It is not moved when that call completes; when it fires it
  // expires what is due and re-arms for the new oldest call.

  void link(Call& call) {
    call.prev = tail_;
    call.next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = &call;
    tail_ = &call;
    call.linked = true;
  }

  void unlink(Call& call) {
    if (!call.linked) return;
    (call.prev != nullptr ? call.prev->next : head_) = call.next;
    (call.next != nullptr ? call.next->prev : tail_) = call.prev;
    call.prev = call.next = nullptr;
    call.linked = false;
  }

  void arm_deadline_timer() {
    if (deadline_armed_ || head_ == nullptr || phase_ == Phase::stopped) return;
    deadline_armed_ = true;
    deadline_timer_.expires_at(head_->deadline);
    deadline_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
      self->deadline_armed_ = false;
      if (error || self->phase_ == Phase::stopped) return;
      self->expire_calls();
    });
  }

  void expire_calls() {
    const auto now = SteadyClock::now();
    // Each completion may run caller code that adds or completes calls: re-read the head.
    while (head_ != nullptr && head_->deadline <= now && phase_ != Phase::stopped) {
      complete(*head_, ErrorKind::timeout, kTimedOut);
    }
    arm_deadline_timer();
  }

  // --- state ----------------------------------------------------------------------------------

  net::any_io_executor executor_;
  Settings settings_;
  StateHandler on_state_;
  std::string endpoint_;  // host:port, for messages
  Backoff backoff_;
  detail::AsioEvents events_;
  tcp::resolver resolver_;
  net::steady_timer phase_timer_;  // connect timeout while connecting, backoff while waiting
  net::steady_timer ping_timer_;
  net::steady_timer deadline_timer_;

  Phase phase_ = Phase::idle;
  State reported_ = State::connecting;
  std::string last_error_;
  redisAsyncContext* context_ = nullptr;
  bool closing_ = false;  // context_ is being freed: send nothing more on it
  std::string closing_reason_;
  bool destroying_ = false;
  std::uint64_t phase_epoch_ = 0;  // a timer or resolve handler from an older phase is ignored
  std::uint64_t ping_epoch_ = 0;
  bool ping_outstanding_ = false;
  SteadyClock::time_point ping_sent_at_;
  bool deadline_armed_ = false;
  std::size_t resolve_rotation_ = 0;

  std::vector<Script> scripts_;
  std::vector<std::unique_ptr<Call>> calls_;  // owns every Call ever made
  std::vector<Call*> free_calls_;
  Call* head_ = nullptr;  // pending calls, oldest (earliest deadline) first
  Call* tail_ = nullptr;
  std::size_t sent_count_ = 0;
  std::string command_;  // scratch for send(): hiredis copies it into its output buffer
};

// ---------------------------------------------------------------------------------------------

Client::Client(net::any_io_executor executor, Settings settings, StateHandler on_state) {
  validate(settings);
  impl_ = std::make_shared<Impl>(std::move(executor), std::move(settings), std::move(on_state));
}

Client::~Client() {
  if (impl_) impl_->stop();
}

ScriptId Client::add_script(std::string source) {
  return impl_->add_script(std::move(source));
}

void Client::run() {
  impl_->run();
}

void Client::stop() {
  impl_->stop();
}

void Client::eval(ScriptId script, std::span<const std::string_view> keys,
                  std::span<const std::string_view> args, EvalHandler& handler) {
  impl_->eval(script, keys, args, handler);
}

State Client::state() const noexcept {
  return impl_->state();
}

const std::string& Client::last_error() const noexcept {
  return impl_->last_error();
}

std::size_t Client::in_flight() const noexcept {
  return impl_->in_flight();
}

}  // namespace sluice::redis
