// The Redis store against a real redis-server: the Lua script decides exactly like the memory
// store (random sequences, states compared bit for bit), all-or-nothing, check-only, Redis' TIME,
// key names and expiries, batches (one EVALSHA per loop turn, deciding exactly like the same
// requests sent one by one), and every failure a store_error, never "limited".
// The io_context runs in the test thread, in bounded loops.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/limit/memory_store.hpp>
#include <sluice/limit/redis_store.hpp>

#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::net::io_context;
using sluice::redis::Reply;
using sluice::test::BlockingRedis;
using sluice::test::RedisServer;
using namespace sluice::limit;
using SteadyClock = std::chrono::steady_clock;

template <typename Done>
bool run_until(io_context& io, Done done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = SteadyClock::now() + limit;
  while (!done()) {
    if (SteadyClock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(10ms);
  }
  return true;
}

struct Waiter final : DecideWaiter {
  int calls = 0;
  void on_decided(DecideCall&) override { ++calls; }
};

RedisStoreSettings settings_for(const RedisServer& server, const Clock* test_clock = nullptr,
                                std::string_view salt = "test salt") {
  RedisStoreSettings settings;
  settings.redis.port = server.port();
  settings.redis.call_timeout = 200ms;
  settings.redis.reconnect_min = 20ms;
  settings.redis.reconnect_max = 200ms;
  settings.redis.jitter_seed = 7;
  settings.key_names = redis_key_names(salt);
  settings.test_clock = test_clock;
  return settings;
}

// A store on `io`, connected.
std::unique_ptr<RedisStore> connected_store(io_context& io, RedisStoreSettings settings,
                                            std::shared_ptr<RedisStoreMonitor> monitor = {}) {
  auto store = std::make_unique<RedisStore>(io.get_executor(), std::move(settings), monitor);
  store->run();
  REQUIRE(run_until(io, [&] { return store->connected(); }));
  return store;
}

// Decides `call` on the Redis store and waits for the answer (a bounded wait: no call may hang).
void decide_now(io_context& io, RedisStore& store, DecideCall& call) {
  Waiter waiter;
  REQUIRE(store.decide(call, waiter) == Store::Completion::pending);
  CHECK(waiter.calls == 0);  // never completed from inside decide()
  REQUIRE(run_until(io, [&] { return waiter.calls > 0; }));
  CHECK(waiter.calls == 1);
}

// The same for a store with a refusal cache: a repeat of a refusal may be answered at once
// (`ready`, true); anything else goes to Redis as above.
bool decide_maybe_cached(io_context& io, RedisStore& store, DecideCall& call) {
  Waiter waiter;
  if (store.decide(call, waiter) == Store::Completion::ready) {
    CHECK(call.outcome == Outcome::limited);  // the cache only ever refuses
    return true;
  }
  REQUIRE(run_until(io, [&] { return waiter.calls > 0; }));
  CHECK(waiter.calls == 1);
  return false;
}

LimitCheck check_of(KeyDigest key, Algorithm algorithm, std::int64_t limit, Micros window,
                    std::int64_t burst = 0, std::int64_t cost = 1) {
  return LimitCheck{key, algorithm, Quota{limit, window, burst}, cost};
}

// One decide on a fresh call with `checks`; returns the outcome, verdicts in `verdicts`.
Outcome decide_checks(io_context& io, RedisStore& store, const std::vector<LimitCheck>& checks,
                      std::vector<Verdict>& verdicts, Mode mode = Mode::charge_if_all_allowed) {
  verdicts.assign(checks.size(), Verdict{});
  DecideCall call{checks, verdicts, mode};
  decide_now(io, store, call);
  return call.outcome;
}

// One request of a batch: its checks, verdicts, call and waiter, at stable addresses.
struct Request {
  std::vector<LimitCheck> checks;
  std::vector<Verdict> verdicts;
  DecideCall call;
  Waiter waiter;

  Request(std::vector<LimitCheck> request_checks, Mode mode)
      : checks(std::move(request_checks)),
        verdicts(checks.size()),
        call{checks, verdicts, mode, Outcome::store_error, {}} {}
};
using Requests = std::vector<std::unique_ptr<Request>>;

// Decides every request in one turn of the loop (all decide() calls before the loop runs), then
// waits for all of them: each waiter exactly once, none from inside decide().
// With `may_be_cached` (a store with a refusal cache), a request may be refused at once instead
// (`ready`); returns how many were.
int decide_together(io_context& io, RedisStore& store, Requests& requests,
                    bool may_be_cached = false) {
  std::vector<bool> pending;
  for (auto& request : requests) {
    const bool ready = store.decide(request->call, request->waiter) == Store::Completion::ready;
    REQUIRE((!ready || may_be_cached));
    if (ready) CHECK(request->call.outcome == Outcome::limited);
    pending.push_back(!ready);
  }
  for (auto& request : requests)
    CHECK(request->waiter.calls == 0);
  REQUIRE(run_until(io, [&] {
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (pending[i] && requests[i]->waiter.calls == 0) return false;
    }
    return true;
  }));
  int cached = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    CHECK(requests[i]->waiter.calls == (pending[i] ? 1 : 0));
    cached += pending[i] ? 0 : 1;
  }
  return cached;
}

std::string describe(const Verdict& v) {
  return std::string(v.allowed ? "allowed" : "rejected") + " limit=" + std::to_string(v.limit) +
         " remaining=" + std::to_string(v.remaining) + " reset=" + std::to_string(v.reset) +
         " retry_after=" + std::to_string(v.retry_after);
}

bool same(const Verdict& a, const Verdict& b) {
  return a.allowed == b.allowed && a.limit == b.limit && a.remaining == b.remaining &&
         a.reset == b.reset && a.retry_after == b.retry_after;
}

long command_calls(BlockingRedis& redis, std::string_view command) {
  const std::string info(redis.command({"INFO", "commandstats"}).text());
  const std::string label = "cmdstat_" + std::string(command) + ":calls=";
  const auto at = info.find(label);
  return at == std::string::npos ? 0 : std::stol(info.substr(at + label.size()));
}

std::vector<std::string> all_keys(BlockingRedis& redis) {
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    Reply reply = redis.command({"SCAN", cursor, "COUNT", "1000"});
    REQUIRE(reply.elements().size() == 2);
    cursor = std::string(reply.elements()[0].text());
    for (const Reply& key : reply.elements()[1].elements())
      keys.emplace_back(key.text());
  } while (cursor != "0");
  return keys;
}

Micros redis_time(BlockingRedis& redis) {
  Reply reply = redis.command({"TIME"});
  return std::stoll(std::string(reply.elements()[0].text())) * 1'000'000 +
         std::stoll(std::string(reply.elements()[1].text()));
}

