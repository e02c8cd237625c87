// The in-process store: atomic over all limits of a request, bounded, safe under threads.
#include <atomic>
#include <latch>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/limit/memory_store.hpp>

namespace {

using namespace sluice::limit;

constexpr Micros kSecond = kMicrosPerSecond;
constexpr Micros kHour = 3600 * kSecond;

class CountingWaiter final : public DecideWaiter {
 public:
  void on_decided(DecideCall&) override { calls.fetch_add(1); }
  std::atomic<int> calls{0};
};

LimitCheck check(KeyDigest key, std::int64_t limit, Micros window,
                 Algorithm algorithm = Algorithm::fixed_window, std::int64_t cost = 1) {
  LimitCheck c;
  c.key = key;
  c.algorithm = algorithm;
  c.quota = Quota{limit, window, 0};
  c.cost = cost;
  return c;
}

struct Result {
  Outcome outcome;
  std::vector<Verdict> verdicts;
};

Result decide(Store& store, std::vector<LimitCheck> checks,
              Mode mode = Mode::charge_if_all_allowed) {
  CountingWaiter waiter;
  std::vector<Verdict> verdicts(checks.size());
  DecideCall call;
  call.checks = checks;
  call.verdicts = verdicts;
  call.mode = mode;
  REQUIRE(store.decide(call, waiter) == Store::Completion::ready);
  REQUIRE(waiter.calls == 0);
  return {call.outcome, verdicts};
}

KeyDigest key(std::uint64_t n) {
  return KeyDigest{0x5eed, n};
}

// A key after `after` that lives in a different shard than `other`.
KeyDigest key_in_other_shard(const MemoryStore& store, KeyDigest other, std::uint64_t after) {
  for (std::uint64_t n = after;; ++n) {
    if (store.shard_of(key(n)) != store.shard_of(other)) return key(n);
  }
}

}  // namespace

TEST_CASE("memory store: a request's limits are charged all or nothing", "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 1000);
  const KeyDigest wide = key(1);
  const KeyDigest narrow = key_in_other_shard(store, wide, 2);

  Result first = decide(store, {check(wide, 5, kHour), check(narrow, 1, kHour)});
  REQUIRE(first.outcome == Outcome::allowed);
  CHECK(first.verdicts[0].remaining == 4);
  CHECK(first.verdicts[1].remaining == 0);

  // The narrow limit rejects: the wide one still reports its numbers, but is not charged.
  Result second = decide(store, {check(wide, 5, kHour), check(narrow, 1, kHour)});
  CHECK(second.outcome == Outcome::limited);
  CHECK(second.verdicts[0].allowed);
  CHECK(second.verdicts[0].limit == 5);
  CHECK(second.verdicts[0].remaining == 3);
  CHECK_FALSE(second.verdicts[1].allowed);
  CHECK(second.verdicts[1].limit == 1);
  CHECK(second.verdicts[1].retry_after > 0);

  // Only the first request was charged to the wide limit: 5 - 2 after this one.
  Result third = decide(store, {check(wide, 5, kHour)});
  CHECK(third.outcome == Outcome::allowed);
  CHECK(third.verdicts[0].remaining == 3);
}

TEST_CASE("memory store: check_only charges nothing and creates no key", "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 1000);
  const LimitCheck one_per_hour = check(key(1), 1, kHour, Algorithm::gcra);

  for (int i = 0; i < 3; ++i) {
    const Result r = decide(store, {one_per_hour}, Mode::check_only);
    CHECK(r.outcome == Outcome::allowed);
    CHECK(r.verdicts[0].remaining == 0);
  }
  CHECK(store.stats().keys == 0);

  CHECK(decide(store, {one_per_hour}).outcome == Outcome::allowed);
  CHECK(store.stats().keys == 1);
  CHECK(decide(store, {one_per_hour}, Mode::check_only).outcome == Outcome::limited);
  CHECK(decide(store, {one_per_hour}).outcome == Outcome::limited);
}

TEST_CASE("memory store: many limits in one call are still all or nothing", "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 1000, 4);
  std::vector<LimitCheck> checks;
  for (std::uint64_t n = 0; n < 20; ++n)
    checks.push_back(check(key(n), 2, kHour));
  checks.push_back(check(key(99), 1, kHour));

  CHECK(decide(store, checks).outcome == Outcome::allowed);
  const Result second = decide(store, checks);  // key 99 rejects
  CHECK(second.outcome == Outcome::limited);
  CHECK(second.verdicts[19].allowed);
  CHECK(second.verdicts[19].remaining == 0);
  CHECK_FALSE(second.verdicts[20].allowed);
  checks.pop_back();
  const Result third = decide(store, checks);  // the 20 keys each still have 1 left
  CHECK(third.outcome == Outcome::allowed);
  CHECK(store.stats().keys == 21);
}

TEST_CASE("memory store: a rejected request on an absent key creates no entry", "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 1000);
  const Result r = decide(store, {check(key(1), 5, kHour, Algorithm::sliding_window, 6)});
  CHECK(r.outcome == Outcome::limited);
  CHECK(store.stats().keys == 0);
}

