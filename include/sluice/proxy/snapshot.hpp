#pragma once
#include <atomic>
#include <memory>

#include <sluice/classify/router.hpp>
#include <sluice/config/config.hpp>

namespace sluice::proxy {

// One immutable generation of policy: the config and what was compiled from it. A request takes one
// snapshot when its header is parsed and uses it to the end, so a reload never changes the rules
// under a running request.
struct Snapshot {
  explicit Snapshot(std::shared_ptr<const config::Config> cfg)
      : config(std::move(cfg)), router(*config) {}

  std::shared_ptr<const config::Config> config;
  classify::Router router;
};

// Where the live snapshot is published; a reload stores a new one.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(std::shared_ptr<const Snapshot> initial) : current_(std::move(initial)) {}

  std::shared_ptr<const Snapshot> load() const noexcept {
    return current_.load(std::memory_order_acquire);
  }
  void store(std::shared_ptr<const Snapshot> next) noexcept {
    current_.store(std::move(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
};

}  // namespace sluice::proxy
