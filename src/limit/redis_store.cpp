// The Redis store: one Lua script per request decides every limit at once.
//
// The script is a raw string here rather than a .lua file embedded by a build step: it is short,
// it must change together with algorithm.cpp (which it transcribes) and with the argument
// layout and reply parser below, and keeping all three in one file needs no generated sources.
#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include <spdlog/spdlog.h>

#include <sluice/limit/redis_store.hpp>

namespace sluice::limit {
namespace {

using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// The script. Lua 5.1: every number is a double, exactly as in algorithm.cpp, and each
// expression below keeps the C++ operand order, so results are bit-identical. `#!lua` (Redis 7
// script flags, none set) makes Redis refuse the whole script up front when it is out of memory,
// instead of failing on a later write: the writes of one call are all done or none.
// ---------------------------------------------------------------------------------------------

constexpr std::string_view kScriptHead = R"lua(#!lua
-- sluice: every limit of one request, decided atomically and all-or-nothing.
-- A transcription of src/limit/algorithm.cpp, operation for operation; keep the two in step.
-- KEYS[i]  the state of check i: "v0 v1 v2" (a LimitState; absent = a fresh key)
-- ARGV[1]  'c' = charge if every check allows, 'q' = check only (writes nothing)
-- ARGV[5i-3 .. 5i+1]  check i: algorithm (1 token_bucket, 2 gcra, 3 sliding_window,
--          4 fixed_window), limit, window (us), capacity (burst, or limit), cost (>= 1)
-- returns  {all allowed 1|0, then per check: allowed 1|0, remaining, reset us, retry_after us}
)lua";

// Where `now` comes from. Production: Redis' own clock, the one clock all instances share.
constexpr std::string_view kRedisTime = R"lua(local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local extra_args = 0
local ttl_margin_ms = 1
)lua";

// Tests only (see redis_decide_script in the header).
constexpr std::string_view kArgumentTime = R"lua(local now = tonumber(ARGV[#ARGV])
local extra_args = 1
local ttl_margin_ms = 3600000
)lua";

constexpr std::string_view kScriptBody = R"lua(
local floor, ceil, max = math.floor, math.ceil, math.max
local kmax = 4611686018427387904 -- 2^62, as to_micros clamps

local function micros(us)
  if us < -kmax then return -kmax end
  if kmax < us then return kmax end
  return us
end

-- decide_bucket: allowed, debt_after, remaining, reset, retry_after
local function bucket(debt, lead, L, W, B, c)
  local cost_debt = c * W
  local capacity = B * W
  local allowed = debt + cost_debt <= capacity
  local debt_after, remaining, retry
  if allowed then
    debt_after = debt + cost_debt
    remaining = floor((capacity - debt_after) / W)
    retry = 0
  else
    debt_after = debt
    remaining = max(0, floor((capacity - debt) / W))
    if c > B then
      retry = micros(W)
    else
      retry = micros(lead + ceil((debt + cost_debt - capacity) / L))
    end
  end
  return allowed, debt_after, remaining, micros(lead + ceil(debt_after / L)), retry
end

-- Each algorithm: allowed, remaining, reset, retry_after, next v0, v1, v2, expires_at.
local function gcra(s, now, L, W, B, c)
  local debt = max(0, (s[1] - now) * L - s[2])
  local allowed, debt_after, remaining, reset, retry = bucket(debt, 0, L, W, B, c)
  local n0, n1, n2 = s[1], s[2], s[3]
  if allowed then
    local q = ceil(debt_after / L)
    n0, n1, n2 = now + q, q * L - debt_after, 0
  end
  return allowed, remaining, reset, retry, n0, n1, n2, now + reset
end

local function token_bucket(s, now, L, W, B, c)
  local last = s[2]
  local reference = max(last, now)
  local elapsed = reference - last
  local debt = max(0, s[1] * W - s[3] - elapsed * L)
  local allowed, debt_after, remaining, reset, retry = bucket(debt, reference - now, L, W, B, c)
  local n0, n1, n2 = s[1], s[2], s[3]
  if allowed then
    local q = ceil(debt_after / W)
    n0, n1, n2 = q, reference, q * W - debt_after
  end
  return allowed, remaining, reset, retry, n0, n1, n2, now + reset
