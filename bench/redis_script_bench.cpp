// Drives the Redis store's decide script against a running redis-server, through the production
// path (RedisStore::decide, one batch per loop turn), so that bench/redis-script-cost.sh can count
// what Redis executes per request under callgrind: a count of instructions, repeatable to a few
// parts per thousand on any machine, where timing the script on a shared machine moves by ±15 %.
//
//   sluice_bench_redis_script --port P --batches N [--batch B] [--scenario allowed|rejected|keys]
//
// allowed   B requests for one key, never limited (what a busy API key sends)
// rejected  B requests for one key past its limit (a flood of 429s)
// keys      B requests for B different keys, never limited (many clients at once)
// Each batch is checked: the expected outcome for every request, or exit status 1.
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/limit/redis_store.hpp>
#include <sluice/net.hpp>

namespace {

using namespace sluice::limit;
using namespace std::chrono_literals;

struct Request final : DecideWaiter {
  std::vector<LimitCheck> checks;
  std::vector<Verdict> verdicts;
  DecideCall call;
  bool decided = false;

  explicit Request(LimitCheck check) : checks{check}, verdicts(1), call{checks, verdicts} {}
  void on_decided(DecideCall&) override { decided = true; }
};

template <typename Done>
bool run_until(sluice::net::io_context& io, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(10ms);
  }
  return true;
}

bool number_argument(std::string_view text, long& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc{} && end == text.data() + text.size() && out > 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: sluice_bench_redis_script --port P --batches N [--batch B] "
               "[--scenario allowed|rejected|keys]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  long batches = 0;
  long batch = 17;
  std::string scenario = "allowed";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view name = argv[i];
    const std::string_view value = argv[i + 1];
    bool ok = true;
    if (name == "--port") {
      ok = number_argument(value, port) && port < 65536;
    } else if (name == "--batches") {
      ok = number_argument(value, batches);
    } else if (name == "--batch") {
      ok = number_argument(value, batch) && batch <= 64;
    } else if (name == "--scenario") {
      scenario = value;
      ok = scenario == "allowed" || scenario == "rejected" || scenario == "keys";
    } else {
      ok = false;
    }
    if (!ok) return usage();
  }
  if (port == 0 || batches == 0 || argc % 2 == 0) return usage();

  sluice::net::io_context io;
  RedisStoreSettings settings;
  settings.redis.port = static_cast<std::uint16_t>(port);
  settings.redis.call_timeout = 10s;  // redis-server under callgrind is slow
  settings.redis.connect_timeout = 10s;
  settings.redis.ping_timeout = 10s;
  settings.key_names = redis_key_names("bench");
  RedisStore store(io.get_executor(), settings);
  store.run();
  if (!run_until(io, [&] { return store.connected(); })) {
    std::fprintf(stderr, "no redis-server on 127.0.0.1:%ld\n", port);
    return 1;
  }

  // The bench's policies (bench/conf/sluice.yaml): a bucket that never empties, and 10/s burst 5.
  const Quota loose{1, 60'000'000, 1'000'000'000};
  const Quota tight{10, 1'000'000, 5};
  const bool rejected = scenario == "rejected";
  std::uint64_t next_key = 1;
  long allowed = 0;
  long limited = 0;
  for (long b = 0; b < batches; ++b) {
    std::vector<std::unique_ptr<Request>> requests;
    for (long r = 0; r < batch; ++r) {
      const std::uint64_t key = scenario == "keys" ? next_key++ : 1;
      requests.push_back(std::make_unique<Request>(
          LimitCheck{KeyDigest{7, key}, Algorithm::token_bucket, rejected ? tight : loose, 1}));
    }
    for (auto& request : requests)
      store.decide(request->call, *request);  // one loop turn: one batch
    if (!run_until(io, [&] { return requests.back()->decided; })) {
      std::fprintf(stderr, "batch %ld: no answer\n", b);
      return 1;
    }
    for (const auto& request : requests) {
      const Outcome outcome = request->call.outcome;
      // The flood's bucket refills 10 a second, so a few of its requests pass.
      if (!request->decided || outcome == Outcome::store_error ||
          (!rejected && outcome != Outcome::allowed)) {
        std::fprintf(stderr, "batch %ld: unexpected outcome (%.*s)\n", b,
                     static_cast<int>(request->call.error.size()), request->call.error.data());
        return 1;
      }
      (outcome == Outcome::allowed ? allowed : limited) += 1;
    }
  }
  std::printf("decided %ld batches of %ld (%s): %ld allowed, %ld limited\n", batches, batch,
              scenario.c_str(), allowed, limited);
  return 0;
}
