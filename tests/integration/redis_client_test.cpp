// The Redis client against a real redis-server: replies, pipelining, NOSCRIPT, deadlines,
// a killed / paused / read-only server, passwords. The io_context runs in the test thread, in
// bounded loops; the only sleeps wait for the server to pick up a command sent on another
// connection.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <sluice/redis/client.hpp>

#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::net::io_context;
using sluice::redis::Client;
using sluice::redis::ErrorKind;
using sluice::redis::Reply;
using sluice::redis::Result;
using sluice::redis::ScriptId;
using sluice::redis::Settings;
using sluice::redis::State;
using sluice::test::BlockingRedis;
using sluice::test::RedisServer;
using SteadyClock = std::chrono::steady_clock;

// A test-only script: ARGV[1] says what to return.
constexpr const char* kScript = R"lua(
local kind = ARGV[1]
if kind == 'int' then return 42 end
if kind == 'string' then return 'hello' end
if kind == 'array' then return {1, 'two', {3}} end
if kind == 'nil' then return false end
if kind == 'status' then return redis.status_reply('FINE') end
if kind == 'error' then return redis.error_reply('MYERR boom') end
if kind == 'key' then return KEYS[1] end
if kind == 'incr' then return redis.call('INCRBY', KEYS[1], ARGV[2]) end
return redis.error_reply('ERR unknown kind')
)lua";

// Runs handlers until `done()` or `limit` passes; true if done.
template <typename Done>
bool run_until(io_context& io, Done done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = SteadyClock::now() + limit;
  while (!done()) {
    if (SteadyClock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(10ms);
  }
  return true;
}

void run_for(io_context& io, std::chrono::milliseconds duration) {
  run_until(
      io, [] { return false; }, duration);
}

struct Recorder final : sluice::redis::EvalHandler {
  int calls = 0;
  ErrorKind error = ErrorKind::none;
  std::string message;
  Reply reply;
  SteadyClock::time_point at;

  void on_eval_result(Result& result) override {
    ++calls;
    error = result.error;
    message = std::string(result.message);
    reply = result.reply;
    at = SteadyClock::now();
  }
};

struct StateLog {
  std::vector<State> states;
  std::vector<std::string> reasons;

  Client::StateHandler handler() {
    return [this](State state, std::string_view reason) {
      states.push_back(state);
      reasons.emplace_back(reason);
    };
  }
  bool last_is(State state) const { return !states.empty() && states.back() == state; }
  int count(State state) const {
    int n = 0;
    for (State s : states)
      n += s == state;
    return n;
  }
};

Settings settings_for(const RedisServer& server) {
  Settings settings;
  settings.port = server.port();
  settings.reconnect_min = 20ms;
  settings.reconnect_max = 200ms;
  settings.jitter_seed = 1;
  return settings;
}

void eval(Client& client, ScriptId script, Recorder& recorder, std::string_view kind,
          std::string_view key = "k", std::string_view arg2 = "1") {
  std::string_view keys[] = {key};
  std::string_view args[] = {kind, arg2};
  client.eval(script, keys, args, recorder);
}

// Evaluates one call and runs the loop until its result is in.
Recorder eval_now(io_context& io, Client& client, ScriptId script, std::string_view kind,
                  std::string_view key = "k") {
  Recorder recorder;
  eval(client, script, recorder, kind, key);
  REQUIRE(run_until(io, [&] { return recorder.calls > 0; }));
  return recorder;
}

std::string script_sha(BlockingRedis& redis) {
  // SCRIPT LOAD is idempotent and returns the sha the client uses.
  return std::string(redis.command({"SCRIPT", "LOAD", kScript}).text());
}

// "calls=N" of one command in INFO commandstats (0 if it never ran).
long command_calls(BlockingRedis& redis, std::string_view command) {
  const std::string info(redis.command({"INFO", "commandstats"}).text());
  const std::string label = "cmdstat_" + std::string(command) + ":calls=";
  const auto at = info.find(label);
  return at == std::string::npos ? 0 : std::stol(info.substr(at + label.size()));
}

}  // namespace