end

local function fixed_window(s, now, L, W, c)
  local idx = max(floor(now / W), s[1])
  local count = 0
  if s[1] == idx then count = s[2] end
  local window_end = (idx + 1) * W
  local reset = micros(window_end - now)
  if count + c <= L then
    return true, L - count - c, reset, 0, idx, count + c, 0, micros(window_end)
  end
  local retry = reset
  if c > L then retry = micros(W) end
  local expires = now
  if count > 0 then expires = micros(window_end) end
  return false, max(0, L - count), reset, retry, s[1], s[2], s[3], expires
end

local function sliding_window(s, now, L, w, c)
  local idx = max(floor(now / w), s[1])
  local e = max(0, now - idx * w)
  local lead = idx * w + e - now
  local curr, prev = 0, 0
  if s[1] == idx then
    curr, prev = s[2], s[3]
  elseif s[1] == idx - 1 then
    prev = s[2]
  end
  local weighted = prev * (w - e)
  local allowed = weighted <= (L - curr - c) * w
  local remaining, retry = 0, 0
  local n0, n1, n2 = s[1], s[2], s[3]
  if allowed then
    remaining = floor(((L - curr - c) * w - weighted) / w)
    curr = curr + c
    n0, n1, n2 = idx, curr, prev
  else
    remaining = max(0, floor(((L - curr) * w - weighted) / w))
    local wait
    if c > L then
      wait = w
    elseif curr + c <= L then
      wait = lead + ceil((weighted - (L - curr - c) * w) / prev)
    else
      wait = lead + (w - e) + ceil((curr - (L - c)) * w / curr)
    end
    retry = micros(max(1, wait))
  end
  local reset = 0
  if curr > 0 then
    reset = (idx + 2) * w - now
  elseif prev > 0 then
    reset = (idx + 1) * w - now
  end
  reset = micros(reset)
  return allowed, remaining, reset, retry, n0, n1, n2, now + reset
end

local n = #KEYS
if #ARGV ~= 1 + 5 * n + extra_args or not now then
  return redis.error_reply('ERR sluice: wrong arguments')
end
local charge = ARGV[1] == 'c'
local states = {}  -- key -> the latest state of that key in this call (tentative)
local last = {}    -- key -> the index of its last check
local nexts, expiries = {}, {}
local reply = {1}
for i = 1, n do
  local key = KEYS[i]
  local s = states[key]
  if not s then
    local raw = redis.call('GET', key)
    if raw then
      local a, b, c = string.match(raw, '^(%S+) (%S+) (%S+)$')
      if not a then return redis.error_reply('ERR sluice: malformed state') end
      s = {tonumber(a), tonumber(b), tonumber(c)}
      if not (s[1] and s[2] and s[3]) then
        return redis.error_reply('ERR sluice: malformed state')
      end
    else
      s = {0, 0, 0}
    end
  end
  local at = 5 * i - 3
  local alg, L, W = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local B, c = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  if not (alg and L and W and B and c) then
    return redis.error_reply('ERR sluice: wrong arguments')
  end
  local allowed, remaining, reset, retry, n0, n1, n2, expires
  if L <= 0 or W <= 0 then
    -- reject_unusable: admits nothing, touches nothing
    local hint = 1000000
    if W > 0 then hint = W end
    allowed, remaining, reset, retry, n0, n1, n2, expires = false, 0, 0, hint, s[1], s[2], s[3], now
  elseif alg == 1 then
    allowed, remaining, reset, retry, n0, n1, n2, expires = token_bucket(s, now, L, W, B, c)
  elseif alg == 2 then
    allowed, remaining, reset, retry, n0, n1, n2, expires = gcra(s, now, L, W, B, c)
  elseif alg == 3 then
    allowed, remaining, reset, retry, n0, n1, n2, expires = sliding_window(s, now, L, W, c)
  elseif alg == 4 then
    allowed, remaining, reset, retry, n0, n1, n2, expires = fixed_window(s, now, L, W, c)
  else
    return redis.error_reply('ERR sluice: unknown algorithm')
  end
  -- A later check of the same key sees this state, charged or not, as the memory store does.
  states[key] = {n0, n1, n2}
  nexts[i], expiries[i], last[key] = states[key], expires, i
  local flag = 0
  if allowed then flag = 1 else reply[1] = 0 end
  reply[4 * i - 2], reply[4 * i - 1], reply[4 * i], reply[4 * i + 1] = flag, remaining, reset, retry
