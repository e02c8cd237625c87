// The memory store under a key-rotation flood (a client cycling through IPv6 addresses, API keys
// or paths): the store stays within max_keys, drops the least recently used keys, and a key in
// steady use keeps its counter the whole time.
#include <chrono>
#include <cstdint>
#include <cstdio>

#include <catch2/catch.hpp>

#include <sluice/limit/memory_store.hpp>

namespace {

using namespace sluice::limit;

// Sanitizers slow the store down ten times or more; a tenth of the flood still turns every shard
// over ten times.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

class NoWaiter final : public DecideWaiter {
 public:
  void on_decided(DecideCall&) override { FAIL("the memory store never completes later"); }
};

// One reusable call for one limit, so the flood measures the store, not the test's allocations.
class SingleCheck {
 public:
  SingleCheck(Store& store, std::int64_t limit, Micros window) : store_(store) {
    check_.algorithm = Algorithm::fixed_window;
    check_.quota = Quota{limit, window, 0};
    call_.checks = std::span<const LimitCheck>(&check_, 1);
    call_.verdicts = std::span<Verdict>(&verdict_, 1);
  }

  // The verdict for `key`; charged unless `mode` is check_only.
  const Verdict& decide(KeyDigest key, Mode mode = Mode::charge_if_all_allowed) {
    check_.key = key;
    call_.mode = mode;
    const auto completion = store_.decide(call_, waiter_);
    if (completion != Store::Completion::ready || call_.outcome == Outcome::store_error) {
      FAIL("the memory store did not decide at once");
    }
    return verdict_;
  }

 private:
  Store& store_;
  NoWaiter waiter_;
  LimitCheck check_;
  Verdict verdict_;
  DecideCall call_;
};

}  // namespace

// Not named "memory store: ..." so that the TSan selection (^unit: ?memory store) leaves it out.
TEST_CASE("key flood: ten million distinct keys stay within the memory store's max_keys (LRU)",
          "[memory_store][flood]") {
  // The clock never moves: no key expires, so every key the store drops is an eviction.
  ManualClock clock;
  constexpr std::size_t kMaxKeys = 100'000;
  constexpr std::uint64_t kFloodKeys = kSanitized ? 1'000'000 : 10'000'000;
  // Touched once per this many flood keys: far more often than a shard (max_keys / 64 keys) turns
  // over, far less often than every request.
  constexpr std::uint64_t kHotEvery = 64;
  constexpr std::uint64_t kSizeCheckEvery = 100'000;
  constexpr std::int64_t kLimit = 1'000'000'000;
  constexpr Micros kHour = 3600 * kMicrosPerSecond;

  MemoryStore store(clock, kMaxKeys);
  SingleCheck limit(store, kLimit, kHour);
  const KeyDigest hot{0x407, 1};
  const KeyDigest cold{0xc01d, 1};
  auto flood_key = [](std::uint64_t n) { return KeyDigest{0xf100d, n}; };

  REQUIRE(limit.decide(cold).remaining == kLimit - 1);
  std::int64_t hot_charges = 0;
  std::size_t largest_size = 0;
  bool hot_kept = true;
  const auto started = std::chrono::steady_clock::now();

  for (std::uint64_t n = 0; n < kFloodKeys; ++n) {
    // A distinct key is always fresh: a rotating client is never limited, only bounded.
    if (limit.decide(flood_key(n)).remaining != kLimit - 1) {
      FAIL("flood key " << n << " was not a fresh key");
    }
    if (n % kHotEvery == 0) {
      ++hot_charges;
      // An evicted key would start again at kLimit - 1: its count is the proof it was kept.
      if (limit.decide(hot).remaining != kLimit - hot_charges) {
        hot_kept = false;
        FAIL("the hot key lost its counter after " << n << " flood keys");
      }
    }
    if (n % kSizeCheckEvery == 0) {
      const auto keys = store.stats().keys;
      largest_size = std::max(largest_size, keys);
      if (keys > kMaxKeys) FAIL(keys << " keys held after " << n << " flood keys");
    }
  }
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // Reported, not asserted: timing belongs to benchmarks, not to a shared CI machine.
  WARN("flood of " << kFloodKeys << " keys (+" << hot_charges << " hot-key charges) took "
                   << seconds << " s");

  const MemoryStoreStats stats = store.stats();
  CHECK(hot_kept);
  CHECK(largest_size == kMaxKeys);
  CHECK(stats.keys == kMaxKeys);
  // Every key beyond the bound (the flood, the hot key and the cold key) pushed one out.
  CHECK(stats.evictions == kFloodKeys + 2 - kMaxKeys);
  CHECK(stats.expired == 0);
  // The hot key is still there with its whole count; the cold key, used once at the start, is
  // gone. check_only reports what one more request would leave: a fresh key shows kLimit - 1.
  CHECK(limit.decide(hot, Mode::check_only).remaining == kLimit - hot_charges - 1);
  CHECK(limit.decide(cold, Mode::check_only).remaining == kLimit - 1);
  // The most recent flood keys are the ones kept; the first ones went long ago.
  CHECK(limit.decide(flood_key(kFloodKeys - 1), Mode::check_only).remaining == kLimit - 2);
  CHECK(limit.decide(flood_key(0), Mode::check_only).remaining == kLimit - 1);
}
