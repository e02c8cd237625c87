#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/config/duration.hpp>
#include <sluice/config/loader.hpp>
#include <sluice/config/size.hpp>

using namespace sluice;
using namespace sluice::config;
using namespace std::chrono_literals;

namespace {

unsigned cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string all_errors(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors)
    out += e.to_string() + "\n";
  return out;
}

std::shared_ptr<const Config> load_ok(const std::string& yaml) {
  const LoadResult r = load_string(yaml, "t.yaml");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  REQUIRE(r.errors.empty());
  return r.config;
}

// The single error a config produces, as "file:line:column: message".
std::string only_error(const std::string& yaml) {
  const LoadResult r = load_string(yaml, "t.yaml");
  INFO(yaml);
  INFO(all_errors(r));
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  return r.errors.front().to_string();
}

// A valid config whose only route is written by the test (the route starts on line 3, column 5).
std::string with_route(const std::string& route_body) {
  return "upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
         "routes:\n"
         "  - " +
         route_body;
}

// A valid config around one limit written as a flow map: it starts on line 7, column 9.
std::string with_limit(const std::string& limit) {
  return "upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
         "identities: { user: { header: X-User-Id } }\n"
         "routes:\n"
         "  - name: r\n"
         "    match: { path: /r }\n"
         "    upstream: api\n"
         "    limits:\n"
         "      - " +
         limit + "\n";
}

// A valid config with one top-level setting added on line 1.
std::string with_setting(const std::string& line) {
  return line +
         "\n"
         "upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
         "routes: [{ name: r, match: { path: /r }, upstream: api }]\n";
}

}  // namespace

TEST_CASE("the shipped config/sluice.yaml loads with the values it documents", "[config]") {
  const LoadResult r = load_file(SLUICE_SOURCE_DIR "/config/sluice.yaml");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const Config& c = *r.config;

  CHECK(c.listen.host == "0.0.0.0");
  CHECK(c.listen.port == 8080);
  CHECK(c.threads == cores());
  CHECK(c.trusted_proxies.empty());
  CHECK(c.ipv6_prefix == 64);
  CHECK(c.headers == HeaderStyle::both);
  CHECK(c.store.type == StoreType::memory);
  CHECK(c.store.max_keys == 1'000'000);
  // The client block spells out the defaults: written or left out, the same limits.
  const ClientLimits defaults;
  CHECK(c.client.max_connections == defaults.max_connections);
  CHECK(c.client.max_header_bytes == defaults.max_header_bytes);
  CHECK(c.client.max_uri_bytes == defaults.max_uri_bytes);
  CHECK(c.client.max_body == defaults.max_body);
  CHECK(c.client.header_timeout == defaults.header_timeout);
  CHECK(c.client.idle_timeout == defaults.idle_timeout);
  CHECK(c.client.body_timeout == defaults.body_timeout);
  CHECK(c.client.send_timeout == defaults.send_timeout);
  CHECK_FALSE(c.case_sensitive_paths);  // as Express

  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0].name == "api");
  REQUIRE(c.upstreams[0].servers.size() == 1);
  CHECK(c.upstreams[0].servers[0].host == "127.0.0.1");
  CHECK(c.upstreams[0].servers[0].port == 3000);
  CHECK(c.upstreams[0].connect_timeout == 2s);
  CHECK(c.upstreams[0].timeout == 30s);
  CHECK(c.upstreams[0].idle_timeout == 4s);

  REQUIRE(c.identities.size() == 2);
  CHECK(c.identities[0].name == "api_key");
  CHECK(c.identities[0].header == "X-API-Key");
  CHECK(c.identities[1].name == "user");
  CHECK(c.identities[1].header == "X-User-Id");

  REQUIRE(c.routes.size() == 3);
  const Route& login = c.routes[0];
  CHECK(login.name == "login");
  CHECK(login.path.kind == PathPattern::Kind::exact);
  CHECK(login.path.text == "/api/login");
  CHECK(login.methods == std::vector<std::string>{"POST"});
  CHECK(login.upstream == 0);
  CHECK(login.max_body == 0);  // client.max_body: unlimited
  CHECK_FALSE(login.path.case_sensitive);
  REQUIRE(login.limits.size() == 1);
  const Limit& per_ip = login.limits[0];
  CHECK(per_ip.name == "login-per-ip");
  CHECK(per_ip.algorithm == limit::Algorithm::sliding_window);
  CHECK(per_ip.quota.limit == 5);
  CHECK(per_ip.quota.window == 600'000'000);
  REQUIRE(per_ip.key.size() == 1);
  REQUIRE(per_ip.key[0].alternatives.size() == 1);
  CHECK(per_ip.key[0].alternatives[0].kind == KeySource::Kind::ip);

  const Route& search = c.routes[1];
  CHECK(search.name == "search");
  CHECK(search.path.kind == PathPattern::Kind::prefix);
  CHECK(search.path.text == "/api/search/*");
  CHECK(search.methods.empty());
  CHECK(search.max_body == 1024 * 1024);
  REQUIRE(search.limits.size() == 1);
  const Limit& per_user = search.limits[0];
  CHECK(per_user.algorithm == limit::Algorithm::token_bucket);
  CHECK(per_user.quota.limit == 60);
  CHECK(per_user.quota.window == 60'000'000);
  CHECK(per_user.quota.burst == 10);
  REQUIRE(per_user.key.size() == 1);
  const auto& alternatives = per_user.key[0].alternatives;
  REQUIRE(alternatives.size() == 2);
  CHECK(alternatives[0].kind == KeySource::Kind::identity);
  CHECK(alternatives[0].identity == 1);
  CHECK(alternatives[0].header == "X-User-Id");
  CHECK(alternatives[0].text == "user");
  CHECK(alternatives[1].kind == KeySource::Kind::ip);

  // The quickstart catch-all: last, so it never shadows the routes above it.
  const Route& fallback = c.routes[2];
  CHECK(fallback.path.kind == PathPattern::Kind::prefix);
  CHECK(fallback.path.text == "/*");
  CHECK(fallback.limits.empty());
}

TEST_CASE("every setting left out takes its documented default", "[config]") {
  const auto c = load_ok(R"(upstreams:
  api: { servers: ["127.0.0.1:3000"] }
routes:
  - name: r
    match: { path: /r }
    upstream: api
  - name: s
    match: { path: /s }
    upstream: api
    limits:
      - { name: l, key: [ip], algorithm: gcra, limit: 7, window: 1s }
)");
  CHECK(c->source == "t.yaml");
  CHECK(c->listen.host == "0.0.0.0");
  CHECK(c->listen.port == 8080);
  CHECK(c->threads == cores());
  CHECK(c->trusted_proxies.empty());
  CHECK(c->ipv6_prefix == 64);
  CHECK(c->routes[1].limits[0].key[0].alternatives[0].ipv6_prefix == 64);
  CHECK(c->client_ip_header == sluice::classify::ForwardingHeader::x_forwarded_for);
  CHECK(c->headers == HeaderStyle::both);
  CHECK(c->store.type == StoreType::memory);
  CHECK(c->store.max_keys == 1'000'000);
  CHECK(c->upstreams[0].connect_timeout == 2s);
  CHECK(c->upstreams[0].timeout == 30s);
  CHECK(c->upstreams[0].idle_timeout == 4s);
  CHECK(c->identities.empty());
  CHECK(c->routes[0].methods.empty());             // any method
  CHECK(c->routes[0].limits.empty());              // just proxied
  CHECK(c->routes[1].limits[0].quota.burst == 7);  // burst defaults to limit
  CHECK(c->client.max_connections == 10000);
  CHECK(c->client.max_header_bytes == 32 * 1024);
  CHECK(c->client.max_uri_bytes == 8 * 1024);
  CHECK(c->client.max_body == 0);  // unlimited
  CHECK(c->client.header_timeout == 10s);
  CHECK(c->client.idle_timeout == 60s);
  CHECK(c->client.body_timeout == 60s);
  CHECK(c->client.send_timeout == 60s);
  CHECK_FALSE(c->case_sensitive_paths);
  CHECK(c->routes[0].max_body == 0);
  CHECK_FALSE(c->routes[0].path.case_sensitive);
}