TEST_CASE("scripts run and their replies come back typed", "[redis]") {
  RedisServer server;
  io_context io;
  StateLog log;
  Client client(io.get_executor(), settings_for(server), log.handler());
  const ScriptId script = client.add_script(kScript);
  client.run();
  // The handler is posted: it runs on a later turn of the loop than the change itself.
  REQUIRE(run_until(io, [&] { return log.last_is(State::up); }));
  CHECK(client.state() == State::up);
  CHECK(log.states == std::vector<State>{State::up});

  SECTION("the handler is never called from inside eval()") {
    Recorder recorder;
    eval(client, script, recorder, "int");
    CHECK(recorder.calls == 0);
    REQUIRE(run_until(io, [&] { return recorder.calls > 0; }));
    CHECK(recorder.calls == 1);
  }
  SECTION("integer") {
    auto result = eval_now(io, client, script, "int");
    REQUIRE(result.error == ErrorKind::none);
    CHECK(result.reply.type() == Reply::Type::integer);
    CHECK(result.reply.integer() == 42);
  }
  SECTION("string") {
    auto result = eval_now(io, client, script, "string");
    CHECK(result.reply.type() == Reply::Type::string);
    CHECK(result.reply.text() == "hello");
  }
  SECTION("nested array") {
    auto result = eval_now(io, client, script, "array");
    CHECK(result.reply.describe() == "[1, \"two\", [3]]");
  }
  SECTION("nil and status") {
    CHECK(eval_now(io, client, script, "nil").reply.is_nil());
    auto status = eval_now(io, client, script, "status");
    CHECK(status.reply.type() == Reply::Type::status);
    CHECK(status.reply.text() == "FINE");
  }
  SECTION("keys are binary safe") {
    using namespace std::string_view_literals;
    const auto key = "a\0b \r\n"sv;
    auto result = eval_now(io, client, script, "key", key);
    CHECK(result.reply.text() == key);
  }
  SECTION("an error reply fails the call, and the connection stays up") {
    auto result = eval_now(io, client, script, "error");
    CHECK(result.error == ErrorKind::server_error);
    CHECK(result.message == "MYERR boom");
    CHECK(result.reply.is_error());
    CHECK(eval_now(io, client, script, "int").reply.integer() == 42);
    CHECK(client.state() == State::up);
  }
}

TEST_CASE("many pipelined calls complete once each and in order", "[redis]") {
  RedisServer server;
  io_context io;
  Client client(io.get_executor(), settings_for(server));
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));

  constexpr int kCalls = 500;
  std::vector<Recorder> recorders(kCalls);
  for (auto& recorder : recorders)
    eval(client, script, recorder, "incr", "counter", "1");
  CHECK(client.in_flight() == kCalls);  // all sent before any reply: pipelined

  REQUIRE(run_until(io, [&] { return recorders.back().calls > 0; }));
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i);
    REQUIRE(recorders[i].calls == 1);
    REQUIRE(recorders[i].error == ErrorKind::none);
    // INCRBY replies count up: each result belongs to its own call.
    REQUIRE(recorders[i].reply.integer() == i + 1);
    if (i > 0) REQUIRE(recorders[i - 1].at <= recorders[i].at);
  }
  CHECK(client.in_flight() == 0);
}

TEST_CASE("after SCRIPT FLUSH an eval still succeeds and the script is loaded again", "[redis]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  Client client(io.get_executor(), settings_for(server));
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));
  const std::string sha = script_sha(admin);
  CHECK(eval_now(io, client, script, "int").reply.integer() == 42);

  admin.command({"SCRIPT", "FLUSH"});
  admin.command({"CONFIG", "RESETSTAT"});
  REQUIRE(admin.command({"SCRIPT", "EXISTS", sha}).elements()[0].integer() == 0);

  auto result = eval_now(io, client, script, "int");
  CHECK(result.error == ErrorKind::none);  // one result for the caller: NOSCRIPT stays inside
  CHECK(result.reply.integer() == 42);
  // Drain the background SCRIPT LOAD before reading the server's counters.
  REQUIRE(run_until(io, [&] { return client.in_flight() == 0; }));
  CHECK(admin.command({"SCRIPT", "EXISTS", sha}).elements()[0].integer() == 1);
  CHECK(command_calls(admin, "evalsha") == 1);  // answered NOSCRIPT
  CHECK(command_calls(admin, "eval") == 1);     // the same call, with the source
  CHECK(command_calls(admin, "script|load") == 1);

  CHECK(eval_now(io, client, script, "string").reply.text() == "hello");
  CHECK(command_calls(admin, "evalsha") == 2);  // back to EVALSHA
  CHECK(command_calls(admin, "eval") == 1);
}

