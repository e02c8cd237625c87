#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include <sluice/config/config.hpp>
#include <sluice/limit/store.hpp>
#include <sluice/proxy/io.hpp>
#include <sluice/proxy/snapshot.hpp>
#include <sluice/proxy/upstream_pool.hpp>
#include <sluice/proxy/yield_queue.hpp>

namespace sluice::proxy {

// Bounds on what one client connection may cost (the config's `client:` section).
struct SessionLimits {
  std::chrono::milliseconds header_timeout{10000};  // from a request's first byte to its blank line
  std::chrono::milliseconds idle_timeout{
      60000};  // waiting for a request on a kept-alive connection
  std::chrono::milliseconds body_timeout{60000};  // between pieces of a request body
  std::chrono::milliseconds send_timeout{60000};  // for each write to the client
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_target_bytes = 8 * 1024;
  std::size_t max_header_fields = 100;
  // A rejected request's unread body up to this size is read and dropped so the connection can be
  // kept alive; a larger one is answered with Connection: close.
  std::size_t drain_body_bytes = 64 * 1024;
};

// Counts the open client connections of the whole process against `max_connections`. Shared by
// every event-loop thread, hence the atomic; touched once per connection, never per request.
class ConnectionGate {
 public:
  explicit ConnectionGate(std::size_t max_connections) : max_(max_connections) {}
  // Admits one more connection, or returns false when the limit is reached.
  bool try_enter() noexcept {
    if (open_.fetch_add(1, std::memory_order_relaxed) < max_) return true;
    open_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void leave() noexcept { open_.fetch_sub(1, std::memory_order_relaxed); }
  std::size_t open() const noexcept { return open_.load(std::memory_order_relaxed); }

 private:
  const std::size_t max_;
  std::atomic<std::size_t> open_{0};
};

// Buffers that carry bodies between client and upstream, recycled per thread: a connection holds
// one only while it relays a body, so idle keep-alive connections cost none, and steady traffic
// allocates none.
class RelayBuffers {
 public:
  // 64 KiB pieces: a quarter of the syscalls of 16 KiB for bulk transfers, still small per
  // connection in flight.
  static constexpr std::size_t kBytes = 64 * 1024;
  static constexpr std::size_t kMaxFree = 64;

  std::unique_ptr<char[]> take() {
    if (free_.empty()) return std::make_unique_for_overwrite<char[]>(kBytes);
    auto buffer = std::move(free_.back());
    free_.pop_back();
    return buffer;
  }
  void give_back(std::unique_ptr<char[]> buffer) {
    if (free_.size() < kMaxFree) free_.push_back(std::move(buffer));
  }

 private:
  std::vector<std::unique_ptr<char[]>> free_;
};

// What closed connections leave for the next ones on their thread: the buffers a session grows
// (input, field lists, rendered heads, key and verdict lists), so that a connection per request
// (keep-alive off) allocates no more than a kept-alive one. Owned by the event loop and declared
// before its io_context, so sessions that io_context destroys at shutdown can still give back.
class SessionSpares {
 public:
  struct Parts;  // defined with the session
  static constexpr std::size_t kMaxFree = 256;

  SessionSpares();
  SessionSpares(const SessionSpares&) = delete;
  SessionSpares& operator=(const SessionSpares&) = delete;
  ~SessionSpares();

  std::unique_ptr<Parts> take();  // an empty Parts when none is left
  void give_back(std::unique_ptr<Parts> parts);

 private:
  std::vector<std::unique_ptr<Parts>> free_;
};

// What the sessions of one event-loop thread share. Owned by that thread; touched only from it
// (the memory store is the exception: one instance serves all threads and is safe for that; a
// Redis store is one per thread, on that thread's connection).
struct Worker {
  ConnectionGate& connections;
  const SnapshotHolder& snapshots;
  limit::Store& store;
  // Decides for routes with `on_store_error: local` while `store` fails; null when `store` is the
  // memory store itself (it cannot fail).
  limit::Store* fallback_store;
  UpstreamPool pool;
  SessionLimits limits;
  // Keys the limit-key digests: random per process on the memory store (a client cannot search
  // offline for keys that collide in its table); derived from key_salt on Redis, where every
  // instance must compute the same digests.
  limit::DigestKey digest_key;
  RelayBuffers relay_buffers{};
  SessionSpares& spares;
  // Connections over their limit wait here before their next request is read (see YieldQueue).
  YieldQueue yield_queue;
};

// Serves one accepted client connection until it closes. The caller has entered
// worker.connections for it; the session leaves it when it ends.
void start_session(Socket socket, const tcp::endpoint& peer, Worker& worker);

}  // namespace sluice::proxy
