// The Redis store's pure parts: the reading of the script's reply to a batch (replayed through
// evaluate() and checked against what the script admitted; a reply of the wrong shape or one the
// replay disagrees with is a store error, never a verdict), key names, and the salt.
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/limit/redis_store.hpp>

using namespace sluice;
using namespace sluice::limit;
using redis::Reply;

namespace {

// The script's reply: a string of little-endian int64s.
Reply integers(const std::vector<std::int64_t>& values) {
  std::string bytes;
  for (const std::int64_t value : values) {
    for (int b = 0; b < 8; ++b)
      bytes += static_cast<char>(static_cast<std::uint64_t>(value) >> (8 * b));
  }
  Reply reply;
  reply.set_text(Reply::Type::string, bytes);
  return reply;
}

constexpr Micros kNow = 1'700'000'000'000'000;

// A batch as the store lays it out: calls grouped into runs, each run's checks' keys (indices
// into the batch's KEYS). Run 1: three identical calls on a gcra bucket of 2 (key 0). Run 2: one
// call with a fixed window (key 1) and the same bucket again (key 0).
struct Batch {
  LimitCheck bucket{{1, 1}, Algorithm::gcra, Quota{10, 1'000'000, 2}, 1};
  LimitCheck window{{2, 2}, Algorithm::fixed_window, Quota{5, 60'000'000, 0}, 1};
  std::vector<std::vector<LimitCheck>> checks = {{bucket}, {bucket}, {bucket}, {window, bucket}};
  std::vector<std::vector<Verdict>> verdicts = {std::vector<Verdict>(1), std::vector<Verdict>(1),
                                                std::vector<Verdict>(1), std::vector<Verdict>(2)};
  std::vector<DecideCall> calls;
  std::vector<DecideCall*> pointers;
  std::vector<RedisRun> runs = {RedisRun{3, 0}, RedisRun{1, 1}};
  std::vector<std::uint32_t> run_keys = {0, 1, 0};

  explicit Batch(Mode first_run = Mode::charge_if_all_allowed) {
    for (std::size_t i = 0; i < checks.size(); ++i) {
      calls.push_back(DecideCall{checks[i], verdicts[i],
                                 i < 3 ? first_run : Mode::charge_if_all_allowed,
                                 Outcome::store_error, "not read"});
    }
    for (DecideCall& call : calls)
      pointers.push_back(&call);
  }
  void read(const Reply& reply) {
    RedisBatchReader reader;
    reader.read(reply, pointers, runs, run_keys);
  }
  std::vector<Outcome> outcomes() const {
    std::vector<Outcome> result;
    for (const DecideCall& call : calls)
      result.push_back(call.outcome);
    return result;
  }
};

// The reply to Batch from fresh keys: two of the three admitted, then the second run refused
// (the bucket is empty; the window alone would have admitted it).
std::vector<std::int64_t> fresh_reply() {
  return {kNow, 2, 0, /*key 0*/ 0, 0, 0, /*key 1*/ 0, 0, 0};
}

bool same(const Verdict& a, const Verdict& b) {
  return a.allowed == b.allowed && a.limit == b.limit && a.remaining == b.remaining &&
         a.reset == b.reset && a.retry_after == b.retry_after;
}

}  // namespace

TEST_CASE("a batch reply is replayed into the verdicts evaluate() gives, call by call") {
  Batch b;
  b.read(integers(fresh_reply()));
  using enum Outcome;
  CHECK(b.outcomes() == std::vector<Outcome>{allowed, allowed, limited, limited});
  for (const DecideCall& call : b.calls)
    CHECK(call.error.empty());

  // The same calls one after another at Redis' instant, from the states it sent.
  LimitState bucket{};
  Step step{};
  for (std::size_t i = 0; i < 3; ++i) {
    step = evaluate(b.bucket.algorithm, bucket, kNow, b.bucket.quota, 1);
    INFO("call " << i);
    CHECK(same(b.verdicts[i][0], step.verdict));
    if (step.verdict.allowed) bucket = step.next;
  }
  CHECK(b.verdicts[0][0].remaining == 1);
  CHECK(b.verdicts[2][0].retry_after > 0);
  // The refused request charged nothing: the last call sees the bucket as the second left it.
  CHECK(same(b.verdicts[3][0], evaluate(b.window.algorithm, {}, kNow, b.window.quota, 1).verdict));
  CHECK(same(b.verdicts[3][1], step.verdict));
  CHECK(b.verdicts[3][0].allowed);
  CHECK(b.verdicts[3][0].limit == 5);  // from the check's quota
}