TEST_CASE("a call with no reply by its deadline times out and its late reply is dropped",
          "[redis]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  StateLog log;
  Settings settings = settings_for(server);
  settings.call_timeout = 50ms;
  settings.ping_timeout = 2s;  // the watchdog must not be what ends the call
  Client client(io.get_executor(), settings, log.handler());
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));

  admin.send({"DEBUG", "SLEEP", "0.3"});
  std::this_thread::sleep_for(20ms);  // let the server start sleeping before the call arrives

  Recorder slow;
  const auto start = SteadyClock::now();
  eval(client, script, slow, "int");
  REQUIRE(run_until(
      io, [&] { return slow.calls > 0; }, 2s));
  const auto waited = slow.at - start;
  CHECK(slow.error == ErrorKind::timeout);
  CHECK(waited >= 45ms);
  CHECK(waited < 250ms);

  admin.read_reply();  // the sleep is over
  // The late reply arrives and is dropped: the handler is not called again.
  REQUIRE(run_until(io, [&] { return client.in_flight() == 0; }));
  CHECK(slow.calls == 1);
  CHECK(slow.error == ErrorKind::timeout);

  auto next = eval_now(io, client, script, "int");
  CHECK(next.error == ErrorKind::none);
  CHECK(next.reply.integer() == 42);
  CHECK(log.count(State::down) == 0);
}

TEST_CASE("a killed server fails calls at once and the client comes back with it", "[redis]") {
  RedisServer server;
  io_context io;
  StateLog log;
  Settings settings = settings_for(server);
  settings.call_timeout = 3s;  // so a failure below can only come from the lost connection
  Client client(io.get_executor(), settings, log.handler());
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));

  std::string sha;
  {
    BlockingRedis admin(server.port());
    sha = script_sha(admin);
    admin.send({"DEBUG", "SLEEP", "2"});
    std::this_thread::sleep_for(20ms);
  }
  std::vector<Recorder> in_flight(10);
  for (auto& recorder : in_flight)
    eval(client, script, recorder, "incr", "k", "1");
  run_for(io, 30ms);
  REQUIRE(client.in_flight() == 10);
  for (auto& recorder : in_flight)
    REQUIRE(recorder.calls == 0);

  server.kill();
  const auto killed = SteadyClock::now();
  REQUIRE(run_until(
      io, [&] { return in_flight.back().calls > 0; }, 2s));
  CHECK(SteadyClock::now() - killed < 500ms);
  for (auto& recorder : in_flight) {
    CHECK(recorder.calls == 1);
    CHECK(recorder.error == ErrorKind::disconnected);
  }

  REQUIRE(run_until(io, [&] { return log.count(State::down) == 1; }));
  CHECK(client.state() == State::down);
  CHECK(client.last_error().find(std::to_string(server.port())) != std::string::npos);

  // While down: a new call fails on the next turn of the loop, not after a timeout.
  Recorder while_down;
  const auto asked = SteadyClock::now();
  eval(client, script, while_down, "int");
  CHECK(while_down.calls == 0);
  REQUIRE(run_until(
      io, [&] { return while_down.calls > 0; }, 1s));
  CHECK(while_down.error == ErrorKind::disconnected);
  CHECK(SteadyClock::now() - asked < 100ms);

  // Several reconnect attempts fail meanwhile (20-200ms apart); down is reported once.
  run_for(io, 400ms);
  CHECK(log.count(State::down) == 1);

  server.restart();  // empty: no scripts loaded
  REQUIRE(run_until(
      io, [&] { return log.count(State::up) == 2; }, 3s));
  CHECK(log.states == std::vector<State>{State::up, State::down, State::up});
  // The new server started empty: the reconnect loaded the script, before any eval.
  BlockingRedis admin(server.port());
  CHECK(admin.command({"SCRIPT", "EXISTS", sha}).elements()[0].integer() == 1);
  run_for(io, 50ms);
  CHECK(admin.command({"GET", "k"}).is_nil());  // the failed INCRs were not replayed
  CHECK(eval_now(io, client, script, "int").reply.integer() == 42);
}

