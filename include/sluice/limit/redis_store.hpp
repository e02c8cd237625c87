#pragma once
// The Redis store: every limit of a request decided by ONE Lua script, atomically and
// all-or-nothing, so several sluice instances sharing one Redis enforce each limit exactly once.
//
// One RedisStore (with its own redis::Client connections) per event-loop thread: decide() sends
// one EVALSHA and returns `pending`; the verdicts arrive through the DecideWaiter on that thread.
// The script reads Redis' TIME, never the proxy's clock, and transcribes limit/algorithm.cpp
// operation for operation, so it decides exactly as the memory store would for the same state
// and instant. Any failure (not connected, deadline passed, an error reply, a reply of the wrong
// shape) is Outcome::store_error, never "limited"; the route's on_store_error decides.
//
// Redis keys: "sluice:{limits}:<32 hex digits>" holding "v0 v1 v2" (LimitState, exact integers)
// with an expiry just past the instant the state becomes equivalent to a fresh key. The hex is a
// SipHash-2-4 of the counter's KeyDigest keyed by the key salt: no raw identity reaches Redis,
// and without the salt a key name cannot be linked to an IP or API key by trying candidates.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/limit/clock.hpp>
#include <sluice/limit/key.hpp>
#include <sluice/limit/store.hpp>
#include <sluice/net.hpp>
#include <sluice/redis/client.hpp>

namespace sluice::limit {

// Every key of one script call carries this hash tag, so a call never spans Redis Cluster slots
// (no CROSSSLOT). It is one constant for all keys: a counter shared by many callers (a global
// limit next to a per-IP one) meets every caller's keys in some call, so any tag computed per
// call would give that shared counter a different name per caller and split it.
inline constexpr std::string_view kRedisKeyPrefix = "sluice:{limits}:";
inline constexpr std::size_t kRedisKeyLength = kRedisKeyPrefix.size() + 32;

// The key that turns digests into Redis key names, from `store.redis.key_salt` (or
// SLUICE_KEY_SALT). Instances sharing a Redis must use the same salt or they count apart. An
// empty salt gives a fixed default key.
DigestKey redis_key_names(std::string_view salt) noexcept;

// "sluice:{limits}:" + 32 lower-case hex digits of siphash128(names, digest), written into
// `out`. Returns the name as a view of `out`.
std::string_view redis_key_name(const DigestKey& names, const KeyDigest& digest,
                                std::span<char, kRedisKeyLength> out) noexcept;
std::string redis_key_name(const DigestKey& names, const KeyDigest& digest);

// The Lua source of the decide script. `time_from_argument` builds the TEST variant: `now` comes
// from the last ARGV instead of Redis' TIME, and keys get an hour of extra TTL so that state
// written at a simulated instant does not expire in real time under the test. Production never
// builds it (RedisStoreSettings::test_clock is null there), so no caller can set Redis' clock.
std::string redis_decide_script(bool time_from_argument = false);

// Reads the script's reply into call.verdicts and call.outcome (limits from call.checks). False,
// leaving call.outcome alone, when the reply does not have exactly the expected shape: an array
// of 1 + 4 * checks integers {all allowed, then per check allowed, remaining, reset µs, retry µs},
// flags 0/1 that agree with each other, no negative numbers, no retry on an allowed check.
bool read_decide_reply(const redis::Reply& reply, DecideCall& call) noexcept;

// Watches the Redis stores of every thread of a process: logs the shared store going down (the
// first failure: a lost connection, a timeout, an error reply) and coming back, once per change,
// never per request, and counts failed calls. Thread-safe.
class RedisStoreMonitor {
 public:
  // `endpoint` (host:port, no password) for messages; `connections` = all Clients in the process.
  RedisStoreMonitor(std::string endpoint, std::size_t connections);

  // A Client's state change (from its StateHandler). `connection` is 0..connections-1.
  void on_state(std::size_t connection, redis::State state, std::string_view reason);
  void on_call_failed(std::string_view reason);
  void on_call_succeeded();

  bool healthy() const noexcept { return healthy_.load(std::memory_order_relaxed); }
  std::uint64_t failed_calls() const noexcept {
    return failed_calls_.load(std::memory_order_relaxed);
  }

 private:
  void recover(std::string_view how);

  std::string endpoint_;
  std::mutex mutex_;  // guards states_ and orders the log lines of one change
  std::vector<redis::State> states_;
  std::size_t up_ = 0;
  std::atomic<bool> announced_{false};  // all connections were up once ("connected" logged)
  std::atomic<bool> healthy_{true};
  std::atomic<bool> all_up_{false};
  std::atomic<std::uint64_t> failed_calls_{0};
  std::atomic<std::uint64_t> failed_calls_at_down_{0};
  std::atomic<std::int64_t> last_failure_ns_{0};  // steady clock
};

struct RedisStoreSettings {
  redis::Settings redis;     // where, AUTH/SELECT, and the per-call deadline (call_timeout)
  unsigned connections = 1;  // of this store, i.e. per event-loop thread; calls go round-robin
  DigestKey key_names;       // redis_key_names(salt)
  // Tests only: decide with the test variant of the script, at this clock's `now`. Null in
  // production, where the script reads Redis' TIME.
  const Clock* test_clock = nullptr;
};

class RedisStore final : public Store {
 public:
  // `monitor` may be shared by the stores of all threads; null = no logging. `first_connection`
  // numbers this store's connections for the monitor.
  RedisStore(net::any_io_executor executor, RedisStoreSettings settings,
             std::shared_ptr<RedisStoreMonitor> monitor = nullptr,
             std::size_t first_connection = 0);
  // Stops the connections. A call still in flight completes as a store_error through its waiter
  // if the executor keeps running; otherwise it is dropped with the io_context.
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Starts connecting in the background (call on the executor's thread); returns at once.
  void run();
  void stop();

  // On the executor's thread only. Completes `ready` only for a call with no checks (allowed) or
  // too few verdict slots (store_error); otherwise `pending`, with exactly one EVALSHA.
  Completion decide(DecideCall& call, DecideWaiter& waiter) override;

  // True when at least one connection is up.
  bool connected() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::limit
