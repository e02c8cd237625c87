#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace sluice::limit {

// Microseconds since the Unix epoch. Wall time, not steady time, because fixed and sliding windows
// are aligned to the epoch and the Redis store reads Redis' TIME: both stores must agree on "now".
using Micros = std::int64_t;

inline constexpr Micros kMicrosPerSecond = 1'000'000;

// Injected everywhere time matters, so tests advance time instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros now() const noexcept = 0;
};

class SystemClock final : public Clock {
 public:
  Micros now() const noexcept override;
};

// Monotonic microseconds from an arbitrary origin, for lengths of time on this machine that a wall
// clock stepped by NTP would stretch or shrink.
class MonotonicClock final : public Clock {
 public:
  Micros now() const noexcept override;
};

// A clock that moves only when told to; safe to read from several threads.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Micros start = 1'700'000'000'000'000) : now_(start) {}
  Micros now() const noexcept override { return now_.load(std::memory_order_relaxed); }
  void set(Micros t) noexcept { now_.store(t, std::memory_order_relaxed); }
  void advance(std::chrono::microseconds d) noexcept {
    now_.fetch_add(d.count(), std::memory_order_relaxed);
  }

 private:
  std::atomic<Micros> now_;
};

}  // namespace sluice::limit