TEST_CASE("scripts are loaded while connecting before any eval", "[redis]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  Client client(io.get_executor(), settings_for(server));
  client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));
  CHECK(command_calls(admin, "script|load") == 1);
  CHECK(command_calls(admin, "eval") + command_calls(admin, "evalsha") == 0);
}

TEST_CASE("a server that stops answering is dropped by the PING watchdog", "[redis]") {
  RedisServer server;
  io_context io;
  StateLog log;
  Settings settings = settings_for(server);
  settings.ping_interval = 50ms;
  settings.ping_timeout = 100ms;
  settings.connect_timeout = 200ms;
  Client client(io.get_executor(), settings, log.handler());
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));

  server.pause();  // the socket stays open: only the watchdog can tell
  const auto paused = SteadyClock::now();
  REQUIRE(run_until(
      io, [&] { return client.state() == State::down; }, 2s));
  CHECK(SteadyClock::now() - paused < 500ms);
  CHECK(client.last_error().find("PING") != std::string::npos);

  // Reconnect attempts now time out in the handshake (the kernel still accepts connections).
  run_for(io, 300ms);
  CHECK(log.count(State::down) == 1);
  server.resume();
  REQUIRE(run_until(
      io, [&] { return client.state() == State::up; }, 3s));
  CHECK(eval_now(io, client, script, "int").reply.integer() == 42);
}

TEST_CASE("a READONLY reply fails the call and makes the client reconnect", "[redis]") {
  RedisServer server;
  BlockingRedis admin(server.port());
  io_context io;
  StateLog log;
  Client client(io.get_executor(), settings_for(server), log.handler());
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(io, [&] { return client.state() == State::up; }));

  // As after a failover: the server we talk to became a replica (of a master that is not there).
  const auto unused_port = std::to_string(server.port() == 1 ? 2 : 1);
  admin.command({"REPLICAOF", "127.0.0.1", unused_port});
  auto result = eval_now(io, client, script, "incr");
  CHECK(result.error == ErrorKind::server_error);
  CHECK(result.message.starts_with("READONLY"));
  REQUIRE(run_until(
      io, [&] { return log.count(State::up) == 2; }, 3s));
  CHECK(log.states == std::vector<State>{State::up, State::down, State::up});
  CHECK(log.reasons[1].find("READONLY") != std::string::npos);

  admin.command({"REPLICAOF", "NO", "ONE"});
  CHECK(eval_now(io, client, script, "incr").reply.integer() == 1);
}

TEST_CASE("a wrong password leaves the client down with a clear reason", "[redis]") {
  RedisServer server({"--requirepass", "s3cret"});
  io_context io;

  SECTION("wrong password") {
    StateLog log;
    Settings settings = settings_for(server);
    settings.password = "wrong";
    Client client(io.get_executor(), settings, log.handler());
    const ScriptId script = client.add_script(kScript);
    client.run();
    REQUIRE(run_until(io, [&] { return client.state() == State::down; }));
    CHECK(client.last_error().find("AUTH failed") != std::string::npos);
    CHECK(client.last_error().find("WRONGPASS") != std::string::npos);
    CHECK(client.last_error().find("wrong") == std::string::npos);  // no password in logs
    auto result = eval_now(io, client, script, "int");
    CHECK(result.error == ErrorKind::disconnected);
    run_for(io, 300ms);  // it keeps trying, quietly
    CHECK(log.states == std::vector<State>{State::down});
  }
  SECTION("no password") {
    Client client(io.get_executor(), settings_for(server));
    client.add_script(kScript);
    client.run();
    REQUIRE(run_until(io, [&] { return client.state() == State::down; }));
    CHECK(client.last_error().find("NOAUTH") != std::string::npos);
  }
  SECTION("the right password, and a db") {
    Settings settings = settings_for(server);
    settings.password = "s3cret";
    settings.db = 2;
    Client client(io.get_executor(), settings);
    const ScriptId script = client.add_script(kScript);
    client.run();
    REQUIRE(run_until(io, [&] { return client.state() == State::up; }));
    CHECK(eval_now(io, client, script, "incr", "in-db-2").reply.integer() == 1);
    BlockingRedis db2(server.port(), "s3cret", 2);
    CHECK(db2.command({"GET", "in-db-2"}).text() == "1");
    BlockingRedis db0(server.port(), "s3cret");
    CHECK(db0.command({"GET", "in-db-2"}).is_nil());
  }
}

