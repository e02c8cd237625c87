// The Redis store's pure parts: the strict reading of the script's reply, whole or one request's
// slice of a batch (a reply of the wrong shape is a store error, never a verdict), key names, and
// the salt.
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

struct TwoChecks {
  std::vector<LimitCheck> checks = {
      LimitCheck{{1, 1}, Algorithm::gcra, Quota{10, 1'000'000, 10}, 1},
      LimitCheck{{2, 2}, Algorithm::fixed_window, Quota{5, 60'000'000, 0}, 1}};
  std::vector<Verdict> verdicts = std::vector<Verdict>(2);
  DecideCall call{checks, verdicts, Mode::charge_if_all_allowed, Outcome::store_error, {}};
};

}  // namespace

TEST_CASE("a well-formed reply fills every verdict and the outcome") {
  TwoChecks c;
  REQUIRE(read_decide_reply(integers({1, 1, 9, 100000, 0, 1, 4, 59000000, 0}), c.call));
  CHECK(c.call.outcome == Outcome::allowed);
  CHECK(c.verdicts[0].allowed);
  CHECK(c.verdicts[0].limit == 10);  // from the check's quota, not the reply
  CHECK(c.verdicts[0].remaining == 9);
  CHECK(c.verdicts[0].reset == 100000);
  CHECK(c.verdicts[1].limit == 5);
  CHECK(c.verdicts[1].reset == 59000000);

  REQUIRE(read_decide_reply(integers({0, 1, 9, 100000, 0, 0, 0, 59000000, 59000000}), c.call));
  CHECK(c.call.outcome == Outcome::limited);
  CHECK_FALSE(c.verdicts[1].allowed);
  CHECK(c.verdicts[1].retry_after == 59000000);
}

TEST_CASE("a reply of any other shape is rejected, not read as a verdict") {
  TwoChecks c;
  const auto rejected = [&](const Reply& reply) {
    c.call.outcome = Outcome::store_error;
    const bool read = read_decide_reply(reply, c.call);
    CHECK(c.call.outcome == Outcome::store_error);  // untouched
    return !read;
  };
  CHECK(rejected(integers({1, 1, 9, 100000, 0})));                        // too short
  CHECK(rejected(integers({1, 1, 9, 100000, 0, 1, 4, 59000000, 0, 7})));  // too long
  CHECK(rejected(integers({3, 1, 9, 100000, 0, 1, 4, 59000000, 0})));     // status 3
  CHECK(rejected(integers({2, 1, 9, 100000, 0, 1, 4, 59000000, 0})));     // unreadable, numbers
  CHECK(rejected(integers({1, 1, 9, 100000, 0, 0, 4, 59000000, 1})));     // all != each
  CHECK(rejected(integers({0, 1, 9, 100000, 0, 1, 4, 59000000, 0})));     // each != all
  CHECK(rejected(integers({1, 1, -1, 100000, 0, 1, 4, 59000000, 0})));    // negative
  CHECK(rejected(integers({1, 1, 9, 100000, 5, 1, 4, 59000000, 0})));     // allowed, retry
  CHECK(rejected(integers({})));
  Reply ragged = integers({1, 1, 9, 100000, 0, 1, 4, 59000000, 0});
  ragged.set_text(Reply::Type::string, std::string(ragged.text()) + "xyz");  // not whole int64s
  CHECK(rejected(ragged));
  Reply array;  // the right numbers, as an array of integers instead of the packed string
  array.set_array(9);
  const std::int64_t values[] = {1, 1, 9, 100000, 0, 1, 4, 59000000, 0};
  for (std::size_t i = 0; i < 9; ++i)
    array.mutable_elements()[i].set_integer(values[i]);
  CHECK(rejected(array));
  Reply error;
  error.set_text(Reply::Type::error, "ERR boom");
  CHECK(rejected(error));
  Reply nil;
  CHECK(rejected(nil));
}

TEST_CASE("an unreadable state is a store error of that request, not a verdict") {
  TwoChecks c;
  c.call.outcome = Outcome::allowed;
  REQUIRE(read_decide_reply(integers({kRedisUnreadableState, 0, 0, 0, 0, 0, 0, 0, 0}), c.call));
  CHECK(c.call.outcome == Outcome::store_error);
  CHECK_FALSE(c.call.error.empty());
}

TEST_CASE("a batch reply is read request by request, each from its own slice") {
  TwoChecks first;
  const std::vector<LimitCheck> one = {
      LimitCheck{{3, 3}, Algorithm::token_bucket, Quota{7, 1'000'000, 0}, 1}};
  std::vector<Verdict> one_verdict(1);
  DecideCall second{one, one_verdict, Mode::charge_if_all_allowed, Outcome::store_error, {}};
  std::vector<std::int64_t> numbers;
  REQUIRE(decode_decide_reply(
      integers({0, 1, 9, 100000, 0, 0, 0, 59000000, 59000000, 1, 1, 6, 142857, 0}), numbers));
  REQUIRE(numbers.size() == 14);
  CHECK(numbers[6] == 0);  // decoded little-endian, whole
  CHECK(numbers[7] == 59000000);
  const std::span<const std::int64_t> items = numbers;
  REQUIRE(read_decide_reply(items.subspan(0, 9), first.call));
  REQUIRE(read_decide_reply(items.subspan(9), second));
  CHECK(first.call.outcome == Outcome::limited);
  CHECK(second.outcome == Outcome::allowed);
  CHECK(one_verdict[0].limit == 7);
  CHECK(one_verdict[0].remaining == 6);
  CHECK(one_verdict[0].reset == 142857);
  // A slice of the wrong length or place (the batch misread) is rejected.
  second.outcome = Outcome::store_error;
  CHECK_FALSE(read_decide_reply(items.subspan(9, 4), second));
  CHECK_FALSE(read_decide_reply(items.subspan(1, 5), second));
  CHECK_FALSE(read_decide_reply(items, second));
  CHECK(second.outcome == Outcome::store_error);
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
