#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <sluice/limit/clock.hpp>
#include <sluice/limit/store.hpp>

namespace sluice::limit {

struct MemoryStoreStats {
  std::size_t keys = 0;
  std::uint64_t evictions = 0;  // live keys dropped because the store was full (LRU)
  std::uint64_t expired = 0;    // keys reclaimed because their state had expired
};

// The in-process store: sharded by key digest, each shard behind its own lock, bounded by
// max_keys. All checks of one call are decided under the locks of the shards they touch, taken in
// shard order, so a request's limits are atomic even when they live in different shards.
//
// max_keys is exact: it is split across the shards (never more shards than keys; a max_keys of 0
// counts as 1). A full shard first reclaims expired keys, then evicts its least recently used key.
// Memory grows with the keys actually held; nothing is allocated up front. decide() always
// completes `ready` and never uses the waiter.
class MemoryStore final : public Store {
 public:
  MemoryStore(const Clock& clock, std::size_t max_keys, std::size_t shard_count = 64);
  ~MemoryStore() override;

  Completion decide(DecideCall& call, DecideWaiter& waiter) override;

  MemoryStoreStats stats() const;

  // Which shard holds `key` (exposed for tests and diagnostics: LRU order is per shard).
  std::size_t shard_of(const KeyDigest& key) const noexcept;
  std::size_t shard_count() const noexcept { return shard_count_; }

 private:
  struct Shard;
  const Clock& clock_;
  std::size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace sluice::limit