TEST_CASE("settings written out are taken as written", "[config]") {
  const auto c = load_ok(R"(listen: "[::1]:9000"
threads: 3
trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.168.1.7]
headers: ietf
store: { type: memory, max_keys: 5000 }
upstreams:
  api:
    servers: ["[::1]:3000", "backend.internal:80"]
    connect_timeout: 250ms
    timeout: 2m
    idle_timeout: 900ms
routes:
  - name: r
    match: { path: "/users/:id", methods: [get, Post, GET] }
    upstream: api
    limits:
      - { name: l, key: [method, route, path, "header:X-Tenant"], algorithm: gcra, limit: 100, window: 1h, burst: 3 }
  - name: s
    match: { path: "/api//v1/*" }
    upstream: api
)");
  CHECK(c->listen.host == "::1");
  CHECK(c->listen.port == 9000);
  CHECK(c->threads == 3);
  REQUIRE(c->trusted_proxies.size() == 3);
  CHECK(c->trusted_proxies[0].contains(*classify::IpAddress::parse("10.200.0.1")));
  CHECK_FALSE(c->trusted_proxies[0].contains(*classify::IpAddress::parse("11.0.0.1")));
  CHECK(c->trusted_proxies[1].contains(*classify::IpAddress::parse("2001:db8::1")));
  CHECK(c->trusted_proxies[2].contains(*classify::IpAddress::parse("192.168.1.7")));
  CHECK_FALSE(c->trusted_proxies[2].contains(*classify::IpAddress::parse("192.168.1.8")));
  CHECK(c->headers == HeaderStyle::ietf);
  CHECK(c->store.max_keys == 5000);
  const Upstream& api = c->upstreams[0];
  REQUIRE(api.servers.size() == 2);
  CHECK(api.servers[0].host == "::1");
  CHECK(api.servers[0].port == 3000);
  CHECK(api.servers[1].host == "backend.internal");
  CHECK(api.servers[1].port == 80);
  CHECK(api.connect_timeout == 250ms);
  CHECK(api.timeout == 2min);
  CHECK(api.idle_timeout == 900ms);

  const Route& r = c->routes[0];
  CHECK(r.path.kind == PathPattern::Kind::segments);
  CHECK(r.path.text == "/users/:id");
  CHECK(r.methods == std::vector<std::string>{"GET", "POST"});  // upper-cased, once each
  const Limit& l = r.limits[0];
  CHECK(l.quota.burst == 3);  // below limit is allowed
  REQUIRE(l.key.size() == 4);
  CHECK(l.key[0].alternatives[0].kind == KeySource::Kind::method);
  CHECK(l.key[1].alternatives[0].kind == KeySource::Kind::route);
  CHECK(l.key[2].alternatives[0].kind == KeySource::Kind::path);
  CHECK(l.key[3].alternatives[0].kind == KeySource::Kind::header);
  CHECK(l.key[3].alternatives[0].header == "X-Tenant");

  // Patterns are normalised like request paths.
  CHECK(c->routes[1].path.kind == PathPattern::Kind::prefix);
  CHECK(c->routes[1].path.text == "/api/v1/*");
}

TEST_CASE("listen accepts IP literals and localhost", "[config]") {
  CHECK(load_ok(with_setting("listen: localhost:9000"))->listen.host == "localhost");
  CHECK(load_ok(with_setting("listen: \"[::]:80\""))->listen.host == "::");
  CHECK(load_ok(with_setting("listen: 127.0.0.1:1"))->listen.port == 1);
  CHECK(load_ok(with_setting("threads: 256"))->threads == 256);
  CHECK(load_ok(with_setting("threads: auto"))->threads == cores());
  // The setting reaches every ip key part, wherever in the file it is written.
  const auto wide = load_ok(with_limit("{ name: l, key: [\"user|ip\", ip], algorithm: gcra, "
                                       "limit: 7, window: 1s }") +
                            "ipv6_prefix: 56\n");
  CHECK(wide->ipv6_prefix == 56);
  const auto& parts = wide->routes[0].limits[0].key;
  CHECK(parts[0].alternatives[1].ipv6_prefix == 56);
  CHECK(parts[1].alternatives[0].ipv6_prefix == 56);
  CHECK(load_ok(with_setting("ipv6_prefix: 128"))->ipv6_prefix == 128);
  CHECK(load_ok(with_setting("client_ip_header: Forwarded"))->client_ip_header ==
        sluice::classify::ForwardingHeader::forwarded);
  CHECK(load_ok(with_setting("client_ip_header: x-forwarded-for"))->client_ip_header ==
        sluice::classify::ForwardingHeader::x_forwarded_for);
  CHECK(load_ok(with_setting("headers: none"))->headers == HeaderStyle::none);
  CHECK(load_ok(with_setting("headers: legacy"))->headers == HeaderStyle::legacy);
  CHECK(load_ok(with_setting("trusted_proxies:"))->trusted_proxies.empty());
}

TEST_CASE("durations: a positive whole number and one unit", "[config]") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("1ms") == 1ms);
  CHECK(parse_duration("10s") == 10s);
  CHECK(parse_duration("5m") == 5min);
  CHECK(parse_duration("2h") == 2h);
  CHECK(parse_duration("1d") == 24h);
  CHECK(parse_duration("365d") == 365 * 24h);
  for (const char* bad :
       {"0s", "0ms", "10", "1.5s", "5 m", " 5m", "5m ", "-1s", "+1s", "", "s", "ms", "10S", "10sec",
        "1w", "1m1s", "99999999999999999999s", "9999999999999999d"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }

  CHECK(format_duration(10min) == "10m");
  CHECK(format_duration(90s) == "90s");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(48h) == "2d");
  CHECK(format_duration(1h) == "1h");
  CHECK(format_duration(0s) == "0s");
  CHECK(format_duration(1500us) == "1500us");
  CHECK(format_duration(-2s) == "-2s");
  for (const char* text : {"250ms", "10s", "5m", "2h", "1d", "1001ms", "61s"}) {
    CHECK(format_duration(*parse_duration(text)) == text);
  }
}

TEST_CASE("Error::to_string is file:line:column: message", "[config]") {
  CHECK(Error{"a.yaml", 3, 7, "boom"}.to_string() == "a.yaml:3:7: boom");
  // Whole-file problems have no position.
  CHECK(Error{"a.yaml", 0, 0, "cannot read: x"}.to_string() == "a.yaml: cannot read: x");
}

TEST_CASE("an unreadable file is one error without a position", "[config]") {
  const LoadResult r = load_file("/nonexistent/sluice.yaml");
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() ==
        "/nonexistent/sluice.yaml: cannot read: No such file or directory");
}

TEST_CASE("a file holds one YAML document, and is not endless", "[config]") {
  const std::string one = with_setting("threads: 1");
  CHECK(only_error(one + "---\nlisten: bogus\n") ==
        "t.yaml:5:1: a second YAML document: a config file holds one (remove the '---' or "
        "'...' line)");
  CHECK(only_error(one + "---\n: : broken [\n").starts_with("t.yaml:5:"));
  CHECK(load_ok(one + "---\n"));  // a trailing marker with nothing after it
  // fuzz_config found a file on which yaml-cpp's LoadAll never returns: only two are parsed.
  const LoadResult looping =
      load_file(SLUICE_SOURCE_DIR "/tests/fuzz/corpus/fuzz_config/loadall_loop.yaml");
  CHECK_FALSE(looping.ok());
  const LoadResult endless = load_file("/dev/zero");
  REQUIRE(endless.errors.size() == 1);
  CHECK(endless.errors[0].to_string() ==
        "/dev/zero: cannot read: larger than 16 MiB, not a config");
}

TEST_CASE("a route an earlier one takes every request from is warned about", "[config]") {
  const auto warnings = [](const std::string& routes) {
    const LoadResult r = load_string(
        "upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\nroutes:\n" + routes, "t.yaml");
    INFO(all_errors(r));
    REQUIRE(r.ok());
    std::vector<std::string> out;
    for (const auto& w : r.warnings)
      out.push_back(w.to_string());
    return out;
  };
  // A login route added after the catch-all: its limits would never apply.
  CHECK(
      warnings(
          "  - { name: default, match: { path: /* }, upstream: api }\n"
          "  - { name: login, match: { path: /api/login, methods: [POST] }, upstream: api }\n") ==
      std::vector<std::string>{
          "t.yaml:4:5: route 'login' is never reached: route 'default' (/*) comes first and takes "
          "every request it would match (first match wins: move it up)"});
  CHECK(warnings("  - { name: api, match: { path: /api/* }, upstream: api }\n"
                 "  - { name: users, match: { path: \"/api/users/:id\" }, upstream: api }\n"
                 "  - { name: same, match: { path: /api/* }, upstream: api }\n")
            .size() == 2);
  // The mistake Express users know: /users/me after /users/:id is taken by the parameter.
  CHECK(warnings("  - { name: users, match: { path: \"/users/:id\" }, upstream: api }\n"
                 "  - { name: me, match: { path: /users/me }, upstream: api }\n")
            .size() == 1);
  // Reachable: other methods, other paths, the specific route first, or case that differs.
  CHECK(
      warnings("  - { name: get, match: { path: /*, methods: [GET] }, upstream: api }\n"
               "  - { name: login, match: { path: /api/login, methods: [POST] }, upstream: api }\n"
               "  - { name: me, match: { path: /users/me }, upstream: api }\n"
               "  - { name: users, match: { path: \"/users/:id\" }, upstream: api }\n"
               "  - { name: exact, match: { path: /API/*, case_sensitive: true }, upstream: api }\n"
               "  - { name: any, match: { path: /API/x }, upstream: api }\n")
          .empty());
  // The shipped config is clean.
  CHECK(load_file(SLUICE_SOURCE_DIR "/config/sluice.yaml").warnings.empty());
}

