// The algorithms as a client would see them: which requests pass, and the exact numbers that end
// up in RateLimit-* / Retry-After headers. Expected values are derived by hand in the comments.
#include <cmath>
#include <random>

#include <catch2/catch.hpp>

#include <sluice/limit/algorithm.hpp>

namespace {

using namespace sluice::limit;

constexpr Micros kSecond = kMicrosPerSecond;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kStart = 1'700'000'000'000'000;  // ManualClock's default start

// One key: carries the state from call to call the way a store does (written only when allowed).
struct Key {
  Algorithm algorithm;
  Quota quota;
  LimitState state{};

  Verdict hit(Micros now, std::int64_t cost = 1) {
    const Step step = evaluate(algorithm, state, now, quota, cost);
    if (step.verdict.allowed) {
      state = step.next;
    } else {
      REQUIRE(step.next == state);  // a rejected request leaves nothing to store
    }
    return step.verdict;
  }
};

// The start of the window that contains `t`, so window tests begin at a known offset.
Micros window_start(Micros t, Micros window) {
  return t / window * window;
}

bool all_integers(const LimitState& s) {
  for (double v : s.v) {
    if (v != std::floor(v)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("algorithm names round-trip and unknown names are refused", "[algorithm]") {
  for (Algorithm a : {Algorithm::token_bucket, Algorithm::gcra, Algorithm::sliding_window,
                      Algorithm::fixed_window}) {
    REQUIRE(parse_algorithm(to_string(a)) == a);
  }
  CHECK(to_string(Algorithm::token_bucket) == "token_bucket");
  CHECK(to_string(Algorithm::sliding_window) == "sliding_window");
  CHECK_FALSE(parse_algorithm("leaky_bucket").has_value());
  CHECK_FALSE(parse_algorithm("GCRA").has_value());
  CHECK_FALSE(parse_algorithm("").has_value());
}

TEST_CASE("seconds for headers are rounded up, Retry-After is at least 1", "[algorithm]") {
  CHECK(ceil_seconds(-5) == 0);
  CHECK(ceil_seconds(0) == 0);
  CHECK(ceil_seconds(1) == 1);
  CHECK(ceil_seconds(kSecond) == 1);
  CHECK(ceil_seconds(kSecond + 1) == 2);
  CHECK(ceil_seconds(12 * kMinute) == 720);
  CHECK(retry_after_seconds(0) == 1);
  CHECK(retry_after_seconds(1) == 1);
  CHECK(retry_after_seconds(2'500'000) == 3);
}

// gcra and token_bucket implement the same policy, so every expectation below holds for both.
TEST_CASE("bucket algorithms: 5 per 10 s admits a burst of 5, then one every 2 s", "[algorithm]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket);
  INFO(to_string(algorithm));
  Key key{algorithm, Quota{5, 10 * kSecond, 0}};  // burst 0 means burst = limit; interval 2 s

  for (int i = 1; i <= 5; ++i) {
    const Verdict v = key.hit(kStart);
    REQUIRE(v.allowed);
    CHECK(v.limit == 5);
    CHECK(v.remaining == 5 - i);
    CHECK(v.reset == i * 2 * kSecond);  // each unit takes 2 s to come back
    CHECK(v.retry_after == 0);
  }

  Verdict v = key.hit(kStart);
  CHECK_FALSE(v.allowed);
  CHECK(v.remaining == 0);
  CHECK(v.retry_after == 2 * kSecond);
  CHECK(v.reset == 10 * kSecond);

  v = key.hit(kStart + 2 * kSecond - 1);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after == 1);

  v = key.hit(kStart + 2 * kSecond);
  CHECK(v.allowed);
  CHECK(v.remaining == 0);
  CHECK(v.reset == 10 * kSecond);
  CHECK_FALSE(key.hit(kStart + 2 * kSecond).allowed);

  // Idle for a full window: the whole burst is back, and not more.
  const Micros later = kStart + 12 * kSecond;
  for (int i = 0; i < 5; ++i)
    REQUIRE(key.hit(later).allowed);
  CHECK_FALSE(key.hit(later).allowed);
}

TEST_CASE("bucket algorithms: an interval that is not a whole µs still admits the full burst",
          "[algorithm]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket);
  INFO(to_string(algorithm));
  Key key{algorithm, Quota{3, 10 * kSecond, 3}};  // interval 3333333.3 µs

  CHECK(key.hit(kStart).remaining == 2);
  CHECK(key.hit(kStart).remaining == 1);
  const Verdict third = key.hit(kStart);
  REQUIRE(third.allowed);
  CHECK(third.remaining == 0);
  CHECK(third.reset == 10 * kSecond);
  CHECK(all_integers(key.state));  // round-trips through Redis strings

  // One unit is back after ceil(10 s / 3) = 3333334 µs, not a µs earlier.
  const Verdict fourth = key.hit(kStart);
  CHECK_FALSE(fourth.allowed);
  CHECK(fourth.retry_after == 3'333'334);
  CHECK_FALSE(key.hit(kStart + 3'333'333).allowed);
  CHECK(key.hit(kStart + 3'333'334).allowed);

  // After exactly one window from the burst the bucket is full again: 3 more, exactly.
  Key again{algorithm, Quota{3, 10 * kSecond, 3}};
  for (int i = 0; i < 3; ++i)
    REQUIRE(again.hit(kStart).allowed);
  for (int i = 0; i < 3; ++i)
    REQUIRE(again.hit(kStart + 10 * kSecond).allowed);
  CHECK_FALSE(again.hit(kStart + 10 * kSecond).allowed);
}

TEST_CASE("bucket algorithms: burst above the rate", "[algorithm]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket);
  INFO(to_string(algorithm));
  Key key{algorithm, Quota{1, kSecond, 3}};  // 1 per second, bursts of 3

  CHECK(key.hit(kStart).remaining == 2);
  CHECK(key.hit(kStart).remaining == 1);
  const Verdict last = key.hit(kStart);
  CHECK(last.remaining == 0);
  CHECK(last.limit == 1);  // headers advertise the rate's limit, not the burst
  CHECK(last.reset == 3 * kSecond);
  const Verdict rejected = key.hit(kStart);
  CHECK_FALSE(rejected.allowed);
  CHECK(rejected.retry_after == kSecond);
}

TEST_CASE("bucket algorithms: cost above 1 and above the capacity", "[algorithm]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket);
  INFO(to_string(algorithm));
  Key key{algorithm, Quota{5, 10 * kSecond, 0}};

  SECTION("a request of cost 3 takes 3 units") {
    Verdict v = key.hit(kStart, 3);
    REQUIRE(v.allowed);
    CHECK(v.remaining == 2);
    CHECK(v.reset == 6 * kSecond);

    // 2 left, 3 wanted: one more unit needed, which takes 2 s.
    v = key.hit(kStart, 3);
    CHECK_FALSE(v.allowed);
    CHECK(v.remaining == 2);
    CHECK(v.retry_after == 2 * kSecond);

    v = key.hit(kStart, 2);
    CHECK(v.allowed);
    CHECK(v.remaining == 0);
  }

  SECTION("a request costing more than the bucket holds is never admitted") {
    const Verdict v = key.hit(kStart, 6);
    CHECK_FALSE(v.allowed);
    CHECK(v.remaining == 5);               // nothing was taken
    CHECK(v.retry_after == 10 * kSecond);  // a full window: no wait would help
    CHECK_FALSE(key.hit(kStart + 100 * kSecond, 6).allowed);
    CHECK(key.hit(kStart, 5).allowed);  // the whole bucket is still there
  }
}

TEST_CASE("bucket algorithms: a clock that goes back grants nothing extra", "[algorithm]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket);
  INFO(to_string(algorithm));
  Key key{algorithm, Quota{5, 10 * kSecond, 0}};
  for (int i = 0; i < 5; ++i)
    REQUIRE(key.hit(kStart).allowed);

  // 5 s back: still empty, and the wait counts from the earlier clock (5 s + 2 s).
  const Verdict back = key.hit(kStart - 5 * kSecond);
  CHECK_FALSE(back.allowed);
  CHECK(back.retry_after == 7 * kSecond);
  CHECK_FALSE(key.hit(kStart).allowed);

  // Forward again: exactly one unit per 2 s after the original burst.
  CHECK(key.hit(kStart + 2 * kSecond).allowed);
  CHECK_FALSE(key.hit(kStart + 2 * kSecond).allowed);

  SECTION("requests admitted while the clock is behind are not refilled twice") {
    Key partly{algorithm, Quota{5, 10 * kSecond, 0}};
    for (int i = 0; i < 3; ++i)
      REQUIRE(partly.hit(kStart).allowed);
    int more = 0;
    for (int i = 0; i < 3; ++i)
      more += partly.hit(kStart - 4 * kSecond).allowed ? 1 : 0;
    for (int i = 0; i < 3; ++i)
      more += partly.hit(kStart).allowed ? 1 : 0;
    CHECK(more == 2);  // the 2 units left at kStart, whichever clock reading takes them
    CHECK(partly.hit(kStart + 2 * kSecond).allowed);
    CHECK_FALSE(partly.hit(kStart + 2 * kSecond).allowed);
  }
}

TEST_CASE("token_bucket and gcra make the same decisions on a random sequence", "[algorithm]") {
  std::mt19937_64 random(20240601);
  int allowed = 0;
  int rejected = 0;
  for (int round = 0; round < 50; ++round) {
    const Quota quota{std::uniform_int_distribution<std::int64_t>(1, 20)(random),
                      std::uniform_int_distribution<Micros>(1, 10 * kSecond)(random),
                      std::uniform_int_distribution<std::int64_t>(0, 30)(random)};
    Key gcra{Algorithm::gcra, quota};
    Key bucket{Algorithm::token_bucket, quota};
    const Micros interval = quota.window / quota.limit + 1;
    Micros now = kStart + std::uniform_int_distribution<Micros>(0, quota.window)(random);
    for (int i = 0; i < 400; ++i) {
      now += std::uniform_int_distribution<Micros>(0, 2 * interval)(random) / 3;
      const std::int64_t cost = std::uniform_int_distribution<std::int64_t>(1, 3)(random);
      const Verdict a = gcra.hit(now, cost);
      const Verdict b = bucket.hit(now, cost);
      INFO("round " << round << " request " << i << " limit " << quota.limit << " window "
                    << quota.window << " burst " << quota.burst << " cost " << cost);
      REQUIRE(a.allowed == b.allowed);
      REQUIRE(a.remaining == b.remaining);
      REQUIRE(a.retry_after == b.retry_after);
      REQUIRE(a.reset == b.reset);
      (a.allowed ? allowed : rejected) += 1;
    }
  }
  // The sequence must exercise both answers for the comparison to mean anything.
  CHECK(allowed > 1000);
  CHECK(rejected > 1000);
}

TEST_CASE("gcra never admits more than burst + rate * elapsed", "[algorithm]") {
  std::mt19937_64 random(7);
  const Quota quota{7, 3 * kSecond, 4};
  Key key{Algorithm::gcra, quota};
  std::vector<Micros> admitted;
  Micros now = kStart;
  for (int i = 0; i < 5000; ++i) {
    now += std::uniform_int_distribution<Micros>(0, 600'000)(random);
    if (key.hit(now).allowed) admitted.push_back(now);
  }
  REQUIRE(admitted.size() > 100);
  // In any span [admitted[i], admitted[j]] at most burst + floor(limit * span / window) pass.
  for (std::size_t i = 0; i < admitted.size(); ++i) {
    for (std::size_t j = i; j < admitted.size() && j < i + 60; ++j) {
      const Micros span = admitted[j] - admitted[i];
      const auto bound = quota.burst + quota.limit * span / quota.window;
      REQUIRE(static_cast<std::int64_t>(j - i + 1) <= bound);
    }
  }
}

TEST_CASE("fixed_window: counts per aligned window", "[algorithm]") {
  const Micros window = 10 * kSecond;
  const Micros start = window_start(kStart, window) + window;  // a window boundary
  Key key{Algorithm::fixed_window, Quota{5, window, 0}};

  for (int i = 1; i <= 5; ++i) {
    const Verdict v = key.hit(start + 3 * kSecond);
    REQUIRE(v.allowed);
    CHECK(v.remaining == 5 - i);
    CHECK(v.reset == 7 * kSecond);  // until the window ends
  }
  Verdict v = key.hit(start + 3 * kSecond);
  CHECK_FALSE(v.allowed);
  CHECK(v.remaining == 0);
  CHECK(v.retry_after == 7 * kSecond);
  CHECK(v.reset == 7 * kSecond);

  v = key.hit(start + window - 1);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after == 1);

  v = key.hit(start + window);
  CHECK(v.allowed);
  CHECK(v.remaining == 4);
  CHECK(v.reset == window);

  SECTION("cost above 1") {
    Key costly{Algorithm::fixed_window, Quota{5, window, 0}};
    CHECK(costly.hit(start, 2).remaining == 3);
    CHECK(costly.hit(start, 2).remaining == 1);
    const Verdict over = costly.hit(start + kSecond, 2);
    CHECK_FALSE(over.allowed);
    CHECK(over.remaining == 1);
    CHECK(over.retry_after == 9 * kSecond);
    CHECK(costly.hit(start + kSecond, 1).allowed);
  }

  SECTION("cost above the limit") {
    Key costly{Algorithm::fixed_window, Quota{5, window, 0}};
    const Verdict over = costly.hit(start + kSecond, 6);
    CHECK_FALSE(over.allowed);
    CHECK(over.remaining == 5);
    CHECK(over.retry_after == window);  // a full window: no wait would help
    CHECK(costly.hit(start + kSecond, 5).allowed);
  }

  SECTION("a clock gone back into the previous window keeps counting in the newer one") {
    Key full{Algorithm::fixed_window, Quota{5, window, 0}};
    for (int i = 0; i < 5; ++i)
      REQUIRE(full.hit(start + kSecond).allowed);
    const Verdict back = full.hit(start - kSecond);
    CHECK_FALSE(back.allowed);
    CHECK(back.retry_after == 11 * kSecond);  // until the end of the newer window
    CHECK_FALSE(full.hit(start + kSecond).allowed);
    CHECK(full.hit(start + window).allowed);
  }
}

TEST_CASE("fixed_window admits twice the limit across a boundary, sliding_window does not",
          "[algorithm]") {
  const Micros window = 10 * kSecond;
  const Micros boundary = window_start(kStart, window) + window;
  Key fixed{Algorithm::fixed_window, Quota{5, window, 0}};
  Key sliding{Algorithm::sliding_window, Quota{5, window, 0}};
  int fixed_admitted = 0;
  int sliding_admitted = 0;
  for (Micros t : {boundary - 1, boundary}) {
    for (int i = 0; i < 5; ++i) {
      fixed_admitted += fixed.hit(t).allowed ? 1 : 0;
      sliding_admitted += sliding.hit(t).allowed ? 1 : 0;
    }
  }
  CHECK(fixed_admitted == 10);
  CHECK(sliding_admitted == 5);
}

TEST_CASE("sliding_window: 5 per 10 minutes recovers gradually", "[algorithm]") {
  const Micros window = 10 * kMinute;
  const Micros start = window_start(kStart, window) + window;
  Key key{Algorithm::sliding_window, Quota{5, window, 0}};

  for (int i = 1; i <= 5; ++i) {
    const Verdict v = key.hit(start);
    REQUIRE(v.allowed);
    CHECK(v.remaining == 5 - i);
    CHECK(v.reset == 20 * kMinute);  // the count weighs until the end of the next window
  }

  // 6th: not in this window; in the next one the 5 weigh 5*(10-e)/10 <= 4 from e = 2 min.
  Verdict v = key.hit(start);
  CHECK_FALSE(v.allowed);
  CHECK(v.remaining == 0);
  CHECK(v.retry_after == 12 * kMinute);
  CHECK(v.reset == 20 * kMinute);

  // 11 min: previous window weighs 5*9/10 = 4.5; one unit needs 4.0, i.e. one more minute.
  v = key.hit(start + 11 * kMinute);
  CHECK_FALSE(v.allowed);
  CHECK(v.remaining == 0);
  CHECK(v.retry_after == kMinute);
  CHECK(v.reset == 9 * kMinute);  // only the previous window counts: until its weight is 0

  CHECK_FALSE(key.hit(start + 12 * kMinute - 1).allowed);
  v = key.hit(start + 12 * kMinute);
  REQUIRE(v.allowed);
  CHECK(v.remaining == 0);
  CHECK(v.reset == 18 * kMinute);

  // From here one more unit every 2 minutes as the previous window's weight drains:
  // at 12 min 5*8/10 + 1 = 5; a second one needs 5*(10-e)/10 <= 3, e = 4 min.
  v = key.hit(start + 12 * kMinute);
  CHECK_FALSE(v.allowed);
  CHECK(v.retry_after == 2 * kMinute);
  CHECK(key.hit(start + 14 * kMinute).allowed);
  CHECK_FALSE(key.hit(start + 16 * kMinute - 1).allowed);
  CHECK(key.hit(start + 16 * kMinute).allowed);
  CHECK(key.hit(start + 18 * kMinute).allowed);
  CHECK_FALSE(key.hit(start + 18 * kMinute).allowed);
}

TEST_CASE("sliding_window: cost, cost above the limit, clock going back", "[algorithm]") {
  const Micros window = 10 * kMinute;
  const Micros start = window_start(kStart, window) + window;
  Key key{Algorithm::sliding_window, Quota{5, window, 0}};

  SECTION("cost 2") {
    CHECK(key.hit(start, 2).remaining == 3);
    CHECK(key.hit(start, 2).remaining == 1);
    // 4 counted, 2 wanted: in the next window 4*(10-e)/10 <= 3 from e = 2.5 min.
    const Verdict v = key.hit(start, 2);
    CHECK_FALSE(v.allowed);
    CHECK(v.remaining == 1);
    CHECK(v.retry_after == 12 * kMinute + 30 * kSecond);
    CHECK(key.hit(start + 12 * kMinute + 30 * kSecond, 2).allowed);
  }

  SECTION("a wait that is not a whole µs is rounded up") {
    Key three{Algorithm::sliding_window, Quota{3, 10 * kSecond, 0}};
    const Micros at = window_start(kStart, 10 * kSecond) + 10 * kSecond;
    for (int i = 0; i < 3; ++i)
      REQUIRE(three.hit(at).allowed);
    // Next window: 3*(10 s - e)/10 s <= 2 from e = 3333333.3 µs.
    CHECK(three.hit(at).retry_after == 13'333'334);
    // The same seen from the start of the next window.
    CHECK(three.hit(at + 10 * kSecond).retry_after == 3'333'334);
    CHECK_FALSE(three.hit(at + 13'333'333).allowed);
    CHECK(three.hit(at + 13'333'334).allowed);
  }

  SECTION("cost above the limit") {
    const Verdict v = key.hit(start, 6);
    CHECK_FALSE(v.allowed);
    CHECK(v.remaining == 5);
    CHECK(v.retry_after == window);  // a full window: no wait would help
    CHECK(v.reset == 0);             // nothing counted
    CHECK(key.hit(start, 5).allowed);
  }

  SECTION("clock going back into the previous window") {
    for (int i = 0; i < 5; ++i)
      REQUIRE(key.hit(start + kMinute).allowed);
    // Counted in the newer window still: admissible at start + 12 min, 13 min from the old clock.
    const Verdict v = key.hit(start - kMinute);
    CHECK_FALSE(v.allowed);
    CHECK(v.retry_after == 13 * kMinute);
    CHECK_FALSE(key.hit(start + 12 * kMinute - 1).allowed);
    CHECK(key.hit(start + 12 * kMinute).allowed);
  }
}

TEST_CASE("every algorithm: fresh keys, expiry, integer state, unusable quotas", "[algorithm]") {
  const Algorithm algorithm = GENERATE(Algorithm::gcra, Algorithm::token_bucket,
                                       Algorithm::fixed_window, Algorithm::sliding_window);
  INFO(to_string(algorithm));
  const Quota quota{4, 10 * kSecond, 0};
  const Micros now = window_start(kStart, quota.window) + 3 * kSecond;

  SECTION("a fresh key has the full limit") {
    const Step step = evaluate(algorithm, LimitState{}, now, quota, 1);
    CHECK(step.verdict.allowed);
    CHECK(step.verdict.remaining == 3);
    CHECK(step.expires_at > now);
  }

  SECTION("state written is integral and equivalent to fresh once expired") {
    Key key{algorithm, quota};
    for (int i = 0; i < 4; ++i)
      REQUIRE(key.hit(now).allowed);
    const Step step = evaluate(algorithm, key.state, now, quota, 1);
    CHECK_FALSE(step.verdict.allowed);
    CHECK(all_integers(key.state));
    // At expires_at the stored state admits as much as a fresh key does.
    const Step at_expiry = evaluate(algorithm, key.state, step.expires_at, quota, 4);
    CHECK(at_expiry.verdict.allowed);
    const Step before = evaluate(algorithm, key.state, step.expires_at - 1, quota, 4);
    CHECK_FALSE(before.verdict.allowed);
  }

  SECTION("a limit of 0 admits nothing and says when to look again") {
    const Step step = evaluate(algorithm, LimitState{}, now, Quota{0, 10 * kSecond, 0}, 1);
    CHECK_FALSE(step.verdict.allowed);
    CHECK(step.verdict.retry_after == 10 * kSecond);
  }

  SECTION("a cost below 1 counts as 1") {
    const Step step = evaluate(algorithm, LimitState{}, now, quota, 0);
    CHECK(step.verdict.allowed);
    CHECK(step.verdict.remaining == 3);
  }
}
