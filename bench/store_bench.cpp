// Measures the memory store outside the proxy, where the network cannot hide or blur it:
//  - bytes per key: VmRSS and heap in use before and after inserting N distinct keys through
//    MemoryStore::decide (the same call the sessions make), so the figure includes the store's
//    own growth policy (record vectors, index slack), not a sizeof() estimate;
//  - decide() throughput with 1 and 2 threads, over many keys and over one shared key, to show
//    what the shard locks cost when event-loop threads meet in the store, next to the scaling of
//    two threads that share nothing (the most this machine can show at that moment).
// Prints one "name value" pair per line, for bench/run.sh and for people.
//
//   sluice_bench_store [--keys N] [--seconds S] [--skip-memory] [--skip-throughput]
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <malloc.h>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sluice/limit/clock.hpp>
#include <sluice/limit/memory_store.hpp>

namespace {

using sluice::limit::Algorithm;
using sluice::limit::DecideCall;
using sluice::limit::DecideWaiter;
using sluice::limit::KeyDigest;
using sluice::limit::LimitCheck;
using sluice::limit::MemoryStore;
using sluice::limit::Outcome;
using sluice::limit::Quota;
using sluice::limit::Verdict;

// MemoryStore never completes `pending`, so the waiter is never called.
class NoWaiter final : public DecideWaiter {
 public:
  void on_decided(DecideCall&) override { std::abort(); }
};

// Digests as the key builder makes them are uniform 128-bit values; splitmix64 gives the same.
std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

KeyDigest digest_of(std::uint64_t i) noexcept {
  return {splitmix64(2 * i), splitmix64(2 * i + 1)};
}

long vm_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::size_t heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;  // small blocks in use + mmapped large blocks
}

// A bucket so large it never rejects, refilling so slowly (one unit per 36 s) that every key's
// state stays live for the whole run: a state that refills within microseconds would read as
// expired and be reclaimed, and the store would then hold far fewer keys than were sent.
LimitCheck check_for(const KeyDigest& key) {
  LimitCheck check;
  check.key = key;
  check.algorithm = Algorithm::token_bucket;
  check.quota =
      Quota{.limit = 100, .window = 3600 * sluice::limit::kMicrosPerSecond, .burst = 1'000'000'000};
  return check;
}

bool decide_one(MemoryStore& store, const KeyDigest& key) {
  static thread_local NoWaiter waiter;
  const LimitCheck check = check_for(key);
  Verdict verdict;
  DecideCall call{.checks = {&check, 1}, .verdicts = {&verdict, 1}};
  store.decide(call, waiter);
  return call.outcome == Outcome::allowed;
}

int measure_memory(std::size_t keys) {
  const sluice::limit::SystemClock clock;
  const long rss_before = vm_rss_kib();
  const std::size_t heap_before = heap_in_use();
  auto store = std::make_unique<MemoryStore>(clock, keys);
  const auto start = std::chrono::steady_clock::now();
  std::size_t rejected = 0;
  for (std::size_t i = 0; i < keys; ++i) {
    if (!decide_one(*store, digest_of(i))) ++rejected;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long rss_after = vm_rss_kib();
  const std::size_t heap_after = heap_in_use();
  const auto stats = store->stats();
  std::printf("keys_requested %zu\n", keys);
  std::printf("keys_held %zu\n", stats.keys);
  std::printf("evictions %llu\n", static_cast<unsigned long long>(stats.evictions));
  std::printf("rejected %zu\n", rejected);
  std::printf("insert_seconds %.3f\n", secs);
  std::printf("rss_before_kib %ld\nrss_after_kib %ld\n", rss_before, rss_after);
  // Per key held: the shards split max_keys evenly but keys do not spread perfectly evenly, so
  // a few fuller shards evict (LRU) before the store as a whole reaches max_keys.
  const double held = static_cast<double>(std::max<std::size_t>(1, stats.keys));
  std::printf("rss_bytes_per_key %.1f\n",
              static_cast<double>(rss_after - rss_before) * 1024.0 / held);
  std::printf("heap_bytes_per_key %.1f\n", static_cast<double>(heap_after - heap_before) / held);
  return rejected == 0 ? 0 : 1;
}

// decide() calls per second summed over `threads` threads. `shared_key`: every call hits one key
// (one shard lock, the worst case); otherwise each thread cycles through its own 100 000 keys.
double throughput(unsigned threads, bool shared_key, double seconds) {
  const sluice::limit::SystemClock clock;
  MemoryStore store(clock, 1'000'000);
  constexpr std::uint64_t kKeysPerThread = 100'000;
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(threads * 8, 0);  // 64 bytes apart: no false sharing
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::uint64_t n = 0;
      while (!go.load(std::memory_order_acquire)) {
      }
      while (!stop.load(std::memory_order_relaxed)) {
        for (int batch = 0; batch < 256; ++batch, ++n) {
          const std::uint64_t id = shared_key ? 0 : t * kKeysPerThread + n % kKeysPerThread;
          decide_one(store, digest_of(id));
        }
      }
      counts[t * 8] = n;
    });
  }
  go.store(true, std::memory_order_release);
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& w : workers)
    w.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::uint64_t total = 0;
  for (unsigned t = 0; t < threads; ++t)
    total += counts[t * 8];
  return static_cast<double>(total) / secs;
}

// The same shape of measurement with no shared state at all: how much a second thread can add on
// this machine right now (a busy neighbour or an overcommitted VM caps every scaling figure).
double arithmetic_per_sec(unsigned threads, double seconds) {
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(threads * 8, 0);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::uint64_t x = t + 1;
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 1000; ++i)
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        ++n;
      }
      counts[t * 8] = n + (x & 1);  // x keeps the loop from being optimised away
    });
  }
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& w : workers)
    w.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::uint64_t total = 0;
  for (unsigned t = 0; t < threads; ++t)
    total += counts[t * 8];
  return static_cast<double>(total) / secs;
}

bool parse_number(std::string_view text, double& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && out > 0;
}

}  // namespace

int main(int argc, char** argv) {
  double keys = 1'000'000;
  double seconds = 1.0;
  bool memory = true;
  bool speed = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--keys" && i + 1 < argc && parse_number(argv[i + 1], keys)) {
      ++i;
    } else if (arg == "--seconds" && i + 1 < argc && parse_number(argv[i + 1], seconds)) {
      ++i;
    } else if (arg == "--skip-memory") {
      memory = false;
    } else if (arg == "--skip-throughput") {
      speed = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--keys N] [--seconds S] [--skip-memory] [--skip-throughput]\n",
                   argv[0]);
      return 2;
    }
  }
  int status = 0;
  if (memory) status = measure_memory(static_cast<std::size_t>(keys));
  if (speed) {
    const double many1 = throughput(1, false, seconds);
    const double many2 = throughput(2, false, seconds);
    const double one1 = throughput(1, true, seconds);
    const double one2 = throughput(2, true, seconds);
    std::printf("decide_per_sec_many_keys_1_thread %.0f\n", many1);
    std::printf("decide_per_sec_many_keys_2_threads %.0f\n", many2);
    std::printf("decide_scaling_many_keys %.2f\n", many2 / many1);
    std::printf("decide_per_sec_one_key_1_thread %.0f\n", one1);
    std::printf("decide_per_sec_one_key_2_threads %.0f\n", one2);
    std::printf("decide_scaling_one_key %.2f\n", one2 / one1);
    const double cpu1 = arithmetic_per_sec(1, seconds);
    const double cpu2 = arithmetic_per_sec(2, seconds);
    std::printf("machine_scaling_no_shared_state %.2f\n", cpu2 / cpu1);
  }
  return status;
}
