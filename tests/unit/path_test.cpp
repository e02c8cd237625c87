#include <string>

#include <catch2/catch.hpp>

#include <sluice/classify/path.hpp>

using sluice::classify::normalize_target;
using sluice::classify::PathError;
using sluice::classify::RouteSegments;

namespace {

struct Case {
  std::string_view target;
  std::string_view path;  // expected when error == none
  PathError error = PathError::none;
};

const char* name(PathError e) {
  switch (e) {
    case PathError::none:
      return "none";
    case PathError::not_origin_form:
      return "not_origin_form";
    case PathError::bad_percent_encoding:
      return "bad_percent_encoding";
    case PathError::control_character:
      return "control_character";
    case PathError::backslash:
      return "backslash";
  }
  return "?";
}

}  // namespace

TEST_CASE("normalize_target: a table of targets", "[path]") {
  using E = PathError;
  const Case cases[] = {
      // The three spellings of /api/login from the issue, and more.
      {"/api//login", "/api/login"},
      {"/api/./login", "/api/login"},
      {"/api/%6Cogin", "/api/login"},
      {"/api/%6cogin", "/api/login"},
      {"/api/x/../login", "/api/login"},
      {"/%61pi/login", "/api/login"},
      {"//api///login", "/api/login"},
      {"/api/login", "/api/login"},
      // Decoded dots are segments like any other.
      {"/api/%2e%2e/admin", "/admin"},
      {"/api/%2E/login", "/api/login"},
      {"/api/.%2e/admin", "/admin"},
      // ".." never climbs above the root.
      {"/..", "/"},
      {"/../../etc/passwd", "/etc/passwd"},
      {"/a/../../b", "/b"},
      {"/a/b/c/../../d", "/a/d"},
      // Trailing slashes are kept; a trailing "." or ".." leaves one.
      {"/", "/"},
      {"/a/b/", "/a/b/"},
      {"/a/.", "/a/"},
      {"/a/b/..", "/a/"},
      {"/a/b/../", "/a/"},
      {"/a//", "/a/"},
      {"/.", "/"},
      // Segments that merely contain dots are ordinary.
      {"/a/.../b", "/a/.../b"},
      {"/a/..b/.c", "/a/..b/.c"},
      // Reserved characters stay encoded, with upper-case hex; unreserved ones are decoded.
      {"/a%2fb", "/a%2Fb"},
      {"/a%2Fb/../c", "/c"},
      {"/%7e%5F%2D%2E%41z9", "/~_-.Az9"},
      {"/a%20b%3f", "/a%20b%3F"},
      {"/caf%c3%a9", "/caf%C3%A9"},
      {"/a%0ab", "/a%0Ab"},
      {"/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="},
      // An encoded slash is a name character to Express and most servers: it stays encoded and
      // never splits a segment (nor climbs with a following "..").
      {"/api%2Flogin", "/api%2Flogin"},
      {"/api%2flogin/..", "/"},
      {"/a/%2F../b", "/a/%2F../b"},
      // So is an encoded backslash; only a raw one is refused (see below).
      {"/api%5Clogin", "/api%5Clogin"},
      {"/api%5c..%5clogin", "/api%5C..%5Clogin"},
      // Matrix parameters stay in the path the upstream receives ...
      {"/api/login;jsessionid=x", "/api/login;jsessionid=x"},
      {"/api;v=1/login", "/api;v=1/login"},
      {"/api/%3B/x", "/api/%3B/x"},
      // ... but a dot segment with parameters is still a dot segment, as servlet containers read
      // it ("/..;/" is the classic way past a proxy's path rules to a Tomcat upstream).
      {"/api/x/..;/admin", "/api/admin"},
      {"/api/x/..;jsessionid=1/admin", "/api/admin"},
      {"/api/x/%2e%2e;/admin", "/api/admin"},
      {"/api/.;x/login", "/api/login"},
      {"/..;/..;/etc", "/etc"},
      {"/a/..;", "/"},
      {"/a/...;/b", "/a/...;/b"},
      {"/a/;/b", "/a/;/b"},
      // The query is split off raw.
      {"/a/./b?x=%41&y=/../", "/a/b"},
      {"/search?", "/search"},
      // Absolute-form.
      {"http://example.com/api//login?x=1", "/api/login"},
      {"HTTPS://example.com:8443/%61pi", "/api"},
      {"http://example.com", "/"},
      {"http://example.com?q=1", "/"},
      // Not origin-form.
      {"*", "", E::not_origin_form},
      // A fragment is never part of a request target.
      {"/a#frag", "", E::not_origin_form},
      {"/a?x=1#frag", "", E::not_origin_form},
      {"", "", E::not_origin_form},
      {"api/login", "", E::not_origin_form},
      {"example.com:443", "", E::not_origin_form},
      {"ftp://example.com/a", "", E::not_origin_form},
      {"http:///a", "", E::not_origin_form},
      // Malformed escapes.
      {"/a%", "", E::bad_percent_encoding},
      {"/a%4", "", E::bad_percent_encoding},
      {"/a%zz", "", E::bad_percent_encoding},
      {"/a%4/b", "", E::bad_percent_encoding},
      {"/a%4?x", "", E::bad_percent_encoding},
      {"/a%g1", "", E::bad_percent_encoding},
      // Control characters, raw or decoded NUL.
      {"/a b", "", E::control_character},
      {"/a\tb", "", E::control_character},
      {std::string_view("/a\0b", 4), "", E::control_character},
      {"/a\x7f", "", E::control_character},
      {"/a%00b", "", E::control_character},
      // A raw backslash: '/' to some servers, a name character to others. Refused (400).
      {"/api\\login", "", E::backslash},
      {"/api/..\\admin", "", E::backslash},
      {"\\", "", E::not_origin_form},
      {"/\\api/login", "", E::backslash},
      {"http://h/a\\b", "", E::backslash},
      {"/a?x=\\", "/a"},  // the query is not the path
  };
  std::string path;
  std::string_view query;
  for (const Case& c : cases) {
    INFO("target: '" << c.target << "'");
    const PathError error = normalize_target(c.target, path, query);
    CHECK(name(error) == std::string(name(c.error)));
    if (c.error == PathError::none) {
      CHECK(path == c.path);
    } else {
      CHECK(path.empty());
    }
  }
}