end
if reply[1] == 1 and charge then
  for i = 1, n do
    local key = KEYS[i]
    if last[key] == i then
      -- Kept until just past the instant the state is equivalent to a fresh key, never longer.
      local ttl = ceil((expiries[i] - now) / 1000)
      if ttl <= 0 then
        redis.call('DEL', key)
      else
        local s = nexts[i]
        redis.call('SET', key, string.format('%.17g %.17g %.17g', s[1], s[2], s[3]),
                   'PX', string.format('%d', ttl + ttl_margin_ms))
      end
    end
  end
end
return reply
)lua";

constexpr std::string_view kNotConnected = "redis store not connected";
constexpr std::string_view kTimedOut = "redis store call timed out";
constexpr std::string_view kErrorReply = "redis store replied with an error";
constexpr std::string_view kMalformedReply = "redis store reply malformed";
constexpr std::string_view kTooFewVerdicts = "fewer verdict slots than checks";

std::string_view error_text(redis::ErrorKind kind) noexcept {
  switch (kind) {
    case redis::ErrorKind::timeout:
      return kTimedOut;
    case redis::ErrorKind::disconnected:
      return kNotConnected;
    case redis::ErrorKind::server_error:
      return kErrorReply;
    case redis::ErrorKind::none:
    case redis::ErrorKind::protocol:
      break;
  }
  return kMalformedReply;
}

int algorithm_code(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::token_bucket:
      return 1;
    case Algorithm::gcra:
      return 2;
    case Algorithm::sliding_window:
      return 3;
    case Algorithm::fixed_window:
      return 4;
  }
  return 0;
}

std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

// A store that stays unhealthy this long after its last failure before a success counts as
// recovery, so a flapping store logs a change per second at most, not per request.
constexpr std::int64_t kRecoveryQuietNs = 1'000'000'000;

}  // namespace

// ---------------------------------------------------------------------------------------------

DigestKey redis_key_names(std::string_view salt) noexcept {
  // The salt (any length) keys a hash of a fixed label: unrelated to every other use of the
  // default key, and an empty salt still gives a key of its own.
  const KeyDigest condensed = siphash128(DigestKey{}, salt);
  const KeyDigest mixed =
      siphash128(DigestKey{condensed.hi, condensed.lo}, "sluice redis key names");
  return DigestKey{mixed.hi, mixed.lo};
}

std::string_view redis_key_name(const DigestKey& names, const KeyDigest& digest,
                                std::span<char, kRedisKeyLength> out) noexcept {
  char bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>(digest.hi >> (8 * i));
    bytes[8 + i] = static_cast<char>(digest.lo >> (8 * i));
  }
  const KeyDigest hashed = siphash128(names, std::string_view(bytes, sizeof bytes));
  std::copy(kRedisKeyPrefix.begin(), kRedisKeyPrefix.end(), out.begin());
  constexpr char kHex[] = "0123456789abcdef";
  char* hex = out.data() + kRedisKeyPrefix.size();
  for (int i = 0; i < 16; ++i) {
    const std::uint64_t word = i < 8 ? hashed.hi : hashed.lo;
    const auto byte = static_cast<unsigned>((word >> (8 * (7 - i % 8))) & 0xff);
    hex[2 * i] = kHex[byte >> 4];
    hex[2 * i + 1] = kHex[byte & 0xf];
  }
  return {out.data(), out.size()};
}