// The reference the Redis store is compared with: evaluate() per check, all-or-nothing, repeated
// keys see the earlier check's state, expired state reads as fresh (the memory store's rules,
// kept here with every state visible).
struct Model {
  struct Entry {
    LimitState state;
    Micros expires_at = 0;
  };
  std::map<std::pair<std::uint64_t, std::uint64_t>, Entry> keys;

  static std::pair<std::uint64_t, std::uint64_t> id(const KeyDigest& d) { return {d.hi, d.lo}; }

  const Entry* live(const KeyDigest& d, Micros now) const {
    const auto it = keys.find(id(d));
    return it == keys.end() || it->second.expires_at <= now ? nullptr : &it->second;
  }

  Outcome decide(const std::vector<LimitCheck>& checks, std::vector<Verdict>& verdicts, Mode mode,
                 Micros now) {
    std::vector<Step> steps;
    bool all = true;
    for (std::size_t i = 0; i < checks.size(); ++i) {
      LimitState state{};
      std::size_t earlier = i;
      while (earlier > 0 && !(checks[earlier - 1].key == checks[i].key))
        --earlier;
      if (earlier > 0) {
        state = steps[earlier - 1].next;
      } else if (const Entry* e = live(checks[i].key, now)) {
        state = e->state;
      }
      steps.push_back(evaluate(checks[i].algorithm, state, now, checks[i].quota, checks[i].cost));
      verdicts[i] = steps.back().verdict;
      all = all && steps.back().verdict.allowed;
    }
    if (all && mode == Mode::charge_if_all_allowed) {
      for (std::size_t i = 0; i < checks.size(); ++i) {
        if (steps[i].expires_at <= now) {
          keys.erase(id(checks[i].key));
        } else {
          keys[id(checks[i].key)] = Entry{steps[i].next, steps[i].expires_at};
        }
      }
    }
    return all ? Outcome::allowed : Outcome::limited;
  }
};

struct Definition {
  Algorithm algorithm;
  Quota quota;
};

