#pragma once
// The Redis store: every limit of a request decided by a Lua script, atomically and
// all-or-nothing, so several sluice instances sharing one Redis enforce each limit exactly once.
//
// One RedisStore (with its own redis::Client connections) per event-loop thread. decide() queues
// the call and returns `pending`; the first call queued in a turn of the event loop posts a flush,
// which sends every call queued meanwhile as ONE EVALSHA (a batch, capped by max_batch_requests
// and max_batch_checks). While every connection has a batch out, the queue waits for the first
// to come back (a full one goes at once), so under load a batch gathers one round trip's
// requests; a batch that times out fails the calls that waited behind it. The script decides the
// batch's requests one after another in queue order, each all-or-nothing on its own: exactly what
// the same requests sent one by one would get at the same instant. Consecutive requests with the
// same checks (a client's burst) go as one run, which the script decides in one step: at one
// instant each admitted request adds the same amount to a counter, so how many of the run fit is
// a division (a flood from one client costs Redis one evaluation per batch, admitted or not). The
// script returns what it admitted and the states it started from; the store replays the batch
// through evaluate() for the verdicts, and a reply the replay disagrees with is a store error.
// The verdicts arrive through each call's DecideWaiter on that thread. The script reads Redis'
// TIME (once per batch: its requests arrived together), never the proxy's clock, and transcribes
// the decisions of limit/algorithm.cpp, so it decides exactly as the memory store would for
// the same state and instant. A failure of the batch (not connected, its one deadline passed, an
// error reply, a reply of the wrong shape) is Outcome::store_error for every request in it, never
// "limited"; a counter whose stored value cannot be read fails only the requests that use it. The
// route's on_store_error decides.
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
// The key of the limit-key digests (classify::KeyBuilder) of instances sharing a Redis store with
// this salt: the same on all of them, and secret as long as the salt is.
DigestKey redis_digest_key(std::string_view salt) noexcept;

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

// Decodes the script's reply (one string of little-endian int64s) into `numbers` (reused).
// False, with `numbers` empty, when the reply is not a string of whole int64s. (Binary both ways,
// the batch's arguments too: Redis and hiredis then handle one string, not an element per number.)
bool decode_decide_reply(const redis::Reply& reply, std::vector<std::int64_t>& numbers);

// How a batch went out, kept while it is out to read its reply. Consecutive calls with the same
// checks and mode go as one run (a client's burst of identical requests, decided by the script in
// closed form); `run_keys` holds, for each run in order, the index into the batch's KEYS
// (0-based) of each of its checks' counters.
struct RedisRun {
  std::uint32_t calls = 0;      // consecutive calls, >= 1
  std::uint32_t first_key = 0;  // where the run's key indices start in run_keys
};

// In the reply, per run: how many of its calls were admitted (always the first ones), or this
// when a counter it uses holds something that is not a state (nothing was charged).
inline constexpr std::int64_t kRedisUnreadable = -1;

// Told by RedisBatchReader about calls as it replays them, in batch order.
class RedisReplayObserver {
 public:
  // `call` was admitted (and charged, unless check-only).
  virtual void on_admitted(const DecideCall& call) = 0;
  // `call` was refused at Redis' instant `now`, its checks (their keys at `keys` in the batch's
  // KEYS) seeing `states`; only told for calls whose checks have distinct keys, once per run.
  virtual void on_refused(const DecideCall& call, std::span<const std::uint32_t> keys,
                          std::span<const LimitState> states, Micros now) = 0;

 protected:
  ~RedisReplayObserver() = default;
};

// Reads the script's reply to a batch: {the instant it decided at (Redis' TIME, µs); per run, the
// calls admitted or kRedisUnreadable; per key, its state before the batch (v0 v1 v2; -1 0 0 when
// it is not a state)} into every call's outcome and verdicts. The verdicts come from replaying the
// calls through evaluate(), the function the memory store calls, from those states at that
// instant; the script decided and charged, and the replay must admit exactly what it admitted,
// call by call. A reply of the wrong shape fails every call, and a run the replay disagrees with
// fails with every run after it (store_error, "reply malformed"): no call gets a verdict the
// script did not charge. Keeps its scratch, so reading allocates nothing once warm.
class RedisBatchReader {
 public:
  void read(const redis::Reply& reply, std::span<DecideCall* const> calls,
            std::span<const RedisRun> runs, std::span<const std::uint32_t> run_keys,
            RedisReplayObserver* observer = nullptr);

 private:
  bool replay_run(std::int64_t admitted, Micros now, std::span<DecideCall* const> calls,
                  std::span<const std::uint32_t> keys, RedisReplayObserver* observer);

  std::vector<std::int64_t> numbers_;
  std::vector<LimitState> states_;  // per key of the batch, as the calls replayed so far left it
  std::vector<bool> unreadable_;
  std::vector<Step> steps_;         // per check of the call being replayed
  std::vector<LimitState> before_;  // per check: the state it saw
};

