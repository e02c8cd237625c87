#pragma once
#include <chrono>
#include <cstddef>

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
  std::size_t relay_buffer_bytes = 16 * 1024;
  // A rejected request's unread body up to this size is read and dropped so the connection can be
  // kept alive; a larger one is answered with Connection: close.
  std::size_t drain_body_bytes = 64 * 1024;
};

// What the sessions of one event-loop thread share. Owned by that thread; touched only from it
// (the store is the exception: it is shared by all threads and safe for that).
struct Worker {
  const SnapshotHolder& snapshots;
  limit::Store& store;
  // Decides for routes with `on_store_error: local` while `store` fails; null when `store` is the
  // memory store itself (it cannot fail).
  limit::Store* fallback_store;
  UpstreamPool pool;
  SessionLimits limits;
};

// Serves one accepted client connection until it closes.
void start_session(tcp::socket socket, Worker& worker);

}  // namespace sluice::proxy