std::string redis_key_name(const DigestKey& names, const KeyDigest& digest) {
  std::array<char, kRedisKeyLength> out;
  return std::string(redis_key_name(names, digest, out));
}

std::string redis_decide_script(bool time_from_argument) {
  std::string script;
  script.reserve(kScriptHead.size() + kArgumentTime.size() + kScriptBody.size());
  script += kScriptHead;
  script += time_from_argument ? kArgumentTime : kRedisTime;
  script += kScriptBody;
  return script;
}

bool read_decide_reply(const redis::Reply& reply, DecideCall& call) noexcept {
  const std::size_t n = call.checks.size();
  if (reply.type() != redis::Reply::Type::array || call.verdicts.size() < n) return false;
  const auto items = reply.elements();
  if (items.size() != 1 + 4 * n) return false;
  for (const redis::Reply& item : items) {
    if (item.type() != redis::Reply::Type::integer || item.integer() < 0) return false;
  }
  const std::int64_t all = items[0].integer();
  if (all > 1) return false;
  bool every_check_allowed = true;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t allowed = items[1 + 4 * i].integer();
    const std::int64_t retry_after = items[4 + 4 * i].integer();
    if (allowed > 1 || (allowed == 1 && retry_after != 0)) return false;
    every_check_allowed = every_check_allowed && allowed == 1;
  }
  if ((all == 1) != every_check_allowed) return false;
  for (std::size_t i = 0; i < n; ++i) {
    Verdict& v = call.verdicts[i];
    v.allowed = items[1 + 4 * i].integer() == 1;
    v.limit = call.checks[i].quota.limit;
    v.remaining = items[2 + 4 * i].integer();
    v.reset = items[3 + 4 * i].integer();
    v.retry_after = items[4 + 4 * i].integer();
  }
  call.outcome = all == 1 ? Outcome::allowed : Outcome::limited;
  return true;
}

// ---------------------------------------------------------------------------------------------

RedisStoreMonitor::RedisStoreMonitor(std::string endpoint, std::size_t connections)
    : endpoint_(std::move(endpoint)),
      states_(std::max<std::size_t>(1, connections), redis::State::connecting) {}

void RedisStoreMonitor::on_state(std::size_t connection, redis::State state,
                                 std::string_view reason) {
  const std::lock_guard lock(mutex_);
  if (connection >= states_.size() || states_[connection] == state) return;
  if (states_[connection] == redis::State::up) --up_;
  states_[connection] = state;
  if (state == redis::State::up) ++up_;
  all_up_.store(up_ == states_.size(), std::memory_order_relaxed);
  if (state == redis::State::down) {
    last_failure_ns_.store(steady_ns(), std::memory_order_relaxed);
    bool expected = true;
    if (healthy_.compare_exchange_strong(expected, false)) {
      failed_calls_at_down_.store(failed_calls(), std::memory_order_relaxed);
      spdlog::warn(
          "redis store {} is down: {}; routes follow their on_store_error until it is back",
          endpoint_, reason);
    }
    return;
  }
  if (up_ != states_.size()) return;
  if (!announced_.load(std::memory_order_relaxed)) {
    announced_.store(true, std::memory_order_relaxed);
    healthy_.store(true, std::memory_order_relaxed);
    spdlog::info("redis store connected to {} ({} connection{})", endpoint_, states_.size(),
                 states_.size() == 1 ? "" : "s");
    return;
  }
  recover("reconnected");
}

void RedisStoreMonitor::on_call_failed(std::string_view reason) {
  failed_calls_.fetch_add(1, std::memory_order_relaxed);
  last_failure_ns_.store(steady_ns(), std::memory_order_relaxed);
  // Until every connection has been up once, a failed call merely came too early: the
  // connections say "connected" or "down" themselves.
  if (!announced_.load(std::memory_order_relaxed)) return;
  bool expected = true;
  if (healthy_.compare_exchange_strong(expected, false)) {
    failed_calls_at_down_.store(failed_calls() - 1, std::memory_order_relaxed);
    spdlog::warn(
        "redis store {} is failing: {}; routes follow their on_store_error until it is back",
        endpoint_, reason);
  }
}