TEST_CASE("check-only calls are decided like the first and charge nothing") {
  Batch b(Mode::check_only);
  b.read(integers({kNow, 3, 1, 0, 0, 0, 0, 0, 0}));
  using enum Outcome;
  CHECK(b.outcomes() == std::vector<Outcome>{allowed, allowed, allowed, allowed});
  CHECK(b.verdicts[2][0].remaining == 1);
  CHECK(b.verdicts[3][1].remaining == 1);  // the checks before it charged nothing
}

TEST_CASE("a run the replay disagrees with fails, with every run after it, never a verdict") {
  using enum Outcome;
  const auto read_with = [](std::int64_t first_run, std::int64_t second_run) {
    Batch b;
    b.read(integers({kNow, first_run, second_run, 0, 0, 0, 0, 0, 0}));
    return b.outcomes();
  };
  CHECK(read_with(3, 0) == std::vector<Outcome>(4, store_error));  // one more than fits
  CHECK(read_with(1, 0) == std::vector<Outcome>(4, store_error));  // one fewer
  CHECK(read_with(4, 0) == std::vector<Outcome>(4, store_error));  // more than the run
  CHECK(read_with(-2, 0) == std::vector<Outcome>(4, store_error));
  CHECK(read_with(2, 1) == std::vector<Outcome>{allowed, allowed, limited, store_error});
  Batch b;
  b.read(integers({kNow, 3, 0, 0, 0, 0, 0, 0, 0}));
  CHECK(b.calls[0].error == "redis store reply malformed");
}