TEST_CASE("YAML syntax errors point at the place the parser gave up", "[config]") {
  CHECK(only_error("routes:\n  - name: a\n    match: { path: /x\n  - name: b\n") ==
        "t.yaml:4:9: YAML syntax error: end of map flow not found");
  CHECK(only_error("") ==
        "t.yaml:1:1: the config is empty: it needs at least 'upstreams' and "
        "'routes'");
  CHECK(only_error("- a\n") ==
        "t.yaml:1:1: the config must be a map of settings (listen, "
        "upstreams, routes, ...), found a list");
}

TEST_CASE("unknown keys are reported everywhere, with a suggestion when one is close", "[config]") {
  CHECK(only_error(with_setting("thread: 2")) ==
        "t.yaml:1:1: unknown key 'thread' at the top level (did you mean 'threads'?)");
  CHECK(only_error(with_setting("colour: blue")) ==
        "t.yaml:1:1: unknown key 'colour' at the top level; expected one of listen, threads, "
        "trusted_proxies, client_ip_header, ipv6_prefix, headers, client, store, upstreams, "
        "identities, case_sensitive_paths, routes");
  CHECK(only_error(with_setting("store: { type: memory, max_key: 5 }")) ==
        "t.yaml:1:24: unknown key 'max_key' in 'store' (did you mean 'max_keys'?)");
  CHECK(only_error(with_route("{ name: r, match: { path: /r, method: [GET] }, upstream: api }")) ==
        "t.yaml:3:35: unknown key 'method' in 'match' of route 'r' (did you mean 'methods'?)");
  CHECK(only_error(with_route("{ name: r, match: { path: /r }, upstream: api, limit: [] }")) ==
        "t.yaml:3:52: unknown key 'limit' in route 'r' (did you mean 'limits'?)");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"], timout: 1s } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:1:50: unknown key 'timout' in upstream 'api' (did you mean 'timeout'?)");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"], idle_timeout: 2d } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:1:64: 'idle_timeout' must be from 1ms to 1d, found 2d");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
                   "identities: { user: { headr: X-User } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:2:23: unknown key 'headr' in identity 'user' (did you mean 'header'?)");
}

TEST_CASE("a typo in a limit names the key it probably meant, and nothing else", "[config]") {
  // The misspelled required key is not also reported as missing.
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 5, windw: 10m }")) ==
        "t.yaml:8:58: unknown key 'windw' in limit 'x' (did you mean 'window'?)");
}

TEST_CASE("the shipped typo example is reported at the typo", "[config]") {
  const LoadResult r = load_file(SLUICE_SOURCE_DIR "/tests/data/typo.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 22);
  CHECK(r.errors[0].column == 9);
  CHECK(r.errors[0].message ==
        "unknown key 'windw' in limit 'login-per-ip' (did you mean "
        "'window'?)");
}

TEST_CASE("a key given twice in one map is an error, not a silent pick", "[config]") {
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 5, window: 1s, "
                              "limit: 6 }")) ==
        "t.yaml:8:70: duplicate key 'limit' (first at line 8, column 48)");
  CHECK(only_error("upstreams:\n"
                   "  api: { servers: [\"127.0.0.1:3000\"] }\n"
                   "  api: { servers: [\"127.0.0.1:4000\"] }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:3:3: duplicate upstream 'api' (first at line 2, column 3)");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
                   "identities:\n"
                   "  user: { header: X-User }\n"
                   "  user: { header: X-Other }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:4:3: duplicate identity 'user' (first at line 3, column 3)");
}

TEST_CASE("values of the wrong type are reported at the value", "[config]") {
  CHECK(only_error(with_route("{ name: r, match: { path: /r, methods: GET }, upstream: api }")) ==
        "t.yaml:3:44: 'methods' must be a list, e.g. [GET, POST], found the value 'GET'");
  CHECK(only_error(with_route("{ name: r, match: /r, upstream: api }")) ==
        "t.yaml:3:23: 'match' must be a map (e.g. { path: /api/login, methods: [POST] }), found "
        "the value '/r'");
  CHECK(only_error(with_limit("{ name: x, key: ip, algorithm: gcra, limit: 5, window: 1s }")) ==
        "t.yaml:8:25: 'key' must be a list, e.g. [ip] or [\"user|ip\", method], found the value "
        "'ip'");
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 5.5, window: 1s }")) ==
        "t.yaml:8:55: 'limit' must be a whole number, found '5.5'");
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: [5], window: 1s }")) ==
        "t.yaml:8:55: 'limit' must be a whole number, found a list");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\nroutes: { r: 1 }\n") ==
        "t.yaml:2:9: 'routes' must be a list, e.g. - name: login ..., found a map");
}

TEST_CASE("bad durations say what a duration looks like", "[config]") {
  const std::string prefix = "{ name: x, key: [ip], algorithm: gcra, limit: 5, window: ";
  // The window value starts at column 9 + prefix length.
  CHECK(only_error(with_limit(prefix + "10 }")) ==
        "t.yaml:8:66: bad duration '10' for 'window': add a unit (ms, s, m, h or d), e.g. 10s");
  for (const char* bad : {"0s", "1.5s", "-1s", "10sec"}) {
    INFO(bad);
    CHECK(only_error(with_limit(prefix + bad + " }")) ==
          "t.yaml:8:66: bad duration '" + std::string(bad) +
              "' for 'window': expected a positive whole number and a unit (ms, s, m, h or d), "
              "e.g. 250ms, 10s, 5m");
  }
  CHECK(only_error(with_limit(prefix + "\"5 m\" }")) ==
        "t.yaml:8:66: bad duration '5 m' for 'window': expected a positive whole number and a unit "
        "(ms, s, m, h or d), e.g. 250ms, 10s, 5m");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"], connect_timeout: 2 } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:1:67: bad duration '2' for 'connect_timeout': add a unit (ms, s, m, h or d), e.g. "
        "2s");
}

TEST_CASE("limit and window stay within what the algorithms compute exactly", "[config]") {
  const std::string precision = " (larger values would lose precision in the algorithms)";
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 0, window: 1s }")) ==
        "t.yaml:8:55: 'limit' must be from 1 to 1000000000" + precision + ", found 0");
  CHECK(only_error(
            with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 1000000001, window: 1s }")) ==
        "t.yaml:8:55: 'limit' must be from 1 to 1000000000" + precision + ", found 1000000001");
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 5, window: 366d }")) ==
        "t.yaml:8:66: 'window' must be from 1ms to 365d" + precision + ", found 366d");
  CHECK(only_error(with_limit(
            "{ name: x, key: [ip], algorithm: gcra, limit: 5, window: 1s, burst: 0 }")) ==
        "t.yaml:8:77: 'burst' must be from 1 to 1000000000" + precision + ", found 0");
  // The bounds themselves are fine.
  load_ok(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 1000000000, window: 365d }"));
  load_ok(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 1, window: 1ms }"));
}

TEST_CASE("the algorithm is required and must be one of the four", "[config]") {
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: leaky, limit: 5, window: 1s }")) ==
        "t.yaml:8:42: unknown algorithm 'leaky'; expected one of token_bucket, gcra, "
        "sliding_window, fixed_window");
  CHECK(only_error(
            with_limit("{ name: x, key: [ip], algorithm: token-bucket, limit: 5, window: 1s }")) ==
        "t.yaml:8:42: unknown algorithm 'token-bucket'; expected one of token_bucket, gcra, "
        "sliding_window, fixed_window (did you mean 'token_bucket'?)");
  CHECK(only_error(with_limit("{ name: x, key: [ip], limit: 5, window: 1s }")) ==
        "t.yaml:8:9: limit 'x' needs 'algorithm' (one of token_bucket, gcra, sliding_window, "
        "fixed_window)");
}

TEST_CASE("burst belongs to the bucket algorithms only", "[config]") {
  for (const char* algorithm : {"fixed_window", "sliding_window"}) {
    INFO(algorithm);
    const std::string limit = "{ name: x, key: [ip], algorithm: " + std::string(algorithm) +
                              ", limit: 5, window: 1s, burst: 2 }";
    const auto column = std::to_string(9 + limit.find("burst"));
    CHECK(only_error(with_limit(limit)) == "t.yaml:8:" + column +
                                               ": 'burst' only applies to token_bucket and gcra; " +
                                               algorithm + " admits exactly 'limit' per window");
  }
  CHECK(load_ok(with_limit("{ name: x, key: [ip], algorithm: token_bucket, limit: 5, window: 1s, "
                           "burst: 20 }"))
            ->routes[0]
            .limits[0]
            .quota.burst == 20);
}

