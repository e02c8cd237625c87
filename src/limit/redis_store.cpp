// The Redis store: one Lua script call decides a batch of requests, each with every limit at once.
//
// The script is a raw string here rather than a .lua file embedded by a build step: it is short,
// it must change together with algorithm.cpp (which it transcribes) and with the argument
// layout and reply parser below, and keeping all three in one file needs no generated sources.
#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>
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
-- sluice: a batch of requests, each deciding every one of its limits atomically and
-- all-or-nothing, in order: exactly as if each request had been sent alone at the same instant.
-- A transcription of src/limit/algorithm.cpp, operation for operation; keep the two in step.
-- KEYS     every counter of the batch, once each: "v0 v1 v2" (a LimitState; absent = fresh)
-- ARGV[1]  the batch as little-endian int64s: the number of requests, then per request:
--          1 = charge if every check allows | 0 = check only (writes nothing), its number of
--          checks, and per check: its key (an index into KEYS), algorithm (1 token_bucket,
--          2 gcra, 3 sliding_window, 4 fixed_window), limit, window (us), capacity (burst, or
--          limit), cost (>= 1). Zero checks: the same checks as the request before (a flood of
--          one client's identical requests is sent and decided for the price of its first).
-- returns  little-endian int64s, per request: 1 all allowed | 0 not | 2 a state unreadable
--          (nothing charged; zeros follow), then per check: allowed 1|0, remaining, reset us,
--          retry_after us
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

local wrong = 'ERR sluice: wrong arguments'
local batch = ARGV[1]
if #ARGV ~= 1 + extra_args or not now or #batch % 8 ~= 0 or #batch < 8 then
  return redis.error_reply(wrong)
end
local unpack, pack = struct.unpack, struct.pack
local size, nkeys = #batch, #KEYS

-- The state of each key as the requests decided so far left it: read once, written once at the
-- end, which leaves Redis exactly as writing after every request would (same instant). Nothing
-- is written before every argument has been read: a batch fails whole or decides whole.
local fresh = {0, 0, 0}
local unreadable = {}
local committed = {}  -- key -> state, or `unreadable`
local expiry = {}     -- key -> when its state after the last charge is as good as fresh
local written, nwritten = {}, 0
local function stored(key)
  local s = committed[key]
  if s then return s end
  local raw = redis.pcall('GET', KEYS[key])  -- a wrong type fails its requests, not the batch
  if not raw then
    s = fresh
  elseif type(raw) ~= 'string' then
    s = unreadable
  else
    local a, b, c = string.match(raw, '^(%S+) (%S+) (%S+)$')
    s = {tonumber(a), tonumber(b), tonumber(c)}
    if not (s[1] and s[2] and s[3]) then s = unreadable end
  end
  committed[key] = s
  return s
end

-- Every algorithm through one door: allowed, remaining, reset, retry_after, next v0, v1, v2,
-- expires_at.
local function decide_check(s, alg, L, W, B, c)
  if L <= 0 or W <= 0 then
    -- reject_unusable: admits nothing, touches nothing
    local hint = 1000000
    if W > 0 then hint = W end
    return false, 0, 0, hint, s[1], s[2], s[3], now
  elseif alg == 1 then
    return token_bucket(s, now, L, W, B, c)
  elseif alg == 2 then
    return gcra(s, now, L, W, B, c)
  elseif alg == 3 then
    return sliding_window(s, now, L, W, c)
  end
  return fixed_window(s, now, L, W, c)
end

-- A charge: the key's state for the requests after, and its expiry for the write at the end.
local function commit(key, state, expires)
  if not expiry[key] then
    nwritten = nwritten + 1
    written[nwritten] = key
  end
  expiry[key] = expires
  if expires <= now then committed[key] = fresh else committed[key] = state end
end

local zeros = string.rep('\0', 32)
-- For requests of several checks only, made at the first one (every table a call makes costs
-- Redis an allocation and garbage collection, and most requests have one check):
-- tentative: key -> its state after the earlier checks of the same request; seen: key -> the
-- last request that has it in `tentative`; last: key -> the index of its last check in the
-- current request; nexts, expiries, keyof: per check of the batch.
local tentative, seen, last, nexts, expiries, keyof
-- The checks of the latest request that listed its own (a repeat reuses them): six numbers each,
-- key, algorithm, limit, window, capacity, cost, from checks[6 * (i - 1) + 1].
local checks, n = {}, 0
-- The reply of the request before, in parts[from..to], its status, and whether it left every
-- state as it found it (limited, unreadable, or check-only): then a repeat of it gets the very
-- same verdicts, and the same reply unless the repeat is to charge what the other only checked.
local from, to, unchanged, previous = 0, 0, false, 0
local parts, np = {}, 0
local requests, pos = unpack('<i8', batch, 1)
local k = 0  -- checks so far, over the whole batch
for r = 1, requests do
  if pos + 15 > size then return redis.error_reply(wrong) end
  local mode, listed
  mode, listed, pos = unpack('<i8i8', batch, pos)
  if (mode ~= 0 and mode ~= 1) or listed < 0 or (listed == 0 and n == 0) or
     pos + 48 * listed - 1 > size then
    return redis.error_reply(wrong)
  end
  if listed == 0 and unchanged and (previous ~= 1 or mode == 0) then
    for i = from, to do parts[np + i - from + 1] = parts[i] end
    from, np = np + 1, np + to - from + 1
    to = np
  else
    if listed > 0 then
      n = listed
      for i = 1, 6 * n, 6 do
        local key, alg
        key, alg, checks[i + 2], checks[i + 3], checks[i + 4], checks[i + 5], pos =
          unpack('<i8i8i8i8i8i8', batch, pos)
        if key < 1 or key > nkeys then return redis.error_reply(wrong) end
        if alg ~= 1 and alg ~= 2 and alg ~= 3 and alg ~= 4 then
          return redis.error_reply('ERR sluice: unknown algorithm')
        end
        checks[i], checks[i + 1] = key, alg
      end
    end
    local head = np + 1
    local status = 1
    if n == 1 then
      -- One check, the common case: no other check of the request sees its state, so it needs
      -- none of the bookkeeping below (same result, a third fewer Lua instructions).
      local key = checks[1]
      local s = stored(key)
      np = head
      if s == unreadable then
        status = 2
        parts[np] = pack('<i8', 2) .. zeros
      else
        local allowed, remaining, reset, retry, n0, n1, n2, expires =
          decide_check(s, checks[2], checks[3], checks[4], checks[5], checks[6])
        local flag = 1
        if not allowed then
          flag, status = 0, 0
        elseif mode == 1 then
          commit(key, {n0, n1, n2}, expires)
        end
        parts[np] = pack('<i8i8i8i8i8', status, flag, remaining, reset, retry)
      end
    else
      if not tentative then
        tentative, seen, last, nexts, expiries, keyof = {}, {}, {}, {}, {}, {}
      end
      local first = k + 1
      np = head
      for i = 1, 6 * n, 6 do
        local key = checks[i]
        k = k + 1
        local s
        if status ~= 2 then
          if seen[key] == r then s = tentative[key] else s = stored(key) end
          if s == unreadable then status = 2 end
        end
        if status ~= 2 then
          local allowed, remaining, reset, retry, n0, n1, n2, expires =
            decide_check(s, checks[i + 1], checks[i + 2], checks[i + 3], checks[i + 4],
                         checks[i + 5])
          -- A later check of the same key sees this state, charged or not, as the memory store
          -- does. A rejected check leaves the state as it was (every algorithm): no new table.
          local state = s
          if allowed then state = {n0, n1, n2} end
          tentative[key], seen[key] = state, r
          nexts[k], expiries[k], keyof[k], last[key] = state, expires, key, k
          local flag = 1
          if not allowed then flag, status = 0, 0 end
          np = np + 1
          parts[np] = pack('<i8i8i8i8', flag, remaining, reset, retry)
        end
      end
      if status == 2 then
        np = head
        parts[head] = pack('<i8', 2) .. string.rep(zeros, n)
      else
        parts[head] = pack('<i8', status)
        if status == 1 and mode == 1 then
          for i = first, k do
            local key = keyof[i]
            if last[key] == i then commit(key, nexts[i], expiries[i]) end
          end
        end
      end
    end
    from, to, unchanged, previous = head, np, status ~= 1 or mode == 0, status
  end
end
if pos ~= size + 1 then return redis.error_reply(wrong) end
for w = 1, nwritten do
  local key = written[w]
  -- Kept until just past the instant the state is equivalent to a fresh key, never longer.
  local ttl = ceil((expiry[key] - now) / 1000)
  if ttl <= 0 then
    redis.call('DEL', KEYS[key])
  else
    -- Every state value is an integer below 2^53 (algorithm.hpp): %d writes it exactly, as
    -- %.17g would, for a fraction of the cost.
    local s = committed[key]
    redis.call('SET', KEYS[key], string.format('%d %d %d', s[1], s[2], s[3]), 'PX',
               ttl + ttl_margin_ms)
  end
end
return table.concat(parts, '', 1, np)
)lua";