// Every algorithm, with fractional emission intervals (3 per 10 s), bursts above and below the
// limit, windows from 1 ms to a day, and a quota large enough to test the exactness bounds.
const std::vector<Definition> kDefinitions = {
    {Algorithm::token_bucket, {5, 1'000'000, 5}},
    {Algorithm::token_bucket, {3, 10'000'000, 7}},
    {Algorithm::token_bucket, {1'000'000, 3'600'000'000, 1'000'000}},
    {Algorithm::gcra, {3, 10'000'000, 3}},
    {Algorithm::gcra, {100, 60'000'000, 10}},
    {Algorithm::gcra, {7, 1'000, 2}},
    {Algorithm::sliding_window, {5, 600'000'000, 0}},
    {Algorithm::sliding_window, {4, 1'000'000, 0}},
    {Algorithm::sliding_window, {3, 10'000'000, 0}},
    {Algorithm::sliding_window, {1000, 86'400'000'000, 0}},
    {Algorithm::fixed_window, {5, 1'000'000, 0}},
    {Algorithm::fixed_window, {2, 250'000, 0}},
    {Algorithm::fixed_window, {10, 3'600'000'000, 0}},
};

LimitState parse_state(std::string_view text) {
  LimitState state;
  std::string copy(text);
  char* at = copy.data();
  for (double& v : state.v) {
    char* end = nullptr;
    v = std::strtod(at, &end);
    REQUIRE(end != at);
    at = end;
  }
  REQUIRE(*at == '\0');
  return state;
}

}  // namespace

TEST_CASE("the Redis store decides exactly like the memory store: random sequences",
          "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  const auto seed = GENERATE(range(1u, 19u));
  INFO("seed " << seed);
  admin.command({"FLUSHALL"});

  std::mt19937_64 random(seed);
  auto uniform = [&](std::int64_t low, std::int64_t high) {
    return std::uniform_int_distribution<std::int64_t>(low, high)(random);
  };
  ManualClock clock(1'700'000'000'000'000 + uniform(0, 86'400'000'000));
  MemoryStore memory(clock, 100'000);
  auto settings = settings_for(server, &clock);
  // Half the seeds repeat refusals from the refusal cache (timed by the same clock): its answers
  // must be exactly Redis' and the memory store's.
  const bool cached = seed % 2 == 0;
  if (cached) settings.refusal_cache = std::chrono::seconds(30);
  auto redis = connected_store(io, settings);
  Model model;
  int from_cache = 0;
  std::vector<LimitCheck> previous;

  // Each seed plays with a few counters (so they are hit often) on one time scale (so windows
  // fill, roll over into "previous" and expire at that scale): 100 µs to an hour per step.
  constexpr std::int64_t kScales[] = {100,       100'000,    1'000'000,
                                      5'000'000, 60'000'000, 3'600'000'000};
  const std::int64_t scale = kScales[seed % std::size(kScales)];
  // The pool: the definitions whose window spans 1 to 100 steps, and two more of any kind.
  std::vector<std::size_t> pool;
  for (std::size_t d = 0; d < kDefinitions.size(); ++d) {
    const Micros window = kDefinitions[d].quota.window;
    if (window >= scale && window <= 100 * scale) pool.push_back(d);
  }
  for (int i = 0; i < 2; ++i)
    pool.push_back(static_cast<std::size_t>(uniform(0, std::ssize(kDefinitions) - 1)));
  constexpr int kCallers = 2;

  constexpr int kCalls = 300;
  int limited = 0;
  int allowed = 0;
  for (int step = 0; step < kCalls; ++step) {
    const auto dice = uniform(0, 9);
    if (dice >= 3) {
      clock.advance(std::chrono::microseconds(uniform(1, dice == 9 ? 20 * scale : scale)));
    }
    // 1 to 4 checks over the pool, so counters repeat across and within calls and a counter
    // appears at different positions in different calls. With the cache, a third of the calls
    // repeat the one before, as a client retrying does.
    std::vector<LimitCheck> checks;
    const bool repeat = cached && !previous.empty() && uniform(0, 2) == 0;
    if (repeat) checks = previous;
    const auto count = repeat ? 0 : uniform(1, 4);
    for (int i = 0; i < count; ++i) {
      const std::size_t d = pool[static_cast<std::size_t>(uniform(0, std::ssize(pool) - 1))];
      const auto caller = static_cast<std::uint64_t>(uniform(0, kCallers - 1));
      const std::int64_t cost = uniform(0, 9) < 7 ? 1 : uniform(0, 8);
      checks.push_back(LimitCheck{KeyDigest{d + 1, caller + 1}, kDefinitions[d].algorithm,
                                  kDefinitions[d].quota, cost});
    }
    const Mode mode = uniform(0, 9) == 0 ? Mode::check_only : Mode::charge_if_all_allowed;
    previous = checks;

    std::vector<Verdict> from_memory(checks.size());
    std::vector<Verdict> from_redis(checks.size());
    std::vector<Verdict> from_model(checks.size());
    DecideCall memory_call{checks, from_memory, mode};
    Waiter unused;
    REQUIRE(memory.decide(memory_call, unused) == Store::Completion::ready);
    DecideCall redis_call{checks, from_redis, mode};
    from_cache += decide_maybe_cached(io, *redis, redis_call) ? 1 : 0;
    const Outcome model_outcome = model.decide(checks, from_model, mode, clock.now());

    INFO("call " << step << " at " << clock.now() << " with " << checks.size() << " checks");
    REQUIRE(redis_call.outcome != Outcome::store_error);
    REQUIRE(memory_call.outcome == model_outcome);
    REQUIRE(redis_call.outcome == memory_call.outcome);
    for (std::size_t i = 0; i < checks.size(); ++i) {
      INFO("check " << i << " memory: " << describe(from_memory[i])
                    << "\n        redis:  " << describe(from_redis[i]));
      REQUIRE(same(from_memory[i], from_model[i]));
      REQUIRE(same(from_redis[i], from_memory[i]));
    }
    (redis_call.outcome == Outcome::allowed ? allowed : limited) += 1;

    // The state Redis holds for every counter of the call is the model's, bit for bit; one
    // written by this call expires just past the instant it becomes equivalent to a fresh key
    // (plus the test variant's hour of margin; TTLs run in real time, not simulated time).
    const bool written =
        redis_call.outcome == Outcome::allowed && mode == Mode::charge_if_all_allowed;
    for (const LimitCheck& check : checks) {
      const std::string name = redis_key_name(settings.key_names, check.key);
      const Model::Entry* expected = model.live(check.key, clock.now());
      const Reply value = admin.command({"GET", name});
      if (expected == nullptr) {
        // Fresh in the model. Redis may still hold state past its expiry at a simulated instant:
        // that state decides like a fresh key, which the verdicts above have shown.
        continue;
      }
      INFO("key " << name);
      REQUIRE(value.type() == Reply::Type::string);
      const LimitState stored = parse_state(value.text());
      CHECK(stored == expected->state);
      const std::int64_t pttl = admin.command({"PTTL", name}).integer();
      CHECK(pttl > 0);
      if (written) {
        const std::int64_t ttl = (expected->expires_at - clock.now() + 999) / 1000 + 3'600'001;
        CHECK(pttl <= ttl);
        CHECK(pttl >= ttl - 1000);
      }
    }
  }
  // The sequences exercise both outcomes, or they prove little.
  CHECK(allowed >= 10);
  CHECK(limited >= 10);
  if (cached) {
    CHECK(from_cache >= 1);
  } else {
    CHECK(from_cache == 0);
  }
}

TEST_CASE("a clock gone back decides like the memory store", "[redis][store]") {
  // Redis' clock can step back (a failover to a host whose clock is behind): token_bucket keeps
  // its last update, gcra its absolute TAT, the windows their stored window. The random sequences
  // only move forward (expired state is dropped at different moments by the two stores, which is
  // equivalent only while time moves forward); this replays steps back inside live state.
  RedisServer server;
  io_context io;
  ManualClock clock;
  MemoryStore memory(clock, 1000);
  auto redis = connected_store(io, settings_for(server, &clock));
  const std::vector<std::int64_t> steps_ms = {0, 700, -300, 250, -2000, 0, 1500, -100, 3000, -50};
  for (const Definition& d : kDefinitions) {
    INFO("algorithm " << to_string(d.algorithm) << " limit " << d.quota.limit << " window "
                      << d.quota.window);
    if (d.quota.window < 10'000'000 || d.quota.limit > 100) continue;
    const std::vector<LimitCheck> checks = {LimitCheck{{77, 77}, d.algorithm, d.quota, 1}};
    for (std::int64_t step : steps_ms) {
      clock.advance(std::chrono::milliseconds(step));
      // A burst of three, one run on the Redis store: its closed form meets the clock behind
      // the state too.
      Requests burst;
      for (int i = 0; i < 3; ++i)
        burst.push_back(std::make_unique<Request>(checks, Mode::charge_if_all_allowed));
      decide_together(io, *redis, burst);
      for (const auto& request : burst) {
        std::vector<Verdict> from_memory(1);
        DecideCall memory_call{checks, from_memory};
        Waiter unused;
        memory.decide(memory_call, unused);
        INFO("step " << step << " ms: memory " << describe(from_memory[0]) << ", redis "
                     << describe(request->verdicts[0]));
        REQUIRE(request->call.outcome == memory_call.outcome);
        REQUIRE(same(request->verdicts[0], from_memory[0]));
      }
    }
  }
}

TEST_CASE("a call is charged to every limit or to none", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  ManualClock clock;
  const auto settings = settings_for(server, &clock);
  auto store = connected_store(io, settings);
  const KeyDigest roomy{1, 1};
  const KeyDigest tight{2, 2};
  std::vector<Verdict> verdicts;

  REQUIRE(decide_checks(io, *store, {check_of(tight, Algorithm::fixed_window, 1, 3'600'000'000)},
                        verdicts) == Outcome::allowed);
  // `tight` is used up: a call with both is rejected, and `roomy` is not charged for it.
  const std::vector<LimitCheck> both = {check_of(roomy, Algorithm::gcra, 2, 3'600'000'000),
                                        check_of(tight, Algorithm::fixed_window, 1, 3'600'000'000)};
  for (int i = 0; i < 3; ++i) {
    REQUIRE(decide_checks(io, *store, both, verdicts) == Outcome::limited);
    CHECK(verdicts[0].allowed);
    CHECK(verdicts[0].remaining == 1);
    CHECK_FALSE(verdicts[1].allowed);
  }
  CHECK(admin.command({"EXISTS", redis_key_name(settings.key_names, roomy)}).integer() == 0);
  REQUIRE(decide_checks(io, *store, {both[0]}, verdicts) == Outcome::allowed);
  CHECK(verdicts[0].remaining == 1);  // its first charge
}

TEST_CASE("check-only writes nothing and repeated keys see the earlier check", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  ManualClock clock;
  auto store = connected_store(io, settings_for(server, &clock));
  const auto once = check_of({5, 5}, Algorithm::token_bucket, 1, 60'000'000);
  std::vector<Verdict> verdicts;

  SECTION("check only") {
    for (int i = 0; i < 3; ++i) {
      REQUIRE(decide_checks(io, *store, {once}, verdicts, Mode::check_only) == Outcome::allowed);
      CHECK(verdicts[0].remaining == 0);
    }
    CHECK(admin.command({"DBSIZE"}).integer() == 0);
  }
  SECTION("the same counter twice in one call: the second sees the first's charge") {
    REQUIRE(decide_checks(io, *store, {once, once}, verdicts) == Outcome::limited);
    CHECK(verdicts[0].allowed);
    CHECK_FALSE(verdicts[1].allowed);
    CHECK(admin.command({"DBSIZE"}).integer() == 0);  // rejected: nothing charged
    REQUIRE(decide_checks(io, *store, {once}, verdicts) == Outcome::allowed);
  }
}

TEST_CASE("the production script reads Redis' TIME", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto store = connected_store(io, settings_for(server));  // no test clock
  constexpr Micros kHour = 3'600'000'000;
  std::vector<Verdict> verdicts;

  const Micros before = redis_time(admin);
  REQUIRE(decide_checks(io, *store, {check_of({9, 9}, Algorithm::fixed_window, 10, kHour)},
                        verdicts) == Outcome::allowed);
  const Micros after = redis_time(admin);
  // reset = the end of the epoch-aligned hour minus the script's now, which lies in [before, after]
  // (a wrong clock, e.g. the proxy's ManualClock or seconds taken as µs, lands outside).
  const Micros window_end = (after / kHour + 1) * kHour;
  if (before / kHour == after / kHour) {
    CHECK(verdicts[0].reset >= window_end - after);
    CHECK(verdicts[0].reset <= window_end - before);
  }
  // Its key expires at that instant (+ the 1 ms margin), by Redis' clock.
  const std::string name = redis_key_name(redis_key_names("test salt"), {9, 9});
  const std::int64_t pttl = admin.command({"PTTL", name}).integer();
  CHECK(pttl > 0);
  CHECK(pttl <= (window_end - before) / 1000 + 2);
  CHECK(pttl >= (window_end - redis_time(admin)) / 1000 - 5);
}

TEST_CASE("keys are hashed names with one hash tag and an expiry", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto store = connected_store(io, settings_for(server, nullptr, "salt one"));
  std::vector<Verdict> verdicts;
  std::vector<LimitCheck> checks;
  for (std::uint64_t i = 1; i <= 4; ++i) {
    checks.push_back(check_of({i, 0x1234}, static_cast<Algorithm>(i - 1), 10, 60'000'000));
  }
  REQUIRE(decide_checks(io, *store, checks, verdicts) == Outcome::allowed);

  const auto keys = all_keys(admin);
  CHECK(keys.size() == 4);
  const std::regex shape(R"(sluice:\{limits\}:[0-9a-f]{32})");
  for (const auto& key : keys) {
    INFO(key);
    CHECK(std::regex_match(key, shape));
    const std::int64_t pttl = admin.command({"PTTL", key}).integer();
    CHECK(pttl > 0);
    CHECK(pttl <= 120'000 + 2);  // never longer than its state needs (sliding: two windows)
  }

  SECTION("another instance with the same salt shares the counters") {
    auto other = connected_store(io, settings_for(server, nullptr, "salt one"));
    REQUIRE(decide_checks(io, *other, checks, verdicts) == Outcome::allowed);
    CHECK(all_keys(admin).size() == 4);
    CHECK(verdicts[0].remaining == 8);
  }
  SECTION("a different salt names different keys") {
    auto other = connected_store(io, settings_for(server, nullptr, "salt two"));
    REQUIRE(decide_checks(io, *other, checks, verdicts) == Outcome::allowed);
    CHECK(all_keys(admin).size() == 8);
    CHECK(verdicts[0].remaining == 9);
  }
}

TEST_CASE("one decide is exactly one EVALSHA", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto store = connected_store(io, settings_for(server));
  std::vector<Verdict> verdicts;
  admin.command({"CONFIG", "RESETSTAT"});
  constexpr int kCalls = 25;
  for (int i = 0; i < kCalls; ++i) {
    const std::vector<LimitCheck> checks = {
        check_of({1, static_cast<std::uint64_t>(i % 3)}, Algorithm::gcra, 1000, 1'000'000),
        check_of({2, 0}, Algorithm::sliding_window, 1000, 1'000'000),
        check_of({3, 0}, Algorithm::fixed_window, 1000, 1'000'000)};
    REQUIRE(decide_checks(io, *store, checks, verdicts) == Outcome::allowed);
  }
  CHECK(command_calls(admin, "evalsha") == kCalls);
  CHECK(command_calls(admin, "eval") == 0);
  CHECK(command_calls(admin, "time") == kCalls);  // inside the script: no round trip
}

TEST_CASE("a batch decides exactly like the same requests sent one by one", "[redis][store]") {
  // The requests of one loop turn go out as one EVALSHA; the script decides them in order, each
  // all-or-nothing. A second store (another database of the same server) gets the same requests
  // one call at a time at the same instant: verdicts, outcomes, stored states and expiries agree,
  // and both agree with the memory store.
  RedisServer server;
  BlockingRedis batched_db(server.port(), {}, 0);
  BlockingRedis single_db(server.port(), {}, 1);
  io_context io;
  const auto seed = GENERATE(range(1u, 9u));
  INFO("seed " << seed);
  std::mt19937_64 random(seed);
  auto uniform = [&](std::int64_t low, std::int64_t high) {
    return std::uniform_int_distribution<std::int64_t>(low, high)(random);
  };
  ManualClock clock(1'700'000'000'000'000 + uniform(0, 86'400'000'000));
  MemoryStore memory(clock, 100'000);
  auto batched_settings = settings_for(server, &clock);
  auto single_settings = batched_settings;
  single_settings.redis.db = 1;
  // Odd seeds give the batched store a refusal cache: what it answers itself must be what the
  // others decide, however the batches around it charge the same counters.
  const bool cached = seed % 2 == 1;
  if (cached) batched_settings.refusal_cache = std::chrono::seconds(30);
  auto batched = connected_store(io, batched_settings);
  auto single = connected_store(io, single_settings);
  // Few counters, tight quotas: the requests of one batch meet each other's charges, within a
  // request and across requests, and both outcomes are common. The last two are too large for
  // the script's closed form of a run: an odd window of a year times 999 passes 2^53, where
  // doubles round, so runs go one request at a time. They are charged 333 units a request, so
  // they refuse too.
  constexpr Micros kOddYear = 31'536'000'123'457;
  const std::vector<Definition> definitions = {
      {Algorithm::token_bucket, {4, 1'000'000, 6}},    {Algorithm::gcra, {3, 1'000'000, 2}},
      {Algorithm::sliding_window, {5, 1'000'000, 0}},  {Algorithm::fixed_window, {4, 500'000, 0}},
      {Algorithm::sliding_window, {999, kOddYear, 0}}, {Algorithm::gcra, {999, kOddYear, 999}},
  };
  const std::size_t heavy = definitions.size() - 2;
  int allowed = 0;
  int limited = 0;
  long sent_alone = 0;
  int from_cache = 0;
  batched_db.command({"CONFIG", "RESETSTAT"});
  constexpr int kRounds = 6;
  // With the cache, each round is followed by two passes that send again, a little later, the
  // requests the pass before refused: clients retrying, whose repeats the cache may answer.
  std::vector<std::unique_ptr<Request>> refused;
  for (int pass = 0; pass < kRounds * (cached ? 3 : 1); ++pass) {
    const bool retry = cached && pass % 3 != 0;
    clock.advance(std::chrono::microseconds(retry ? uniform(0, 2'000) : uniform(1, 700'000)));
    Requests together;
    Requests alone;
    for (const auto& request : refused) {
      if (!retry) break;
      together.push_back(std::make_unique<Request>(request->checks, request->call.mode));
      alone.push_back(std::make_unique<Request>(request->checks, request->call.mode));
    }
    refused.clear();
    const auto count = retry ? std::ssize(together) : uniform(2, 40);
    if (count == 0) continue;
    for (int r = 0; r < count && !retry;) {
      std::vector<LimitCheck> checks;
      Mode mode = uniform(0, 9) == 0 ? Mode::check_only : Mode::charge_if_all_allowed;
      // A third repeat the request before 1 to 12 times, as a client's burst does (a run, which
      // the script decides in one step), mostly in the same mode.
      const bool repeat = r > 0 && uniform(0, 2) == 0;
      if (repeat) {
        checks = together.back()->checks;
        if (uniform(0, 9) > 0) mode = together.back()->call.mode;
      }
      const auto n = repeat ? 0 : uniform(1, 3);
      for (int i = 0; i < n; ++i) {
        const auto d = static_cast<std::size_t>(uniform(0, std::ssize(definitions) - 1));
        const auto caller = static_cast<std::uint64_t>(uniform(1, 2));
        const std::int64_t cost = d >= heavy ? 333 : uniform(0, 9) < 8 ? 1 : uniform(2, 4);
        checks.push_back(LimitCheck{KeyDigest{d + 1, caller}, definitions[d].algorithm,
                                    definitions[d].quota, cost});
      }
      for (auto times = repeat ? uniform(1, 12) : 1; times > 0 && r < count; --times, ++r) {
        together.push_back(std::make_unique<Request>(checks, mode));
        alone.push_back(std::make_unique<Request>(checks, mode));
      }
    }
    from_cache += decide_together(io, *batched, together, cached);
    for (auto& request : alone)
      decide_now(io, *single, request->call);
    sent_alone += count;

    INFO("pass " << pass << " at " << clock.now() << ", " << count << " requests");
    for (std::size_t r = 0; r < together.size(); ++r) {
      const Request& a = *together[r];
      const Request& b = *alone[r];
      std::vector<Verdict> from_memory(a.checks.size());
      DecideCall memory_call{a.checks, from_memory, a.call.mode, Outcome::store_error, {}};
      Waiter unused;
      memory.decide(memory_call, unused);
      INFO("request " << r << " with " << a.checks.size() << " checks");
      REQUIRE(a.call.outcome != Outcome::store_error);
      REQUIRE(a.call.outcome == b.call.outcome);
      REQUIRE(a.call.outcome == memory_call.outcome);
      for (std::size_t i = 0; i < a.checks.size(); ++i) {
        INFO("check " << i << " batched: " << describe(a.verdicts[i])
                      << "\n        alone:   " << describe(b.verdicts[i]));
        REQUIRE(same(a.verdicts[i], b.verdicts[i]));
        REQUIRE(same(a.verdicts[i], from_memory[i]));
      }
      (a.call.outcome == Outcome::allowed ? allowed : limited) += 1;
      if (a.call.outcome == Outcome::limited) {
        refused.push_back(std::make_unique<Request>(a.checks, a.call.mode));
      }
    }
    // Redis holds the same state under every counter, expiring at the same instant.
    for (std::size_t d = 0; d < definitions.size(); ++d) {
      for (std::uint64_t caller = 1; caller <= 2; ++caller) {
        const std::string name = redis_key_name(batched_settings.key_names, {d + 1, caller});
        INFO("counter " << d + 1 << "/" << caller);
        const Reply in_batched = batched_db.command({"GET", name});
        const Reply in_single = single_db.command({"GET", name});
        REQUIRE(in_batched.type() == in_single.type());
        CHECK(in_batched.text() == in_single.text());
        const std::int64_t pttl_batched = batched_db.command({"PTTL", name}).integer();
        const std::int64_t pttl_single = single_db.command({"PTTL", name}).integer();
        CHECK(std::abs(pttl_batched - pttl_single) <= 1000);  // TTLs run in real time
      }
    }
  }
  // Each round was one EVALSHA for the batch and one per request for the store deciding alone.
  const long calls = command_calls(batched_db, "evalsha") + command_calls(batched_db, "eval");
  if (cached) {
    CHECK(calls < 3 * kRounds + sent_alone);
    CHECK(from_cache >= 1);
  } else {
    CHECK(calls == kRounds + sent_alone);
    CHECK(from_cache == 0);
  }
  CHECK(allowed >= 10);
  CHECK(limited >= 10);
}

TEST_CASE("the requests of one loop turn share one EVALSHA, up to the batch's cap",
          "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto settings = settings_for(server);  // production script: Redis' TIME
  settings.max_batch_requests = 8;
  settings.max_batch_checks = 20;
  auto store = connected_store(io, settings);
  admin.command({"CONFIG", "RESETSTAT"});
  auto requests_of = [](int count, int checks_each) {
    Requests requests;
    for (int r = 0; r < count; ++r) {
      std::vector<LimitCheck> checks;
      for (int i = 0; i < checks_each; ++i) {
        checks.push_back(check_of({static_cast<std::uint64_t>(i + 1), 0}, Algorithm::fixed_window,
                                  1000, 60'000'000));
      }
      requests.push_back(std::make_unique<Request>(checks, Mode::charge_if_all_allowed));
    }
    return requests;
  };
  auto evals = [&] { return command_calls(admin, "evalsha") + command_calls(admin, "eval"); };

  Requests few = requests_of(5, 1);
  decide_together(io, *store, few);
  CHECK(evals() == 1);
  CHECK(command_calls(admin, "time") == 1);  // one instant for the batch
  for (std::size_t r = 0; r < few.size(); ++r) {
    CHECK(few[r]->call.outcome == Outcome::allowed);
    CHECK(few[r]->verdicts[0].remaining == 999 - static_cast<std::int64_t>(r));  // in order
  }

  admin.command({"CONFIG", "RESETSTAT"});
  Requests many = requests_of(30, 1);  // 8 + 8 + 8 + 6
  decide_together(io, *store, many);
  CHECK(evals() == 4);
  CHECK(many.back()->verdicts[0].remaining == 1000 - 5 - 30);

  admin.command({"CONFIG", "RESETSTAT"});
  Requests wide = requests_of(7, 3);  // 20 checks at most: 6 requests (18 checks), then 1
  decide_together(io, *store, wide);
  CHECK(evals() == 2);
  for (auto& request : wide)
    CHECK(request->call.outcome == Outcome::allowed);

  admin.command({"CONFIG", "RESETSTAT"});
  Requests huge = requests_of(2, 25);  // each alone is over the cap: sent alone
  decide_together(io, *store, huge);
  CHECK(evals() == 2);
  CHECK(huge[1]->call.outcome == Outcome::allowed);
}

TEST_CASE("calls decided while a batch is out wait for it and go as one batch", "[redis][store]") {
  // Under load a batch then holds a round trip's requests rather than one loop turn's.
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto settings = settings_for(server);
  settings.redis.call_timeout = 5s;
  auto store = connected_store(io, settings);
  admin.command({"CONFIG", "RESETSTAT"});
  admin.command({"CLIENT", "PAUSE", "300", "ALL"});  // the first batch stays out a while
  Requests requests;
  for (int r = 0; r < 4; ++r) {
    requests.push_back(std::make_unique<Request>(
        std::vector{check_of({1, 1}, Algorithm::fixed_window, 1000, 60'000'000)},
        Mode::charge_if_all_allowed));
  }
  // One request per loop turn: the first goes out alone, the next three queue behind it.
  for (auto& request : requests) {
    REQUIRE(store->decide(request->call, request->waiter) == Store::Completion::pending);
    io.poll();
  }
  REQUIRE(run_until(io, [&] { return requests.back()->waiter.calls > 0; }));
  for (std::size_t r = 0; r < requests.size(); ++r) {
    INFO("request " << r);
    CHECK(requests[r]->waiter.calls == 1);
    CHECK(requests[r]->call.outcome == Outcome::allowed);
    CHECK(requests[r]->verdicts[0].remaining == 999 - static_cast<std::int64_t>(r));
  }
  CHECK(command_calls(admin, "evalsha") + command_calls(admin, "eval") == 2);
}

TEST_CASE("an unreadable counter fails only the requests that use it", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto monitor = std::make_shared<RedisStoreMonitor>("test", 1);
  const auto settings = settings_for(server);
  auto store = connected_store(io, settings, monitor);
  const KeyDigest good{1, 1};
  const KeyDigest bad{2, 2};
  const KeyDigest wrong_type{3, 3};
  admin.command({"SET", redis_key_name(settings.key_names, bad), "not a state"});
  admin.command({"HSET", redis_key_name(settings.key_names, wrong_type), "a", "1"});
  const auto of = [](KeyDigest key) { return check_of(key, Algorithm::gcra, 10, 60'000'000); };
  Requests requests;
  requests.push_back(std::make_unique<Request>(std::vector{of(good)}, Mode::charge_if_all_allowed));
  requests.push_back(
      std::make_unique<Request>(std::vector{of(good), of(bad)}, Mode::charge_if_all_allowed));
  requests.push_back(std::make_unique<Request>(std::vector{of(wrong_type), of(good)},
                                               Mode::charge_if_all_allowed));
  requests.push_back(std::make_unique<Request>(std::vector{of(good)}, Mode::charge_if_all_allowed));
  decide_together(io, *store, requests);

  CHECK(requests[0]->call.outcome == Outcome::allowed);
  CHECK(requests[0]->verdicts[0].remaining == 9);
  CHECK(requests[1]->call.outcome == Outcome::store_error);
  CHECK(requests[2]->call.outcome == Outcome::store_error);
  // Neither failed request charged `good`: the last one sees only the first one's charge.
  CHECK(requests[3]->call.outcome == Outcome::allowed);
  CHECK(requests[3]->verdicts[0].remaining == 8);
  CHECK(monitor->failed_calls() == 2);
  CHECK(admin.command({"GET", redis_key_name(settings.key_names, bad)}).text() == "not a state");
}

TEST_CASE("states at a quota's extremes are states: past 2^53, or a negative remainder",
          "[redis][store]") {
  // gcra 1000 per 30 days with a burst of 100 000, after 54 302 requests at one instant (what
  // evaluate() writes there: doubles round past 2^53, and the remainder comes out below 0). Such
  // a key must keep deciding, not fail as unreadable until it expires years later.
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  ManualClock clock(1'700'000'000'000'000);
  const auto settings = settings_for(server, &clock);
  auto store = connected_store(io, settings);
  const LimitCheck check = check_of({9, 9}, Algorithm::gcra, 1000, 2'592'000'000'000, 100'000);
  for (const char* stored : {"1903750784499532 -16 0", "9007199254740993 0 0"}) {
    INFO(stored);
    admin.command({"SET", redis_key_name(settings.key_names, check.key), stored});
    std::vector<Verdict> verdicts;
    const Outcome outcome = decide_checks(io, *store, {check}, verdicts);
    REQUIRE(outcome != Outcome::store_error);
    LimitState state;
    std::sscanf(stored, "%lf %lf %lf", &state.v[0], &state.v[1], &state.v[2]);
    const Step expected = evaluate(check.algorithm, state, clock.now(), check.quota, check.cost);
    CHECK(outcome == (expected.verdict.allowed ? Outcome::allowed : Outcome::limited));
    CHECK(same(verdicts[0], expected.verdict));
  }
}

TEST_CASE("a refusal's repeats are answered without Redis until they could be admitted",
          "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  ManualClock clock(1'700'000'000'000'000);
  auto settings = settings_for(server, &clock);
  settings.refusal_cache = std::chrono::seconds(1);
  auto store = connected_store(io, settings);
  MemoryStore memory(clock, 1000);
  Waiter unused;
  const auto calls = [&] { return command_calls(admin, "evalsha"); };
  // Decides `checks` on both stores; true when the Redis store answered from its cache.
  const auto decide = [&](const std::vector<LimitCheck>& checks) {
    std::vector<Verdict> from_redis(checks.size());
    std::vector<Verdict> from_memory(checks.size());
    DecideCall redis_call{checks, from_redis, Mode::charge_if_all_allowed};
    DecideCall memory_call{checks, from_memory, Mode::charge_if_all_allowed};
    const bool cached = decide_maybe_cached(io, *store, redis_call);
    memory.decide(memory_call, unused);
    REQUIRE(redis_call.outcome == memory_call.outcome);
    for (std::size_t i = 0; i < checks.size(); ++i)
      CHECK(same(from_redis[i], from_memory[i]));
    return cached;
  };
  // 2 per second, burst 2: the third request is refused for half a second.
  const LimitCheck bucket = check_of({1, 1}, Algorithm::gcra, 2, 1'000'000, 2);
  CHECK_FALSE(decide({bucket}));
  CHECK_FALSE(decide({bucket}));
  CHECK_FALSE(decide({bucket}));  // refused by Redis
  const long after_first_refusal = calls();
  clock.advance(100ms);
  CHECK(decide({bucket}));  // refused again, here, with the numbers Redis would give
  clock.advance(300ms);
  CHECK(decide({bucket}));
  CHECK(calls() == after_first_refusal);
  clock.advance(100ms);  // 500 ms: admissible again, so Redis decides
  CHECK_FALSE(decide({bucket}));

  SECTION("at most refusal_cache, however long the wait: an operator's reset counts soon") {
    const LimitCheck daily = check_of({2, 2}, Algorithm::fixed_window, 1, 86'400'000'000);
    CHECK_FALSE(decide({daily}));
    CHECK_FALSE(decide({daily}));  // refused until the day ends
    clock.advance(900ms);
    CHECK(decide({daily}));
    admin.command({"DEL", redis_key_name(settings.key_names, daily.key)});
    clock.advance(200ms);
    std::vector<Verdict> verdicts;
    CHECK(decide_checks(io, *store, {daily}, verdicts) == Outcome::allowed);  // asked again
  }
  SECTION("a request admitted on one of its keys makes Redis decide the refused one again") {
    const LimitCheck window = check_of({3, 3}, Algorithm::fixed_window, 5, 60'000'000);
    LimitCheck heavy = window;
    heavy.cost = 4;
    CHECK_FALSE(decide({heavy}));
    CHECK_FALSE(decide({heavy}));  // 4 + 4 > 5: refused
    CHECK(decide({heavy}));
    CHECK_FALSE(decide({window}));  // cost 1 fits: admitted, and the remembered numbers are old
    CHECK_FALSE(decide({heavy}));   // so Redis answers, with the remaining it now holds
  }
  SECTION("only exact repeats: other checks, another cost or another key go to Redis") {
    CHECK_FALSE(decide({bucket}));  // refused by Redis: the token that came back is taken
    CHECK(decide({bucket}));
    const LimitCheck other_key = check_of({1, 2}, Algorithm::gcra, 2, 1'000'000, 2);
    LimitCheck dearer = bucket;
    dearer.cost = 2;
    CHECK_FALSE(decide({other_key}));
    CHECK_FALSE(decide({dearer}));
    CHECK_FALSE(decide({bucket, other_key}));
    CHECK_FALSE(decide({other_key, bucket}));
    CHECK(decide({bucket}));  // still remembered: none of those charged its key
  }
  SECTION("a charge still on its way is missed: the numbers, never the refusal") {
    const LimitCheck window = check_of({4, 4}, Algorithm::fixed_window, 5, 60'000'000);
    LimitCheck heavy = window;
    heavy.cost = 4;
    CHECK_FALSE(decide({heavy}));
    CHECK_FALSE(decide({heavy}));  // refused: remaining 1
    // A cost-1 request and a repeat in the same loop turn: the repeat is answered here before
    // Redis has charged the other, as another instance's answer would be.
    Requests turn;
    turn.push_back(std::make_unique<Request>(std::vector{window}, Mode::charge_if_all_allowed));
    turn.push_back(std::make_unique<Request>(std::vector{heavy}, Mode::charge_if_all_allowed));
    CHECK(decide_together(io, *store, turn, true) == 1);
    CHECK(turn[0]->call.outcome == Outcome::allowed);
    CHECK(turn[1]->call.outcome == Outcome::limited);
    CHECK(turn[1]->verdicts[0].remaining == 1);  // Redis now holds 0
    // Once the charge is back, the refusal is Redis' to answer again, with its numbers.
    std::vector<Verdict> verdicts;
    CHECK(decide_checks(io, *store, {heavy}, verdicts) == Outcome::limited);
    CHECK(verdicts[0].remaining == 0);
  }
}

TEST_CASE("failures are store errors, never limited", "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto monitor = std::make_shared<RedisStoreMonitor>("test", 1);
  auto settings = settings_for(server);
  settings.redis.call_timeout = 100ms;
  settings.redis.ping_timeout = 5s;  // the per-call deadline, not the watchdog, ends slow calls
  auto store = connected_store(io, settings, monitor);
  const std::vector<LimitCheck> checks = {check_of({1, 1}, Algorithm::gcra, 100, 60'000'000)};
  std::vector<Verdict> verdicts;
  REQUIRE(decide_checks(io, *store, checks, verdicts) == Outcome::allowed);
  CHECK(monitor->healthy());

  SECTION("a killed server, then a restarted one without the script") {
    // A call in flight when the server dies fails; so do calls while it is down, at once.
    verdicts.assign(1, Verdict{});
    DecideCall in_flight{checks, verdicts};
    Waiter waiter;
    REQUIRE(store->decide(in_flight, waiter) == Store::Completion::pending);
    server.kill();
    REQUIRE(run_until(
        io, [&] { return waiter.calls > 0; }, 2s));
    // It may have been answered before the kill; if not it is a store error.
    CHECK(in_flight.outcome != Outcome::limited);
    const auto start = SteadyClock::now();
    CHECK(decide_checks(io, *store, checks, verdicts) == Outcome::store_error);
    CHECK(SteadyClock::now() - start < 150ms);
    CHECK_FALSE(monitor->healthy());
    CHECK(monitor->failed_calls() >= 1);

    server.restart();  // empty: no data, no scripts
    REQUIRE(run_until(
        io, [&] { return store->connected(); }, 5s));
    REQUIRE(decide_checks(io, *store, checks, verdicts) == Outcome::allowed);
    CHECK(verdicts[0].remaining == 99);  // counting starts again in the new, empty server
    CHECK(monitor->healthy());
  }
  SECTION("a server that lost the script (SCRIPT FLUSH) still decides") {
    admin.command({"SCRIPT", "FLUSH"});
    REQUIRE(decide_checks(io, *store, checks, verdicts) == Outcome::allowed);
    CHECK(verdicts[0].remaining == 98);
  }
  SECTION("a slow server: the per-call deadline applies") {
    admin.send({"DEBUG", "SLEEP", "1"});
    std::this_thread::sleep_for(50ms);  // let the server start sleeping
    const auto start = SteadyClock::now();
    CHECK(decide_checks(io, *store, checks, verdicts) == Outcome::store_error);
    const auto took = SteadyClock::now() - start;
    CHECK(took >= 90ms);
    CHECK(took < 400ms);
    admin.read_reply();
  }
  SECTION("a slow server: one deadline for the batch fails every request in it") {
    admin.send({"DEBUG", "SLEEP", "1"});
    std::this_thread::sleep_for(50ms);
    Requests requests;
    for (std::uint64_t i = 0; i < 5; ++i) {
      requests.push_back(std::make_unique<Request>(
          std::vector{check_of({10 + i, 1}, Algorithm::gcra, 100, 60'000'000)},
          Mode::charge_if_all_allowed));
    }
    const std::uint64_t failed_before = monitor->failed_calls();
    const auto start = SteadyClock::now();
    decide_together(io, *store, requests);
    const auto took = SteadyClock::now() - start;
    for (auto& request : requests)
      CHECK(request->call.outcome == Outcome::store_error);
    CHECK(took >= 90ms);
    CHECK(took < 400ms);                                  // one deadline, not one after another
    CHECK(monitor->failed_calls() == failed_before + 5);  // counted per request
    admin.read_reply();
  }
  SECTION("a slow server: calls queued behind a batch that times out fail with it") {
    admin.command({"CONFIG", "RESETSTAT"});
    admin.send({"DEBUG", "SLEEP", "1"});
    std::this_thread::sleep_for(50ms);
    Requests requests;
    for (std::uint64_t i = 0; i < 2; ++i) {
      requests.push_back(std::make_unique<Request>(
          std::vector{check_of({20 + i, 1}, Algorithm::gcra, 100, 60'000'000)},
          Mode::charge_if_all_allowed));
    }
    const auto start = SteadyClock::now();
    REQUIRE(store->decide(requests[0]->call, requests[0]->waiter) == Store::Completion::pending);
    io.poll();  // the first goes out...
    REQUIRE(store->decide(requests[1]->call, requests[1]->waiter) == Store::Completion::pending);
    REQUIRE(run_until(io, [&] { return requests[1]->waiter.calls > 0; }));
    const auto took = SteadyClock::now() - start;
    for (auto& request : requests) {
      CHECK(request->call.outcome == Outcome::store_error);
      CHECK(request->call.error == "redis store call timed out");
    }
    CHECK(took < 400ms);  // the first one's deadline, not a second one after it
    admin.read_reply();
    // Woken from its sleep, Redis may answer this connection's INFO before it runs the EVALSHA
    // that waited on the store's: give it that turn (the second call is never sent at all).
    const auto settle = SteadyClock::now() + 2s;
    while (command_calls(admin, "evalsha") == 0 && SteadyClock::now() < settle) {
      std::this_thread::sleep_for(10ms);
    }
    CHECK(command_calls(admin, "evalsha") == 1);  // ...the second never did
  }
  SECTION("a malformed or foreign value under a key is an error, not a verdict") {
    const std::string name = redis_key_name(settings.key_names, {1, 1});
    admin.command({"SET", name, "not a state"});
    CHECK(decide_checks(io, *store, checks, verdicts) == Outcome::store_error);
    admin.command({"DEL", name});
    admin.command({"HSET", name, "a", "1"});
    CHECK(decide_checks(io, *store, checks, verdicts) == Outcome::store_error);
    CHECK(store->connected());
  }
}

TEST_CASE("a server that accepts the handshake and refuses every call is retried with backoff",
          "[redis][store]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  auto settings = settings_for(server);
  settings.redis.reconnect_min = 50ms;  // the defaults (tests usually shorten them)
  settings.redis.reconnect_max = 2s;
  auto store = connected_store(io, settings);
  const std::vector<LimitCheck> checks = {check_of({1, 1}, Algorithm::gcra, 100, 60'000'000)};
  std::vector<Verdict> verdicts;
  REQUIRE(decide_checks(io, *store, checks, verdicts) == Outcome::allowed);
  // A replica (here of a master that does not exist) answers AUTH, SCRIPT LOAD and PING, and
  // refuses the script with READONLY: as an old master that came back after a failover.
  admin.command({"REPLICAOF", "127.0.0.1", "1"});
  auto connections = [&] {
    const std::string info(admin.command({"INFO", "stats"}).text());
    const std::string label = "total_connections_received:";
    return std::stol(info.substr(info.find(label) + label.size()));
  };
  const long before = connections();
  const auto until = SteadyClock::now() + 2s;
  long failed = 0;
  while (SteadyClock::now() < until) {  // steady traffic, every call a store error
    if (decide_checks(io, *store, checks, verdicts) == Outcome::store_error) ++failed;
    io.run_for(5ms);
  }
  const long reconnects = connections() - before;
  INFO(reconnects << " connections in 2 s, " << failed << " failed calls");
  CHECK(failed > 0);
  CHECK(reconnects >= 2);
  // 50, 100, 200, 400, 800 ms...: about 5; without backoff it was one per 25-50 ms (40 and more).
  CHECK(reconnects <= 10);
  admin.command({"REPLICAOF", "NO", "ONE"});
}

TEST_CASE("a store destroyed with a call in flight still answers its waiter", "[redis][store]") {
  RedisServer server;
  io_context io;
  auto store = connected_store(io, settings_for(server));
  const std::vector<LimitCheck> checks = {check_of({1, 1}, Algorithm::gcra, 100, 60'000'000)};
  std::vector<Verdict> verdicts(1);
  DecideCall call{checks, verdicts};
  Waiter waiter;
  REQUIRE(store->decide(call, waiter) == Store::Completion::pending);
  store.reset();
  CHECK(waiter.calls == 0);  // not from inside the destructor
  REQUIRE(run_until(io, [&] { return waiter.calls > 0; }));
  CHECK(waiter.calls == 1);
  CHECK(call.outcome == Outcome::store_error);
}

TEST_CASE("a store destroyed with a batch queued or in flight answers every waiter",
          "[redis][store]") {
  RedisServer server;
  io_context io;
  auto settings = settings_for(server);
  settings.max_batch_requests = 3;
  auto store = connected_store(io, settings);
  // 3 are sent at once (a full batch, in flight), the other 2 wait for the turn's flush.
  Requests requests;
  for (std::uint64_t i = 0; i < 5; ++i) {
    requests.push_back(
        std::make_unique<Request>(std::vector{check_of({i, 1}, Algorithm::gcra, 100, 60'000'000)},
                                  Mode::charge_if_all_allowed));
    REQUIRE(store->decide(requests.back()->call, requests.back()->waiter) ==
            Store::Completion::pending);
  }
  store.reset();
  for (auto& request : requests)
    CHECK(request->waiter.calls == 0);  // not from inside decide() or the destructor
  REQUIRE(run_until(io, [&] {
    return std::all_of(requests.begin(), requests.end(),
                       [](const auto& request) { return request->waiter.calls > 0; });
  }));
  for (auto& request : requests) {
    CHECK(request->waiter.calls == 1);
    CHECK(request->call.outcome == Outcome::store_error);
  }
}
