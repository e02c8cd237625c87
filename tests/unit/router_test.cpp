#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/classify/path.hpp>
#include <sluice/classify/router.hpp>
#include <sluice/config/loader.hpp>

using sluice::classify::normalize_target;
using sluice::classify::path_matches;
using sluice::classify::PathError;
using sluice::classify::Router;
using sluice::config::Config;
using sluice::config::PathPattern;
using sluice::config::Route;

namespace {

using Kind = PathPattern::Kind;

PathPattern pattern(Kind kind, std::string text, bool case_sensitive = true) {
  return PathPattern{kind, std::move(text), case_sensitive};
}

Route route(std::string name, Kind kind, std::string path, std::vector<std::string> methods = {}) {
  Route r;
  r.name = std::move(name);
  r.path = pattern(kind, std::move(path));
  r.methods = std::move(methods);
  return r;
}

std::string matched(const Router& router, std::string_view method, std::string_view path) {
  const Route* r = router.match(method, path);
  return r == nullptr ? "<none>" : r->name;
}

}  // namespace

TEST_CASE("path_matches: exact patterns", "[router]") {
  const auto login = pattern(Kind::exact, "/api/login");
  CHECK(path_matches(login, "/api/login"));
  // A trailing slash reaches the same handler in non-strict servers such as Express.
  CHECK(path_matches(login, "/api/login/"));
  CHECK_FALSE(path_matches(login, "/api/logins"));
  CHECK_FALSE(path_matches(login, "/api/login/x"));
  CHECK_FALSE(path_matches(login, "/api"));
  CHECK_FALSE(path_matches(login, "/API/LOGIN"));

  const auto root = pattern(Kind::exact, "/");
  CHECK(path_matches(root, "/"));
  CHECK_FALSE(path_matches(root, "/a"));
}

TEST_CASE("path_matches: prefix patterns", "[router]") {
  const auto api = pattern(Kind::prefix, "/api/*");
  CHECK(path_matches(api, "/api"));
  CHECK(path_matches(api, "/api/"));
  CHECK(path_matches(api, "/api/search"));
  CHECK(path_matches(api, "/api/search/deep/er/"));
  CHECK_FALSE(path_matches(api, "/apis"));
  CHECK_FALSE(path_matches(api, "/apix/search"));
  CHECK_FALSE(path_matches(api, "/"));
  CHECK_FALSE(path_matches(api, "/v1/api/search"));

  const auto everything = pattern(Kind::prefix, "/*");
  CHECK(path_matches(everything, "/"));
  CHECK(path_matches(everything, "/anything/at/all"));

  const auto nested = pattern(Kind::prefix, "/api/search/*");
  CHECK(path_matches(nested, "/api/search/q"));
  CHECK_FALSE(path_matches(nested, "/api/searching"));
  CHECK_FALSE(path_matches(nested, "/api"));
}

TEST_CASE("path_matches: segment patterns", "[router]") {
  const auto user = pattern(Kind::segments, "/users/:id");
  CHECK(path_matches(user, "/users/42"));
  CHECK(path_matches(user, "/users/42/"));
  CHECK(path_matches(user, "/users/a.b-c"));
  CHECK_FALSE(path_matches(user, "/users"));
  CHECK_FALSE(path_matches(user, "/users/"));
  CHECK_FALSE(path_matches(user, "/users/42/posts"));
  CHECK_FALSE(path_matches(user, "/user/42"));

  const auto post = pattern(Kind::segments, "/users/:id/posts/:post");
  CHECK(path_matches(post, "/users/1/posts/2"));
  CHECK_FALSE(path_matches(post, "/users/1/posts"));
  CHECK_FALSE(path_matches(post, "/users/1/comments/2"));

  const auto below = pattern(Kind::segments, "/users/:id/*");
  CHECK(path_matches(below, "/users/42"));
  CHECK(path_matches(below, "/users/42/posts/7"));
  CHECK_FALSE(path_matches(below, "/users"));
  CHECK_FALSE(path_matches(below, "/users/"));
  CHECK_FALSE(path_matches(below, "/accounts/42/posts"));
}

