#pragma once
// The limiting algorithms as pure functions: (state, now, quota, cost) -> verdict + next state.
// Both stores call exactly these (the Redis store's script transcribes their decisions into Lua,
// and the store replays what it decided through them for the verdicts), so a sequence of
// requests gets the same decisions whichever store holds the state.
#include <cstdint>
#include <optional>
#include <string_view>

#include <sluice/limit/clock.hpp>

namespace sluice::limit {

enum class Algorithm : std::uint8_t { token_bucket, gcra, sliding_window, fixed_window };

std::string_view to_string(Algorithm a) noexcept;
std::optional<Algorithm> parse_algorithm(std::string_view name) noexcept;

// The effective numbers of one limit for one caller. Passed in, never read from globals, so a
// caller's plan can change them without touching the algorithms.
struct Quota {
  std::int64_t limit = 0;  // units admitted per window
  Micros window = 0;       // window length
  std::int64_t burst = 0;  // bucket capacity (token_bucket, gcra); ignored by the window algorithms

  friend bool operator==(const Quota&, const Quota&) = default;
};

// Per-key state. Algorithm-defined meaning; all-zero is a fresh key (full bucket, empty windows).
// Doubles rather than integers so the Lua transcription (Lua numbers are doubles) computes
// bit-identical values; every value is an integer (µs, a count, or a remainder) below 2^53, so it
// round-trips exactly through Redis strings. Fractions are kept as exact integer remainders:
//   token_bucket:   v[0] = units consumed rounded up (0 = full bucket), v[1] = time of last update,
//                   v[2] = the rounding in 1/window units: consumed = v[0] - v[2] / window
//   gcra:           v[0] = theoretical arrival time (TAT) rounded up to a whole µs,
//                   v[1] = the rounding in 1/limit µs: TAT = v[0] - v[1] / limit
//   sliding_window: v[0] = index of the current window, v[1] = its count, v[2] = previous count
//   fixed_window:   v[0] = index of the current window, v[1] = its count
struct LimitState {
  double v[3] = {0, 0, 0};
  friend bool operator==(const LimitState&, const LimitState&) = default;
};

// One limit's answer for one request.
struct Verdict {
  bool allowed = false;
  std::int64_t limit = 0;      // quota.limit, as advertised in headers
  std::int64_t remaining = 0;  // units left after this request if it is admitted, else now
  Micros reset = 0;            // until the quota is fully restored
  Micros retry_after = 0;      // until `cost` units are available again; 0 when allowed
};

struct Step {
  Verdict verdict;
  LimitState next;    // the state to store if the request is charged
  Micros expires_at;  // after this instant `next` is equivalent to a fresh key and may be dropped
};

// Evaluates one request of `cost` units against `state` at `now`. Pure: no clock, no store.
Step evaluate(Algorithm algorithm, const LimitState& state, Micros now, const Quota& quota,
              std::int64_t cost) noexcept;

// Whole seconds for headers and bodies, rounded up: a client told "0" would retry at once.
std::int64_t ceil_seconds(Micros us) noexcept;
// Retry-After and retryAfter: rounded up and at least 1.
std::int64_t retry_after_seconds(Micros us) noexcept;

}  // namespace sluice::limit
