// The Redis store through the real binary: two sluice processes sharing one redis-server admit a
// limit exactly; Redis killed, restarted, slowed down or absent at start-up (each on_store_error
// mode as specified, no hung request); one EVALSHA per request; keys with a TTL and no raw
// identity, in Redis or in sluice's log.
#include <chrono>
#include <cstdlib>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace sluice::test;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using sluice::redis::Reply;

constexpr auto kRedisTimeout = 50ms;
// A request that meets a failing store is answered within the Redis deadline plus this (process
// scheduling on a loaded 2-core machine, the upstream round trip).
constexpr auto kAnswerMargin = 700ms;

// Routes for every on_store_error mode, each limit keyed so tests can pick their counter. Token
// buckets over a day: no window edge falls inside a test.
std::string redis_config(std::uint16_t redis_port, std::string_view threads = "1",
                         std::string_view url_auth = "") {
  return substitute(R"(listen: 127.0.0.1:${PORT}
threads: ${THREADS}
store:
  type: redis
  max_keys: 10000
  redis: { url: "redis://${AUTH}127.0.0.1:${REDIS_PORT}/0", timeout: 50ms, key_salt: "it" }
upstreams:
  api: { servers: ["127.0.0.1:${UPSTREAM_PORT}"], connect_timeout: 2s, timeout: 10s }
identities:
  api_key: { header: X-API-Key }
  user: { header: X-User-Id }
routes:
  - name: probe
    match: { path: /probe }
    upstream: api
    on_store_error: deny
    limits:
      - { name: probe, key: [ip], algorithm: gcra, limit: 1000000, window: 1s }
  - name: shared
    match: { path: /shared }
    upstream: api
    on_store_error: deny
    limits:
      - { name: shared-per-key, key: [api_key], algorithm: token_bucket, limit: 50, window: 1d }
  - name: allow
    match: { path: /allow }
    upstream: api
    on_store_error: allow
    limits:
      - { name: allow-per-ip, key: [ip], algorithm: gcra, limit: 1000, window: 1d }
  - name: deny
    match: { path: /deny }
    upstream: api
    on_store_error: deny
    limits:
      - { name: deny-per-ip, key: [ip], algorithm: sliding_window, limit: 1000, window: 1d }
  - name: local
    match: { path: /local }
    upstream: api
    on_store_error: local
    limits:
      - { name: local-per-ip, key: [ip], algorithm: token_bucket, limit: 3, window: 1d }
  - name: identities
    match: { path: /who }
    upstream: api
    on_store_error: deny
    limits:
      - { name: per-key-user-ip, key: [api_key, user, ip], algorithm: gcra, limit: 100, window: 1h }
      - { name: per-user, key: [user], algorithm: fixed_window, limit: 100, window: 1h }
      - { name: per-key, key: [api_key], algorithm: sliding_window, limit: 100, window: 1h }
)",
                    {{"THREADS", std::string(threads)},
                     {"AUTH", std::string(url_auth)},
                     {"REDIS_PORT", std::to_string(redis_port)},
                     {"PORT", "${PORT}"},
                     {"UPSTREAM_PORT", "${UPSTREAM_PORT}"}});
}

std::string sluice_binary() {
  const char* from_env = std::getenv("SLUICE_BINARY");
  return from_env && *from_env ? from_env : SLUICE_BINARY;
}

// A sluice process of our own (ProxyStack runs exactly one, without extra environment).
struct Sluice {
  std::optional<Process> process;
  std::uint16_t port = 0;

  Sluice(const TempDir& dir, std::string_view name, const std::string& yaml_template,
         std::uint16_t upstream_port, const std::vector<EnvVar>& env = {}) {
    for (int attempt = 1;; ++attempt) {
      port = free_loopback_port();
      const auto config = dir.path() / (std::string(name) + ".yaml");
      write_file(config,
                 substitute(yaml_template, {{"PORT", std::to_string(port)},
                                            {"UPSTREAM_PORT", std::to_string(upstream_port)}}));
      process.reset();
      process.emplace(
          Process::spawn({sluice_binary(), "--config", config.string()}, dir.path(), name, env));
      if (wait_for_port(port, 10s, &*process)) return;
      if (process->is_running() || attempt == 3) {
        throw std::runtime_error("sluice did not start\n" + process->log_tail());
      }
    }
  }
};

std::string get(std::string_view path, const std::vector<Header>& headers = {}) {
  return make_request("GET", path, headers);
}

struct Timed {
  Response response;
  SteadyClock::duration took;
};

Timed timed_fetch(std::uint16_t port, std::string_view request) {
  const auto start = SteadyClock::now();
  Response response = fetch(port, request);
  return {std::move(response), SteadyClock::now() - start};
}