constexpr std::string_view kNotConnected = "redis store not connected";
constexpr std::string_view kTimedOut = "redis store call timed out";
constexpr std::string_view kErrorReply = "redis store replied with an error";
constexpr std::string_view kMalformedReply = "redis store reply malformed";
constexpr std::string_view kTooFewVerdicts = "fewer verdict slots than checks";
constexpr std::string_view kUnreadableState = "redis store holds an unreadable state";

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

namespace {

// The salt (any length) keys a hash of a fixed label, one label per use: keys unrelated to each
// other and to every other use of the default key; an empty salt still gives keys of their own.
DigestKey derive_key(std::string_view salt, std::string_view label) noexcept {
  const KeyDigest condensed = siphash128(DigestKey{}, salt);
  const KeyDigest mixed = siphash128(DigestKey{condensed.hi, condensed.lo}, label);
  return DigestKey{mixed.hi, mixed.lo};
}

}  // namespace

DigestKey redis_key_names(std::string_view salt) noexcept {
  return derive_key(salt, "sluice redis key names");
}

DigestKey redis_digest_key(std::string_view salt) noexcept {
  return derive_key(salt, "sluice limit key digests");
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

bool decode_decide_reply(const redis::Reply& reply, std::vector<std::int64_t>& numbers) {
  numbers.clear();
  if (reply.type() != redis::Reply::Type::string || reply.text().size() % 8 != 0) return false;
  const std::string_view bytes = reply.text();
  numbers.resize(bytes.size() / 8);
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    std::uint64_t value = 0;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(&value, bytes.data() + 8 * i, 8);
    } else {
      for (int b = 7; b >= 0; --b)
        value = (value << 8) | static_cast<unsigned char>(bytes[8 * i + b]);
    }
    numbers[i] = static_cast<std::int64_t>(value);
  }
  return true;
}

