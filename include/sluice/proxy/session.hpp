#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include <sluice/limit/store.hpp>
#include <sluice/net.hpp>
#include <sluice/proxy/snapshot.hpp>
#include <sluice/proxy/upstream_pool.hpp>

namespace sluice::proxy {

// Bounds on what one client connection may cost. Fixed for now; the hardening work makes them
// configurable.
struct SessionLimits {
  std::chrono::seconds header_timeout{10};  // to receive a request's header section
  std::chrono::seconds idle_timeout{60};    // between requests on a keep-alive connection
  std::chrono::seconds body_timeout{60};    // between pieces of a request body
  std::chrono::seconds send_timeout{60};    // for each write to the client
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_target_bytes = 8 * 1024;
  // A rejected request's unread body up to this size is read and dropped so the connection can be
  // kept alive; a larger one is answered with Connection: close.
  std::size_t drain_body_bytes = 64 * 1024;
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
    if (free_.empty()) return std::make_unique<char[]>(kBytes);
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

// What the sessions of one event-loop thread share. Owned by that thread; touched only from it
// (the memory store is the exception: one instance serves all threads and is safe for that; a
// Redis store is one per thread, on that thread's connection).
struct Worker {
  const SnapshotHolder& snapshots;
  limit::Store& store;
  // Decides for routes with `on_store_error: local` while `store` fails; null when `store` is the
  // memory store itself (it cannot fail).
  limit::Store* fallback_store;
  UpstreamPool pool;
  SessionLimits limits;
  RelayBuffers relay_buffers{};
};

// Serves one accepted client connection until it closes.
void start_session(tcp::socket socket, Worker& worker);

}  // namespace sluice::proxy