TEST_CASE("memory store: a key repeated in one call sees its own tentative state",
          "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 1000);

  SECTION("room for both") {
    const Result r = decide(store, {check(key(1), 2, kHour), check(key(1), 2, kHour)});
    CHECK(r.outcome == Outcome::allowed);
    CHECK(r.verdicts[0].remaining == 1);
    CHECK(r.verdicts[1].remaining == 0);
    CHECK(decide(store, {check(key(1), 2, kHour)}).outcome == Outcome::limited);
  }

  SECTION("room for one: the pair is rejected and charges nothing") {
    const Result r = decide(store, {check(key(1), 1, kHour), check(key(1), 1, kHour)});
    CHECK(r.outcome == Outcome::limited);
    CHECK(r.verdicts[0].allowed);
    CHECK_FALSE(r.verdicts[1].allowed);
    CHECK(decide(store, {check(key(1), 1, kHour)}).outcome == Outcome::allowed);
  }
}

TEST_CASE("memory store: no checks is allowed, too few verdict slots is a store error",
          "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 10);
  CHECK(decide(store, {}).outcome == Outcome::allowed);

  CountingWaiter waiter;
  const std::vector<LimitCheck> checks{check(key(1), 1, kHour), check(key(2), 1, kHour)};
  std::vector<Verdict> verdicts(1);
  DecideCall call;
  call.checks = checks;
  call.verdicts = verdicts;
  CHECK(store.decide(call, waiter) == Store::Completion::ready);
  CHECK(call.outcome == Outcome::store_error);
  CHECK_FALSE(call.error.empty());
  CHECK(store.stats().keys == 0);
}

TEST_CASE("memory store: bounded by max_keys, evicting the least recently used key",
          "[memory_store]") {
  ManualClock clock;

  SECTION("LRU order in one shard") {
    MemoryStore store(clock, 3, 1);
    for (std::uint64_t n = 1; n <= 3; ++n) {
      REQUIRE(decide(store, {check(key(n), 1, kHour)}).outcome == Outcome::allowed);
    }
    // Key 1 is used again (a rejection is a use), so key 2 is now the least recently used.
    REQUIRE(decide(store, {check(key(1), 1, kHour)}).outcome == Outcome::limited);
    REQUIRE(decide(store, {check(key(4), 1, kHour)}).outcome == Outcome::allowed);
    CHECK(store.stats().keys == 3);
    CHECK(store.stats().evictions == 1);
    CHECK(store.stats().expired == 0);

    // Key 1 survived (still limited); key 2 was forgotten (its limit is available again).
    CHECK(decide(store, {check(key(1), 1, kHour)}, Mode::check_only).outcome == Outcome::limited);
    CHECK(decide(store, {check(key(4), 1, kHour)}, Mode::check_only).outcome == Outcome::limited);
    CHECK(decide(store, {check(key(2), 1, kHour)}, Mode::check_only).outcome == Outcome::allowed);
    // Key 3 is the least recently used now.
    CHECK(decide(store, {check(key(2), 1, kHour)}).outcome == Outcome::allowed);
    CHECK(store.stats().evictions == 2);
    CHECK(decide(store, {check(key(3), 1, kHour)}, Mode::check_only).outcome == Outcome::allowed);
    CHECK(decide(store, {check(key(1), 1, kHour)}, Mode::check_only).outcome == Outcome::limited);
  }

  SECTION("many keys over many shards never exceed max_keys") {
    MemoryStore store(clock, 100, 8);
    for (std::uint64_t n = 0; n < 1000; ++n) {
      REQUIRE(decide(store, {check(key(n), 3, kHour)}).outcome == Outcome::allowed);
      REQUIRE(store.stats().keys <= 100);
    }
    CHECK(store.stats().keys == 100);
    CHECK(store.stats().evictions == 900);
  }

  SECTION("fewer keys than shards") {
    MemoryStore store(clock, 2, 64);
    CHECK(store.shard_count() == 2);
    for (std::uint64_t n = 0; n < 10; ++n) {
      REQUIRE(decide(store, {check(key(n), 3, kHour)}).outcome == Outcome::allowed);
    }
    CHECK(store.stats().keys == 2);
  }
}

