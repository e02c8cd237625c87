// The in-process store. Layout per shard, chosen for memory per key (~66 bytes RSS at 1M keys):
//  - entries: a vector of 56-byte records {digest, state, expires_at, LRU links}, grown on demand
//    up to the shard's share of max_keys; freed records are chained into a free list;
//  - slots: an open-addressing index (linear probing, backward-shift deletion) of 4-byte record
//    numbers, at most 3/4 full.
// A node-based std::unordered_map would add a heap node and a bucket pointer per key.
#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <mutex>
#include <vector>

#include <sluice/limit/memory_store.hpp>

namespace sluice::limit {
namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
// Marks a record on the free list (in lru_prev), so sweeps skip it.
constexpr std::uint32_t kFree = kNone - 1;
constexpr std::size_t kNoSlot = std::numeric_limits<std::size_t>::max();
constexpr Micros kNever = std::numeric_limits<Micros>::max();

// Digests are SipHash outputs and already uniform, but tests and tools may build digests by hand
// ({0, 1}, {0, 2}, ...): mixing both halves keeps shard choice and probing uniform regardless.
// The high 32 bits pick the shard, the low bits the slot, so the two are independent.
std::uint64_t mix(const KeyDigest& d) noexcept {
  std::uint64_t x = d.lo ^ (d.hi * 0x9e3779b97f4a7c15ULL);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace

// A shard's lock. decide() holds it for a few hundred nanoseconds, and glibc's mutex puts a
// waiter to sleep in the kernel the moment it finds the lock taken (a futex round trip for a wait
// shorter than the syscall). This one spins on a plain read first (test-and-test-and-set, so
// waiters do not keep stealing the line from the holder with writes), then sleeps on the atomic
// (C++20 wait/notify: a futex, only when someone waits). Two threads deciding on one hot key
// reached 0.49-0.57x of one thread's rate with std::mutex, 0.73-0.79x with this
// (sluice_bench_store, four alternating runs each).
class ShardMutex {
 public:
  void lock() noexcept {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      for (int spin = 0; spin < 100 && locked_.load(std::memory_order_relaxed); ++spin)
        pause();
      locked_.wait(true, std::memory_order_relaxed);
    }
  }
  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
    locked_.notify_one();
  }

 private:
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  std::atomic<bool> locked_{false};
};

struct alignas(64) MemoryStore::Shard {
  struct Entry {
    KeyDigest key;
    LimitState state;
    Micros expires_at;
    std::uint32_t lru_prev;  // towards the most recently used; kFree on the free list
    std::uint32_t lru_next;  // towards the least recently used; next free record on the free list
  };
  static_assert(sizeof(Entry) == 56, "memory per key is a design target");

  ShardMutex mutex;
  std::size_t capacity = 0;  // this shard's share of max_keys
  std::size_t live = 0;
  std::vector<Entry> entries;
  std::vector<std::uint32_t> slots;  // size 0 or a power of two; kNone = empty
  std::uint32_t free_head = kNone;
  std::uint32_t lru_head = kNone;  // most recently used
  std::uint32_t lru_tail = kNone;  // least recently used
  // Never later than the earliest expires_at among live records: a sweep before it finds nothing.
  Micros earliest_expiry = kNever;
  std::uint64_t evictions = 0;
  std::uint64_t expired = 0;

  std::size_t mask() const noexcept { return slots.size() - 1; }

  // Position in `slots` of `key`, or kNoSlot.
  std::size_t find_slot(const KeyDigest& key, std::uint64_t hash) const noexcept {
    if (slots.empty()) return kNoSlot;
    for (std::size_t pos = hash & mask();; pos = (pos + 1) & mask()) {
      const std::uint32_t e = slots[pos];
      if (e == kNone) return kNoSlot;
      if (entries[e].key == key) return pos;
    }
  }

  void unlink(std::uint32_t e) noexcept {
    Entry& entry = entries[e];
    if (entry.lru_prev != kNone)
      entries[entry.lru_prev].lru_next = entry.lru_next;
    else
      lru_head = entry.lru_next;
    if (entry.lru_next != kNone)
      entries[entry.lru_next].lru_prev = entry.lru_prev;
    else
      lru_tail = entry.lru_prev;
  }

  void push_front(std::uint32_t e) noexcept {
    entries[e].lru_prev = kNone;
    entries[e].lru_next = lru_head;
    if (lru_head != kNone) entries[lru_head].lru_prev = e;
    lru_head = e;
    if (lru_tail == kNone) lru_tail = e;
  }

  void touch(std::uint32_t e) noexcept {
    if (lru_head == e) return;
    unlink(e);
    push_front(e);
  }

