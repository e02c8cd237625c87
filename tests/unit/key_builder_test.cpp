#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/classify/key_builder.hpp>

using sluice::classify::HeaderLookup;
using sluice::classify::IpAddress;
using sluice::classify::KeyBuilder;
using sluice::classify::RequestView;
using sluice::config::KeyPart;
using sluice::config::KeySource;
using sluice::config::Limit;
using sluice::config::Route;
using sluice::limit::KeyDigest;
using sluice::limit::LimitCheck;

namespace {

class Headers final : public HeaderLookup {
 public:
  Headers(std::initializer_list<std::pair<std::string, std::string>> fields) : fields_(fields) {}

  std::string_view get(std::string_view name) const noexcept override {
    for (const auto& [field, value] : fields_) {
      if (field.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < name.size(); ++i) {
        same = same && std::tolower(static_cast<unsigned char>(field[i])) ==
                           std::tolower(static_cast<unsigned char>(name[i]));
      }
      if (same) return value;
    }
    return {};
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

KeySource ip_source() {
  return KeySource{KeySource::Kind::ip, "", 0, "ip"};
}
KeySource identity_source(std::string name, std::string header, std::size_t index) {
  return KeySource{KeySource::Kind::identity, std::move(header), index, std::move(name)};
}
KeySource header_source(std::string header) {
  return KeySource{KeySource::Kind::header, header, 0, "header:" + header};
}
KeySource user() {
  return identity_source("user", "X-User-Id", 1);
}
KeySource api_key() {
  return identity_source("api_key", "X-API-Key", 0);
}

Limit limit_of(std::string name, std::vector<KeyPart> key, std::uint64_t identity_hash = 0x1234) {
  Limit limit;
  limit.name = std::move(name);
  limit.key = std::move(key);
  limit.algorithm = sluice::limit::Algorithm::sliding_window;
  limit.quota = {5, 600'000'000, 5};
  limit.identity_hash = identity_hash;
  return limit;
}

Route route_with(std::vector<Limit> limits) {
  Route route;
  route.name = "login";
  route.limits = std::move(limits);
  return route;
}

RequestView request(const Headers& headers, std::string_view client = "10.0.0.1",
                    std::string_view method = "POST", std::string_view path = "/api/login") {
  return RequestView{method, path, *IpAddress::parse(client), &headers};
}

// The digest of the route's first limit for one request.
KeyDigest digest(KeyBuilder& builder, const Route& route, const RequestView& view) {
  std::vector<LimitCheck> checks(route.limits.size());
  builder.build(route, view, checks);
  return checks.at(0).key;
}

}  // namespace

TEST_CASE("KeyBuilder: one caller, one key, different callers, different keys", "[key]") {
  const Route route = route_with({limit_of("login-per-ip", {KeyPart{{ip_source()}}})});
  KeyBuilder builder;
  const Headers none{};

  const KeyDigest first = digest(builder, route, request(none, "10.0.0.1"));
  CHECK(digest(builder, route, request(none, "10.0.0.1")) == first);
  CHECK(digest(builder, route, request(none, "::ffff:10.0.0.1")) == first);
  CHECK_FALSE(digest(builder, route, request(none, "10.0.0.2")) == first);
  CHECK_FALSE(digest(builder, route, request(none, "2001:db8::1")) == first);
  CHECK(builder.describe(route, route.limits[0], request(none, "::ffff:10.0.0.1")) ==
        "login-per-ip|ip=10.0.0.1");
}

TEST_CASE("KeyBuilder: an IPv6 client is keyed by its /64 (ipv6_prefix), IPv4 per address",
          "[key]") {
  const Headers none{};
  SECTION("the default, /64: rotating the interface bits buys no fresh budget") {
    const Route route = route_with({limit_of("per-ip", {KeyPart{{ip_source()}}})});
    KeyBuilder builder;
    const KeyDigest first = digest(builder, route, request(none, "2001:db8:1:2::a"));
    CHECK(digest(builder, route, request(none, "2001:db8:1:2:ffff:1:2:3")) == first);
    CHECK_FALSE(digest(builder, route, request(none, "2001:db8:1:3::a")) == first);
    CHECK(builder.describe(route, route.limits[0], request(none, "2001:db8:1:2:ffff:1:2:3")) ==
          "per-ip|ip=2001:db8:1:2::/64");
    // IPv4 stays per address, mapped or not.
    CHECK_FALSE(digest(builder, route, request(none, "10.0.0.2")) ==
                digest(builder, route, request(none, "10.0.0.1")));
    CHECK(builder.describe(route, route.limits[0], request(none, "::ffff:10.0.0.1")) ==
          "per-ip|ip=10.0.0.1");
  }
  SECTION("/56 and /128") {
    KeySource wide = ip_source();
    wide.ipv6_prefix = 56;
    KeySource exact = ip_source();
    exact.ipv6_prefix = 128;
    const Route route =
        route_with({limit_of("wide", {KeyPart{{wide}}}), limit_of("exact", {KeyPart{{exact}}})});
    KeyBuilder builder;
    std::vector<LimitCheck> a(2), b(2);
    builder.build(route, request(none, "2001:db8:1:2::a"), a);
    builder.build(route, request(none, "2001:db8:1:ff::a"), b);
    CHECK(a[0].key == b[0].key);
    CHECK_FALSE(a[1].key == b[1].key);
    CHECK(builder.describe(route, route.limits[0], request(none, "2001:db8:1:ff::a")) ==
          "wide|ip=2001:db8:1::/56");
    CHECK(builder.describe(route, route.limits[1], request(none, "2001:db8:1:ff::a")) ==
          "exact|ip=2001:db8:1:ff::a");
  }
}

TEST_CASE("KeyBuilder: build fills algorithm, quota and cost", "[key]") {
  const Route route = route_with({limit_of("login-per-ip", {KeyPart{{ip_source()}}})});
  KeyBuilder builder;
  const Headers none{};
  std::vector<LimitCheck> checks(1);
  builder.build(route, request(none), checks);
  CHECK(checks[0].algorithm == sluice::limit::Algorithm::sliding_window);
  CHECK(checks[0].quota.limit == 5);
  CHECK(checks[0].quota.window == 600'000'000);
  CHECK(checks[0].cost == 1);
}

TEST_CASE("KeyBuilder: identity keys", "[key]") {
  const Route route = route_with({limit_of("per-key", {KeyPart{{api_key()}}})});
  KeyBuilder builder;
  const Headers alice{{"X-API-Key", "alice-key"}};
  const Headers alice_elsewhere{{"x-api-key", "alice-key"}};
  const Headers bob{{"X-API-Key", "bob-key"}};
  const Headers missing{};
  const Headers other_missing{{"X-Other", "alice-key"}};
  const Headers empty{{"X-API-Key", " \t "}};
  const Headers literal_anonymous{{"X-API-Key", "anonymous"}};

  SECTION("the same API key from any address is one caller") {
    CHECK(digest(builder, route, request(alice, "10.0.0.1")) ==
          digest(builder, route, request(alice_elsewhere, "192.0.2.1")));
  }
  SECTION("different API keys are different callers") {
    CHECK_FALSE(digest(builder, route, request(alice)) == digest(builder, route, request(bob)));
  }
  SECTION("header values are case-sensitive") {
    const Headers upper{{"X-API-Key", "ALICE-KEY"}};
    CHECK_FALSE(digest(builder, route, request(alice)) == digest(builder, route, request(upper)));
  }
  SECTION("all callers missing the header share the anonymous key") {
    const KeyDigest anonymous = digest(builder, route, request(missing, "10.0.0.1"));
    CHECK(digest(builder, route, request(other_missing, "192.0.2.9")) == anonymous);
    CHECK(digest(builder, route, request(empty, "192.0.2.10")) == anonymous);
    CHECK(builder.describe(route, route.limits[0], request(missing)) ==
          "per-key|api_key=anonymous");
    // ... and nobody can join that bucket, or leave it, by sending the word itself.
    CHECK_FALSE(digest(builder, route, request(literal_anonymous)) == anonymous);
  }
  SECTION("surrounding spaces and tabs are trimmed") {
    const Headers padded{{"X-API-Key", " \talice-key\t "}};
    CHECK(digest(builder, route, request(padded)) == digest(builder, route, request(alice)));
    CHECK(builder.describe(route, route.limits[0], request(padded)) == "per-key|api_key=alice-key");
  }
  SECTION("no header lookup at all counts as missing") {
    RequestView bare = request(missing);
    bare.headers = nullptr;
    CHECK(digest(builder, route, bare) == digest(builder, route, request(missing)));
  }
}

TEST_CASE("KeyBuilder: \"user|ip\" uses the first present alternative", "[key]") {
  const Route route = route_with({limit_of("search", {KeyPart{{user(), ip_source()}}})});
  KeyBuilder builder;
  const Headers user_42{{"X-User-Id", "42"}};
  const Headers no_user{};

  CHECK(builder.describe(route, route.limits[0], request(user_42, "10.0.0.1")) == "search|user=42");
  CHECK(builder.describe(route, route.limits[0], request(no_user, "10.0.0.1")) ==
        "search|ip=10.0.0.1");
  // A signed-in user is one caller from any address; anonymous callers are told apart by address.
  CHECK(digest(builder, route, request(user_42, "10.0.0.1")) ==
        digest(builder, route, request(user_42, "10.0.0.2")));
  CHECK_FALSE(digest(builder, route, request(no_user, "10.0.0.1")) ==
              digest(builder, route, request(no_user, "10.0.0.2")));
}

TEST_CASE("KeyBuilder: alternatives and parts never collide", "[key]") {
  KeyBuilder builder;
  SECTION("a user id equal to an address is not that address") {
    const Route route = route_with({limit_of("search", {KeyPart{{user(), ip_source()}}})});
    const Headers spoof{{"X-User-Id", "10.0.0.1"}};
    const Headers no_user{};
    CHECK_FALSE(digest(builder, route, request(spoof, "192.0.2.1")) ==
                digest(builder, route, request(no_user, "10.0.0.1")));
  }
  SECTION("two headers as alternatives with the same value are different keys") {
    const Route route =
        route_with({limit_of("t", {KeyPart{{header_source("X-A"), header_source("X-B")}}})});
    const Headers a{{"X-A", "v"}};
    const Headers b{{"X-B", "v"}};
    CHECK_FALSE(digest(builder, route, request(a)) == digest(builder, route, request(b)));
  }
  SECTION("values of adjacent parts cannot run into each other") {
    const Route route = route_with(
        {limit_of("t", {KeyPart{{header_source("X-A")}}, KeyPart{{header_source("X-B")}}})});
    const Headers split_one{{"X-A", "ab"}, {"X-B", "c"}};
    const Headers split_two{{"X-A", "a"}, {"X-B", "bc"}};
    CHECK_FALSE(digest(builder, route, request(split_one)) ==
                digest(builder, route, request(split_two)));
    // Even when a value imitates the separator that follows it.
    const Headers tricky_one{{"X-A", std::string("a\0", 2)}, {"X-B", "b"}};
    const Headers tricky_two{{"X-A", "a"}, {"X-B", std::string("\0b", 2)}};
    CHECK_FALSE(digest(builder, route, request(tricky_one)) ==
                digest(builder, route, request(tricky_two)));
  }
  SECTION("a missing first part is not a missing second part") {
    const Route route = route_with(
        {limit_of("t", {KeyPart{{header_source("X-A")}}, KeyPart{{header_source("X-B")}}})});
    const Headers only_a{{"X-A", "v"}};
    const Headers only_b{{"X-B", "v"}};
    CHECK_FALSE(digest(builder, route, request(only_a)) == digest(builder, route, request(only_b)));
  }
}

TEST_CASE("KeyBuilder: method, route, path and header parts", "[key]") {
  const Route route =
      route_with({limit_of("mixed", {KeyPart{{KeySource{KeySource::Kind::method, "", 0, "method"}}},
                                     KeyPart{{KeySource{KeySource::Kind::route, "", 0, "route"}}},
                                     KeyPart{{KeySource{KeySource::Kind::path, "", 0, "path"}}},
                                     KeyPart{{header_source("X-Tenant")}}})});
  KeyBuilder builder;
  const Headers acme{{"X-Tenant", "acme"}};
  const Headers globex{{"X-Tenant", "globex"}};

  CHECK(builder.describe(route, route.limits[0], request(acme, "10.0.0.1", "GET", "/api/x")) ==
        "mixed|method=GET|route=login|path=/api/x|header:X-Tenant=acme");
  const KeyDigest base = digest(builder, route, request(acme, "10.0.0.1", "GET", "/api/x"));
  CHECK(digest(builder, route, request(acme, "10.0.0.9", "GET", "/api/x")) == base);
  CHECK_FALSE(digest(builder, route, request(acme, "10.0.0.1", "POST", "/api/x")) == base);
  // HEAD runs the GET handler: alternating the two buys no second budget.
  CHECK(digest(builder, route, request(acme, "10.0.0.1", "HEAD", "/api/x")) == base);
  CHECK(builder.describe(route, route.limits[0], request(acme, "10.0.0.1", "HEAD", "/api/x")) ==
        "mixed|method=GET|route=login|path=/api/x|header:X-Tenant=acme");
  CHECK_FALSE(digest(builder, route, request(acme, "10.0.0.1", "GET", "/api/y")) == base);
  CHECK_FALSE(digest(builder, route, request(globex, "10.0.0.1", "GET", "/api/x")) == base);
}

TEST_CASE("KeyBuilder: each limit has its own counters", "[key]") {
  const Headers none{};
  KeyBuilder builder;

  SECTION("two limits of one route with the same key parts get different digests") {
    const Route route = route_with({limit_of("burst", {KeyPart{{ip_source()}}}, 1),
                                    limit_of("daily", {KeyPart{{ip_source()}}}, 2)});
    std::vector<LimitCheck> checks(2);
    builder.build(route, request(none), checks);
    CHECK_FALSE(checks[0].key == checks[1].key);
  }
  SECTION("the digest depends on the limit's identity hash") {
    const Route before = route_with({limit_of("login-per-ip", {KeyPart{{ip_source()}}}, 7)});
    const Route same = route_with({limit_of("login-per-ip", {KeyPart{{ip_source()}}}, 7)});
    const Route changed = route_with({limit_of("login-per-ip", {KeyPart{{ip_source()}}}, 8)});
    CHECK(digest(builder, before, request(none)) == digest(builder, same, request(none)));
    CHECK_FALSE(digest(builder, before, request(none)) == digest(builder, changed, request(none)));
  }
  SECTION("the digest depends on the digest key") {
    const Route route = route_with({limit_of("login-per-ip", {KeyPart{{ip_source()}}})});
    KeyBuilder other({1, 2});
    CHECK_FALSE(digest(builder, route, request(none)) == digest(other, route, request(none)));
  }
}

TEST_CASE("KeyBuilder: build does not touch checks beyond the route's limits", "[key]") {
  const Route route = route_with({limit_of("only", {KeyPart{{ip_source()}}})});
  KeyBuilder builder;
  const Headers none{};
  std::vector<LimitCheck> checks(2);
  checks[1].cost = 99;
  builder.build(route, request(none), checks);
  CHECK(checks[1].cost == 99);
  CHECK(checks[1].key == KeyDigest{});
  CHECK_FALSE(checks[0].key == KeyDigest{});
}

TEST_CASE("KeyBuilder: a path part keys the path as the route sees it", "[key]") {
  const KeySource path_source{KeySource::Kind::path, "", 0, "path"};
  Route sensitive =
      route_with({limit_of("per-path", {KeyPart{{ip_source()}}, KeyPart{{path_source}}})});
  Route insensitive = sensitive;
  insensitive.path.case_sensitive = false;
  KeyBuilder builder;
  const Headers none{};
  const auto key = [&](const Route& route, std::string_view path) {
    return digest(builder, route, request(none, "10.0.0.1", "POST", path));
  };

  SECTION("on a case-insensitive route, /API/Login and /api/login share one counter") {
    CHECK(key(insensitive, "/API/Login") == key(insensitive, "/api/login"));
    CHECK(key(insensitive, "/Api/LOGIN") == key(insensitive, "/api/login"));
    CHECK_FALSE(key(insensitive, "/api/logout") == key(insensitive, "/api/login"));
    CHECK(builder.describe(insensitive, insensitive.limits[0],
                           request(none, "10.0.0.1", "POST", "/API/Login")) ==
          "per-path|ip=10.0.0.1|path=/api/login");
  }
  SECTION("on a case-sensitive route, case makes a different path") {
    CHECK_FALSE(key(sensitive, "/API/Login") == key(sensitive, "/api/login"));
    CHECK(builder.describe(sensitive, sensitive.limits[0],
                           request(none, "10.0.0.1", "POST", "/API/Login")) ==
          "per-path|ip=10.0.0.1|path=/API/Login");
  }
  SECTION("matrix parameters and a trailing '/' cannot buy a fresh counter") {
    // (Also pins that a value's length is written after it was cut, not as received.)
    for (const Route* route : {&sensitive, &insensitive}) {
      const KeyDigest base = key(*route, "/api/login");
      CHECK(key(*route, "/api/login;jsessionid=1") == base);
      CHECK(key(*route, "/api/login;jsessionid=2") == base);
      CHECK(key(*route, "/api;v=1/login/") == base);
      CHECK(key(*route, "/api/login/") == base);
      CHECK(key(*route, "/api/;x/login") == base);
      CHECK_FALSE(key(*route, "/api/login/x") == base);
      CHECK_FALSE(key(*route, "/api/loginx") == base);
    }
    CHECK(builder.describe(sensitive, sensitive.limits[0],
                           request(none, "10.0.0.1", "POST", "/api;v=1/login;jsessionid=1/")) ==
          "per-path|ip=10.0.0.1|path=/api/login");
  }
  SECTION("escapes are decoded once, as the upstream hands the segment to its handler") {
    for (const Route* route : {&sensitive, &insensitive}) {
      CHECK(key(*route, "/files/a%40b") == key(*route, "/files/a@b"));
      CHECK(key(*route, "/files/%21%24%26%27%28%29%2A%2B%2C%3D") ==
            key(*route, "/files/!$&'()*+,="));
      // Once only: "%2540" is the text "%40", not "@".
      CHECK_FALSE(key(*route, "/files/a%2540b") == key(*route, "/files/a@b"));
    }
    CHECK(builder.describe(sensitive, sensitive.limits[0],
                           request(none, "10.0.0.1", "POST", "/files/a%40b")) ==
          "per-path|ip=10.0.0.1|path=/files/a@b");
  }
  SECTION("the root is '/', not an empty value") {
    CHECK(key(sensitive, "/") == key(sensitive, "/;x"));
    CHECK(builder.describe(sensitive, sensitive.limits[0],
                           request(none, "10.0.0.1", "POST", "/;x")) ==
          "per-path|ip=10.0.0.1|path=/");
  }
}

TEST_CASE("KeyBuilder: a lower-cased path keeps the digest of the same path sent in lower case",
          "[key]") {
  // The digest of "/api/login" must not depend on whether the request needed rewriting, or on
  // what an earlier, longer request left in the reused buffer.
  const KeySource path_source{KeySource::Kind::path, "", 0, "path"};
  Route route = route_with({limit_of("per-path", {KeyPart{{path_source}}})});
  route.path.case_sensitive = false;
  KeyBuilder fresh;
  KeyBuilder reused;
  const Headers none{};
  digest(reused, route, request(none, "10.0.0.1", "GET", "/A/MUCH/LONGER/PATH;WITH=PARAMS/X/Y/Z"));
  CHECK(digest(reused, route, request(none, "10.0.0.1", "GET", "/API/LOGIN")) ==
        digest(fresh, route, request(none, "10.0.0.1", "GET", "/api/login")));
}
