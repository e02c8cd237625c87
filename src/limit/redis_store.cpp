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
//
// The script decides which requests are admitted and charges them; the verdicts' numbers
// (remaining, reset, retry) are not its work: it returns the state each counter held before the
// batch and its instant, and the store replays the batch through evaluate() itself, checking
// request by request that it admits exactly what the script admitted (read_batch_reply).
// ---------------------------------------------------------------------------------------------

constexpr std::string_view kScriptHead = R"lua(#!lua
-- sluice: a batch of requests, each deciding every one of its limits atomically and
-- all-or-nothing, in order: exactly as if each request had been sent alone at the same instant.
-- Transcribes the decisions of src/limit/algorithm.cpp; keep the two in step.
-- KEYS     every counter of the batch, once each: "v0 v1 v2" (a LimitState; absent = fresh)
-- ARGV[1]  the batch as little-endian int64s: the number of runs, then per run (consecutive
--          requests with the same checks and mode): its mode, 1 = charge if every check allows
--          | 0 = check only (writes nothing); its number of checks, 0 = those of the last run
--          that listed its own; its number of requests (>= 1); and per check listed: its key
--          (an index into KEYS), algorithm (1 token_bucket, 2 gcra, 3 sliding_window,
--          4 fixed_window), limit, window (us), capacity (burst, or limit), cost (>= 1).
-- returns  little-endian int64s: the instant (us) the batch was decided at; per run how many
--          of its requests were admitted (always the first ones), or -1 when a counter it uses
--          holds something that is not a state (nothing charged); per key its state before the
--          batch, v0 v1 v2 (0 0 0 when absent, -1 0 0 when not a state)
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

-- One request's check exactly as evaluate() decides it: allowed, then when allowed its next v0,
-- v1, v2 and expires_at (a refused check leaves the state as it was, in every algorithm).

local function token_bucket(s, L, W, B, c)
  local last = s[2]
  local reference = max(last, now)
  local elapsed = reference - last
  local debt = max(0, s[1] * W - s[3] - elapsed * L)
  if not (debt + c * W <= B * W) then return false end
  local debt_after = debt + c * W
  local q = ceil(debt_after / W)
  return true, q, reference, q * W - debt_after,
         now + micros(reference - now + ceil(debt_after / L))
end

local function gcra(s, L, W, B, c)
  local debt = max(0, (s[1] - now) * L - s[2])
  if not (debt + c * W <= B * W) then return false end
  local debt_after = debt + c * W
  local q = ceil(debt_after / L)
  return true, now + q, q * L - debt_after, 0, now + micros(0 + ceil(debt_after / L))
end

local function sliding_window(s, L, w, c)
  local idx = max(floor(now / w), s[1])
  local e = max(0, now - idx * w)
  local curr, prev = 0, 0
  if s[1] == idx then
    curr, prev = s[2], s[3]
  elseif s[1] == idx - 1 then
    prev = s[2]
  end
  if not (prev * (w - e) <= (L - curr - c) * w) then return false end
  -- curr + c > 0, so reset runs to the end of the next window
  return true, idx, curr + c, prev, now + micros((idx + 2) * w - now)
end

local function fixed_window(s, L, W, c)
  local idx = max(floor(now / W), s[1])
  local count = 0
  if s[1] == idx then count = s[2] end
  if not (count + c <= L) then return false end
  return true, idx, count + c, 0, micros((idx + 1) * W)
end

local function step(s, alg, L, W, B, c)
  if L <= 0 or W <= 0 then
    return false  -- reject_unusable: admits nothing
  elseif alg == 1 then
    return token_bucket(s, L, W, B, c)
  elseif alg == 2 then
    return gcra(s, L, W, B, c)
  elseif alg == 3 then
    return sliding_window(s, L, W, c)
  end
  return fixed_window(s, L, W, c)
end