TEST_CASE("key parts must be known", "[config]") {
  const std::string head = "{ name: x, algorithm: gcra, limit: 5, window: 1s, key: ";
  // The key list starts at column 9 + head length = 64.
  CHECK(only_error(with_limit(head + "[ipp] }")) ==
        "t.yaml:8:65: unknown key part 'ipp' (did you mean 'ip'?)");
  CHECK(only_error(with_limit(head + "[\"header:\"] }")) ==
        "t.yaml:8:66: key part 'header:' needs a header name, e.g. header:X-Tenant");
  CHECK(only_error(with_limit(head + "[\"header:X Y\"] }")) ==
        "t.yaml:8:66: bad header name 'X Y' in key part 'header:X Y'");
  CHECK(only_error(with_limit(head + "[tenant] }")) ==
        "t.yaml:8:65: unknown key part 'tenant'; expected ip, method, route, path, user or "
        "header:NAME");
  // Each alternative is reported at its own column.
  CHECK(only_error(with_limit(head + "[\"user | usr\"] }")) ==
        "t.yaml:8:73: unknown key part 'usr' (did you mean 'user'?)");
  CHECK(only_error(with_limit(head + "[\"user|\"] }")) ==
        "t.yaml:8:71: empty alternative in key part 'user|'");
  CHECK(only_error(with_limit(head + "[] }")) ==
        "t.yaml:8:64: 'key' of limit 'x' is empty; use [route] for one counter shared by every "
        "caller");
}

TEST_CASE("an identity cannot take a built-in key part's name", "[config]") {
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
                   "identities: { ip: { header: X-Ip } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:2:15: identity name 'ip' is taken by a built-in key part (ip, method, route, "
        "path, header)");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
                   "identities: { user: { header: \"X User\" } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:2:31: bad header name 'X User' in identity 'user' (letters, digits and "
        "!#$%&'*+-.^_`|~ only, e.g. X-API-Key)");
}

TEST_CASE("routes must name a defined upstream", "[config]") {
  CHECK(only_error(with_route("{ name: r, match: { path: /r }, upstream: apii }")) ==
        "t.yaml:3:47: route 'r' names upstream 'apii', which is not defined (did you mean 'api'?)");
  CHECK(only_error(with_route("{ name: r, match: { path: /r }, upstream: billing }")) ==
        "t.yaml:3:47: route 'r' names upstream 'billing', which is not defined; defined "
        "upstreams: api");
}

TEST_CASE("route names are unique", "[config]") {
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n"
                   "routes:\n"
                   "  - { name: r, match: { path: /a }, upstream: api }\n"
                   "  - { name: r, match: { path: /b }, upstream: api }\n") ==
        "t.yaml:4:13: duplicate route name 'r' (first at line 3, column 13)");
}

TEST_CASE("required fields are reported as missing on their map", "[config]") {
  CHECK(only_error(with_route("{ match: { path: /r }, upstream: api }")) ==
        "t.yaml:3:5: a route needs 'name' (e.g. name: login)");
  CHECK(only_error(with_route("{ name: r, upstream: api }")) ==
        "t.yaml:3:5: route 'r' needs 'match' (e.g. match: { path: /api/* })");
  CHECK(only_error(with_route("{ name: r, match: { methods: [GET] }, upstream: api }")) ==
        "t.yaml:3:16: 'match' of route 'r' needs 'path' (e.g. /api/login, /api/*, /users/:id)");
  CHECK(only_error(with_route("{ name: r, match: { path: /r } }")) ==
        "t.yaml:3:5: route 'r' needs 'upstream' (the name of one of 'upstreams')");
  CHECK(only_error(with_limit("{ key: [ip], algorithm: gcra, limit: 5, window: 1s }")) ==
        "t.yaml:8:9: a limit in route 'r' needs 'name' (e.g. name: login-per-ip)");
  CHECK(only_error(with_limit("{ name: x, algorithm: gcra, limit: 5, window: 1s }")) ==
        "t.yaml:8:9: limit 'x' needs 'key' (a list of parts such as [ip] or [\"user|ip\"])");
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, window: 1s }")) ==
        "t.yaml:8:9: limit 'x' needs 'limit' (how many requests per window, e.g. limit: 100)");
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 5 }")) ==
        "t.yaml:8:9: limit 'x' needs 'window' (a duration such as 1m)");
  CHECK(only_error("upstreams: { api: { connect_timeout: 1s } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:1:14: upstream 'api' needs 'servers' (a list of \"host:port\")");
  CHECK(only_error("upstreams: { api: { servers: [\"127.0.0.1:3000\"] } }\n") ==
        "t.yaml:1:1: the config needs 'routes' (which requests to proxy, and their limits)");
}

TEST_CASE("path patterns are checked", "[config]") {
  const auto path_error = [](const std::string& path) {
    return only_error(with_route("{ name: r, match: { path: \"" + path + "\" }, upstream: api }"));
  };
  CHECK(path_error("api/login") ==
        "t.yaml:3:31: bad path pattern 'api/login': it must start "
        "with '/'");
  CHECK(path_error("/a/*/b") ==
        "t.yaml:3:31: bad path pattern '/a/*/b': '*' is only allowed at "
        "the end, as '/*' (e.g. /api/*)");
  CHECK(path_error("/api*") ==
        "t.yaml:3:31: bad path pattern '/api*': '*' is only allowed at "
        "the end, as '/*' (e.g. /api/*)");
  CHECK(path_error("/api%2Flogin") ==
        "t.yaml:3:31: bad path pattern '/api%2Flogin': it contains '%2F', which requests are "
        "routed as '/': write '/' instead");
  CHECK(path_error("/files/a%2fb/*") ==
        "t.yaml:3:31: bad path pattern '/files/a%2fb/*': it contains '%2F', which requests are "
        "routed as '/': write '/' instead");
  CHECK(path_error("/users/:/x") ==
        "t.yaml:3:31: bad path pattern '/users/:/x': a ':' segment "
        "needs a name of letters, digits and '_', e.g. /users/:id");
  CHECK(path_error("/users/:id/*") ==
        "t.yaml:3:31: bad path pattern '/users/:id/*': ':name' "
        "segments cannot be combined with a '/*' suffix");
  CHECK(path_error("/search?q=1") ==
        "t.yaml:3:31: bad path pattern '/search?q=1': it cannot "
        "contain '?' or '#' (only the path is matched, never the "
        "query)");
}

TEST_CASE("methods are the HTTP methods sluice proxies", "[config]") {
  CHECK(only_error(with_route(
            "{ name: r, match: { path: /r, methods: [GET, CONNECT] }, upstream: api }")) ==
        "t.yaml:3:50: unknown method 'CONNECT'; expected one of GET, HEAD, POST, PUT, DELETE, "
        "PATCH, OPTIONS");
  CHECK(
      only_error(with_route("{ name: r, match: { path: /r, methods: [PSOT] }, upstream: api }")) ==
      "t.yaml:3:45: unknown method 'PSOT'; expected one of GET, HEAD, POST, PUT, DELETE, PATCH, "
      "OPTIONS (did you mean 'POST'?)");
  CHECK(only_error(with_route("{ name: r, match: { path: /r, methods: [] }, upstream: api }")) ==
        "t.yaml:3:44: 'methods' is empty: leave it out to match every method");
}

TEST_CASE("top-level settings are checked", "[config]") {
  CHECK(only_error(with_setting("listen: 0.0.0.0:80800")) ==
        "t.yaml:1:9: bad listen address '0.0.0.0:80800': port '80800' must be a number from 1 to "
        "65535");
  CHECK(only_error(with_setting("listen: 0.0.0.0")) ==
        "t.yaml:1:9: bad listen address '0.0.0.0': a port is needed, e.g. 127.0.0.1:8080");
  CHECK(only_error(with_setting("listen: example.com:80")) ==
        "t.yaml:1:9: bad listen address 'example.com:80': 'example.com' is not an IP address or "
        "'localhost'");
  CHECK(only_error(with_setting("listen: \"::1:80\"")) ==
        "t.yaml:1:9: bad listen address '::1:80': IPv6 addresses need brackets, e.g. [::1]:8080");
  CHECK(only_error(with_setting("threads: 0")) ==
        "t.yaml:1:10: 'threads' must be 'auto' or a number from 1 to 256, found '0'");
  CHECK(only_error(with_setting("threads: 257")) ==
        "t.yaml:1:10: 'threads' must be 'auto' or a number from 1 to 256, found '257'");
  CHECK(only_error(with_setting("client_ip_header: X-Real-IP")) ==
        "t.yaml:1:19: 'client_ip_header' must be X-Forwarded-For or Forwarded (the header your "
        "trusted proxies write), found 'X-Real-IP'");
  CHECK(only_error(with_setting("ipv6_prefix: 16")) ==
        "t.yaml:1:14: 'ipv6_prefix' must be a prefix length from 32 to 128 (128: every address "
        "on its own), found '16'");
  CHECK(only_error(with_setting("ipv6_prefix: /64")) ==
        "t.yaml:1:14: 'ipv6_prefix' must be a prefix length from 32 to 128 (128: every address "
        "on its own), found '/64'");
  CHECK(only_error(with_setting("trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]")) ==
        "t.yaml:1:31: bad address or CIDR '10.0.0.0/33' in 'trusted_proxies' (e.g. 10.0.0.0/8, "
        "2001:db8::/32, 192.168.1.7)");
  CHECK(only_error(with_setting("headers: bothh")) ==
        "t.yaml:1:10: 'headers' must be one of legacy, ietf, both, none, found 'bothh' (did you "
        "mean 'both'?)");
  CHECK(only_error(with_setting("store: { type: redsi }")) ==
        "t.yaml:1:16: unknown store type 'redsi' (expected memory or redis) (did you mean "
        "'redis'?)");
  CHECK(only_error(with_setting("store: { type: memory, max_keys: 0 }")) ==
        "t.yaml:1:34: 'max_keys' must be from 1 to 1000000000, found 0");
}

