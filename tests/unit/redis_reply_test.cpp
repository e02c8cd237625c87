// The Redis client's parts without I/O: replies copied out of hiredis, parse_url, the backoff.
#include <memory>
#include <string>

#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>

#include <sluice/redis/client.hpp>
#include <sluice/redis/reply.hpp>

namespace {

using sluice::redis::Backoff;
using sluice::redis::Milliseconds;
using sluice::redis::parse_url;
using sluice::redis::Reply;
using sluice::redis::Settings;

// Parses RESP bytes with hiredis' own reader and copies the reply out, as the client does.
Reply parse(std::string_view resp, Reply reply = {}) {
  std::unique_ptr<redisReader, decltype(&redisReaderFree)> reader(redisReaderCreate(),
                                                                  &redisReaderFree);
  REQUIRE(redisReaderFeed(reader.get(), resp.data(), resp.size()) == REDIS_OK);
  void* raw = nullptr;
  REQUIRE(redisReaderGetReply(reader.get(), &raw) == REDIS_OK);
  REQUIRE(raw != nullptr);
  reply.assign(*static_cast<redisReply*>(raw));
  freeReplyObject(raw);  // what hiredis does after the callback: the copy must not point into it
  return reply;
}

}  // namespace

TEST_CASE("redis replies are copied out of hiredis with their types", "[redis]") {
  CHECK(parse(":-7\r\n").type() == Reply::Type::integer);
  CHECK(parse(":-7\r\n").integer() == -7);
  CHECK(parse("$-1\r\n").is_nil());
  CHECK(parse("+OK\r\n").type() == Reply::Type::status);
  CHECK(parse("+OK\r\n").text() == "OK");
  const Reply error = parse("-NOSCRIPT No matching script\r\n");
  CHECK(error.is_error());
  CHECK(error.text() == "NOSCRIPT No matching script");

  using namespace std::string_view_literals;
  const Reply binary = parse("$5\r\na\0b\r\n\r\n"sv);
  CHECK(binary.type() == Reply::Type::string);
  CHECK(binary.text() == "a\0b\r\n"sv);

  const Reply nested = parse("*3\r\n:1\r\n$3\r\ntwo\r\n*2\r\n$-1\r\n:3\r\n");
  REQUIRE(nested.type() == Reply::Type::array);
  REQUIRE(nested.elements().size() == 3);
  CHECK(nested.elements()[0].integer() == 1);
  CHECK(nested.elements()[1].text() == "two");
  CHECK(nested.elements()[2].elements()[0].is_nil());
  CHECK(nested.describe() == "[1, \"two\", [nil, 3]]");
  CHECK(parse("*0\r\n").elements().empty());
}

TEST_CASE("a reused reply takes the new value whole", "[redis]") {
  Reply reply = parse("*2\r\n$5\r\nhello\r\n:2\r\n");
  reply = parse(":9\r\n", std::move(reply));
  CHECK(reply.type() == Reply::Type::integer);
  CHECK(reply.text().empty());
  CHECK(reply.elements().empty());
  reply = parse("*1\r\n$2\r\nhi\r\n", std::move(reply));
  reply = parse("*2\r\n:5\r\n$-1\r\n", std::move(reply));
  REQUIRE(reply.elements().size() == 2);
  CHECK(reply.elements()[0].type() == Reply::Type::integer);
  CHECK(reply.elements()[0].text().empty());  // nothing left over from "hi"
  CHECK(reply.elements()[1].is_nil());
}