bool read_decide_reply(std::span<const std::int64_t> numbers, DecideCall& call) noexcept {
  const std::size_t n = call.checks.size();
  if (call.verdicts.size() < n || numbers.size() != 1 + 4 * n) return false;
  for (const std::int64_t number : numbers) {
    if (number < 0) return false;
  }
  const std::int64_t status = numbers[0];
  if (status == kRedisUnreadableState) {
    for (const std::int64_t number : numbers.subspan(1)) {
      if (number != 0) return false;
    }
    call.outcome = Outcome::store_error;
    call.error = kUnreadableState;
    return true;
  }
  if (status > 1) return false;
  bool every_check_allowed = true;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t allowed = numbers[1 + 4 * i];
    const std::int64_t retry_after = numbers[4 + 4 * i];
    if (allowed > 1 || (allowed == 1 && retry_after != 0)) return false;
    every_check_allowed = every_check_allowed && allowed == 1;
  }
  if ((status == 1) != every_check_allowed) return false;
  for (std::size_t i = 0; i < n; ++i) {
    Verdict& v = call.verdicts[i];
    v.allowed = numbers[1 + 4 * i] == 1;
    v.limit = call.checks[i].quota.limit;
    v.remaining = numbers[2 + 4 * i];
    v.reset = numbers[3 + 4 * i];
    v.retry_after = numbers[4 + 4 * i];
  }
  call.outcome = status == 1 ? Outcome::allowed : Outcome::limited;
  return true;
}