TEST_CASE("upstream servers are host:port", "[config]") {
  const auto servers_error = [](const std::string& servers) {
    return only_error("upstreams: { api: { servers: " + servers +
                      " } }\nroutes: [{ name: r, match: { path: /r }, upstream: api }]\n");
  };
  CHECK(servers_error("[]") ==
        "t.yaml:1:30: upstream 'api' needs at least one server in "
        "'servers'");
  CHECK(servers_error("[\"127.0.0.1\"]") ==
        "t.yaml:1:31: bad server '127.0.0.1' in upstream "
        "'api': a port is needed, e.g. 127.0.0.1:8080");
  CHECK(servers_error("[\"300.1.1.1:80\"]") ==
        "t.yaml:1:31: bad server '300.1.1.1:80' in "
        "upstream 'api': '300.1.1.1' is not an IPv4 "
        "address");
  CHECK(servers_error("[\"bad_host:80\"]") ==
        "t.yaml:1:31: bad server 'bad_host:80' in upstream "
        "'api': 'bad_host' is not a valid host name or IP "
        "address");
  CHECK(servers_error("[\"h:0\"]") ==
        "t.yaml:1:31: bad server 'h:0' in upstream 'api': port '0' "
        "must be a number from 1 to 65535");
}

TEST_CASE("several errors in one file are all reported, in file order", "[config]") {
  const LoadResult r = load_string(R"(listen: 0.0.0.0:99999
threads: many
routes:
  - name: login
    match: { path: /api/login, methods: [POST] }
    upstream: api
    limits:
      - name: per-ip
        key: [ipp]
        algorithm: sliding_windw
        limit: 5
        window: 10
upstreams:
  api: { servers: ["127.0.0.1:3000"], timeout: 0s }
)",
                                   "many.yaml");
  REQUIRE_FALSE(r.ok());
  std::vector<std::string> lines;
  for (const auto& e : r.errors)
    lines.push_back(e.to_string());
  CHECK(lines == std::vector<std::string>{
                     "many.yaml:1:9: bad listen address '0.0.0.0:99999': port '99999' must be a "
                     "number from 1 to 65535",
                     "many.yaml:2:10: 'threads' must be 'auto' or a number from 1 to 256, found "
                     "'many'",
                     "many.yaml:9:15: unknown key part 'ipp' (did you mean 'ip'?)",
                     "many.yaml:10:20: unknown algorithm 'sliding_windw'; expected one of "
                     "token_bucket, gcra, sliding_window, fixed_window (did you mean "
                     "'sliding_window'?)",
                     "many.yaml:12:17: bad duration '10' for 'window': add a unit (ms, s, m, h or "
                     "d), e.g. 10s",
                     "many.yaml:14:48: bad duration '0s' for 'timeout': expected a positive whole "
                     "number and a unit (ms, s, m, h or d), e.g. 250ms, 10s, 5m",
                 });
}