TEST_CASE("a reply of the wrong shape fails every call") {
  const auto fails_all = [](const Reply& reply) {
    Batch b;
    b.read(reply);
    return b.outcomes() == std::vector<Outcome>(4, Outcome::store_error);
  };
  std::vector<std::int64_t> numbers = fresh_reply();
  CHECK_FALSE(fails_all(integers(numbers)));
  numbers.push_back(0);  // not whole states
  CHECK(fails_all(integers(numbers)));
  numbers.resize(numbers.size() - 4);  // a key short
  CHECK(fails_all(integers(numbers)));
  CHECK(fails_all(integers({kNow, 2, 0})));                     // no states at all
  CHECK(fails_all(integers({0, 2, 0, 0, 0, 0, 0, 0, 0})));      // no instant
  CHECK(fails_all(integers({kNow, 2, 0, -5, 0, 0, 0, 0, 0})));  // a negative first value
  CHECK(fails_all(integers({})));
  Reply ragged = integers(fresh_reply());
  ragged.set_text(Reply::Type::string, std::string(ragged.text()) + "xyz");  // not whole int64s
  CHECK(fails_all(ragged));
  Reply array;  // the right numbers, as an array of integers instead of the packed string
  const std::vector<std::int64_t> values = fresh_reply();
  array.set_array(values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    array.mutable_elements()[i].set_integer(values[i]);
  CHECK(fails_all(array));
  Reply error;
  error.set_text(Reply::Type::error, "ERR boom");
  CHECK(fails_all(error));
  Reply nil;
  CHECK(fails_all(nil));
  // A reply with a state for other keys than the batch sent.
  Batch more_keys;
  more_keys.run_keys = {0, 2, 0};
  more_keys.read(integers(fresh_reply()));
  CHECK(more_keys.outcomes() == std::vector<Outcome>(4, Outcome::store_error));
  // A layout whose runs claim more calls than there are fails from that run on.
  Batch b;
  b.runs = {RedisRun{3, 0}, RedisRun{2, 1}};
  b.read(integers(fresh_reply()));
  CHECK(b.calls[0].outcome == Outcome::allowed);
  CHECK(b.calls[3].outcome == Outcome::store_error);
}

TEST_CASE("a counter that holds no state fails exactly the runs that use it") {
  using enum Outcome;
  Batch b;
  // Key 1 (the window, only in the second run) is not a state.
  b.read(integers({kNow, 2, kRedisUnreadable, 0, 0, 0, kRedisUnreadable, 0, 0}));
  CHECK(b.outcomes() == std::vector<Outcome>{allowed, allowed, limited, store_error});
  CHECK(b.calls[3].error == "redis store holds an unreadable state");
  // The script must say so for that run, and only for a run that uses such a key.
  Batch c;
  c.read(integers({kNow, 2, 0, 0, 0, 0, kRedisUnreadable, 0, 0}));
  CHECK(c.calls[3].outcome == store_error);
  CHECK(c.calls[3].error == "redis store reply malformed");
  Batch d;
  d.read(integers({kNow, kRedisUnreadable, 0, 0, 0, 0, 0, 0, 0}));
  CHECK(d.outcomes() == std::vector<Outcome>(4, store_error));
}

TEST_CASE("large and zero numbers decode exactly") {
  std::vector<std::int64_t> numbers;
  const std::int64_t big = (std::int64_t{1} << 62) - 3;
  REQUIRE(decode_decide_reply(integers({0, big, 1, -1}), numbers));
  CHECK(numbers == std::vector<std::int64_t>{0, big, 1, -1});
  Reply nil;
  CHECK_FALSE(decode_decide_reply(nil, numbers));
  CHECK(numbers.empty());
}

TEST_CASE("the digest key of instances sharing Redis comes from the salt, apart from the names") {
  const auto same = [](const DigestKey& a, const DigestKey& b) {
    return a.k0 == b.k0 && a.k1 == b.k1;
  };
  // Every instance with the salt computes the same digests...
  CHECK(same(redis_digest_key("salt"), redis_digest_key("salt")));
  // ...which nobody without it can: not the public default, nor another salt's, nor the names'.
  CHECK_FALSE(same(redis_digest_key("salt"), DigestKey{}));
  CHECK_FALSE(same(redis_digest_key("salt"), redis_digest_key("other")));
  CHECK_FALSE(same(redis_digest_key("salt"), redis_key_names("salt")));
}

TEST_CASE("redis key names: one hash tag, hex of a salted hash, no raw bytes of the digest") {
  const DigestKey names = redis_key_names("salt");
  const KeyDigest digest{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  const std::string name = redis_key_name(names, digest);
  CHECK(std::regex_match(name, std::regex(R"(sluice:\{limits\}:[0-9a-f]{32})")));
  CHECK(name.size() == kRedisKeyLength);
  // The digest itself never appears: the name is a keyed hash of it.
  CHECK(name.find("0123456789abcdef") == std::string::npos);
  CHECK(name.find("fedcba9876543210") == std::string::npos);
  // Stable for one salt (instances agree), different for another.
  CHECK(redis_key_name(redis_key_names("salt"), digest) == name);
  CHECK(redis_key_name(redis_key_names("other"), digest) != name);
  CHECK(redis_key_name(redis_key_names(""), digest) != name);
  CHECK(redis_key_name(redis_key_names(std::string(1000, 'x')), digest) !=
        redis_key_name(redis_key_names(std::string(1000, 'x') + "y"), digest));

  std::set<std::string> distinct;
  for (std::uint64_t i = 0; i < 1000; ++i)
    distinct.insert(redis_key_name(names, KeyDigest{i, 0}));
  CHECK(distinct.size() == 1000);
}

TEST_CASE("the production script reads TIME and takes no time from its caller") {
  const std::string production = redis_decide_script();
  const std::string test_variant = redis_decide_script(/*time_from_argument=*/true);
  CHECK(production.starts_with("#!lua\n"));
  CHECK(production.find("redis.call('TIME')") != std::string::npos);
  CHECK(production.find("ARGV[#ARGV]") == std::string::npos);
  CHECK(test_variant.find("redis.call('TIME')") == std::string::npos);
  CHECK(test_variant.find("ARGV[#ARGV]") != std::string::npos);
}