-- Identical requests at one instant, in closed form. Each admitted one adds the same amount to
-- what its state counts (c*W unit-us of debt for the buckets, c units for the windows), nothing
-- else moves, and a refused one changes nothing: the admitted ones are the first
-- floor(room / per) of them, and the state after `a` of them is the `next` of the a-th, which
-- `settle` computes directly. Both forms compute the same first values from the stored state;
-- after that they agree as long as the values the run can reach are integers below 2^53
-- (`exact`, checked with room to spare; a bucket far larger than the run, as in a limit meant
-- never to refuse, is fine: the run cannot reach its edge either way). Otherwise the run goes
-- one request at a time.
-- measure: room, per, exact, then what settle needs.
local kexact = 4503599627370496 -- 2^52
local function measure(s, alg, L, W, B, c, count)
  if alg == 1 then
    local last = s[2]
    local reference = max(last, now)
    local debt = max(0, s[1] * W - s[3] - (reference - last) * L)
    return B * W - debt, c * W, now + debt + count * (c * W) + W + L < kexact, debt, reference
  elseif alg == 2 then
    local debt = max(0, (s[1] - now) * L - s[2])
    return B * W - debt, c * W, now + debt + count * (c * W) + W + L < kexact, debt, 0
  elseif alg == 3 then
    local idx = max(floor(now / W), s[1])
    local e = max(0, now - idx * W)
    local curr, prev = 0, 0
    if s[1] == idx then
      curr, prev = s[2], s[3]
    elseif s[1] == idx - 1 then
      prev = s[2]
    end
    return (L - curr) * W - prev * (W - e), c * W,
           (L + curr + prev + count * c + 1) * (W + 1) < kexact, idx, curr, prev
  end
  local idx = max(floor(now / W), s[1])
  local count0 = 0
  if s[1] == idx then count0 = s[2] end
  return L - count0, c, L + count0 + count * c < kexact, idx, count0
end

-- The state after `a` (>= 1) admitted requests: v0, v1, v2, expires_at.
local function settle(alg, L, W, c, a, x, y, z)
  if alg == 1 then  -- x = debt, y = reference
    local debt_after = x + a * (c * W)
    local q = ceil(debt_after / W)
    return q, y, q * W - debt_after, now + micros(y - now + ceil(debt_after / L))
  elseif alg == 2 then  -- x = debt
    local debt_after = x + a * (c * W)
    local q = ceil(debt_after / L)
    return now + q, q * L - debt_after, 0, now + micros(0 + ceil(debt_after / L))
  elseif alg == 3 then  -- x = idx, y = curr, z = prev
    return x, y + a * c, z, now + micros((x + 2) * W - now)
  end
  return x, y + a * c, 0, micros((x + 1) * W)  -- x = idx, y = count
end

local wrong = 'ERR sluice: wrong arguments'
local batch = ARGV[1]
if #ARGV ~= 1 + extra_args or not now or #batch % 8 ~= 0 or #batch < 8 then
  return redis.error_reply(wrong)