TEST_CASE("memory store: expired keys are reclaimed, not evicted", "[memory_store]") {
  ManualClock clock;

  SECTION("when the shard is full") {
    MemoryStore store(clock, 2, 1);
    REQUIRE(decide(store, {check(key(1), 1, kSecond)}).outcome == Outcome::allowed);
    REQUIRE(decide(store, {check(key(2), 1, kSecond)}).outcome == Outcome::allowed);
    clock.advance(std::chrono::seconds(2));
    REQUIRE(decide(store, {check(key(3), 1, kHour)}).outcome == Outcome::allowed);
    CHECK(store.stats().expired == 2);
    CHECK(store.stats().evictions == 0);
    CHECK(store.stats().keys == 1);
  }

  SECTION("when an expired key is touched") {
    MemoryStore store(clock, 10);
    REQUIRE(decide(store, {check(key(1), 1, kSecond, Algorithm::token_bucket)}).outcome ==
            Outcome::allowed);
    REQUIRE(decide(store, {check(key(1), 1, kSecond, Algorithm::token_bucket)}).outcome ==
            Outcome::limited);
    clock.advance(std::chrono::seconds(1));
    CHECK(decide(store, {check(key(1), 1, kSecond, Algorithm::token_bucket)}, Mode::check_only)
              .outcome == Outcome::allowed);
    CHECK(store.stats().expired == 1);
    CHECK(store.stats().keys == 0);
  }

  SECTION("a live key is evicted only after the expired ones are gone") {
    MemoryStore store(clock, 3, 1);
    REQUIRE(decide(store, {check(key(1), 1, kHour)}).outcome == Outcome::allowed);
    REQUIRE(decide(store, {check(key(2), 1, kSecond)}).outcome == Outcome::allowed);
    REQUIRE(decide(store, {check(key(3), 1, kHour)}).outcome == Outcome::allowed);
    clock.advance(std::chrono::seconds(5));
    // Key 1 is the least recently used, but key 2 has expired: that one goes.
    REQUIRE(decide(store, {check(key(4), 1, kHour)}).outcome == Outcome::allowed);
    CHECK(store.stats().expired == 1);
    CHECK(store.stats().evictions == 0);
    CHECK(decide(store, {check(key(1), 1, kHour)}, Mode::check_only).outcome == Outcome::limited);
  }
}

TEST_CASE("memory store: threads hammering one key admit exactly the limit", "[memory_store]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket,
                                       Algorithm::fixed_window, Algorithm::sliding_window);
  INFO(to_string(algorithm));
  ManualClock clock;  // never moves: nothing refills during the test
  MemoryStore store(clock, 1000, 16);
  constexpr int kLimit = 500;
  constexpr int kThreads = 8;
  constexpr int kAttempts = 200;
  std::atomic<int> admitted{0};
  std::atomic<int> errors{0};
  std::latch start(kThreads);  // all threads begin together, so their calls overlap
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      CountingWaiter waiter;
      const LimitCheck one[] = {check(key(42), kLimit, kHour, algorithm)};
      Verdict verdict;
      for (int i = 0; i < kAttempts; ++i) {
        DecideCall call;
        call.checks = one;
        call.verdicts = std::span<Verdict>(&verdict, 1);
        store.decide(call, waiter);
        if (call.outcome == Outcome::allowed) admitted.fetch_add(1);
        if (call.outcome == Outcome::store_error) errors.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  CHECK(errors == 0);
  CHECK(admitted == kLimit);
}

TEST_CASE("memory store: two keys in different shards stay atomic under threads",
          "[memory_store]") {
  ManualClock clock;
  MemoryStore store(clock, 1000, 16);
  // Large enough that the threads overlap for a while before the limits are used up; several
  // rounds on fresh keys because whether two threads really run at once is up to the scheduler.
  constexpr int kLimitA = 30000;
  constexpr int kLimitB = 20000;
  constexpr int kAttempts = kLimitA;  // per thread: each shape alone can use up its limit
  constexpr int kRounds = 10;

  for (int round = 0; round < kRounds; ++round) {
    const KeyDigest a = key(100 * round);
    const KeyDigest b = key_in_other_shard(store, a, 100 * round + 1);
    const LimitCheck check_a = check(a, kLimitA, kHour);
    const LimitCheck check_b = check(b, kLimitB, kHour);

    // One thread each sends {a, b}, {b, a} (the other lock order), {a} and {b}. A partial charge
    // would leave a counter used up by requests that were not admitted (fewer than the limit
    // pass); a check decided outside its shard's lock would lose updates (more than the limit).
    const std::vector<std::vector<LimitCheck>> shapes{
        {check_a, check_b}, {check_b, check_a}, {check_a}, {check_b}};
    std::atomic<int> admitted_a{0};
    std::atomic<int> admitted_b{0};
    std::latch start(static_cast<std::ptrdiff_t>(shapes.size()));  // begin together
    std::vector<std::thread> threads;
    for (const auto& checks : shapes) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        CountingWaiter waiter;
        Verdict verdicts[2];
        for (int i = 0; i < kAttempts; ++i) {
          DecideCall call;
          call.checks = checks;
          call.verdicts = verdicts;
          store.decide(call, waiter);
          if (call.outcome != Outcome::allowed) continue;
          for (const LimitCheck& c : checks)
            (c.key == a ? admitted_a : admitted_b).fetch_add(1);
        }
      });
    }
    for (auto& thread : threads)
      thread.join();
    INFO("round " << round);
    REQUIRE(admitted_a == kLimitA);
    REQUIRE(admitted_b == kLimitB);
    CHECK(decide(store, {check_a}, Mode::check_only).verdicts[0].remaining == 0);
    CHECK(decide(store, {check_b}, Mode::check_only).verdicts[0].remaining == 0);
  }
}