TEST_CASE("Router: first matching route in file order", "[router]") {
  Config config;
  config.routes.push_back(route("login", Kind::exact, "/api/login", {"POST"}));
  config.routes.push_back(route("user", Kind::segments, "/api/users/:id"));
  config.routes.push_back(route("read", Kind::prefix, "/api/*", {"GET"}));
  config.routes.push_back(route("write", Kind::prefix, "/api/*", {"POST", "PUT"}));
  config.routes.push_back(route("fallback", Kind::prefix, "/api/*"));
  const Router router(config);

  SECTION("exact route with its method") {
    CHECK(matched(router, "POST", "/api/login") == "login");
  }
  SECTION("another method falls through to the next route that accepts it") {
    CHECK(matched(router, "GET", "/api/login") == "read");
    CHECK(matched(router, "PUT", "/api/login") == "write");
    CHECK(matched(router, "DELETE", "/api/login") == "fallback");
  }
  SECTION("methods are compared case-sensitively") {
    CHECK(matched(router, "post", "/api/login") == "fallback");
  }
  SECTION("a route accepting GET also accepts HEAD") {
    CHECK(matched(router, "HEAD", "/api/search") == "read");
    CHECK(matched(router, "HEAD", "/api/login") == "read");
  }
  SECTION("a route with no methods accepts any") {
    CHECK(matched(router, "PATCH", "/api/users/7") == "user");
    CHECK(matched(router, "OPTIONS", "/api/users/7") == "user");
  }
  SECTION("first match wins over later, broader ones") {
    CHECK(matched(router, "GET", "/api/users/7") == "user");
    CHECK(matched(router, "GET", "/api/users/7/avatar") == "read");
  }
  SECTION("no route") {
    CHECK(matched(router, "GET", "/") == "<none>");
    CHECK(matched(router, "GET", "/apis") == "<none>");
    CHECK(matched(router, "GET", "/other/api") == "<none>");
  }
  SECTION("returns the config's own route object") {
    CHECK(router.match("POST", "/api/login") == &config.routes[0]);
  }
}

TEST_CASE("Router: HEAD is not added to routes without GET", "[router]") {
  Config config;
  config.routes.push_back(route("post-only", Kind::exact, "/submit", {"POST"}));
  const Router router(config);
  CHECK(matched(router, "HEAD", "/submit") == "<none>");
  CHECK(matched(router, "GET", "/submit") == "<none>");
  CHECK(matched(router, "POST", "/submit") == "post-only");
}

TEST_CASE("Router: an empty config matches nothing", "[router]") {
  const Config config;
  const Router router(config);
  CHECK(router.match("GET", "/") == nullptr);
}

TEST_CASE("path_matches: matrix parameters are ignored, segment by segment", "[router]") {
  const auto login = pattern(Kind::exact, "/api/login");
  CHECK(path_matches(login, "/api/login;jsessionid=x"));
  CHECK(path_matches(login, "/api/login;jsessionid=x/"));
  CHECK(path_matches(login, "/api;v=2/login"));
  CHECK(path_matches(login, "/api/login/;x"));
  // A segment that is only parameters disappears, as "//" would.
  CHECK(path_matches(login, "/api/;x/login"));
  CHECK(path_matches(login, "/;x/api/login"));
  CHECK_FALSE(path_matches(login, "/api/login;x/more"));
  CHECK_FALSE(path_matches(login, "/api/logi;n"));
  // An encoded ';' is part of the name, for servlet containers too.
  CHECK_FALSE(path_matches(login, "/api/login%3Bx"));

  const auto user = pattern(Kind::segments, "/users/:id");
  CHECK(path_matches(user, "/users/42;v=1"));
  CHECK_FALSE(path_matches(user, "/users/;v=1"));  // no id, only parameters

  const auto api = pattern(Kind::prefix, "/api/*");
  CHECK(path_matches(api, "/api;x"));
  CHECK(path_matches(api, "/api;x/search"));
  CHECK_FALSE(path_matches(api, "/apix;/search"));

  const auto root = pattern(Kind::exact, "/");
  CHECK(path_matches(root, "/;x"));
}

TEST_CASE("path_matches: case-insensitive patterns compare ASCII letters without case",
          "[router]") {
  const auto login = pattern(Kind::exact, "/api/login", false);
  CHECK(path_matches(login, "/api/login"));
  CHECK(path_matches(login, "/API/Login"));
  CHECK(path_matches(login, "/Api/LOGIN/"));
  CHECK(path_matches(login, "/API/LOGIN;jsessionid=1"));
  CHECK_FALSE(path_matches(login, "/API/LOGINS"));
  CHECK_FALSE(path_matches(login, "/api/log1n"));
  // Only ASCII: an encoded byte is compared as written (normalisation upper-cases its hex).
  CHECK_FALSE(path_matches(pattern(Kind::exact, "/caf%C3%A9", false), "/CAF%C3%89"));
  CHECK(path_matches(pattern(Kind::exact, "/caf%C3%A9", false), "/CAF%C3%A9"));

  const auto upper = pattern(Kind::prefix, "/Legacy/*", false);
  CHECK(path_matches(upper, "/legacy"));
  CHECK(path_matches(upper, "/LEGACY/Reports"));

  const auto user = pattern(Kind::segments, "/Users/:id/posts", false);
  CHECK(path_matches(user, "/users/AbC/POSTS"));
  CHECK_FALSE(path_matches(user, "/users/AbC/comments"));

  // The same patterns stay case-sensitive by default.
  CHECK_FALSE(path_matches(pattern(Kind::exact, "/api/login"), "/API/Login"));
  CHECK_FALSE(path_matches(pattern(Kind::prefix, "/Legacy/*"), "/legacy/x"));
}

TEST_CASE("Router: case-sensitive and case-insensitive routes side by side", "[router]") {
  Config config;
  config.routes.push_back(route("login", Kind::exact, "/api/login"));
  config.routes.back().path.case_sensitive = false;
  config.routes.push_back(route("Admin", Kind::exact, "/Admin"));
  config.routes.push_back(route("fallback", Kind::prefix, "/*"));
  const Router router(config);
  CHECK(matched(router, "POST", "/API/LOGIN") == "login");
  CHECK(matched(router, "POST", "/api/Login") == "login");
  CHECK(matched(router, "GET", "/Admin") == "Admin");
  CHECK(matched(router, "GET", "/admin") == "fallback");
}