void RedisStoreMonitor::on_call_succeeded() {
  if (healthy()) return;  // the common case: one relaxed load
  if (!all_up_.load(std::memory_order_relaxed)) return;
  if (steady_ns() - last_failure_ns_.load(std::memory_order_relaxed) < kRecoveryQuietNs) return;
  const std::lock_guard lock(mutex_);
  recover("calls succeed again");
}

void RedisStoreMonitor::recover(std::string_view how) {
  bool expected = false;
  if (!healthy_.compare_exchange_strong(expected, true)) return;
  const std::uint64_t failed =
      failed_calls() - failed_calls_at_down_.load(std::memory_order_relaxed);
  spdlog::info("redis store {} is back ({}); {} call{} failed meanwhile", endpoint_, how, failed,
               failed == 1 ? "" : "s");
}

// ---------------------------------------------------------------------------------------------

struct RedisStore::Impl {
  struct Pool;

  // One call in flight: the client's handler, pooled. While in flight it holds the pool, so a
  // store destroyed under it leaves the pool to the last such call.
  struct PendingCall final : redis::EvalHandler {
    Pool* pool = nullptr;
    std::shared_ptr<Pool> keepalive;
    DecideCall* call = nullptr;
    DecideWaiter* waiter = nullptr;

    void on_eval_result(redis::Result& result) override {
      const std::shared_ptr<Pool> keep = std::move(keepalive);  // `this` lives until we return
      DecideCall& decided = *std::exchange(call, nullptr);
      DecideWaiter& told = *std::exchange(waiter, nullptr);
      decided.error = {};
      RedisStoreMonitor* monitor = pool->monitor.get();
      if (!result.ok()) {
        decided.outcome = Outcome::store_error;
        decided.error = error_text(result.error);
        if (monitor)
          monitor->on_call_failed(result.message.empty() ? decided.error : result.message);
      } else if (!read_decide_reply(result.reply, decided)) {
        decided.outcome = Outcome::store_error;
        decided.error = kMalformedReply;
        if (monitor) monitor->on_call_failed(kMalformedReply);
      } else if (monitor) {
        monitor->on_call_succeeded();
      }
      // Back in the pool before the waiter runs: it may decide its next request at once.
      pool->free.push_back(this);
      told.on_decided(decided);
    }
  };

  struct Pool {
    std::vector<std::unique_ptr<PendingCall>> calls;
    std::vector<PendingCall*> free;
    std::shared_ptr<RedisStoreMonitor> monitor;
  };

  Impl(net::any_io_executor executor, RedisStoreSettings store_settings,
       std::shared_ptr<RedisStoreMonitor> store_monitor, std::size_t first_connection)
      : settings(std::move(store_settings)), pool(std::make_shared<Pool>()) {
    pool->monitor = std::move(store_monitor);
    const std::string script = redis_decide_script(settings.test_clock != nullptr);
    const unsigned count = std::max(1u, settings.connections);
    for (unsigned i = 0; i < count; ++i) {
      redis::Client::StateHandler on_state;
      if (pool->monitor) {
        on_state = [monitor = pool->monitor, index = first_connection + i](
                       redis::State state, std::string_view reason) {
          monitor->on_state(index, state, reason);
        };
      }
      clients.push_back(
          std::make_unique<redis::Client>(executor, settings.redis, std::move(on_state)));
      scripts.push_back(clients.back()->add_script(script));
    }
  }

  PendingCall& acquire() {
    if (pool->free.empty()) {
      pool->calls.push_back(std::make_unique<PendingCall>());
      pool->calls.back()->pool = pool.get();
      pool->free.reserve(pool->calls.size());
      return *pool->calls.back();
    }
    PendingCall* pending = pool->free.back();
    pool->free.pop_back();
    return *pending;
  }

  // Round-robin over the connections that are up; any one when none is (it fails fast).
  std::size_t pick_client() noexcept {
    const std::size_t count = clients.size();
    for (std::size_t tried = 0; tried < count; ++tried) {
      const std::size_t i = next_client++ % count;
      if (clients[i]->state() == redis::State::up) return i;
    }
    return next_client++ % count;
  }