TEST_CASE("redis URLs", "[redis]") {
  struct Case {
    std::string url;
    std::string host;
    int port;
    std::string username;
    std::string password;
    int db;
  };
  const Case good[] = {
      {"redis://localhost", "localhost", 6379, "", "", 0},
      {"redis://10.0.0.5:6380", "10.0.0.5", 6380, "", "", 0},
      {"redis://10.0.0.5:6380/", "10.0.0.5", 6380, "", "", 0},
      {"redis://:pw@cache:7000/3", "cache", 7000, "", "pw", 3},
      {"redis://limiter:pw@cache/1", "cache", 6379, "limiter", "pw", 1},
      {"redis://:p%40ss%3Aw@cache", "cache", 6379, "", "p@ss:w", 0},
      {"redis://:a@b@cache", "cache", 6379, "", "a@b", 0},
      {"REDIS://[::1]:6390/2", "::1", 6390, "", "", 2},
      {"redis://[fe80::1]", "fe80::1", 6379, "", "", 0},
  };
  for (const auto& c : good) {
    INFO(c.url);
    Settings settings;
    REQUIRE(parse_url(c.url, settings) == "");
    CHECK(settings.host == c.host);
    CHECK(settings.port == c.port);
    CHECK(settings.username == c.username);
    CHECK(settings.password == c.password);
    CHECK(settings.db == c.db);
  }

  struct Bad {
    std::string url;
    std::string error_part;
  };
  const Bad bad[] = {
      {"localhost:6379", "must start with redis://"},
      {"http://localhost", "must start with redis://"},
      {"rediss://cache", "TLS"},
      {"redis://", "no host"},
      {"redis://:6379", "no host"},
      {"redis://cache:", "empty port"},
      {"redis://cache:0", "port must be"},
      {"redis://cache:65536", "port must be"},
      {"redis://cache:12ab", "port must be"},
      {"redis://cache/x", "db must be"},
      {"redis://cache/-1", "db must be"},
      {"redis://cache/1?timeout=5", "query"},
      {"redis://user@cache", "username needs a password"},
      {"redis://[::1", "unclosed ["},
      {"redis://[::1]x", "expected :port"},
      {"redis://:bad%zzpw@cache", "%-escape"},
  };
  for (const auto& c : bad) {
    INFO(c.url);
    Settings settings;
    settings.host = "unchanged";
    const std::string error = parse_url(c.url, settings);
    CHECK(error.find(c.error_part) != std::string::npos);
    CHECK(error.find(c.url.substr(0, 8)) != std::string::npos);  // it names the URL
    CHECK(settings.host == "unchanged");                         // nothing is half-applied
  }
}

TEST_CASE("a redis URL error never shows the password", "[redis]") {
  Settings settings;
  const std::string error = parse_url("redis://admin:hunter2@cache:99999", settings);
  CHECK(error.find("port must be") != std::string::npos);
  CHECK(error.find("hunter2") == std::string::npos);
  CHECK(error.find("redis://admin:***@cache:99999") != std::string::npos);
}

TEST_CASE("the URL's password wins over the fallback from the environment", "[redis]") {
  Settings settings;
  REQUIRE(parse_url("redis://cache", settings, "from-env") == "");
  CHECK(settings.password == "from-env");
  REQUIRE(parse_url("redis://:from-url@cache", settings, "from-env") == "");
  CHECK(settings.password == "from-url");
}

TEST_CASE("reconnect delays grow up to a cap with jitter and reset", "[redis]") {
  Backoff backoff(Milliseconds(50), Milliseconds(2000), 42);
  const long ceilings[] = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000};
  for (long ceiling : ceilings) {
    const auto delay = backoff.next().count();
    INFO("ceiling " << ceiling);
    CHECK(delay >= ceiling / 2);
    CHECK(delay <= ceiling);
  }
  backoff.reset();
  CHECK(backoff.next().count() <= 50);

  // Seeded: the same seed gives the same delays; different seeds spread out.
  Backoff a(Milliseconds(50), Milliseconds(2000), 7);
  Backoff b(Milliseconds(50), Milliseconds(2000), 7);
  Backoff c(Milliseconds(50), Milliseconds(2000), 8);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    const auto delay = a.next();
    CHECK(delay == b.next());
    differs |= delay != c.next();
  }
  CHECK(differs);
}