bool read_decide_reply(const redis::Reply& reply, DecideCall& call) {
  std::vector<std::int64_t> numbers;
  return decode_decide_reply(reply, numbers) && read_decide_reply(numbers, call);
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
  struct Shared;

  // A call queued for a batch, or in one.
  struct Queued {
    DecideCall* call = nullptr;
    DecideWaiter* waiter = nullptr;
  };

  // One batch in flight: the client's handler, pooled. While in flight it holds the shared
  // state, so a store destroyed under it leaves that state to the last such batch.
  struct Batch final : redis::EvalHandler {
    Shared* shared = nullptr;
    std::shared_ptr<Shared> keepalive;
    std::vector<Queued> calls;
    std::size_t client = 0;  // the connection it went out on

    void on_eval_result(redis::Result& result) override;
  };

  // What queued calls and batches in flight need, which may outlive the store.
  struct Shared {
    Impl* store = nullptr;  // null once the store is gone
    std::shared_ptr<RedisStoreMonitor> monitor;
    std::vector<std::unique_ptr<Batch>> batches;
    std::vector<Batch*> free;
    std::vector<Queued> queue;  // the next batch, in the order decide() was called
    std::size_t queued_checks = 0;
    bool flush_posted = false;
    // Per connection: batches sent whose handler has not run yet.
    std::vector<std::uint32_t> awaiting;
    std::vector<std::int64_t> numbers;  // scratch: the decoded reply of the batch being read
  };

  Impl(net::any_io_executor store_executor, RedisStoreSettings store_settings,
       std::shared_ptr<RedisStoreMonitor> store_monitor, std::size_t first_connection)
      : executor(std::move(store_executor)),
        settings(std::move(store_settings)),
        max_requests(std::max(1u, settings.max_batch_requests)),
        max_checks(std::max(1u, settings.max_batch_checks)),
        shared(std::make_shared<Shared>()) {
    shared->store = this;
    shared->monitor = std::move(store_monitor);
    shared->queue.reserve(max_requests);
    const std::string script = redis_decide_script(settings.test_clock != nullptr);
    const unsigned count = std::max(1u, settings.connections);
    shared->awaiting.assign(count, 0);
    for (unsigned i = 0; i < count; ++i) {
      redis::Client::StateHandler on_state;
      if (shared->monitor) {
        on_state = [monitor = shared->monitor, index = first_connection + i](
                       redis::State state, std::string_view reason) {
          monitor->on_state(index, state, reason);
        };
      }
      clients.push_back(
          std::make_unique<redis::Client>(executor, settings.redis, std::move(on_state)));
      scripts.push_back(clients.back()->add_script(script));
    }
  }

  ~Impl() { shared->store = nullptr; }

  void enqueue(DecideCall& call, DecideWaiter& waiter) {
    Shared& s = *shared;
    const std::size_t n = call.checks.size();
    // A call that would overfill the batch starts the next one (a call alone may exceed it).
    if (!s.queue.empty() && s.queued_checks + n > max_checks) send();
    s.queue.push_back(Queued{&call, &waiter});
    s.queued_checks += n;
    if (s.queue.size() >= max_requests || s.queued_checks >= max_checks) {
      send();  // full: no reason to wait for the rest of the turn
    } else if (!s.flush_posted) {
      // Runs after the handlers already queued on the loop, so every request whose bytes
      // arrived in the same turn joins this batch.
      s.flush_posted = true;
      net::post(executor, [keep = shared] { flush(*keep); });
    }
  }

  // Sends the queue unless every connection already has a batch out: then the queue waits for
  // the first of them to come back and grows meanwhile. Under load a batch thus holds what
  // arrived during one round trip instead of one loop turn, which costs Redis less per request
  // (its fixed cost per call is several requests' worth); an idle store sends at once. A full
  // queue never waits (enqueue sends it), so the wait caps no throughput.
  static void flush(Shared& s) {
    s.flush_posted = false;
    if (s.queue.empty()) return;
    if (s.store == nullptr) return fail_queue(s, kNotConnected);
    if (s.store->free_client()) s.store->send();
  }

  static void fail_queue(Shared& s, std::string_view error) {
    std::vector<Queued> calls = std::exchange(s.queue, {});
    s.queued_checks = 0;
    for (const Queued& queued : calls) {
      queued.call->outcome = Outcome::store_error;
      queued.call->error = error;
      if (s.monitor) s.monitor->on_call_failed(error);
      queued.waiter->on_decided(*queued.call);
    }
    // Keep the warm buffer, unless a waiter has queued a call meanwhile.
    calls.clear();
    if (s.queue.empty() && s.queue.capacity() < calls.capacity()) s.queue.swap(calls);
  }

  // A batch came back (or failed) on connection `client`: the queue it held back may go.
  // Runs after the batch's waiters, so what they queued joins the calls that waited.
  static void on_batch_done(const std::shared_ptr<Shared>& keep, std::size_t client,
                            redis::ErrorKind error) {
    Shared& s = *keep;
    --s.awaiting[client];
    if (s.queue.empty()) return;
    // Calls that waited behind a batch that timed out have waited for the same silent Redis, up
    // to that deadline: they fail now rather than start a deadline of their own (also when a
    // flush is already posted: it would send them with a fresh one).
    if (error == redis::ErrorKind::timeout || s.store == nullptr) {
      return fail_queue(s, s.store == nullptr ? kNotConnected : kTimedOut);
    }
    if (s.flush_posted) return;
    s.flush_posted = true;
    net::post(s.store->executor, [keep] { flush(*keep); });
  }

  // Sends the queue as one EVALSHA: each distinct counter once in KEYS, every number in one
  // binary argument.
  void send() {
    Shared& s = *shared;
    Batch& batch = acquire();
    batch.calls.swap(s.queue);  // both keep their capacity: nothing allocates once warm
    const std::size_t checks = std::exchange(s.queued_checks, 0);

    key_names.resize(checks);  // before any view of it is taken
    keys.clear();
    start_key_lookup(checks);
    packed.clear();
    put(static_cast<std::int64_t>(batch.calls.size()));
    const DecideCall* previous = nullptr;
    for (const Queued& queued : batch.calls) {
      const DecideCall& call = *queued.call;
      put(call.mode == Mode::check_only ? 0 : 1);
      if (previous != nullptr && std::ranges::equal(previous->checks, call.checks)) {
        put(0);  // "the checks of the request before": what a flood from one client looks like
        continue;
      }
      previous = &call;
      put(static_cast<std::int64_t>(call.checks.size()));
      for (const LimitCheck& check : call.checks) {
        const bool bucket =
            check.algorithm == Algorithm::gcra || check.algorithm == Algorithm::token_bucket;
        // The defaults evaluate() applies, applied here so the script needs none of them.
        const std::int64_t capacity =
            bucket && check.quota.burst > 0 ? check.quota.burst : check.quota.limit;
        put(static_cast<std::int64_t>(key_index(check.key)));
        put(algorithm_code(check.algorithm));
        put(check.quota.limit);
        put(check.quota.window);
        put(capacity);
        put(std::max<std::int64_t>(check.cost, 1));
      }
    }
    args[0] = packed;
    std::size_t arg_count = 1;
    if (settings.test_clock != nullptr) {
      const auto [end, error] = std::to_chars(now_text.data(), now_text.data() + now_text.size(),
                                              settings.test_clock->now());
      args[arg_count++] = std::string_view(now_text.data(), end - now_text.data());
    }

    batch.keepalive = shared;
    batch.client = pick_client();
    ++s.awaiting[batch.client];
    clients[batch.client]->eval(scripts[batch.client], keys, std::span(args.data(), arg_count),
                                batch);
  }

  void put(std::int64_t value) {
    char bytes[8];
    const auto bits = static_cast<std::uint64_t>(value);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(bytes, &bits, 8);
    } else {
      for (int b = 0; b < 8; ++b)
        bytes[b] = static_cast<char>(bits >> (8 * b));
    }
    packed.append(bytes, sizeof bytes);
  }

  // The distinct counters of a batch: an open-addressing table over the digests (themselves
  // SipHash outputs, so any of their bits is a fine hash), emptied by bumping a generation.
  struct KeySlot {
    KeyDigest digest;
    std::uint32_t generation = 0;
    std::uint32_t index = 0;  // 1-based, into `keys`
  };

  void start_key_lookup(std::size_t checks) {
    std::size_t size = 16;
    while (size < 2 * checks)
      size *= 2;
    if (key_slots.size() < size) key_slots.assign(size, KeySlot{});
    if (++key_generation == 0) {  // wrapped: old marks would look current
      std::fill(key_slots.begin(), key_slots.end(), KeySlot{});
      key_generation = 1;
    }
  }

  // The 1-based index of `digest` in `keys`, adding its Redis name on first sight.
  std::uint32_t key_index(const KeyDigest& digest) {
    const std::size_t mask = key_slots.size() - 1;
    for (std::size_t at = digest.lo & mask;; at = (at + 1) & mask) {
      KeySlot& slot = key_slots[at];
      if (slot.generation != key_generation) {
        slot = KeySlot{digest, key_generation, static_cast<std::uint32_t>(keys.size() + 1)};
        keys.push_back(redis_key_name(settings.key_names, digest, key_names[keys.size()]));
        return slot.index;
      }
      if (slot.digest == digest) return slot.index;
    }
  }

  Batch& acquire() {
    Shared& s = *shared;
    if (s.free.empty()) {
      s.batches.push_back(std::make_unique<Batch>());
      Batch& batch = *s.batches.back();
      batch.shared = &s;
      batch.calls.reserve(max_requests);
      s.free.reserve(s.batches.size());
      return batch;
    }
    Batch* batch = s.free.back();
    s.free.pop_back();
    return *batch;
  }

  bool idle_and_up(std::size_t i) const noexcept {
    return shared->awaiting[i] == 0 && clients[i]->state() == redis::State::up;
  }

  // May the queue go now? Yes when a connection that is up has no batch out, and when none is
  // up at all (the call fails fast instead of waiting for nothing).
  bool free_client() const noexcept {
    bool any_up = false;
    for (std::size_t i = 0; i < clients.size(); ++i) {
      if (idle_and_up(i)) return true;
      any_up = any_up || clients[i]->state() == redis::State::up;
    }
    return !any_up;
  }

  // Round-robin, preferring a connection that is up with no batch out, then one that is up;
  // any one when none is (it fails fast).
  std::size_t pick_client() noexcept {
    const std::size_t count = clients.size();
    if (count == 1) return 0;
    for (std::size_t tried = 0; tried < count; ++tried) {
      const std::size_t i = (next_client + tried) % count;
      if (idle_and_up(i)) {
        next_client = i + 1;
        return i;
      }
    }
    for (std::size_t tried = 0; tried < count; ++tried) {
      const std::size_t i = next_client++ % count;
      if (clients[i]->state() == redis::State::up) return i;
    }
    return next_client++ % count;
  }

  net::any_io_executor executor;
  RedisStoreSettings settings;
  std::size_t max_requests;
  std::size_t max_checks;
  std::shared_ptr<Shared> shared;
  std::vector<std::unique_ptr<redis::Client>> clients;
  std::vector<redis::ScriptId> scripts;
  std::size_t next_client = 0;
  // Scratch for one batch's keys and arguments (the client copies them before eval() returns).
  std::vector<std::array<char, kRedisKeyLength>> key_names;
  std::vector<std::string_view> keys;
  std::vector<KeySlot> key_slots;
  std::uint32_t key_generation = 0;
  std::string packed;
  std::array<char, 24> now_text{};
  std::array<std::string_view, 2> args;
};