TEST_CASE("normalize_target: the query is everything after the first '?', untouched", "[path]") {
  std::string path;
  std::string_view query = "stale";
  REQUIRE(normalize_target("/a/./b?x=%41&y=/../?z", path, query) == PathError::none);
  CHECK(path == "/a/b");
  CHECK(query == "x=%41&y=/../?z");

  REQUIRE(normalize_target("/a", path, query) == PathError::none);
  CHECK(query.empty());

  REQUIRE(normalize_target("http://h/p?q=1", path, query) == PathError::none);
  CHECK(path == "/p");
  CHECK(query == "q=1");
}

TEST_CASE("normalize_target: the output buffer is reused", "[path]") {
  std::string path;
  std::string_view query;
  REQUIRE(normalize_target("/a/much/longer/path/than/the/next/one", path, query) ==
          PathError::none);
  const char* storage = path.data();
  const std::size_t capacity = path.capacity();
  REQUIRE(normalize_target("/short", path, query) == PathError::none);
  CHECK(path == "/short");
  CHECK(path.data() == storage);
  CHECK(path.capacity() == capacity);
}

TEST_CASE("normalize_target: hostile input stays linear and bounded", "[path]") {
  std::string target;
  for (int i = 0; i < 20000; ++i)
    target += "/a";
  for (int i = 0; i < 30000; ++i)
    target += "/..";
  target += "/end";
  std::string path;
  std::string_view query;
  REQUIRE(normalize_target(target, path, query) == PathError::none);
  CHECK(path == "/end");

  std::string slashes(100000, '/');
  REQUIRE(normalize_target(slashes, path, query) == PathError::none);
  CHECK(path == "/");
}

TEST_CASE("RouteSegments: the segments a route sees", "[path]") {
  const auto segments = [](std::string_view path) {
    std::string out;
    RouteSegments walk(path);
    std::string_view segment;
    while (walk.next(segment)) {
      out += '[';
      out += segment;
      out += ']';
    }
    return out;
  };
  CHECK(segments("/") == "");
  CHECK(segments("") == "");
  CHECK(segments("/api/login") == "[api][login]");
  CHECK(segments("/api/login/") == "[api][login]");
  CHECK(segments("/api/login;jsessionid=x") == "[api][login]");
  CHECK(segments("/api;v=1/login;a;b/") == "[api][login]");
  CHECK(segments("/api/;x/login") == "[api][login]");
  CHECK(segments("/;x") == "");
  CHECK(segments("/api/login/;x") == "[api][login]");
  CHECK(segments("/a%3Bb/c") == "[a%3Bb][c]");  // an encoded ';' is part of the name
  CHECK(segments("/a%2Fb") == "[a%2Fb]");
  CHECK(segments("/API/Login") == "[API][Login]");  // case is the router's business
}

TEST_CASE("RouteSegments: linear on long paths with and without parameters", "[path]") {
  std::string path;
  for (int i = 0; i < 50000; ++i)
    path += "/a";
  path += ";x";
  std::size_t count = 0;
  RouteSegments walk(path);
  std::string_view segment;
  while (walk.next(segment))
    ++count;
  CHECK(count == 50000);
}

TEST_CASE("routes see an encoded slash as a separator, the upstream keeps it encoded", "[path]") {
  struct Row {
    std::string_view target;
    std::string_view routing;
  };
  const Row rows[] = {
      {"/api/login", "/api/login"},
      {"/api%2Flogin", "/api/login"},
      {"/api%2flogin", "/api/login"},
      {"/%2Fapi/login", "/api/login"},
      {"/api/login%2F", "/api/login/"},
      {"/api/x%2F..%2Flogin", "/api/login"},
      {"/api/x%2F%2e%2e%2Flogin", "/api/login"},
      {"/files/a%252Fb", "/files/a%252Fb"},  // double encoding is a name character
  };
  std::string path;
  std::string scratch;
  std::string out;
  for (const auto& row : rows) {
    INFO(row.target);
    std::string_view query;
    REQUIRE(normalize_target(row.target, path, query) == PathError::none);
    CHECK(sluice::classify::routing_path(path, scratch, out) == row.routing);
  }
}