namespace {

// The route a raw request target reaches after normalisation, "400" when it is refused.
std::string route_of_target(const Router& router, std::string_view method,
                            std::string_view target) {
  std::string path;
  std::string_view query;
  if (normalize_target(target, path, query) != PathError::none) return "400";
  std::string scratch;
  std::string routing;
  const Route* r =
      router.match_request(method, sluice::classify::routing_path(path, scratch, routing), path);
  return r == nullptr ? "<none>" : r->name;
}

}  // namespace

TEST_CASE("path tricks never reach the login handler without the login route's limits",
          "[router]") {
  // Loaded from YAML, so patterns are normalised and flags resolved as in production.
  const auto loaded = sluice::config::load_string(R"(
upstreams: { api: { servers: ["127.0.0.1:3000"] } }
routes:
  - name: login
    match: { path: /api/login, methods: [POST] }
    upstream: api
    limits: [{ name: per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1m }]
  - name: exact
    match: { path: /api/exact, case_sensitive: true }
    upstream: api
  - name: legacy-login
    match: { path: /Legacy/Login }
    upstream: api
    limits: [{ name: legacy-per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1m }]
  - name: user-reset
    match: { path: "/users/:id/reset" }
    upstream: api
    limits: [{ name: reset-per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1m }]
  - name: user
    match: { path: "/users/:id" }
    upstream: api
    limits: [{ name: user-per-ip, key: [ip], algorithm: gcra, limit: 5, window: 1m }]
  - name: default
    match: { path: /* }
    upstream: api
)",
                                                  "tricks.yaml");
  REQUIRE(loaded.ok());
  const Router router(*loaded.config);

  struct Case {
    std::string_view target;
    std::string_view route;  // "400": refused before routing
  };
  const Case cases[] = {
      {"/api/login", "login"},
      // Dot segments, plain and encoded, in any case.
      {"/api/x/../login", "login"},
      {"/api/x/%2e%2e/login", "login"},
      {"/api/x/%2E%2E/login", "login"},
      {"/api/x/%2E./login", "login"},
      {"/api/x/.%2e/login", "login"},
      {"/api/./login", "login"},
      {"/api/%2e/login", "login"},
      {"/x/../api/login", "login"},
      {"/../api/login", "login"},
      // Repeated slashes and a trailing one.
      {"//api//login", "login"},
      {"/api/login/", "login"},
      {"/api/login//", "login"},
      // Encoded unreserved letters.
      {"/api/%6cogin", "login"},
      {"/%61%70%69/login", "login"},
      // Matrix parameters (Java upstreams strip them), also on dot segments.
      {"/api/login;jsessionid=x", "login"},
      {"/api/login;jsessionid=x/", "login"},
      {"/api;x/login", "login"},
      {"/api/;x/login", "login"},
      {"/api/x/..;/login", "login"},
      {"/api/x/%2e%2e;x/login", "login"},
      // The query is not the path; a fragment has no place in a request target.
      {"/api/login?x=/../other", "login"},
      {"/api/login#/../other", "400"},
      {"http://evil.example/api/login", "login"},
      // A raw backslash is refused; an encoded one stays a name character. An encoded slash
      // separates segments for routing (some upstreams decode it before routing).
      {"/api\\login", "400"},
      {"/api/x/..\\login", "400"},
      {"/api%2Flogin", "login"},
      {"/api%2flogin", "login"},
      {"/api/x%2F..%2Flogin", "login"},
      {"/api%5Clogin", "default"},
      // Case: ignored by default (as Express routes); the exact route keeps it.
      {"/API/LOGIN", "login"},
      {"/Api/Exact", "default"},
      {"/api/exact", "exact"},
      {"/legacy/login", "legacy-login"},
      {"/LEGACY/LOGIN;jsessionid=1/", "legacy-login"},
      {"/legacy/x/%2E%2E/LOGIN", "legacy-login"},
      // Segment parameters.
      {"/users/42", "user"},
      {"/users/42;v=1", "user"},
      {"/users//42", "user"},
      {"/users/%34%32/", "user"},
      // Express reads "%2F" and ';' inside a segment as ordinary characters: its "/users/:id"
      // handler gets id "7/x", "7/.." or ";7". Whatever the upstream's reading, the route is one
      // that some reading matches first.
      {"/users/7%2Fx", "user"},
      {"/users/7%2F..", "user"},
      {"/users/;7", "user"},
      {"/users/;", "user"},
      // WSGI reads "%2F" as '/' and ';' as a character: Django runs "/users/:id/reset" for this.
      {"/users/;7%2Freset", "user-reset"},
  };
  for (const Case& c : cases) {
    INFO("target: " << c.target);
    CHECK(route_of_target(router, "POST", c.target) == c.route);
  }
}
