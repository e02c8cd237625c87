#pragma once
// Keep-alive connections to the upstreams, one pool per event-loop thread (no locks: only that
// thread touches it).
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include <sluice/config/config.hpp>
#include <sluice/proxy/io.hpp>

namespace sluice::proxy {

struct UpstreamTarget {
  std::vector<tcp::endpoint> endpoints;  // resolved once at start-up, used round-robin
  config::Milliseconds connect_timeout{2000};
  config::Milliseconds timeout{30000};
  config::Milliseconds idle_timeout{4000};
};

// Resolves every upstream's servers. Blocking: call at start-up only, never on an event loop.
// Throws std::runtime_error naming the server that does not resolve.
std::vector<UpstreamTarget> resolve_upstreams(const config::Config& config);

// How an idle connection is checked before reuse.
enum class IdleCheck {
  // Asio's reactor knows, without a system call, that nothing arrived since the last response was
  // read to its end (drained_read.hpp), and only otherwise is the kernel asked. Bytes and closes
  // are seen either way, except an upstream's close that arrived with the last response itself:
  // it shows as a failed exchange, which an idempotent request survives by being sent again.
  reactor,
  // A peek (one recv) asks the kernel: for requests that cannot be sent again.
  kernel,
};

class UpstreamPool {
 public:
  static constexpr std::size_t kMaxIdlePerUpstream = 256;

  UpstreamPool(Executor executor, std::shared_ptr<const std::vector<UpstreamTarget>> targets);
  // Its timer's handler refers to it: the pool stays where it was made.
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  const UpstreamTarget& target(std::size_t upstream) const { return (*targets_)[upstream]; }
  Executor executor() const { return executor_; }

  // The most recently used idle connection that has nothing to read (not closed by the upstream,
  // no unrequested bytes), or false. `check` says how that is known; see IdleCheck.
  bool take_idle(std::size_t upstream, Socket& out, IdleCheck check);
  // The endpoint for the next new connection (round-robin over the servers).
  const tcp::endpoint& next_endpoint(std::size_t upstream);
  // Returns a connection whose last exchange ended cleanly, the upstream's response complete at
  // `idle_since` (its idle clock runs from there, as the upstream's own does); dropped when the
  // pool is full. It is closed if still unused after the upstream's idle_timeout.
  void give_back(std::size_t upstream, Socket&& socket,
                 std::chrono::steady_clock::time_point idle_since);

  std::size_t idle_count(std::size_t upstream) const { return idle_[upstream].size(); }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Idle {
    Socket socket;
    TimePoint expires;
  };
  void arm_expiry(TimePoint at);
  void close_expired();

  Executor executor_;
  std::shared_ptr<const std::vector<UpstreamTarget>> targets_;
  // Per upstream, in the order given back: take_idle takes the most recent.
  std::vector<std::vector<Idle>> idle_;
  std::vector<std::size_t> next_server_;
  SteadyTimer expiry_timer_;
  bool expiry_armed_ = false;
};

}  // namespace sluice::proxy