// Polls /probe (on_store_error: deny) until sluice decides on Redis again, i.e. answers 200.
bool wait_for_redis(std::uint16_t port, std::chrono::milliseconds limit = 10s) {
  const auto deadline = SteadyClock::now() + limit;
  while (SteadyClock::now() < deadline) {
    if (fetch(port, get("/probe")).status == 200) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// Waits until every connection of every thread is up (sluice logs "connected" once they all
// are: a probe alone could land on a thread whose connection is still being made), then probes.
bool wait_until_connected(Process& sluice, std::uint16_t port) {
  const auto deadline = SteadyClock::now() + 10s;
  while (sluice.stdout_text().find("redis store connected to") == std::string::npos) {
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return wait_for_redis(port);
}

long command_calls(BlockingRedis& redis, std::string_view command) {
  const std::string info(redis.command({"INFO", "commandstats"}).text());
  const std::string label = "cmdstat_" + std::string(command) + ":calls=";
  const auto at = info.find(label);
  return at == std::string::npos ? 0 : std::stol(info.substr(at + label.size()));
}

std::size_t count_lines(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("two sluice instances sharing one Redis admit exactly the limit, one EVALSHA each",
          "[redis][integration]") {
  RedisServer redis;
  BlockingRedis admin(redis.port());
  TempDir dir;
  auto upstream = start_test_upstream(dir.path());
  const std::string yaml = redis_config(redis.port(), "2");
  Sluice a(dir, "sluice-a", yaml, upstream.port);
  Sluice b(dir, "sluice-b", yaml, upstream.port);
  REQUIRE(wait_until_connected(*a.process, a.port));
  REQUIRE(wait_until_connected(*b.process, b.port));
  admin.command({"CONFIG", "RESETSTAT"});

  // 300 requests for one API key (limit 50), from 30 connections at once, half to each instance.
  constexpr int kConnections = 30;
  constexpr int kPerConnection = 10;
  const StatusCounts counts = send_concurrently({a.port, b.port}, kConnections, kPerConnection,
                                                get("/shared", {{"X-API-Key", "k-shared"}}));
  INFO(a.process->log_tail() << b.process->log_tail());
  CHECK(counts.ok == 50);
  CHECK(counts.limited == 250);
  CHECK(counts.other == 0);
  // At most one round trip per request (the requests of one event-loop turn share one EVALSHA),
  // never a fallback EVAL.
  CHECK(command_calls(admin, "evalsha") >= 1);
  CHECK(command_calls(admin, "evalsha") <= kConnections * kPerConnection);
  CHECK(command_calls(admin, "eval") == 0);
}

TEST_CASE("Redis killed and restarted: each on_store_error mode, no hung request, one log line",
          "[redis][integration]") {
  RedisServer redis;
  const std::string yaml = redis_config(redis.port());
  ProxyStack stack(yaml);
  REQUIRE(wait_until_connected(stack.sluice(), stack.port()));
  INFO(stack.log_tail());

  // With Redis up: decided on Redis (one charge on /local's counter there).
  CHECK(fetch(stack.port(), get("/local")).status == 200);
  CHECK(fetch(stack.port(), get("/deny")).status == 200);

  redis.kill();
  for (int i = 0; i < 3; ++i) {
    const auto allow = timed_fetch(stack.port(), get("/allow"));
    CHECK(allow.response.status == 200);  // fail open: forwarded
    CHECK(allow.took < kRedisTimeout + kAnswerMargin);

    const auto deny = timed_fetch(stack.port(), get("/deny"));
    INFO(deny.response.raw);
    CHECK(deny.took < kRedisTimeout + kAnswerMargin);
    REQUIRE(deny.response.status == 503);  // fail closed, never a 429
    CHECK(deny.response.header("Retry-After") == "1");
    CHECK(deny.response.header("Content-Type") == "application/json");
    const auto body = parse_json(deny.response.body).as_object();
    CHECK(body.at("error") == "limiter_unavailable");
    CHECK(body.at("route") == "deny");
  }
  // local: the in-process memory store decides (its own count, from 0: 3 allowed, then 429).
  std::vector<int> local;
  for (int i = 0; i < 5; ++i) {
    const auto r = timed_fetch(stack.port(), get("/local"));
    CHECK(r.took < kRedisTimeout + kAnswerMargin);
    local.push_back(r.response.status);
    if (r.response.status == 429) {
      CHECK(parse_json(r.response.body).at("error") == "rate_limited");
    }
  }
  CHECK(local == std::vector<int>{200, 200, 200, 429, 429});

  // Back, empty and without the script: sluice reconnects and loads it, without a restart.
  redis.restart();
  REQUIRE(wait_for_redis(stack.port()));
  CHECK(fetch(stack.port(), get("/deny")).status == 200);
  // /local decides on Redis again, where its counter starts anew: not the memory store's 429.
  CHECK(fetch(stack.port(), get("/local")).status == 200);

  // One line when the store went away and one when it came back, not one per failed request.
  const std::string log = stack.sluice().stdout_text() + stack.sluice().stderr_text();
  CHECK(count_lines(log, "redis store 127.0.0.1:") == 2);
  CHECK((count_lines(log, " is down: ") + count_lines(log, " is failing: ")) == 1);
  CHECK(count_lines(log, " is back (") == 1);
  CHECK(stack.sluice().is_running());
}

TEST_CASE("a slow Redis: the per-call deadline answers requests in time", "[redis][integration]") {
  RedisServer redis;
  BlockingRedis admin(redis.port());
  ProxyStack stack(redis_config(redis.port()));
  REQUIRE(wait_until_connected(stack.sluice(), stack.port()));
  INFO(stack.log_tail());

  admin.send({"DEBUG", "SLEEP", "0.6"});
  std::this_thread::sleep_for(30ms);  // let the server start sleeping
  const auto deny = timed_fetch(stack.port(), get("/deny"));
  CHECK(deny.response.status == 503);
  CHECK(deny.took < kRedisTimeout + kAnswerMargin);
  CHECK(deny.took < 550ms);  // well before the server wakes up
  const auto allow = timed_fetch(stack.port(), get("/allow"));
  CHECK(allow.response.status == 200);
  CHECK(allow.took < 550ms);
  admin.read_reply();
  REQUIRE(wait_for_redis(stack.port()));
  CHECK(fetch(stack.port(), get("/deny")).status == 200);
}

TEST_CASE("sluice starts and serves while Redis is down, and picks it up later",
          "[redis][integration]") {
  RedisServer redis;
  redis.kill();
  ProxyStack stack(redis_config(redis.port()));
  INFO(stack.log_tail());
  CHECK(fetch(stack.port(), get("/allow")).status == 200);
  CHECK(fetch(stack.port(), get("/deny")).status == 503);
  redis.restart();
  REQUIRE(wait_for_redis(stack.port()));
  CHECK(fetch(stack.port(), get("/deny")).status == 200);
}

TEST_CASE("the Redis password may come from SLUICE_REDIS_PASSWORD", "[redis][integration]") {
  RedisServer redis({"--requirepass", "pa ss"});
  TempDir dir;
  auto upstream = start_test_upstream(dir.path());
  const std::string yaml = redis_config(redis.port());
  SECTION("from the environment") {
    Sluice sluice(dir, "sluice", yaml, upstream.port, {{"SLUICE_REDIS_PASSWORD", "pa ss"}});
    INFO(sluice.process->log_tail());
    CHECK(wait_until_connected(*sluice.process, sluice.port));
  }
  SECTION("a wrong one: down, and said so without the password") {
    Sluice sluice(dir, "sluice", yaml, upstream.port, {{"SLUICE_REDIS_PASSWORD", "wrong pw"}});
    CHECK(fetch(sluice.port, get("/deny")).status == 503);
    std::this_thread::sleep_for(300ms);
    const std::string log = sluice.process->stdout_text() + sluice.process->stderr_text();
    INFO(log);
    CHECK(log.find("AUTH") != std::string::npos);
    CHECK(log.find("wrong pw") == std::string::npos);
  }
}

TEST_CASE("every Redis key has a TTL and no raw identity, in Redis or in the log",
          "[redis][integration]") {
  RedisServer redis;
  BlockingRedis admin(redis.port());
  ProxyStack stack(redis_config(redis.port()));
  REQUIRE(wait_until_connected(stack.sluice(), stack.port()));
  const std::vector<std::string> secrets = {"sk_live_SECRET123", "user-4242@example.com",
                                            "SECRET123", "example.com"};
  for (int i = 0; i < 3; ++i) {
    CHECK(fetch(stack.port(), get("/who", {{"X-API-Key", "sk_live_SECRET123"},
                                           {"X-User-Id", "user-4242@example.com"}}))
              .status == 200);
    CHECK(fetch(stack.port(), get("/local")).status == 200);
    CHECK(fetch(stack.port(), get("/shared", {{"X-API-Key", "sk_live_SECRET123"}})).status == 200);
  }

  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    const Reply page = admin.command({"SCAN", cursor, "COUNT", "1000"});
    cursor = std::string(page.elements()[0].text());
    for (const Reply& key : page.elements()[1].elements())
      keys.emplace_back(key.text());
  } while (cursor != "0");
  // 3 of /who, /local, /shared; /probe's (1 µs of state) has expired already.
  CHECK(keys.size() == 5);
  const std::regex shape(R"(sluice:\{limits\}:[0-9a-f]{32})");
  for (const auto& key : keys) {
    INFO("key " << key);
    CHECK(std::regex_match(key, shape));
    const std::int64_t pttl = admin.command({"PTTL", key}).integer();
    CHECK(pttl > 0);
    CHECK(pttl <= 2 * 86'400'000 + 2);
    const std::string value(admin.command({"GET", key}).text());
    const std::string dump(admin.command({"DUMP", key}).text());
    for (const auto& secret : secrets) {
      INFO("secret " << secret << " value " << value);
      CHECK(key.find(secret) == std::string::npos);
      CHECK(value.find(secret) == std::string::npos);
      CHECK(dump.find(secret) == std::string::npos);
    }
  }
  const std::string log = stack.sluice().stdout_text() + stack.sluice().stderr_text();
  for (const auto& secret : {"sk_live_SECRET123", "user-4242@example.com"}) {
    CHECK(log.find(secret) == std::string::npos);
  }
}