void RedisStore::Impl::Batch::on_eval_result(redis::Result& result) {
  const std::shared_ptr<Shared> keep = std::move(keepalive);  // `this` lives until we return
  RedisStoreMonitor* monitor = shared->monitor.get();
  // One failure of the batch fails each of its calls, as if each had been sent alone.
  std::string_view failure;
  std::string_view reason;  // for the monitor: the server's words when there are some
  std::vector<std::int64_t>& numbers = shared->numbers;
  if (!result.ok()) {
    failure = error_text(result.error);
    reason = result.message.empty() ? failure : result.message;
  } else {
    std::size_t expected = 0;
    for (const Queued& queued : calls)
      expected += 1 + 4 * queued.call->checks.size();
    if (!decode_decide_reply(result.reply, numbers) || numbers.size() != expected) {
      failure = reason = kMalformedReply;
    }
  }
  const std::span<const std::int64_t> items = numbers;
  bool any_decided = false;
  std::size_t at = 0;
  for (const Queued& queued : calls) {
    DecideCall& call = *queued.call;
    call.error = {};
    const std::size_t size = 1 + 4 * call.checks.size();
    if (!failure.empty()) {
      call.outcome = Outcome::store_error;
      call.error = failure;
      if (monitor) monitor->on_call_failed(reason);
    } else if (!read_decide_reply(items.subspan(at, size), call)) {
      call.outcome = Outcome::store_error;
      call.error = kMalformedReply;
      if (monitor) monitor->on_call_failed(kMalformedReply);
    } else if (call.outcome == Outcome::store_error) {
      if (monitor) monitor->on_call_failed(call.error);
    } else {
      any_decided = true;
    }
    at += size;
  }
  if (any_decided && monitor) monitor->on_call_succeeded();
  // Every outcome is set before any waiter runs; a waiter may decide its next request at once
  // (queued for the next batch) or let its call go: nothing of a call is read after its waiter.
  for (const Queued& queued : calls)
    queued.waiter->on_decided(*queued.call);
  calls.clear();
  const std::size_t sent_on = client;
  shared->free.push_back(this);
  Impl::on_batch_done(keep, sent_on, result.error);
}

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
  impl_->enqueue(call, waiter);
  return Completion::pending;
}

}  // namespace sluice::limit
