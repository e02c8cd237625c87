#pragma once
// A real redis-server for tests: on a free loopback port, without persistence, in its own
// temporary directory. It can be killed, paused and restarted on the same port, and it dies
// with the test process. Also a small blocking connection for test-side commands.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include <sluice/redis/reply.hpp>

struct redisContext;

namespace sluice::test {

class RedisServer {
 public:
  // Starts `redis-server` (from PATH, or the path in $SLUICE_REDIS_SERVER) with `extra_args`
  // appended, e.g. {"--requirepass", "secret"}, and returns once it answers PING. Throws with
  // the server's log if it does not start.
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  bool running();

  void kill();     // SIGKILL and reap: connections are reset, nothing is saved
  void stop();     // SIGTERM, then SIGKILL after a grace period
  void pause();    // SIGSTOP: connections stay open but nothing is answered
  void resume();   // SIGCONT
  void restart();  // starts again (after kill or stop) on the same port, empty

  std::string log_tail(std::size_t lines = 30) const;

 private:
  void start();
  bool wait_until_ready(std::chrono::milliseconds timeout);

  std::vector<std::string> extra_args_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A blocking hiredis connection, for the test's own commands (SCRIPT FLUSH, DEBUG SLEEP, ...).
class BlockingRedis {
 public:
  // Throws if it cannot connect (or AUTH/SELECT fail).
  explicit BlockingRedis(std::uint16_t port, std::string_view password = {}, int db = 0);
  ~BlockingRedis();
  BlockingRedis(const BlockingRedis&) = delete;
  BlockingRedis& operator=(const BlockingRedis&) = delete;

  // Sends a command and waits for its reply. Throws on a connection error (not on an error reply).
  redis::Reply command(std::initializer_list<std::string_view> args);
  // Sends a command without waiting for its reply (e.g. DEBUG SLEEP while the test runs on).
  void send(std::initializer_list<std::string_view> args);
  // Waits for the reply of a command sent with send().
  redis::Reply read_reply();

 private:
  redisContext* context_ = nullptr;
};

}  // namespace sluice::test
