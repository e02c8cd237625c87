// The four limiting algorithms as pure functions of (state, now, quota, cost).
//
// Written to be transcribed into Lua 5.1 (Redis EVAL, where every number is a double) and give the
// same bits: only +, -, *, /, floor, ceil, min and max, one operation order, no library tricks.
//
// Exactness. Every quantity below is an integer held in a double: µs, counts, and "unit-µs"
// (a count multiplied by the window, or a time multiplied by the limit). Sums and products of
// integers below 2^53 are exact, and every division is immediately floored or ceiled: for
// integers a and b below 2^53 the rounding error of a/b is smaller than 1/b while a quotient that
// is not a whole number lies at least 1/b away from one, so floor/ceil of the rounded quotient is
// the exact integer result. Hence no epsilon is needed, exact multiples never come out one short,
// and C++ and Lua agree. This holds while limit*window and (burst+cost)*window stay below
// 2^53 ~ 9.0e15 (e.g. 1,000,000 per hour or 100,000 per day); beyond that results are off by at
// most a few unit-µs, never by a unit.
#include <algorithm>
#include <cmath>

#include <sluice/limit/algorithm.hpp>

namespace sluice::limit {
namespace {

// A value that is a whole number of µs as a Micros; clamped so an absurd quota cannot overflow.
Micros to_micros(double us) noexcept {
  constexpr double kMax = 4611686018427387904.0;  // 2^62
  return static_cast<Micros>(std::clamp(us, -kMax, kMax));
}

std::int64_t to_count(double n) noexcept {
  return static_cast<std::int64_t>(n);
}

// The quota as doubles, with the defaults applied once.
struct Numbers {
  double limit;     // L
  double window;    // W, µs
  double capacity;  // B for the buckets (burst, defaulting to L); L for the windows
  double cost;      // c >= 1
};

// A quota that admits nothing (limit or window <= 0; the loader rejects these, but evaluate must
// stay total): every request is rejected without touching the state.
Step reject_unusable(const LimitState& state, Micros now, const Quota& quota) noexcept {
  Step step{};
  step.verdict.allowed = false;
  step.verdict.limit = quota.limit;
  step.verdict.retry_after = quota.window > 0 ? quota.window : kMicrosPerSecond;
  step.next = state;
  step.expires_at = now;
  return step;
}

// ---------------------------------------------------------------------------------------------
// gcra and token_bucket: one policy, two state encodings.
//
// Both describe a bucket of capacity B that refills at L units per W µs. token_bucket is the name
// most people know and stores (units consumed, time of last update); gcra (the generic cell rate
// algorithm) stores a single instant, the theoretical arrival time TAT at which the bucket is full
// again, which needs no "last update" field. They decide identically (a test replays a random
// sequence through both), with one deliberate difference while the clock runs backwards: gcra's
// TAT is absolute, so an earlier `now` looks further from full (stricter), whereas token_bucket
// simply refills nothing until the clock passes its last update again. Neither ever grants extra
// units because the clock moved back.
//
// The shared quantity is the debt: units consumed and not yet restored, times W ("unit-µs").
// Measured this way a request of cost c adds c*W, the capacity is B*W and one µs restores L, so
// the emission interval T = W/L (µs per unit) never appears as a fraction. Equivalently:
// debt = consumed*W = (TAT - now)*L.
// ---------------------------------------------------------------------------------------------

struct BucketDecision {
  bool allowed;
  double debt_after;  // debt to store if charged (== debt when rejected)
  Verdict verdict;
};

// `debt` is the debt at reference time now + lead (lead > 0 only for token_bucket while the clock
// is behind its last update: nothing is restored before that instant).
BucketDecision decide_bucket(double debt, double lead, const Numbers& n) noexcept {
  const double cost_debt = n.cost * n.window;     // c*W
  const double capacity = n.capacity * n.window;  // B*W
  BucketDecision d{};
  // Allowed iff the debt after this request fits the bucket: debt + c*W <= B*W.
  d.allowed = debt + cost_debt <= capacity;
  if (d.allowed) {
    d.debt_after = debt + cost_debt;
    // remaining = floor((B*W - debt_after) / W): whole units still admissible now.
    d.verdict.remaining = to_count(std::floor((capacity - d.debt_after) / n.window));
    d.verdict.retry_after = 0;
  } else {
    d.debt_after = debt;
    // remaining = max(0, floor((B*W - debt) / W)): what is admissible now (fewer than c).
    d.verdict.remaining = to_count(std::max(0.0, std::floor((capacity - debt) / n.window)));
    if (n.cost > n.capacity) {
      // Costs more than the bucket can ever hold: no wait helps. Answer one full window, a finite
      // hint that keeps clients from retrying at once.
      d.verdict.retry_after = to_micros(n.window);
    } else {
      // The debt must drop by (debt + c*W - B*W) at L per µs:
      // retry_after = lead + ceil((debt + c*W - B*W) / L), at least 1 since the excess is > 0.
      d.verdict.retry_after = to_micros(lead + std::ceil((debt + cost_debt - capacity) / n.limit));
    }
  }
  // reset = lead + ceil(debt_after / L): until the bucket is full again.
  d.verdict.reset = to_micros(lead + std::ceil(d.debt_after / n.limit));
  d.verdict.allowed = d.allowed;
  return d;
}

// State: TAT = v[0] - v[1]/L, i.e. v[0] = TAT rounded up to a whole µs and v[1] = that rounding
// in 1/L µs (0 <= v[1] < L). Both integers, so they round-trip through Redis strings, and the
// fraction is kept instead of dropped so that, e.g., 3 per 10 s (T = 3333333.3 µs) admits 3.
Step evaluate_gcra(const LimitState& state, Micros now_us, const Numbers& n) noexcept {
  const double now = static_cast<double>(now_us);
  // debt = max(0, (TAT - now) * L) = max(0, (v0 - now)*L - v1). tat = max(TAT, now) is the
  // clamp at 0: a key idle past its TAT is a full bucket.
  const double debt = std::max(0.0, (state.v[0] - now) * n.limit - state.v[1]);
  const BucketDecision d = decide_bucket(debt, 0.0, n);

  Step step{};
  step.verdict = d.verdict;
  step.next = state;
  if (d.allowed) {
    // new TAT = now + debt_after/L; stored as v0 = now + q, v1 = q*L - debt_after with
    // q = ceil(debt_after / L).
    const double q = std::ceil(d.debt_after / n.limit);
    step.next.v[0] = now + q;
    step.next.v[1] = q * n.limit - d.debt_after;
    step.next.v[2] = 0;
  }
  // The stored TAT, rounded up; == now when the bucket is full.
  step.expires_at = now_us + step.verdict.reset;
  return step;
}

// State: consumed = v[0] - v[2]/W units at time v[1] (the last update); v[0] = consumed rounded
// up to a whole unit, v[2] = that rounding in 1/W units (0 <= v[2] < W). All integers.
Step evaluate_token_bucket(const LimitState& state, Micros now_us, const Numbers& n) noexcept {
  const double now = static_cast<double>(now_us);
  const double last = state.v[1];
  // The reference time never moves backwards: if the clock went back, nothing is refilled until it
  // passes `last` again (elapsed clamped at 0) and `last` is kept, so no refill is granted twice.
  const double reference = std::max(last, now);
  const double elapsed = reference - last;  // max(0, now - last)
  // consumed' = max(0, consumed - elapsed*L/W), in unit-µs: max(0, v0*W - v2 - elapsed*L).
  const double debt = std::max(0.0, state.v[0] * n.window - state.v[2] - elapsed * n.limit);
  const BucketDecision d = decide_bucket(debt, reference - now, n);

  Step step{};
  step.verdict = d.verdict;
  step.next = state;
  if (d.allowed) {
    // consumed_after = debt_after/W; stored as v0 = q, v2 = q*W - debt_after, q =
    // ceil(debt_after/W).
    const double q = std::ceil(d.debt_after / n.window);
    step.next.v[0] = q;
    step.next.v[1] = reference;
    step.next.v[2] = q * n.window - d.debt_after;
  }
  step.expires_at = now_us + step.verdict.reset;
  return step;
}

// ---------------------------------------------------------------------------------------------
// fixed_window: a counter per epoch-aligned window [idx*W, (idx+1)*W).
// State: v[0] = window index, v[1] = its count.
// ---------------------------------------------------------------------------------------------
Step evaluate_fixed_window(const LimitState& state, Micros now_us, const Numbers& n) noexcept {
  const double now = static_cast<double>(now_us);
  // idx = floor(now / W); if the clock went back into an earlier window, keep counting in the
  // stored one: restarting at 0 there would re-admit a full window when the clock returns.
  const double idx = std::max(std::floor(now / n.window), state.v[0]);
  const double count = state.v[0] == idx ? state.v[1] : 0.0;
  const double window_end = (idx + 1) * n.window;

  Step step{};
  step.verdict.allowed = count + n.cost <= n.limit;
  step.verdict.reset = to_micros(window_end - now);  // reset = (idx+1)*W - now
  step.next = state;
  if (step.verdict.allowed) {
    step.verdict.remaining = to_count(n.limit - count - n.cost);
    step.next.v[0] = idx;
    step.next.v[1] = count + n.cost;
    step.next.v[2] = 0;
    step.expires_at = to_micros(window_end);
  } else {
    step.verdict.remaining = to_count(std::max(0.0, n.limit - count));
    // The window's end, or (cost > limit: never admissible) one full window as a finite hint.
    step.verdict.retry_after = n.cost > n.limit ? to_micros(n.window) : step.verdict.reset;
    step.expires_at = count > 0 ? to_micros(window_end) : now_us;
  }
  return step;
}

// ---------------------------------------------------------------------------------------------
// sliding_window: the weighted two-window counter (as Cloudflare describes it). The previous
// window's count is assumed spread evenly over it, so at offset e into the current window
//   estimate = prev * (W - e) / W + curr.
// O(1) state per key. An exact log of request times would be exact but needs O(limit) memory per
// key, which breaks the store's max_keys memory bound (and a Redis value per request).
// State: v[0] = current window index, v[1] = its count, v[2] = the previous window's count.
// Comparisons are multiplied through by W so that they stay in integers:
//   weighted = prev * (W - e)   (unit-µs)   estimate + c <= L  <=>  weighted <= (L - curr - c)*W
// ---------------------------------------------------------------------------------------------
Step evaluate_sliding_window(const LimitState& state, Micros now_us, const Numbers& n) noexcept {
  const double now = static_cast<double>(now_us);
  const double w = n.window;
  // As in fixed_window, a clock gone back into an earlier window keeps the stored window; the
  // offset then clamps to 0 (previous window weighted fully) and `lead` is how far the clock is
  // behind that window's start.
  const double idx = std::max(std::floor(now / w), state.v[0]);
  const double e = std::max(0.0, now - idx * w);
  const double lead = idx * w + e - now;
  double curr = 0;
  double prev = 0;
  if (state.v[0] == idx) {
    curr = state.v[1];
    prev = state.v[2];
  } else if (state.v[0] == idx - 1) {
    prev = state.v[1];
  }
  const double weighted = prev * (w - e);

  Step step{};
  step.next = state;
  step.verdict.allowed = weighted <= (n.limit - curr - n.cost) * w;
  if (step.verdict.allowed) {
    // remaining = floor(L - estimate - c) = floor(((L - curr - c)*W - weighted) / W), >= 0 here.
    step.verdict.remaining = to_count(std::floor(((n.limit - curr - n.cost) * w - weighted) / w));
    curr += n.cost;
    step.next.v[0] = idx;
    step.next.v[1] = curr;
    step.next.v[2] = prev;
  } else {
    // remaining = max(0, floor(L - estimate)) = max(0, floor(((L - curr)*W - weighted) / W)).
    step.verdict.remaining =
        to_count(std::max(0.0, std::floor(((n.limit - curr) * w - weighted) / w)));
    double wait = 0;
    if (n.cost > n.limit) {
      // Never admissible: one full window as a finite hint (the estimate is never below 0).
      wait = w;
    } else if (curr + n.cost <= n.limit) {
      // Admissible later in this window, once prev*(W - e')/W <= L - curr - c, i.e.
      // e' = W*(1 - (L-curr-c)/prev); prev > 0 here. In integers:
      // wait = e' - e = ceil((prev*(W - e) - (L - curr - c)*W) / prev).
      wait = lead + std::ceil((weighted - (n.limit - curr - n.cost) * w) / prev);
    } else {
      // Not in this window: in the next one `curr` becomes the previous count and its weight must
      // fall to curr*(W - e'')/W <= L - c, i.e. e'' = W*(curr - (L - c))/curr (curr > 0 here):
      // wait = (W - e) + ceil((curr - (L - c))*W / curr).
      wait = lead + (w - e) + std::ceil((curr - (n.limit - n.cost)) * w / curr);
    }
    step.verdict.retry_after = to_micros(std::max(1.0, wait));  // whole µs, at least 1
  }
  // reset: until the estimate reaches 0: the end of the next window while this one counts
  // anything, the end of this one while only the previous one does, else now.
  double reset = 0;
  if (curr > 0) {
    reset = (idx + 2) * w - now;
  } else if (prev > 0) {
    reset = (idx + 1) * w - now;
  }
  step.verdict.reset = to_micros(reset);
  step.expires_at = now_us + step.verdict.reset;
  return step;
}

}  // namespace

std::string_view to_string(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::token_bucket:
      return "token_bucket";
    case Algorithm::gcra:
      return "gcra";
    case Algorithm::sliding_window:
      return "sliding_window";
    case Algorithm::fixed_window:
      return "fixed_window";
  }
  return "unknown";
}

