#pragma once
// An asynchronous Redis client for running Lua scripts, on hiredis 0.14 driven by Asio.
//
// One Client per event-loop thread: one connection, pipelined (many calls in flight, replies in
// order). run() connects in the background (AUTH, SELECT, SCRIPT LOAD of every script, then "up"),
// a PING watchdog notices a dead server, and a lost connection is re-made with capped,
// jittered exponential backoff. Calls are never queued while down and never replayed after a
// reconnect (a replayed script could charge a limit twice): they fail fast instead, and the
// caller decides what a failure means.
//
// Threading: a Client and everything it calls back run on its executor's thread only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <sluice/net.hpp>
#include <sluice/redis/reply.hpp>

namespace sluice::redis {

using Milliseconds = std::chrono::milliseconds;

struct Settings {
  // An IP literal or a name; a name is resolved with Asio (off the event loop) before each
  // connect, so a changed DNS record is picked up on reconnect.
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string username;  // Redis 6 ACL user; empty = AUTH with the password only
  std::string password;  // empty = no AUTH
  int db = 0;            // SELECTed when not 0

  Milliseconds call_timeout{50};       // every eval() call, from eval() to its result
  Milliseconds connect_timeout{1000};  // resolve + TCP connect + AUTH/SELECT/SCRIPT LOAD
  Milliseconds ping_interval{1000};
  Milliseconds ping_timeout{1000};   // no PONG within this: the connection is dropped
  Milliseconds reconnect_min{50};    // backoff: first delay, doubled per failed attempt...
  Milliseconds reconnect_max{2000};  // ...up to this; each delay is jittered down to half
  // Seeds the jitter; unset = a fresh random seed per client, so instances do not retry in step.
  std::optional<std::uint64_t> jitter_seed;
};

// Reads "redis://[[username]:password@]host[:port][/db]" into `settings` (host, port, username,
// password, db; the rest is left alone). Percent-escapes (%40 for '@') are decoded in the
// username and password; an IPv6 host goes in brackets. `fallback_password` is used when the URL
// has none (the caller reads it from SLUICE_REDIS_PASSWORD, so secrets stay out of config files).
// Returns an empty string on success, else what is wrong (the password is never echoed back).
std::string parse_url(std::string_view url, Settings& settings,
                      std::string_view fallback_password = {});

// The reconnect delays: first `min`, doubling up to `max`, each drawn uniformly from
// [delay/2, delay] ("equal jitter") by a small generator owned here, never shared.
class Backoff {
 public:
  Backoff(Milliseconds min, Milliseconds max, std::uint64_t seed) noexcept;
  Milliseconds next() noexcept;
  void reset() noexcept { attempt_ = 0; }

 private:
  std::uint64_t random() noexcept;

  Milliseconds min_;
  Milliseconds max_;
  std::uint64_t state_;
  unsigned attempt_ = 0;
};

enum class ErrorKind : std::uint8_t {
  none,
  timeout,       // no reply within Settings::call_timeout; a late reply is dropped
  disconnected,  // not connected, or the connection was lost with the call in flight
  server_error,  // Redis answered with an error reply (the script failed, READONLY, ...)
  protocol,      // the reply does not have the shape the caller expects (set by callers)
};

std::string_view to_string(ErrorKind kind) noexcept;

// The outcome of one eval() call. Lent to the handler: valid only during on_eval_result.
struct Result {
  ErrorKind error = ErrorKind::none;
  std::string_view message;  // why it failed: static text, or the server's error text
  Reply reply;               // the script's reply; the error reply with server_error

  bool ok() const noexcept { return error == ErrorKind::none; }
};

// Told the result of one eval() call, exactly once, on the client's executor, never from inside
// eval() itself. An interface (not a std::function) so a caller embeds it in its own per-request
// state and a call costs no allocation for its callback.
class EvalHandler {
 public:
  virtual void on_eval_result(Result& result) = 0;

 protected:
  ~EvalHandler() = default;
};

enum class State : std::uint8_t {
  connecting,  // run() was called and the first connection is not up yet
  up,          // connected, authenticated, scripts loaded
  down,        // a connection failed or was lost; reconnecting in the background
};

std::string_view to_string(State state) noexcept;

using ScriptId = std::uint32_t;

class Client {
 public:
  // Told each change between up and down (not every failed reconnect attempt): log once per
  // change. `reason` says why it went down (empty for up). Posted, never called from inside a
  // Client member function, and not called after stop().
  using StateHandler = std::function<void(State state, std::string_view reason)>;

  // Throws std::invalid_argument on settings that cannot work (e.g. a zero timeout).
  Client(net::any_io_executor executor, Settings settings, StateHandler on_state = {});
  // stop()s. Destroy the Client before its io_context.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Registers a Lua script for eval(). Scripts registered before run() are loaded as part of
  // every connect; a later one is loaded in the background and sent with EVAL until then.
  ScriptId add_script(std::string source);

  // Starts connecting in the background; returns at once.
  void run();

  // Closes the connection and stops reconnecting, for good. Calls in flight complete with
  // `disconnected` (posted); later eval() calls fail the same way.
  void stop();

  // Runs a registered script: EVALSHA with `keys` and `args` (binary safe, copied before eval()
  // returns), falling back to EVAL on NOSCRIPT. `handler` must stay alive until it is called.
  void eval(ScriptId script, std::span<const std::string_view> keys,
            std::span<const std::string_view> args, EvalHandler& handler);

  State state() const noexcept;
  // Why the connection last went down or last failed to come up; empty if it never did.
  const std::string& last_error() const noexcept;
  // Calls sent and not answered yet, including timed-out calls whose late reply is still due.
  std::size_t in_flight() const noexcept;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with pending handlers, which may outlive the Client
};

}  // namespace sluice::redis
