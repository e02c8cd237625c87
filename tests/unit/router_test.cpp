#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/classify/router.hpp>

using sluice::classify::path_matches;
using sluice::classify::Router;
using sluice::config::Config;
using sluice::config::PathPattern;
using sluice::config::Route;

namespace {

using Kind = PathPattern::Kind;

PathPattern pattern(Kind kind, std::string text) {
  return PathPattern{kind, std::move(text)};
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