TEST_CASE("no cascades: a broken section does not make its users look broken", "[config]") {
  // upstreams is not a map: one error, not one more per route naming 'api'.
  CHECK(only_error("upstreams: [api]\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:1:12: 'upstreams' must be a map (upstream names, each with its servers), found a "
        "list");
  // A broken upstream still exists for the routes that name it.
  CHECK(only_error("upstreams: { api: { servers: [] } }\n"
                   "routes: [{ name: r, match: { path: /r }, upstream: api }]\n") ==
        "t.yaml:1:30: upstream 'api' needs at least one server in 'servers'");
}

namespace {

std::uint64_t hash_of(const std::string& limit) {
  return load_ok(with_limit(limit))->routes[0].limits[0].identity_hash;
}

}  // namespace

TEST_CASE("a limit's identity hash follows its definition, not its position", "[config]") {
  const std::string base =
      "{ name: x, key: [\"user|ip\"], algorithm: gcra, limit: 5, window: 1s, burst: 2 }";
  const std::uint64_t h = hash_of(base);
  CHECK(h != 0);
  CHECK(hash_of(base) == h);  // stable across loads

  // Spelling that does not change the definition keeps the counters.
  CHECK(hash_of("{ window: 1000ms, burst: 2, limit: 5, algorithm: gcra, key: [\"user | ip\"], "
                "name: x }") == h);

  // Any change to what is counted starts fresh counters.
  CHECK(
      hash_of("{ name: y, key: [\"user|ip\"], algorithm: gcra, limit: 5, window: 1s, burst: 2 }") !=
      h);
  CHECK(hash_of("{ name: x, key: [ip], algorithm: gcra, limit: 5, window: 1s, burst: 2 }") != h);
  CHECK(
      hash_of("{ name: x, key: [\"ip|user\"], algorithm: gcra, limit: 5, window: 1s, burst: 2 }") !=
      h);
  CHECK(hash_of("{ name: x, key: [user, ip], algorithm: gcra, limit: 5, window: 1s, burst: 2 }") !=
        h);
  CHECK(hash_of("{ name: x, key: [\"user|ip\"], algorithm: token_bucket, limit: 5, window: 1s, "
                "burst: 2 }") != h);
  CHECK(
      hash_of("{ name: x, key: [\"user|ip\"], algorithm: gcra, limit: 6, window: 1s, burst: 2 }") !=
      h);
  CHECK(
      hash_of("{ name: x, key: [\"user|ip\"], algorithm: gcra, limit: 5, window: 2s, burst: 2 }") !=
      h);
  CHECK(hash_of("{ name: x, key: [\"user|ip\"], algorithm: gcra, limit: 5, window: 1s }") != h);

  // The identity's header is part of what the key means.
  const auto c = load_ok(R"(upstreams: { api: { servers: ["127.0.0.1:3000"] } }
identities: { user: { header: X-Other-User } }
routes:
  - name: first
    match: { path: /first }
    upstream: api
  - name: r
    match: { path: /r }
    upstream: api
    limits:
      - { name: x, key: ["user|ip"], algorithm: gcra, limit: 5, window: 1s, burst: 2 }
)");
  CHECK(c->routes[1].limits[0].identity_hash != h);
}

TEST_CASE("one limit name in several routes is one limit only when defined alike", "[config]") {
  // Shared on purpose: e.g. one per-user budget across routes. Same definition, same counters.
  const auto c = load_ok(R"(upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes:
  - name: a
    match: { path: /a }
    upstream: api
    limits:
      - { name: per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1s }
  - name: b
    match: { path: /b }
    upstream: api
    limits:
      - { name: per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1s }
)");
  CHECK(c->routes[0].limits[0].identity_hash == c->routes[1].limits[0].identity_hash);

  // Same name, different numbers: two meanings for one counter, so an error naming both places.
  CHECK(only_error(R"(upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes:
  - name: a
    match: { path: /a }
    upstream: api
    limits:
      - { name: per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1s }
  - name: b
    match: { path: /b }
    upstream: api
    limits:
      - { name: per-ip, key: [ip], algorithm: gcra, limit: 50, window: 1s }
)") == "t.yaml:12:17: limit 'per-ip' in route 'b' differs from its definition in route 'a' at "
       "line 7, column 17; routes sharing a limit name share its counters, so the definitions "
       "must be identical (or use another name)");

  // Twice in one route would charge one counter twice per request.
  CHECK(only_error(with_limit("{ name: x, key: [ip], algorithm: gcra, limit: 5, window: 1s }\n"
                              "      - { name: x, key: [ip], algorithm: gcra, limit: 5, window: "
                              "1s }")) ==
        "t.yaml:9:9: limit 'x' appears twice in route 'r' (first at line 8, column 9)");
}

TEST_CASE("names are plain words, safe in keys, labels and logs", "[config]") {
  CHECK(only_error(with_route("{ name: \"log in\", match: { path: /r }, upstream: api }")) ==
        "t.yaml:3:13: route name 'log in' must be 1 to 64 letters, digits, '-', '_' or '.'");
  CHECK(only_error(
            with_limit("{ name: \"a|b\", key: [ip], algorithm: gcra, limit: 5, window: 1s }")) ==
        "t.yaml:8:17: limit name 'a|b' must be 1 to 64 letters, digits, '-', '_' or '.'");
}

TEST_CASE("summarize shows listen, upstreams, routes and limits on one screen", "[config]") {
  const auto c = load_ok(R"(listen: 127.0.0.1:8080
threads: 2
trusted_proxies: [10.0.0.0/8]
identities: { user: { header: X-User-Id } }
upstreams:
  api: { servers: ["127.0.0.1:3000"] }
routes:
  - name: login
    match: { path: /api/login, methods: [POST] }
    upstream: api
    limits:
      - { name: login-per-ip, key: [ip], algorithm: sliding_window, limit: 5, window: 10m }
      - { name: global, key: [route], algorithm: fixed_window, limit: 1000, window: 1s }
  - name: search
    match: { path: /api/search/* }
    upstream: api
    limits:
      - { name: search-per-user, key: ["user|ip"], algorithm: token_bucket, limit: 60, window: 1m, burst: 10 }
      - { name: global, key: [route], algorithm: fixed_window, limit: 1000, window: 1s }
  - name: rest
    match: { path: /* }
    upstream: api
)");
  CHECK(summarize(*c) ==
        "t.yaml is valid\n"
        "listen 127.0.0.1:8080 · 2 threads · memory store (max 1000000 keys) · headers: both\n"
        "trusted proxies 10.0.0.0/8 (the client from X-Forwarded-For)\n"
        "ip keys IPv4 per address, IPv6 per /64\n"
        "identities user (X-User-Id)\n"
        "upstreams\n"
        "  api  127.0.0.1:3000  connect 2s, timeout 30s, idle 4s\n"
        "routes (first match wins)\n"
        "  login   POST /api/login -> api\n"
        "          login-per-ip     sliding_window  5 per 10m            key ip\n"
        "          global           fixed_window    1000 per 1s          key route  (shared with "
        "search)\n"
        "  search  *    /api/search/* -> api\n"
        "          search-per-user  token_bucket    60 per 1m, burst 10  key user|ip\n"
        "          global           fixed_window    1000 per 1s          key route  (shared with "
        "login)\n"
        "  rest    *    /* -> api\n"
        "          no limits\n");
}

TEST_CASE("the redis store: its settings, their defaults, and what is checked", "[config]") {
  SECTION("defaults") {
    const auto c = load_ok(with_setting("store: { type: redis }"));
    CHECK(c->store.type == StoreType::redis);
    CHECK(c->store.max_keys == 1'000'000);  // the local fallback's bound
    CHECK(c->store.redis.url == "redis://127.0.0.1:6379/0");
    CHECK(c->store.redis.timeout == 50ms);
    CHECK(c->store.redis.connections == 1);
    CHECK(c->store.redis.key_salt.empty());
    CHECK(c->store.redis.refusal_cache == 1s);
  }
  SECTION("written out") {
    const auto c = load_ok(R"(store:
  type: redis
  max_keys: 5000
  redis:
    url: "redis://:p%40ss@redis.internal:6380/2"
    timeout: 250ms
    connections: 3
    key_salt: "shared by every instance"
    refusal_cache: 250ms
upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes: [{ name: r, match: { path: /r }, upstream: api }]
)");
    CHECK(c->store.type == StoreType::redis);
    CHECK(c->store.max_keys == 5000);
    CHECK(c->store.redis.url == "redis://:p%40ss@redis.internal:6380/2");
    CHECK(c->store.redis.timeout == 250ms);
    CHECK(c->store.redis.connections == 3);
    CHECK(c->store.redis.key_salt == "shared by every instance");
    CHECK(c->store.redis.refusal_cache == 250ms);
  }
  SECTION("the refusal cache can be turned off") {
    for (const char* off : {"off", "0"}) {
      const auto c = load_ok(with_setting(std::string("store: { type: redis, redis: { ") +
                                          "refusal_cache: " + off + " } }"));
      CHECK(c->store.redis.refusal_cache == 0ms);
    }
  }
  SECTION("the order of type and redis does not matter") {
    const auto c = load_ok(with_setting("store: { redis: { timeout: 1s }, type: redis }"));
    CHECK(c->store.redis.timeout == 1s);
  }
  SECTION("errors, each at its place") {
    CHECK(only_error(with_setting("store: { type: redis, redis: { url: \"http://h:1\" } }")) ==
          "t.yaml:1:37: redis URL \"http://h:1\": must start with redis:// "
          "(redis://[:password@]host[:port][/db])");
    CHECK(only_error(with_setting("store: { type: redis, redis: { url: \"redis://h:0\" } }")) ==
          "t.yaml:1:37: redis URL \"redis://h:0\": port must be a number from 1 to 65535");
    // The password is never echoed back.
    CHECK(only_error(
              with_setting("store: { type: redis, redis: { url: \"redis://:secret@h:1/x\" } }")) ==
          "t.yaml:1:37: redis URL \"redis://:***@h:1/x\": db must be a number from 0 up");
    CHECK(only_error(with_setting("store: { type: redis, redis: { timeout: 0ms } }")) ==
          "t.yaml:1:41: bad duration '0ms' for 'timeout': expected a positive whole number and "
          "a unit (ms, s, m, h or d), e.g. 250ms, 10s, 5m");
    CHECK(only_error(with_setting("store: { type: redis, redis: { timeout: 11s } }")) ==
          "t.yaml:1:41: 'timeout' must be from 1ms to 10s, found 11s");
    CHECK(only_error(with_setting("store: { type: redis, redis: { connections: 17 } }")) ==
          "t.yaml:1:45: 'connections' must be from 1 to 16 per thread, found 17");
    CHECK(only_error(with_setting("store: { type: redis, redis: { refusal_cache: 2m } }")) ==
          "t.yaml:1:47: 'refusal_cache' must be from 1ms to 1m (or off), found 2m");
    CHECK(only_error(with_setting("store: { type: redis, redis: { refusal_cache: 0ms } }")) ==
          "t.yaml:1:47: bad duration '0ms' for 'refusal_cache': expected a positive whole number "
          "and a unit (ms, s, m, h or d), e.g. 250ms, 10s, 5m");
    CHECK(only_error(with_setting("store: { type: redis, redis: { timout: 1s } }")) ==
          "t.yaml:1:32: unknown key 'timout' in 'store.redis' (did you mean 'timeout'?)");
    CHECK(only_error(with_setting("store: { type: redis, redis: { key_salt: [a] } }")) ==
          "t.yaml:1:42: 'key_salt' must be a string, found a list");
    CHECK(only_error(with_setting("store: { type: redis, redis: localhost }")) ==
          "t.yaml:1:30: 'redis' must be a map (e.g. { url: \"redis://127.0.0.1:6379/0\", "
          "timeout: 50ms, connections: 1 }), found the value 'localhost'");
  }
  SECTION("redis settings without type: redis are a mistake, not ignored") {
    CHECK(only_error(with_setting("store: { redis: { url: \"redis://h:1\" } }")) ==
          "t.yaml:1:10: 'redis' settings need 'type: redis' in 'store' (the store is the "
          "in-process memory store otherwise)");
    CHECK(only_error(with_setting("store: { type: memory, redis: {} }")) ==
          "t.yaml:1:24: 'redis' settings need 'type: redis' in 'store' (the store is the "
          "in-process memory store otherwise)");
  }
}

TEST_CASE("on_store_error is per route: allow by default, deny or local", "[config]") {
  const auto route_with = [](const std::string& mode) {
    return with_route(
        "{ name: r, match: { path: /r }, upstream: api, on_store_error: " + mode +
        ", limits: [{ name: l, key: [ip], algorithm: gcra, limit: 5, window: 1s }] }\n");
  };
  CHECK(load_ok(with_route("{ name: r, match: { path: /r }, upstream: api }\n"))
            ->routes[0]
            .on_store_error == OnStoreError::allow);
  CHECK(load_ok(route_with("allow"))->routes[0].on_store_error == OnStoreError::allow);
  CHECK(load_ok(route_with("deny"))->routes[0].on_store_error == OnStoreError::deny);
  CHECK(load_ok(route_with("local"))->routes[0].on_store_error == OnStoreError::local);
  CHECK(only_error(route_with("dney")) ==
        "t.yaml:3:68: 'on_store_error' must be one of allow, deny, local, found 'dney' (did you "
        "mean 'deny'?)");
  CHECK(only_error(route_with("[deny]")) ==
        "t.yaml:3:68: 'on_store_error' must be one of allow, deny, local, found a list");
  CHECK(only_error(with_route("{ name: r, match: { path: /r }, upstream: api, on_store_eror: deny "
                              "}\n")) ==
        "t.yaml:3:52: unknown key 'on_store_eror' in route 'r' (did you mean 'on_store_error'?)");
}

TEST_CASE("summarize names the redis store without its password, and each route's fallback",
          "[config]") {
  const auto c = load_ok(R"(listen: 127.0.0.1:8080
threads: 2
store:
  type: redis
  max_keys: 5000
  redis: { url: "redis://:hunter2@10.0.0.5:6380/3", timeout: 20ms, connections: 2 }
upstreams:
  api: { servers: ["127.0.0.1:3000"] }
routes:
  - name: login
    match: { path: /api/login }
    upstream: api
    on_store_error: deny
    limits:
      - { name: per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1m }
  - name: rest
    match: { path: /* }
    upstream: api
)");
  const std::string summary = summarize(*c);
  CHECK(summary.find("hunter2") == std::string::npos);
  CHECK(summary ==
        "t.yaml is valid\n"
        "listen 127.0.0.1:8080 · 2 threads · redis store 10.0.0.5:6380 db 3 (timeout 20ms, 2 "
        "connections per thread, key salt from SLUICE_KEY_SALT or default, refusals repeated "
        "locally up to 1s; local fallback max 5000 keys) · headers: both\n"
        "trusted proxies none (the client is the socket peer)\n"
        "ip keys IPv4 per address, IPv6 per /64\n"
        "upstreams\n"
        "  api  127.0.0.1:3000  connect 2s, timeout 30s, idle 4s\n"
        "routes (first match wins)\n"
        "  login  * /api/login -> api  (on store error: deny)\n"
        "         per-ip  gcra  5 per 1m, burst 5  key ip\n"
        "  rest   * /* -> api\n"
        "         no limits\n");
}

TEST_CASE("sizes: a whole number of bytes and an optional binary unit", "[config]") {
  const std::pair<const char*, std::uint64_t> good[] = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"1KiB", 1024},
      {"32KiB", 32 * 1024},
      {"10MiB", 10 * 1024 * 1024},
      {"1GiB", std::uint64_t{1} << 30},
      {"1024GiB", std::uint64_t{1} << 40},
      {"18446744073709551615", 18446744073709551615ull},
  };
  for (const auto& [text, bytes] : good) {
    INFO(text);
    CHECK(parse_size(text) == bytes);
  }
  for (const char* bad : {"",
                          "B",
                          "KiB",
                          "32KB",
                          "32kb",
                          "32K",
                          "32k",
                          "10MB",
                          "1GB",
                          "32kib",
                          "32KIB",
                          "1.5KiB",
                          "-1",
                          "+1",
                          " 32KiB",
                          "32 KiB",
                          "32KiB ",
                          "1TiB",
                          "32KiBB",
                          "18446744073709551616",
                          "17179869184GiB",
                          "unlimited"}) {
    INFO(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }

  CHECK(format_size(0) == "0B");
  CHECK(format_size(1500) == "1500B");
  CHECK(format_size(32 * 1024) == "32KiB");
  CHECK(format_size(1536) == "1536B");
  CHECK(format_size(3 * 1024 * 1024) == "3MiB");
  CHECK(format_size(std::uint64_t{2} << 30) == "2GiB");
  for (const char* text : {"1B", "1KiB", "1023KiB", "1MiB", "5GiB"}) {
    CHECK(format_size(*parse_size(text)) == text);
  }
}

TEST_CASE("client limits: written out, each is taken as written", "[config]") {
  const auto c = load_ok(R"(client:
  max_connections: 500
  max_header_bytes: 64KiB
  max_uri_bytes: 16KiB
  max_body: 10MiB
  header_timeout: 5s
  idle_timeout: 2m
  body_timeout: 30s
  send_timeout: 1500ms
upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes: [{ name: r, match: { path: /r }, upstream: api }]
)");
  CHECK(c->client.max_connections == 500);
  CHECK(c->client.max_header_bytes == 64 * 1024);
  CHECK(c->client.max_uri_bytes == 16 * 1024);
  CHECK(c->client.max_body == 10 * 1024 * 1024);
  CHECK(c->client.header_timeout == 5s);
  CHECK(c->client.idle_timeout == 2min);
  CHECK(c->client.body_timeout == 30s);
  CHECK(c->client.send_timeout == 1500ms);

  SECTION("the bounds themselves are accepted") {
    const auto low = load_ok(with_setting(
        "client: { max_connections: 1, max_header_bytes: 1KiB, max_uri_bytes: 256, max_body: 1 }"));
    CHECK(low->client.max_connections == 1);
    CHECK(low->client.max_header_bytes == 1024);
    CHECK(low->client.max_uri_bytes == 256);
    CHECK(low->client.max_body == 1);
    const auto high = load_ok(with_setting(
        "client: { max_connections: 1000000, max_header_bytes: 1MiB, max_uri_bytes: 1MiB }"));
    CHECK(high->client.max_connections == 1'000'000);
    CHECK(high->client.max_uri_bytes == 1024 * 1024);
  }
  SECTION("plain byte counts and 'unlimited'") {
    const auto bytes =
        load_ok(with_setting("client: { max_header_bytes: 4096, max_body: unlimited }"));
    CHECK(bytes->client.max_header_bytes == 4096);
    CHECK(bytes->client.max_body == 0);
  }
  SECTION("a header section smaller than the default target bound also bounds the target") {
    const auto small = load_ok(with_setting("client: { max_header_bytes: 4KiB }"));
    CHECK(small->client.max_uri_bytes == 4 * 1024);
  }
  SECTION("an empty client map keeps every default") {
    const auto empty = load_ok(with_setting("client: {}"));
    CHECK(empty->client.max_connections == 10000);
    CHECK(empty->client.header_timeout == 10s);
  }
}

TEST_CASE("client limits: bad values are reported at the value, with what would be right",
          "[config]") {
  // with_setting puts the line first, so the column is 1 + where the value starts.
  const auto error_at = [](const std::string& line, std::string_view value) {
    return "t.yaml:1:" + std::to_string(1 + line.find(value)) + ": ";
  };
  struct Case {
    std::string line;
    std::string_view value;  // where the error points
    std::string message;
  };
  const Case cases[] = {
      {"client: { max_connections: 0 }", "0 }",
       "'max_connections' must be from 1 to 1000000 per process, found 0"},
      {"client: { max_connections: 1000001 }", "1000001",
       "'max_connections' must be from 1 to 1000000 per process, found 1000001"},
      {"client: { max_connections: lots }", "lots",
       "'max_connections' must be a whole number, found 'lots'"},
      {"client: { max_header_bytes: 32KB }", "32KB",
       "bad size '32KB' for 'max_header_bytes': units are binary and spelled B, KiB, MiB, GiB: "
       "write 32KiB for 32768 bytes, or 32000 for 32000 bytes"},
      {"client: { max_header_bytes: 2m }", "2m",
       "bad size '2m' for 'max_header_bytes': units are binary and spelled B, KiB, MiB, GiB: "
       "write 2MiB for 2097152 bytes, or 2000000 for 2000000 bytes"},
      {"client: { max_header_bytes: 32kib }", "32kib",
       "bad size '32kib' for 'max_header_bytes': units are binary and spelled B, KiB, MiB, GiB: "
       "write 32KiB for 32768 bytes"},
      {"client: { max_header_bytes: 1.5KiB }", "1.5KiB",
       "bad size '1.5KiB' for 'max_header_bytes': expected a whole number of bytes and an "
       "optional unit (B, KiB, MiB or GiB), e.g. 32KiB"},
      {"client: { max_header_bytes: 512 }", "512",
       "'max_header_bytes' must be from 1KiB to 1MiB, found 512"},
      {"client: { max_header_bytes: 2MiB }", "2MiB",
       "'max_header_bytes' must be from 1KiB to 1MiB, found 2MiB"},
      {"client: { max_header_bytes: [1] }", "[1]",
       "'max_header_bytes' must be a size such as 32KiB, found a list"},
      {"client: { max_uri_bytes: 255 }", "255",
       "'max_uri_bytes' must be from 256B to 32KiB (max_header_bytes, which includes the request "
       "target), found 255"},
      {"client: { max_uri_bytes: 64KiB }", "64KiB",
       "'max_uri_bytes' must be from 256B to 32KiB (max_header_bytes, which includes the request "
       "target), found 64KiB"},
      {"client: { max_header_bytes: 4KiB, max_uri_bytes: 8KiB }", "8KiB",
       "'max_uri_bytes' must be from 256B to 4KiB (max_header_bytes, which includes the request "
       "target), found 8KiB"},
      {"client: { max_body: none }", "none",
       "bad size 'none' for 'max_body': expected a whole number of bytes and an optional unit (B, "
       "KiB, MiB or GiB), e.g. 32KiB, or 'unlimited'"},
      {"client: { max_body: 0 }", "0 }",
       "'max_body' must be at least 1B (or 'unlimited'), found 0"},
      {"client: { header_timeout: 10 }", "10 }",
       "bad duration '10' for 'header_timeout': add a unit (ms, s, m, h or d), e.g. 10s"},
      {"client: { idle_timeout: 0s }", "0s",
       "bad duration '0s' for 'idle_timeout': expected a positive whole number and a unit (ms, s, "
       "m, h or d), e.g. 250ms, 10s, 5m"},
      {"client: { body_timeout: 2d }", "2d", "'body_timeout' must be from 1ms to 1d, found 2d"},
      {"client: { send_timeout: 1.5s }", "1.5s",
       "bad duration '1.5s' for 'send_timeout': expected a positive whole number and a unit (ms, "
       "s, m, h or d), e.g. 250ms, 10s, 5m"},
      {"client: { header_timout: 5s }", "header_timout",
       "unknown key 'header_timout' in 'client' (did you mean 'header_timeout'?)"},
      {"client: { max_conections: 5 }", "max_conections",
       "unknown key 'max_conections' in 'client' (did you mean 'max_connections'?)"},
      {"client: { timeout: 5s }", "timeout",
       "unknown key 'timeout' in 'client'; expected one of max_connections, max_header_bytes, "
       "max_uri_bytes, max_body, header_timeout, idle_timeout, body_timeout, send_timeout"},
      {"client: 10000", "10000",
       "'client' must be a map (e.g. { max_connections: 10000, header_timeout: 10s }), found the "
       "value '10000'"},
      {"clinet: { max_body: 1MiB }", "clinet",
       "unknown key 'clinet' at the top level (did you mean 'client'?)"},
  };
  for (const Case& c : cases) {
    CHECK(only_error(with_setting(c.line)) == error_at(c.line, c.value) + c.message);
  }
}

TEST_CASE("client limits: a broken max_header_bytes does not also fail max_uri_bytes", "[config]") {
  CHECK(only_error(with_setting("client: { max_header_bytes: 4KB, max_uri_bytes: 16KiB }")) ==
        "t.yaml:1:29: bad size '4KB' for 'max_header_bytes': units are binary and spelled B, KiB, "
        "MiB, GiB: write 4KiB for 4096 bytes, or 4000 for 4000 bytes");
}

TEST_CASE("max_body: routes take client.max_body unless they say otherwise", "[config]") {
  const std::string routes = R"(upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes:
  - { name: inherits, match: { path: /a }, upstream: api }
  - { name: smaller, match: { path: /b }, upstream: api, max_body: 1KiB }
  - { name: larger, match: { path: /c }, upstream: api, max_body: 2GiB }
  - { name: open, match: { path: /d }, upstream: api, max_body: unlimited }
)";
  SECTION("client.max_body left out: unlimited, so only the routes that set one have one") {
    const auto c = load_ok(routes);
    CHECK(c->routes[0].max_body == 0);
    CHECK(c->routes[1].max_body == 1024);
    CHECK(c->routes[2].max_body == std::uint64_t{2} << 30);
    CHECK(c->routes[3].max_body == 0);
  }
  SECTION("client.max_body set: the default of every route that does not override it") {
    // Written after the routes on purpose: the order of sections does not matter.
    const auto c = load_ok(routes + "client: { max_body: 10MiB }\n");
    CHECK(c->client.max_body == 10 * 1024 * 1024);
    CHECK(c->routes[0].max_body == 10 * 1024 * 1024);
    CHECK(c->routes[1].max_body == 1024);
    CHECK(c->routes[2].max_body == std::uint64_t{2} << 30);
    CHECK(c->routes[3].max_body == 0);
  }
  SECTION("errors") {
    CHECK(
        only_error(with_route("{ name: r, match: { path: /r }, upstream: api, max_body: 10MB }")) ==
        "t.yaml:3:62: bad size '10MB' for 'max_body': units are binary and spelled B, KiB, MiB, "
        "GiB: write 10MiB for 10485760 bytes, or 10000000 for 10000000 bytes");
    CHECK(only_error(with_route("{ name: r, match: { path: /r }, upstream: api, max_body: 0 }")) ==
          "t.yaml:3:62: 'max_body' must be at least 1B (or 'unlimited'), found 0");
    CHECK(only_error(with_route("{ name: r, match: { path: /r }, upstream: api, max_bdy: 1 }")) ==
          "t.yaml:3:52: unknown key 'max_bdy' in route 'r' (did you mean 'max_body'?)");
  }
}

TEST_CASE("case-insensitive paths: top-level default, per-route override", "[config]") {
  const std::string routes = R"(upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes:
  - { name: plain, match: { path: /a }, upstream: api }
  - { name: insensitive, match: { path: /b, case_sensitive: false }, upstream: api }
  - { name: sensitive, match: { path: /c, case_sensitive: true }, upstream: api }
)";
  SECTION("by default paths ignore case, as Express routes") {
    const auto c = load_ok(routes);
    CHECK_FALSE(c->case_sensitive_paths);
    CHECK_FALSE(c->routes[0].path.case_sensitive);
    CHECK_FALSE(c->routes[1].path.case_sensitive);
    CHECK(c->routes[2].path.case_sensitive);
  }
  SECTION("case_sensitive_paths: true is the default of routes that do not say") {
    const auto c = load_ok(routes + "case_sensitive_paths: true\n");
    CHECK(c->case_sensitive_paths);
    CHECK(c->routes[0].path.case_sensitive);
    CHECK_FALSE(c->routes[1].path.case_sensitive);
    CHECK(c->routes[2].path.case_sensitive);
  }
  SECTION("only true or false") {
    CHECK(only_error(with_setting("case_sensitive_paths: no")) ==
          "t.yaml:1:23: 'case_sensitive_paths' must be true or false, found 'no'");
    CHECK(only_error(with_route("{ name: r, match: { path: /r, case_sensitive: 0 }, upstream: api "
                                "}")) ==
          "t.yaml:3:51: 'case_sensitive' must be true or false, found '0'");
    CHECK(only_error(with_route("{ name: r, match: { path: /r, case_sensitve: false }, upstream: "
                                "api }")) ==
          "t.yaml:3:35: unknown key 'case_sensitve' in 'match' of route 'r' (did you mean "
          "'case_sensitive'?)");
  }
}

TEST_CASE("path patterns cannot hold what requests never match", "[config]") {
  CHECK(only_error(with_route("{ name: r, match: { path: \"/api/login;x\" }, upstream: api }")) ==
        "t.yaml:3:31: bad path pattern '/api/login;x': it cannot contain ';' (matrix parameters "
        "such as ';jsessionid=1' are ignored when matching, so such a pattern would never match)");
  CHECK(only_error(with_route("{ name: r, match: { path: '/api\\login' }, upstream: api }")) ==
        "t.yaml:3:31: bad path pattern '/api\\login': it contains a '\\' (requests with one are "
        "rejected with 400)");
}

TEST_CASE("summarize shows client limits that differ from the defaults and per-route notes",
          "[config]") {
  const auto c = load_ok(R"(listen: 127.0.0.1:8080
threads: 1
client:
  max_connections: 500
  max_header_bytes: 32KiB
  max_uri_bytes: 4KiB
  max_body: 10MiB
  header_timeout: 5s
  send_timeout: 60s
upstreams:
  api: { servers: ["127.0.0.1:3000"] }
routes:
  - name: upload
    match: { path: /upload, methods: [POST] }
    upstream: api
    max_body: 1GiB
  - name: legacy
    match: { path: /Legacy/*, case_sensitive: true }
    upstream: api
    max_body: unlimited
  - name: rest
    match: { path: /* }
    upstream: api
)");
  CHECK(summarize(*c) ==
        "t.yaml is valid\n"
        "listen 127.0.0.1:8080 · 1 thread · memory store (max 1000000 keys) · headers: both\n"
        "trusted proxies none (the client is the socket peer)\n"
        "ip keys IPv4 per address, IPv6 per /64\n"
        "client max_connections 500, max_uri_bytes 4KiB, max_body 10MiB, header_timeout 5s\n"
        "upstreams\n"
        "  api  127.0.0.1:3000  connect 2s, timeout 30s, idle 4s\n"
        "routes (first match wins)\n"
        "  upload  POST /upload -> api  (max body 1GiB)\n"
        "          no limits\n"
        "  legacy  *    /Legacy/* -> api  (case-sensitive)\n"
        "          no limits\n"
        "  rest    *    /* -> api  (max body 10MiB)\n"
        "          no limits\n");
}

TEST_CASE("a route knows each header its limits are keyed on, once", "[config]") {
  // The session refuses a request that repeats any of them; a header named twice, in two
  // spellings, is one header.
  const auto c = load_ok(with_limit(
      "{ name: x, key: [\"user|ip\", \"header:x-user-id\", method], algorithm: gcra, limit: 5, "
      "window: 1s }\n"
      "      - { name: y, key: [\"header:X-Tenant\", path], algorithm: gcra, limit: 5, window: 1s "
      "}"));
  REQUIRE(c->routes.size() == 1);
  CHECK(c->routes[0].key_headers == std::vector<std::string>{"X-User-Id", "X-Tenant"});
  CHECK(load_ok(with_limit("{ name: x, key: [ip, method], algorithm: gcra, limit: 5, window: 1s }"))
            ->routes[0]
            .key_headers.empty());
}