  // Backward-shift deletion: later records of the probe run move into the hole when it lies on
  // their own probe path, so lookups never need tombstones.
  void erase_slot(std::size_t hole) noexcept {
    for (std::size_t pos = (hole + 1) & mask();; pos = (pos + 1) & mask()) {
      const std::uint32_t e = slots[pos];
      if (e == kNone) break;
      const std::size_t home = mix(entries[e].key) & mask();
      if (((pos - home) & mask()) >= ((pos - hole) & mask())) {
        slots[hole] = e;
        hole = pos;
      }
    }
    slots[hole] = kNone;
  }

  void remove(std::uint32_t e) noexcept {
    erase_slot(find_slot(entries[e].key, mix(entries[e].key)));
    unlink(e);
    entries[e].lru_prev = kFree;
    entries[e].lru_next = free_head;
    free_head = e;
    --live;
  }

  // The live record of `key`, marked as just used; an expired one is reclaimed and reads as absent.
  std::uint32_t lookup(const KeyDigest& key, std::uint64_t hash, Micros now) noexcept {
    const std::size_t pos = find_slot(key, hash);
    if (pos == kNoSlot) return kNone;
    const std::uint32_t e = slots[pos];
    if (entries[e].expires_at <= now) {
      remove(e);
      ++expired;
      return kNone;
    }
    touch(e);
    return e;
  }

  void rehash(std::size_t slot_count) {
    slots.assign(slot_count, kNone);
    for (std::uint32_t e = lru_head; e != kNone; e = entries[e].lru_next) {
      std::size_t pos = mix(entries[e].key) & mask();
      while (slots[pos] != kNone)
        pos = (pos + 1) & mask();
      slots[pos] = e;
    }
  }

  // Reclaims every expired record; cost O(records), so only once `now` has reached the earliest
  // expiry seen (a fruitless sweep recomputes it exactly).
  void sweep(Micros now) noexcept {
    Micros earliest = kNever;
    for (std::uint32_t e = 0; e < entries.size(); ++e) {
      if (entries[e].lru_prev == kFree) continue;
      if (entries[e].expires_at <= now) {
        remove(e);
        ++expired;
      } else {
        earliest = std::min(earliest, entries[e].expires_at);
      }
    }
    earliest_expiry = earliest;
  }

  // Frees one record when the shard is full: expired ones first, else the least recently used.
  void make_room(Micros now) noexcept {
    if (now >= earliest_expiry) sweep(now);
    if (live < capacity) return;
    const std::uint32_t victim = lru_tail;
    if (entries[victim].expires_at <= now)
      ++expired;
    else
      ++evictions;
    remove(victim);
  }

  std::uint32_t allocate() {
    if (free_head != kNone) {
      const std::uint32_t e = free_head;
      free_head = entries[e].lru_next;
      return e;
    }
    // Grow by doubling but never past the shard's share, so a full shard wastes no capacity.
    if (entries.size() == entries.capacity()) {
      entries.reserve(std::min(capacity, std::max<std::size_t>(16, entries.capacity() * 2)));
    }
    entries.emplace_back();
    return static_cast<std::uint32_t>(entries.size() - 1);
  }

  // Writes the state a charged request leaves behind, creating the record if needed.
  void store(const KeyDigest& key, std::uint64_t hash, const LimitState& state, Micros expires_at,
             Micros now) {
    const std::size_t pos = find_slot(key, hash);
    if (expires_at <= now) {
      // Equivalent to a fresh key: keep no record of it.
      if (pos != kNoSlot) remove(slots[pos]);
      return;
    }
    std::uint32_t e = kNone;
    if (pos != kNoSlot) {
      e = slots[pos];
      touch(e);
    } else {
      if (live >= capacity) make_room(now);
      if ((live + 1) * 4 > slots.size() * 3) rehash(std::max<std::size_t>(16, slots.size() * 2));
      e = allocate();
      entries[e].key = key;
      std::size_t slot = hash & mask();
      while (slots[slot] != kNone)
        slot = (slot + 1) & mask();
      slots[slot] = e;
      push_front(e);
      ++live;
    }
    entries[e].state = state;
    entries[e].expires_at = expires_at;
    earliest_expiry = std::min(earliest_expiry, expires_at);
  }
};