std::optional<Algorithm> parse_algorithm(std::string_view name) noexcept {
  for (Algorithm a : {Algorithm::token_bucket, Algorithm::gcra, Algorithm::sliding_window,
                      Algorithm::fixed_window}) {
    if (name == to_string(a)) return a;
  }
  return std::nullopt;
}

Step evaluate(Algorithm algorithm, const LimitState& state, Micros now, const Quota& quota,
              std::int64_t cost) noexcept {
  if (quota.limit <= 0 || quota.window <= 0) return reject_unusable(state, now, quota);
  const bool bucket = algorithm == Algorithm::gcra || algorithm == Algorithm::token_bucket;
  const std::int64_t capacity = bucket && quota.burst > 0 ? quota.burst : quota.limit;
  // A cost below 1 is treated as 1: a request always counts (check-only is a Store mode).
  const Numbers n{static_cast<double>(quota.limit), static_cast<double>(quota.window),
                  static_cast<double>(capacity),
                  static_cast<double>(std::max<std::int64_t>(cost, 1))};
  Step step{};
  switch (algorithm) {
    case Algorithm::gcra:
      step = evaluate_gcra(state, now, n);
      break;
    case Algorithm::token_bucket:
      step = evaluate_token_bucket(state, now, n);
      break;
    case Algorithm::fixed_window:
      step = evaluate_fixed_window(state, now, n);
      break;
    case Algorithm::sliding_window:
      step = evaluate_sliding_window(state, now, n);
      break;
  }
  step.verdict.limit = quota.limit;
  return step;
}

std::int64_t ceil_seconds(Micros us) noexcept {
  if (us <= 0) return 0;
  return us / kMicrosPerSecond + (us % kMicrosPerSecond != 0 ? 1 : 0);
}

std::int64_t retry_after_seconds(Micros us) noexcept {
  return std::max<std::int64_t>(1, ceil_seconds(us));
}

}  // namespace sluice::limit