end
local sunpack = struct.unpack
local size, nkeys = #batch, #KEYS
local runs, pos = sunpack('<i8', batch, 1)
if runs < 0 or 24 * runs > size then return redis.error_reply(wrong) end
-- The reply as it is filled: the instant, each run's count as it is decided, each key's state
-- as it is first read (key k's from first_state + 3 * (k - 1)).
local reply = {now}
local first_state = runs + 2

-- The state of each key as the requests decided so far left it: read once, written once at the
-- end, which leaves Redis exactly as writing after every request would (same instant). Nothing
-- is written before every argument has been read: a batch fails whole or decides whole.
local fresh = {0, 0, 0}
local unreadable = {}
local committed = {}  -- key -> its state now (tables never changed in place), or `unreadable`
local expiry = {}     -- key -> when its state after the last charge is as good as fresh
local written, nwritten = {}, 0
local k63 = 9223372036854775808 -- 2^63
local function stored(key)
  local s = committed[key]
  if s then return s end
  local raw = redis.pcall('GET', KEYS[key])  -- a wrong type fails its requests, not the batch
  if not raw then
    s = fresh
  elseif type(raw) == 'string' then
    local a, b, c = string.match(raw, '^(%S+) (%S+) (%S+)$')
    a, b, c = tonumber(a), tonumber(b), tonumber(c)
    -- sluice writes whole numbers, the first never negative (past 2^53, as a quota at the
    -- loader's extremes can make them, they are still whole): anything else is not its state
    if a and b and c and a >= 0 and a < k63 and b > -k63 and b < k63 and c > -k63 and
       c < k63 and a % 1 == 0 and b % 1 == 0 and c % 1 == 0 then
      s = {a, b, c}
    end
  end
  local at = first_state + 3 * (key - 1)
  if s then
    reply[at], reply[at + 1], reply[at + 2] = s[1], s[2], s[3]
  else
    s = unreadable
    reply[at], reply[at + 1], reply[at + 2] = -1, 0, 0
  end
  committed[key] = s
  return s
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

-- The checks of the last run that listed its own: six numbers each, key, algorithm, limit,
-- window, capacity, cost, from checks[6 * (i - 1) + 1]; whether no key is in them twice.
local checks, n, distinct = {}, 0, true
-- One request of several checks, check by check as evaluate() and the memory store decide it: a
-- later check of a key sees the state the earlier one left (charged or not); all or nothing.
local nexts, expires  -- per check index, made at the first such request
local function one_request(mode)
  if not nexts then nexts, expires = {}, {} end
  local admitted = true
  for i = 1, 6 * n, 6 do
    local key = checks[i]
    local s
    for j = i - 6, 1, -6 do
      if checks[j] == key then
        s = nexts[j]
        break
      end
    end
    s = s or committed[key]
    local allowed, n0, n1, n2, at = step(s, checks[i + 1], checks[i + 2], checks[i + 3],
                                         checks[i + 4], checks[i + 5])
    if allowed then s = {n0, n1, n2} else admitted = false end
    nexts[i], expires[i] = s, at
  end
  if admitted and mode == 1 then
    for i = 1, 6 * n, 6 do commit(checks[i], nexts[i], expires[i]) end
  end
  return admitted
end

-- A run of `count` identical requests: how many are admitted (the first ones: once one is
-- refused nothing has changed, so every later one is refused too), or -1.
local function decide_run(mode, count)
  if n == 1 then
    -- One check, the common case: none of the bookkeeping of several.
    local key, alg, L, W, B, c = checks[1], checks[2], checks[3], checks[4], checks[5], checks[6]
    local s = stored(key)
    if s == unreadable then return -1 end
    if count > 1 and L > 0 and W > 0 then
      local room, per, exact, x, y, z = measure(s, alg, L, W, B, c, count)
      if exact then
        if room < per then return 0 end
        if mode == 0 then return count end  -- nothing charged: each is decided like the first
        local a = floor(room / per)
        if a > count then a = count end
        local n0, n1, n2, at = settle(alg, L, W, c, a, x, y, z)
        commit(key, {n0, n1, n2}, at)
        return a
      end
    end
    local a, allowed, n0, n1, n2, at = 0
    while a < count do
      allowed, n0, n1, n2, at = step(s, alg, L, W, B, c)
      if not allowed then break end
      if mode == 0 then return count end
      a = a + 1
      commit(key, {n0, n1, n2}, at)
      s = committed[key]
    end
    return a
  end
  local readable = true
  for i = 1, 6 * n, 6 do
    if stored(checks[i]) == unreadable then readable = false end
  end
  if not readable then return -1 end
  if distinct and count > 1 then
    local a = count
    for i = 1, 6 * n, 6 do
      local L, W = checks[i + 2], checks[i + 3]
      if L <= 0 or W <= 0 then a = -1 break end
      local room, per, exact = measure(committed[checks[i]], checks[i + 1], L, W, checks[i + 4],
                                       checks[i + 5], count)
      if not exact then a = -1 break end
      if room < per then
        a = 0
      elseif a > 0 then
        local fits = floor(room / per)
        if fits < a then a = fits end
      end
    end
    if a == 0 then return 0 end
    if a > 0 then
      if mode == 0 then return count end
      for i = 1, 6 * n, 6 do
        local key, alg, L, W, c = checks[i], checks[i + 1], checks[i + 2], checks[i + 3],
                                  checks[i + 5]
        local _, _, _, x, y, z = measure(committed[key], alg, L, W, checks[i + 4], c, count)
        local n0, n1, n2, at = settle(alg, L, W, c, a, x, y, z)
        commit(key, {n0, n1, n2}, at)
      end
      return a
    end
  end
  if mode == 0 then
    if one_request(0) then return count end
    return 0
  end
  local a = 0
  while a < count and one_request(1) do a = a + 1 end
  return a
end

for r = 1, runs do
  if pos + 23 > size then return redis.error_reply(wrong) end
  local mode, listed, count
  mode, listed, count, pos = sunpack('<i8i8i8', batch, pos)
  if (mode ~= 0 and mode ~= 1) or listed < 0 or (listed == 0 and n == 0) or count < 1 or
     pos + 48 * listed - 1 > size then
    return redis.error_reply(wrong)
  end
  if listed > 0 then
    n, distinct = listed, true
    for i = 1, 6 * n, 6 do
      local key, alg
      key, alg, checks[i + 2], checks[i + 3], checks[i + 4], checks[i + 5], pos =
        sunpack('<i8i8i8i8i8i8', batch, pos)
      if key < 1 or key > nkeys then return redis.error_reply(wrong) end
      if alg ~= 1 and alg ~= 2 and alg ~= 3 and alg ~= 4 then
        return redis.error_reply('ERR sluice: unknown algorithm')
      end
      checks[i], checks[i + 1] = key, alg
      for j = 1, i - 6, 6 do
        if checks[j] == key then distinct = false end
      end
    end
  end
  reply[r + 1] = decide_run(mode, count)
end
if pos ~= size + 1 then return redis.error_reply(wrong) end
for w = 1, nwritten do
  local key = written[w]
  -- Kept until just past the instant the state is equivalent to a fresh key, never longer.
  local ttl = ceil((expiry[key] - now) / 1000)
  if ttl <= 0 then
    redis.call('DEL', KEYS[key])
  else
    -- Every state value is a whole number (algorithm.hpp; past 2^53 only at the loader's
    -- extreme quotas): %d writes it exactly, as %.17g would, for a fraction of the cost.
    local s = committed[key]
    redis.call('SET', KEYS[key], string.format('%d %d %d', s[1], s[2], s[3]), 'PX',
               ttl + ttl_margin_ms)
  end
end
local values = first_state + 3 * nkeys - 1  -- every key is some run's, so every one was read
if values <= 4000 then
  return struct.pack('<' .. string.rep('i8', values), unpack(reply, 1, values))
end
-- unpack() passes values on Lua's stack, which holds about 8000
local chunks = {}
for from = 1, values, 4000 do
  local to = math.min(values, from + 3999)
  chunks[#chunks + 1] = struct.pack('<' .. string.rep('i8', to - from + 1), unpack(reply, from, to))
end
return table.concat(chunks)
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

void RedisBatchReader::read(const redis::Reply& reply, std::span<DecideCall* const> calls,
                            std::span<const RedisRun> runs, std::span<const std::uint32_t> run_keys,
                            RedisReplayObserver* observer) {
  const auto fail_from = [&](std::size_t first) {
    for (DecideCall* call : calls.subspan(first)) {
      call->outcome = Outcome::store_error;
      call->error = kMalformedReply;
    }
  };
  const std::size_t head = 1 + runs.size();
  if (!decode_decide_reply(reply, numbers_) || numbers_.size() < head ||
      (numbers_.size() - head) % 3 != 0 || numbers_[0] <= 0) {
    return fail_from(0);
  }
  const Micros now = numbers_[0];
  const std::size_t keys = (numbers_.size() - head) / 3;
  // Every key of the batch is some check's, so the reply has a state for each.
  const auto highest = std::ranges::max_element(run_keys);
  if (keys != (highest == run_keys.end() ? 0 : *highest + std::size_t{1})) return fail_from(0);
  states_.resize(keys);
  unreadable_.assign(keys, false);
  for (std::size_t k = 0; k < keys; ++k) {
    const std::int64_t* v = numbers_.data() + head + 3 * k;
    if (v[0] == kRedisUnreadable && v[1] == 0 && v[2] == 0) {
      unreadable_[k] = true;
    } else if (v[0] < 0) {  // never a state's (v1 and v2 may be, past 2^53)
      return fail_from(0);
    } else {
      states_[k] = LimitState{
          {static_cast<double>(v[0]), static_cast<double>(v[1]), static_cast<double>(v[2])}};
    }
  }
  std::size_t first = 0;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const RedisRun& run = runs[r];
    if (run.calls == 0 || run.calls > calls.size() - first) return fail_from(first);
    const std::span<DecideCall* const> members = calls.subspan(first, run.calls);
    const std::size_t n = members.front()->checks.size();
    if (run.first_key > run_keys.size() || n > run_keys.size() - run.first_key ||
        !replay_run(numbers_[1 + r], now, members, run_keys.subspan(run.first_key, n), observer)) {
      return fail_from(first);
    }
    first += run.calls;
  }
  fail_from(first);  // calls no run covered (none, unless the layout was wrong)
}

bool RedisBatchReader::replay_run(std::int64_t admitted, Micros now,
                                  std::span<DecideCall* const> calls,
                                  std::span<const std::uint32_t> keys,
                                  RedisReplayObserver* observer) {
  bool any_unreadable = false;
  bool distinct = true;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] >= states_.size()) return false;
    any_unreadable = any_unreadable || unreadable_[keys[i]];
    for (std::size_t j = 0; j < i; ++j)
      distinct = distinct && keys[j] != keys[i];
  }
  if (admitted == kRedisUnreadable) {
    if (!any_unreadable) return false;
    for (DecideCall* call : calls) {
      call->outcome = Outcome::store_error;
      call->error = kUnreadableState;
    }
    return true;
  }
  if (any_unreadable || admitted < 0 || static_cast<std::uint64_t>(admitted) > calls.size()) {
    return false;
  }
  const std::size_t n = keys.size();
  steps_.resize(n);
  for (std::size_t j = 0; j < calls.size(); ++j) {
    DecideCall& call = *calls[j];
    if (call.checks.size() != n || call.verdicts.size() < n) return false;
    bool all_allowed = true;
    for (std::size_t i = 0; i < n; ++i) {
      // As the memory store: a key repeated within the call sees the earlier check's state.
      std::size_t earlier = i;
      while (earlier > 0 && keys[earlier - 1] != keys[i])
        --earlier;
      const LimitState& state = earlier > 0 ? steps_[earlier - 1].next : states_[keys[i]];
      const LimitCheck& check = call.checks[i];
      steps_[i] = evaluate(check.algorithm, state, now, check.quota, check.cost);
      call.verdicts[i] = steps_[i].verdict;
      all_allowed = all_allowed && steps_[i].verdict.allowed;
    }
    if (all_allowed != (j < static_cast<std::uint64_t>(admitted))) return false;
    if (all_allowed && call.mode == Mode::charge_if_all_allowed) {
      for (std::size_t i = 0; i < n; ++i)
        states_[keys[i]] = steps_[i].expires_at <= now ? LimitState{} : steps_[i].next;
    }
    call.outcome = all_allowed ? Outcome::allowed : Outcome::limited;
    call.error = {};
  }
  // Told only once the whole run agrees with the script. The admitted calls come first; the
  // refused ones after them changed nothing, so the states now are what the first of them saw,
  // and one refusal speaks for all of them (they are identical).
  if (observer != nullptr) {
    const auto first_refused = static_cast<std::size_t>(admitted);
    for (std::size_t j = 0; j < first_refused; ++j)
      observer->on_admitted(*calls[j]);
    if (first_refused < calls.size() && distinct) {
      before_.resize(n);
      for (std::size_t i = 0; i < n; ++i)
        before_[i] = states_[keys[i]];
      observer->on_refused(*calls[first_refused], keys, before_, now);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

RefusalCache::RefusalCache(Micros max_age, std::size_t slots)
    : max_age_(std::max<Micros>(0, max_age)),
      entries_(max_age_ > 0 ? std::max<std::size_t>(1, slots) : 0),
      keys_(max_age_ > 0 ? 4096 : 0) {}

std::size_t RefusalCache::slot_of(std::span<const LimitCheck> checks) const noexcept {
  std::uint64_t h = checks.size();
  for (const LimitCheck& check : checks) {
    // The key, and what tells two limits of one route or two costs apart.
    h = (h ^ check.key.lo ^ (check.key.hi * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
    h = (h ^ static_cast<std::uint64_t>(check.cost) ^
         (static_cast<std::uint64_t>(check.quota.limit) << 20)) *
        0xc4ceb9fe1a85ec53ULL;
  }
  return static_cast<std::size_t>((h ^ (h >> 29)) % entries_.size());
}

RefusalCache::KeySlot& RefusalCache::key_slot(const KeyDigest& key) noexcept {
  return keys_[static_cast<std::size_t>(key.lo % keys_.size())];
}

const RefusalCache::KeySlot& RefusalCache::key_slot(const KeyDigest& key) const noexcept {
  return keys_[static_cast<std::size_t>(key.lo % keys_.size())];
}

bool RefusalCache::answer(DecideCall& call, const Clock& local) noexcept {
  const std::size_t n = call.checks.size();
  if (!enabled() || n == 0 || n > kMaxChecks || call.verdicts.size() < n) return false;
  Entry& entry = entries_[slot_of(call.checks)];
  if (entry.checks != n) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const KeySlot& key = key_slot(call.checks[i].key);
    if (!(entry.check[i] == call.checks[i]) || entry.generation[i] != key.generation) {
      return false;
    }
  }
  const Micros local_now = local.now();
  if (local_now >= entry.until || local_now < entry.local_sent) return false;
  // Redis' instant now, as late as it can be: no earlier than the refusal by as much time as has
  // passed here since the batch left.
  const Micros redis_now = entry.redis_now + (local_now - entry.local_sent);
  bool all_allowed = true;
  for (std::size_t i = 0; i < n; ++i) {
    const LimitCheck& check = call.checks[i];
    call.verdicts[i] =
        evaluate(check.algorithm, entry.state[i], redis_now, check.quota, check.cost).verdict;
    all_allowed = all_allowed && call.verdicts[i].allowed;
  }
  if (all_allowed) {  // cannot happen before `until`; if it did, Redis decides
    entry.checks = 0;
    return false;
  }
  call.outcome = Outcome::limited;
  call.error = {};
  return true;
}

std::uint32_t RefusalCache::generation(const KeyDigest& key) const noexcept {
  return enabled() ? key_slot(key).generation : 0;
}

void RefusalCache::remember(const DecideCall& call, std::span<const LimitState> states,
                            std::span<const std::uint32_t> generations, Micros redis_now,
                            Micros local_sent) noexcept {
  const std::size_t n = call.checks.size();
  if (!enabled() || n == 0 || n > kMaxChecks || states.size() != n || generations.size() != n ||
      call.verdicts.size() < n) {
    return;
  }
  // Admissible again, at the earliest, once every refusing check is: the longest of their waits.
  Micros wait = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!call.verdicts[i].allowed) wait = std::max(wait, call.verdicts[i].retry_after);
  }
  if (wait <= 0) return;
  Entry& entry = entries_[slot_of(call.checks)];
  entry.checks = static_cast<std::uint8_t>(n);
  for (std::size_t i = 0; i < n; ++i) {
    entry.check[i] = call.checks[i];
    entry.state[i] = states[i];
    entry.generation[i] = generations[i];
  }
  entry.redis_now = redis_now;
  entry.local_sent = local_sent;
  entry.until = local_sent + std::min(wait, max_age_);
}

void RefusalCache::admitted(const DecideCall& call) noexcept {
  if (!enabled()) return;
  for (const LimitCheck& check : call.checks)
    ++key_slot(check.key).generation;
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

  // Calls queued for a batch, or in one, in order: two parallel lists, so that the reply's reader
  // takes the calls as one span.
  struct Calls {
    std::vector<DecideCall*> calls;
    std::vector<DecideWaiter*> waiters;

    std::size_t size() const noexcept { return calls.size(); }
    bool empty() const noexcept { return calls.empty(); }
    void push(DecideCall& call, DecideWaiter& waiter) {
      calls.push_back(&call);
      waiters.push_back(&waiter);
    }
    void clear() noexcept {
      calls.clear();
      waiters.clear();
    }
    void reserve(std::size_t n) {
      calls.reserve(n);
      waiters.reserve(n);
    }
    void swap(Calls& other) noexcept {
      calls.swap(other.calls);
      waiters.swap(other.waiters);
    }
  };

  // One batch in flight: the client's handler, pooled. While in flight it holds the shared
  // state, so a store destroyed under it leaves that state to the last such batch.
  struct Batch final : redis::EvalHandler {
    Shared* shared = nullptr;
    std::shared_ptr<Shared> keepalive;
    Calls queued;
    std::vector<RedisRun> runs;
    std::vector<std::uint32_t> run_keys;
    std::size_t client = 0;                      // the connection it went out on
    Micros sent = 0;                             // local (refusal cache) time
    std::vector<std::uint32_t> key_generations;  // per KEYS index, when the batch left

    void on_eval_result(redis::Result& result) override;
  };

  // What queued calls and batches in flight need, which may outlive the store.
  struct Shared {
    Impl* store = nullptr;  // null once the store is gone
    std::shared_ptr<RedisStoreMonitor> monitor;
    std::vector<std::unique_ptr<Batch>> batches;
    std::vector<Batch*> free;
    Calls queue;  // the next batch, in the order decide() was called
    std::size_t queued_checks = 0;
    bool flush_posted = false;
    // Per connection: batches sent whose handler has not run yet.
    std::vector<std::uint32_t> awaiting;
    RedisBatchReader reader;
    RefusalCache refusals{0};
    MonotonicClock steady;
    const Clock* local_clock = &steady;  // times the refusal cache

    // What a replayed batch tells the refusal cache.
    struct Remember final : RedisReplayObserver {
      RefusalCache& cache;
      const Batch& batch;
      std::uint32_t generations[RefusalCache::kMaxChecks];
      Remember(RefusalCache& refusal_cache, const Batch& replayed)
          : cache(refusal_cache), batch(replayed) {}
      void on_admitted(const DecideCall& call) override { cache.admitted(call); }
      void on_refused(const DecideCall& call, std::span<const std::uint32_t> keys,
                      std::span<const LimitState> states, Micros now) override {
        if (keys.size() > RefusalCache::kMaxChecks) return;
        for (std::size_t i = 0; i < keys.size(); ++i)
          generations[i] = batch.key_generations[keys[i]];
        cache.remember(call, states, std::span(generations, keys.size()), now, batch.sent);
      }
    };
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
    shared->refusals = RefusalCache(
        std::chrono::duration_cast<std::chrono::microseconds>(settings.refusal_cache).count());
    if (settings.test_clock != nullptr) shared->local_clock = settings.test_clock;
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
    s.queue.push(call, waiter);
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
    Calls failed;
    failed.swap(s.queue);
    s.queued_checks = 0;
    for (std::size_t i = 0; i < failed.size(); ++i) {
      failed.calls[i]->outcome = Outcome::store_error;
      failed.calls[i]->error = error;
      if (s.monitor) s.monitor->on_call_failed(error);
      failed.waiters[i]->on_decided(*failed.calls[i]);
    }
    // Keep the warm buffers, unless a waiter has queued a call meanwhile.
    failed.clear();
    if (s.queue.empty() && s.queue.calls.capacity() < failed.calls.capacity()) s.queue.swap(failed);
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
    batch.queued.swap(s.queue);  // both keep their capacity: nothing allocates once warm
    const std::size_t checks = std::exchange(s.queued_checks, 0);

    key_names.resize(checks);  // before any view of it is taken
    keys.clear();
    start_key_lookup(checks);
    packed.clear();
    batch.runs.clear();
    batch.run_keys.clear();
    batch.key_generations.clear();
    put(0);  // the number of runs, known at the end
    const std::span<DecideCall* const> calls = batch.queued.calls;
    const DecideCall* listed = nullptr;  // the last call whose checks went out in full
    std::uint32_t listed_keys = 0;       // where its key indices start in run_keys
    std::size_t count_at = 0;            // where the current run's count of calls is in `packed`
    for (std::size_t i = 0; i < calls.size(); ++i) {
      const DecideCall& call = *calls[i];
      // A client's burst of identical requests goes as one run, which the script decides in one
      // step however long it is.
      if (i > 0 && call.mode == calls[i - 1]->mode &&
          std::ranges::equal(calls[i - 1]->checks, call.checks)) {
        ++batch.runs.back().calls;
        continue;
      }
      if (i > 0) put_at(count_at, batch.runs.back().calls);
      put(call.mode == Mode::check_only ? 0 : 1);
      const bool same_checks = listed != nullptr && std::ranges::equal(listed->checks, call.checks);
      put(same_checks ? 0 : static_cast<std::int64_t>(call.checks.size()));
      count_at = packed.size();
      put(1);
      if (!same_checks) {
        listed = &call;
        listed_keys = static_cast<std::uint32_t>(batch.run_keys.size());
        for (const LimitCheck& check : call.checks) {
          const bool bucket =
              check.algorithm == Algorithm::gcra || check.algorithm == Algorithm::token_bucket;
          // The defaults evaluate() applies, applied here so the script needs none of them.
          const std::int64_t capacity =
              bucket && check.quota.burst > 0 ? check.quota.burst : check.quota.limit;
          const std::size_t known = keys.size();
          const std::uint32_t key = key_index(check.key);
          if (keys.size() > known)
            batch.key_generations.push_back(s.refusals.generation(check.key));
          batch.run_keys.push_back(key - 1);
          put(key);
          put(algorithm_code(check.algorithm));
          put(check.quota.limit);
          put(check.quota.window);
          put(capacity);
          put(std::max<std::int64_t>(check.cost, 1));
        }
      }
      batch.runs.push_back(RedisRun{1, listed_keys});
    }
    put_at(count_at, batch.runs.back().calls);
    put_at(0, static_cast<std::int64_t>(batch.runs.size()));
    args[0] = packed;
    std::size_t arg_count = 1;
    if (settings.test_clock != nullptr) {
      const auto [end, error] = std::to_chars(now_text.data(), now_text.data() + now_text.size(),
                                              settings.test_clock->now());
      args[arg_count++] = std::string_view(now_text.data(), end - now_text.data());
    }

    batch.keepalive = shared;
    batch.sent = s.local_clock->now();
    batch.client = pick_client();
    ++s.awaiting[batch.client];
    clients[batch.client]->eval(scripts[batch.client], keys, std::span(args.data(), arg_count),
                                batch);
  }

  void put(std::int64_t value) {
    packed.append(8, '\0');
    put_at(packed.size() - 8, value);
  }

  void put_at(std::size_t offset, std::int64_t value) {
    const auto bits = static_cast<std::uint64_t>(value);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(packed.data() + offset, &bits, 8);
    } else {
      for (int b = 0; b < 8; ++b)
        packed[offset + b] = static_cast<char>(bits >> (8 * b));
    }
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
      batch.queued.reserve(max_requests);
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
  const std::span<DecideCall* const> calls = queued.calls;
  if (result.ok()) {
    Shared::Remember remember(shared->refusals, *this);
    shared->reader.read(result.reply, calls, runs, run_keys,
                        shared->refusals.enabled() ? &remember : nullptr);
  } else {
    // One failure of the batch fails each of its calls, as if each had been sent alone.
    for (DecideCall* call : calls) {
      call->outcome = Outcome::store_error;
      call->error = error_text(result.error);
    }
  }
  if (monitor) {
    // The server's words, when there are some, for the log line of a change.
    const std::string_view reason =
        result.message.empty() ? error_text(result.error) : result.message;
    bool any_decided = false;
    for (const DecideCall* call : calls) {
      if (call->outcome != Outcome::store_error) {
        any_decided = true;
      } else {
        monitor->on_call_failed(result.ok() ? call->error : reason);
      }
    }
    if (any_decided) monitor->on_call_succeeded();
  }
  // Every outcome is set before any waiter runs; a waiter may decide its next request at once
  // (queued for the next batch) or let its call go: nothing of a call is read after its waiter.
  for (std::size_t i = 0; i < queued.size(); ++i)
    queued.waiters[i]->on_decided(*queued.calls[i]);
  queued.clear();
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
  Impl::Shared& shared = *impl_->shared;
  if (shared.refusals.enabled() && shared.refusals.answer(call, *shared.local_clock)) {
    return Completion::ready;
  }
  impl_->enqueue(call, waiter);
  return Completion::pending;
}

}  // namespace sluice::limit