  // Writes `value` as decimal into args_bytes at `at`; returns its view.
  std::string_view put_number(std::size_t& at, std::int64_t value) noexcept {
    char* begin = arg_bytes.data() + at;
    const auto [end, error] = std::to_chars(begin, begin + kNumberWidth, value);
    at += kNumberWidth;
    return {begin, static_cast<std::size_t>(end - begin)};
  }

  static constexpr std::size_t kNumberWidth = 20;  // any int64 in decimal

  RedisStoreSettings settings;
  std::shared_ptr<Pool> pool;
  std::vector<std::unique_ptr<redis::Client>> clients;
  std::vector<redis::ScriptId> scripts;
  std::size_t next_client = 0;
  // Scratch for one call's keys and arguments (the client copies them before eval() returns).
  std::vector<std::array<char, kRedisKeyLength>> key_names;
  std::vector<char> arg_bytes;
  std::vector<std::string_view> keys;
  std::vector<std::string_view> args;
};

RedisStore::RedisStore(net::any_io_executor executor, RedisStoreSettings settings,
                       std::shared_ptr<RedisStoreMonitor> monitor, std::size_t first_connection)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(settings), std::move(monitor),
                                   first_connection)) {}

RedisStore::~RedisStore() {
  stop();
}

void RedisStore::run() {
  for (auto& client : impl_->clients)
    client->run();
}

void RedisStore::stop() {
  for (auto& client : impl_->clients)
    client->stop();
}

bool RedisStore::connected() const noexcept {
  return std::any_of(impl_->clients.begin(), impl_->clients.end(),
                     [](const auto& client) { return client->state() == redis::State::up; });
}

Store::Completion RedisStore::decide(DecideCall& call, DecideWaiter& waiter) {
  Impl& impl = *impl_;
  const std::size_t n = call.checks.size();
  call.error = {};
  if (call.verdicts.size() < n) {
    call.outcome = Outcome::store_error;
    call.error = kTooFewVerdicts;
    return Completion::ready;
  }
  if (n == 0) {
    call.outcome = Outcome::allowed;
    return Completion::ready;
  }

  // Sized once per call shape; reused, so a steady stream of requests allocates nothing here.
  impl.key_names.resize(n);
  impl.arg_bytes.resize((2 + 5 * n) * Impl::kNumberWidth);
  impl.keys.clear();
  impl.args.clear();
  for (std::size_t i = 0; i < n; ++i) {
    impl.keys.push_back(
        redis_key_name(impl.settings.key_names, call.checks[i].key, impl.key_names[i]));
  }
  impl.args.push_back(call.mode == Mode::check_only ? "q" : "c");
  std::size_t at = 0;
  for (const LimitCheck& check : call.checks) {
    const bool bucket =
        check.algorithm == Algorithm::gcra || check.algorithm == Algorithm::token_bucket;
    // The defaults evaluate() applies, applied here so the script needs none of them.
    const std::int64_t capacity =
        bucket && check.quota.burst > 0 ? check.quota.burst : check.quota.limit;
    impl.args.push_back(impl.put_number(at, algorithm_code(check.algorithm)));
    impl.args.push_back(impl.put_number(at, check.quota.limit));
    impl.args.push_back(impl.put_number(at, check.quota.window));
    impl.args.push_back(impl.put_number(at, capacity));
    impl.args.push_back(impl.put_number(at, std::max<std::int64_t>(check.cost, 1)));
  }
  if (impl.settings.test_clock != nullptr) {
    impl.args.push_back(impl.put_number(at, impl.settings.test_clock->now()));
  }

  Impl::PendingCall& pending = impl.acquire();
  pending.call = &call;
  pending.waiter = &waiter;
  pending.keepalive = impl.pool;
  const std::size_t client = impl.pick_client();
  impl.clients[client]->eval(impl.scripts[client], impl.keys, impl.args, pending);
  return Completion::pending;
}

}  // namespace sluice::limit