TEST_CASE("a closed port or an unknown host is reported once and calls fail fast", "[redis]") {
  io_context io;
  StateLog log;
  Settings settings;
  SECTION("closed port") {
    RedisServer server;
    settings = settings_for(server);
    server.kill();
  }
  SECTION("unknown host") {
    settings.host = "no-such-host.invalid";
    settings.reconnect_min = 20ms;
    settings.reconnect_max = 100ms;
  }
  Client client(io.get_executor(), settings, log.handler());
  const ScriptId script = client.add_script(kScript);
  client.run();
  REQUIRE(run_until(
      io, [&] { return client.state() == State::down; }, 3s));
  INFO(client.last_error());
  CHECK(!client.last_error().empty());
  auto result = eval_now(io, client, script, "int");
  CHECK(result.error == ErrorKind::disconnected);
  run_for(io, 300ms);
  CHECK(log.states == std::vector<State>{State::down});
}

TEST_CASE("a host name is resolved without blocking and connects", "[redis]") {
  RedisServer server;
  io_context io;
  Settings settings = settings_for(server);
  settings.host = "localhost";
  Client client(io.get_executor(), settings);
  const ScriptId script = client.add_script(kScript);
  client.run();
  // localhost may resolve to ::1 first, where redis does not listen (bound to 127.0.0.1): allow
  // that case to show as down rather than fail the suite on such a machine.
  REQUIRE(run_until(io, [&] { return client.state() != State::connecting; }));
  INFO(client.last_error());
  if (client.state() == State::up) {
    CHECK(eval_now(io, client, script, "int").reply.integer() == 42);
  } else {
    WARN("localhost did not resolve to 127.0.0.1 first: " << client.last_error());
  }
}

TEST_CASE("destroying the client completes calls in flight later and not from its destructor",
          "[redis]") {
  RedisServer server;
  io_context io;
  Settings settings = settings_for(server);
  settings.call_timeout = 3s;
  auto client = std::make_unique<Client>(io.get_executor(), settings);
  const ScriptId script = client->add_script(kScript);
  client->run();
  REQUIRE(run_until(io, [&] { return client->state() == State::up; }));

  SECTION("destroyed with calls in flight") {
    BlockingRedis admin(server.port());
    admin.send({"DEBUG", "SLEEP", "0.2"});
    std::this_thread::sleep_for(20ms);
    std::vector<Recorder> recorders(3);
    for (auto& recorder : recorders)
      eval(*client, script, recorder, "int");
    run_for(io, 20ms);
    client.reset();
    for (auto& recorder : recorders)
      CHECK(recorder.calls == 0);  // not from the destructor
    REQUIRE(run_until(
        io, [&] { return recorders.back().calls > 0; }, 1s));
    for (auto& recorder : recorders) {
      CHECK(recorder.calls == 1);
      CHECK(recorder.error == ErrorKind::disconnected);
    }
  }
  SECTION("destroyed from inside a handler") {
    struct Destroyer final : sluice::redis::EvalHandler {
      std::unique_ptr<Client>* client;
      int calls = 0;
      void on_eval_result(Result&) override {
        ++calls;
        client->reset();
      }
    };
    Destroyer first;
    first.client = &client;
    Recorder second;
    std::string_view keys[] = {"k"};
    std::string_view args[] = {"int"};
    client->eval(script, keys, args, first);
    client->eval(script, keys, args, second);
    REQUIRE(run_until(
        io, [&] { return second.calls > 0; }, 1s));
    CHECK(first.calls == 1);
    CHECK(client == nullptr);
    // The second reply may have been read in the same batch; either way it is delivered once.
    CHECK(second.calls == 1);
    run_for(io, 50ms);
    CHECK(second.calls == 1);
  }
}
