#pragma once
// The Store decides every limit of one request in one atomic step. Its implementations (memory,
// redis) are interchangeable behind this interface.
#include <cstdint>
#include <span>
#include <string_view>

#include <sluice/limit/algorithm.hpp>
#include <sluice/limit/key.hpp>

namespace sluice::limit {

// One limit of one request, as the classifier built it.
struct LimitCheck {
  KeyDigest key;  // which counter: the limit's identity and the caller
  Algorithm algorithm = Algorithm::token_bucket;
  Quota quota;
  std::int64_t cost = 1;

  friend bool operator==(const LimitCheck&, const LimitCheck&) = default;
};

enum class Outcome : std::uint8_t { allowed, limited, store_error };

enum class Mode : std::uint8_t {
  charge_if_all_allowed,  // the normal path: all-or-nothing check and charge
  check_only,             // what would happen; nothing is charged
};

// One call: the checks go in, the verdicts (one per check, same order) and the outcome come out.
// Owned by the caller (a session), reused from request to request.
struct DecideCall {
  std::span<const LimitCheck> checks;
  std::span<Verdict> verdicts;
  Mode mode = Mode::charge_if_all_allowed;
  Outcome outcome = Outcome::store_error;
  std::string_view error;  // set with store_error; static text
};

// Told once when a pending call completes, on the executor that made the call.
class DecideWaiter {
 public:
  virtual void on_decided(DecideCall& call) = 0;

 protected:
  ~DecideWaiter() = default;
};

class Store {
 public:
  enum class Completion : std::uint8_t { ready, pending };

  virtual ~Store() = default;

  // Decides `call`. `ready`: call.outcome and call.verdicts are filled now and `waiter` is not
  // used. `pending`: the store will fill them and call `waiter.on_decided` exactly once, later, on
  // the calling thread's executor; `call` and `waiter` must stay alive until then.
  virtual Completion decide(DecideCall& call, DecideWaiter& waiter) = 0;
};

}  // namespace sluice::limit