// Refusals a thread's Redis store repeats without asking Redis. A request whose checks equal those
// of a request Redis refused is refused again, by this instance alone, until the first instant
// any of them could be admitted (the largest retry_after of its refusing checks, counted from
// when the refused request's batch was sent, so never later than Redis' own answer would change)
// and at most `max_age`: a flood costs Redis one call per `max_age` and key instead of one per
// batch. The verdicts are evaluate() of the remembered states at the estimated Redis instant, so
// they are Redis' numbers unless someone charged the keys since: another thread or instance, or
// a request of this store still on its way (whose consumption only delays admission: the
// refusal stands either way). A refusal is forgotten once this store sees a request admitted on
// one of its keys (a generation per key, noted by each batch when it leaves, so an admission
// that Redis may have decided first also counts). It is not put off while requests are out, as
// a flood always has some: the cache would never answer. Bounded: a fixed table; calls with more
// than kMaxChecks checks or a key twice are not remembered. One event loop's thread.
class RefusalCache {
 public:
  static constexpr std::size_t kMaxChecks = 4;

  explicit RefusalCache(Micros max_age, std::size_t slots = 256);

  bool enabled() const noexcept { return max_age_ > 0; }
  // Answers `call` (outcome limited and every verdict) if it repeats a remembered refusal that
  // still stands at `local.now()`; false (call untouched) otherwise.
  bool answer(DecideCall& call, const Clock& local) noexcept;
  // The generation of `key`'s slot, which a batch notes for each of its keys when it leaves.
  std::uint32_t generation(const KeyDigest& key) const noexcept;
  // Remembers a refusal of `call` decided at Redis' `redis_now` from `states`, for a batch that
  // left at `local_sent` when its keys were at `generations`.
  void remember(const DecideCall& call, std::span<const LimitState> states,
                std::span<const std::uint32_t> generations, Micros redis_now,
                Micros local_sent) noexcept;
  // `call` was admitted: forgets every refusal involving one of its keys.
  void admitted(const DecideCall& call) noexcept;

 private:
  struct Entry {
    std::uint8_t checks = 0;  // 0: empty
    LimitCheck check[kMaxChecks];
    LimitState state[kMaxChecks];
    std::uint32_t generation[kMaxChecks];
    Micros redis_now = 0;
    Micros local_sent = 0;
    Micros until = 0;  // local time
  };
  struct KeySlot {
    std::uint32_t generation = 0;  // bumped by each admission of a key in the slot
  };
  std::size_t slot_of(std::span<const LimitCheck> checks) const noexcept;
  KeySlot& key_slot(const KeyDigest& key) noexcept;
  const KeySlot& key_slot(const KeyDigest& key) const noexcept;

  Micros max_age_;
  std::vector<Entry> entries_;
  std::vector<KeySlot> keys_;  // by a hash of the key; a collision only forgets more
};

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
  redis::Settings redis;     // where, AUTH/SELECT, and the deadline of each batch (call_timeout)
  unsigned connections = 1;  // of this store, i.e. per event-loop thread; batches go round-robin
  DigestKey key_names;       // redis_key_names(salt)
  // A batch (one EVALSHA) carries at most this many requests and checks, so one script call
  // stays short (Redis runs nothing else meanwhile); more calls in one turn make more batches.
  unsigned max_batch_requests = 64;
  unsigned max_batch_checks = 256;
  // How long a refused request's exact repeats are refused by this instance without asking
  // Redis (RefusalCache); 0 = always ask. The config's default is 1 s.
  std::chrono::milliseconds refusal_cache{0};
  // Tests only: decide with the test variant of the script, at this clock's `now`, which also
  // times the refusal cache. Null in production, where the script reads Redis' TIME and the
  // cache a steady clock.
  const Clock* test_clock = nullptr;
};

class RedisStore final : public Store {
 public:
  // `monitor` may be shared by the stores of all threads; null = no logging. `first_connection`
  // numbers this store's connections for the monitor.
  RedisStore(net::any_io_executor executor, RedisStoreSettings settings,
             std::shared_ptr<RedisStoreMonitor> monitor = nullptr,
             std::size_t first_connection = 0);
  // Stops the connections. A call still queued or in flight completes as a store_error through
  // its waiter if the executor keeps running; otherwise it is dropped with the io_context.
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Starts connecting in the background (call on the executor's thread); returns at once.
  void run();
  void stop();

  // On the executor's thread only. Completes `ready` only for a call with no checks (allowed) or
  // too few verdict slots (store_error); otherwise `pending`: queued for this turn's batch, whose
  // one EVALSHA is sent by a posted flush (or at once when the batch is full). Never calls a
  // waiter from inside decide().
  Completion decide(DecideCall& call, DecideWaiter& waiter) override;

  // True when at least one connection is up.
  bool connected() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::limit