namespace {

// Per-call scratch, on the stack for the usual handful of limits (no allocation per request).
struct Pending {
  std::uint64_t hash = 0;
  LimitState next;
  Micros expires_at = 0;
  std::uint32_t shard = 0;
};

template <typename T, std::size_t N>
class SmallBuffer {
 public:
  explicit SmallBuffer(std::size_t n) : size_(n) {
    if (n > N) heap_.resize(n);
  }
  T* data() noexcept { return size_ > N ? heap_.data() : inline_.data(); }
  T& operator[](std::size_t i) noexcept { return data()[i]; }

 private:
  std::size_t size_;
  std::array<T, N> inline_{};
  std::vector<T> heap_;
};

constexpr std::size_t kInlineChecks = 8;  // routes rarely have more limits

}  // namespace

MemoryStore::MemoryStore(const Clock& clock, std::size_t max_keys, std::size_t shard_count)
    : clock_(clock) {
  // Exactly max_keys in total: never more shards than keys, the remainder spread one per shard.
  max_keys = std::max<std::size_t>(1, max_keys);
  shard_count_ = std::clamp<std::size_t>(shard_count, 1, max_keys);
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (std::size_t i = 0; i < shard_count_; ++i) {
    shards_[i].capacity = max_keys / shard_count_ + (i < max_keys % shard_count_ ? 1 : 0);
  }
}

MemoryStore::~MemoryStore() = default;

std::size_t MemoryStore::shard_of(const KeyDigest& key) const noexcept {
  return (mix(key) >> 32) % shard_count_;
}

Store::Completion MemoryStore::decide(DecideCall& call, DecideWaiter& /*waiter*/) {
  const std::size_t n = call.checks.size();
  call.error = {};
  if (call.verdicts.size() < n) {
    call.outcome = Outcome::store_error;
    call.error = "fewer verdict slots than checks";
    return Completion::ready;
  }
  const Micros now = clock_.now();

  SmallBuffer<Pending, kInlineChecks> pending(n);
  SmallBuffer<std::uint32_t, kInlineChecks> locked(n);  // distinct shards, ascending
  std::size_t locked_count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t hash = mix(call.checks[i].key);
    const auto shard = static_cast<std::uint32_t>((hash >> 32) % shard_count_);
    pending[i].hash = hash;
    pending[i].shard = shard;
    std::size_t at = 0;
    while (at < locked_count && locked[at] < shard)
      ++at;
    if (at < locked_count && locked[at] == shard) continue;
    for (std::size_t k = locked_count; k > at; --k)
      locked[k] = locked[k - 1];
    locked[at] = shard;
    ++locked_count;
  }

  // Ascending shard order everywhere, so two calls sharing shards can never deadlock.
  struct Unlocker {
    Shard* shards;
    std::uint32_t* order;
    std::size_t count;
    ~Unlocker() {
      for (std::size_t k = count; k > 0; --k)
        shards[order[k - 1]].mutex.unlock();
    }
  } unlocker{shards_.get(), locked.data(), 0};
  for (std::size_t k = 0; k < locked_count; ++k) {
    shards_[locked[k]].mutex.lock();
    unlocker.count = k + 1;
  }

  bool all_allowed = true;
  for (std::size_t i = 0; i < n; ++i) {
    const LimitCheck& check = call.checks[i];
    LimitState state{};
    // A digest repeated within the call sees the earlier check's tentative state.
    std::size_t earlier = i;
    while (earlier > 0 && !(call.checks[earlier - 1].key == check.key))
      --earlier;
    if (earlier > 0) {
      state = pending[earlier - 1].next;
    } else {
      Shard& shard = shards_[pending[i].shard];
      const std::uint32_t e = shard.lookup(check.key, pending[i].hash, now);
      if (e != kNone) state = shard.entries[e].state;
    }
    const Step step = evaluate(check.algorithm, state, now, check.quota, check.cost);
    call.verdicts[i] = step.verdict;
    pending[i].next = step.next;
    pending[i].expires_at = step.expires_at;
    all_allowed = all_allowed && step.verdict.allowed;
  }

  // All or nothing: a request one limit rejects is charged to none of them.
  if (all_allowed && call.mode == Mode::charge_if_all_allowed) {
    for (std::size_t i = 0; i < n; ++i) {
      shards_[pending[i].shard].store(call.checks[i].key, pending[i].hash, pending[i].next,
                                      pending[i].expires_at, now);
    }
  }
  call.outcome = all_allowed ? Outcome::allowed : Outcome::limited;
  return Completion::ready;
}

MemoryStoreStats MemoryStore::stats() const {
  MemoryStoreStats total;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    const std::lock_guard lock(shards_[i].mutex);
    total.keys += shards_[i].live;
    total.evictions += shards_[i].evictions;
    total.expired += shards_[i].expired;
  }
  return total;
}

}  // namespace sluice::limit
