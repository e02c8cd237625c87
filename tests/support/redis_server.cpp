#include "support/redis_server.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>

#include <hiredis/hiredis.h>

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::uint16_t pick_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    throw_errno("bind 127.0.0.1:0");
  }
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::filesystem::path make_temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/sluice-redis-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  return pattern;
}

std::string server_binary() {
  const char* from_env = std::getenv("SLUICE_REDIS_SERVER");
  return from_env && *from_env ? from_env : "redis-server";
}

std::vector<const char*> argv_of(std::initializer_list<std::string_view> args,
                                 std::vector<std::size_t>& lengths) {
  std::vector<const char*> argv;
  for (auto arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return argv;
}

}  // namespace

RedisServer::RedisServer(std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args)), dir_(make_temp_dir()) {
  // Another process may take the port between picking and binding it: try a few.
  for (int attempt = 1;; ++attempt) {
    port_ = pick_free_port();
    start();
    if (wait_until_ready(std::chrono::seconds(10))) return;
    std::string log = log_tail();
    kill();
    if (attempt == 3) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
      throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) +
                               "\n" + log);
    }
  }
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    resume();  // a paused server would ignore SIGTERM until the grace period ends
    stop();
  }
  if (std::getenv("SLUICE_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

void RedisServer::start() {
  std::vector<std::string> args = {server_binary(),
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_.string(),
                                   "--logfile",
                                   (dir_ / "redis.log").string(),
                                   "--enable-debug-command",
                                   "local"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    if (::getppid() != parent) ::_exit(127);
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(null_fd, STDOUT_FILENO);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
}

bool RedisServer::wait_until_ready(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (!running()) return false;
    timeval connect_timeout{0, 100'000};
    redisContext* context = redisConnectWithTimeout("127.0.0.1", port_, connect_timeout);
    if (context != nullptr && context->err == 0) {
      auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
      // PONG, or NOAUTH when a password is set: either way it is serving.
      const bool ready = reply != nullptr;
      if (reply != nullptr) freeReplyObject(reply);
      redisFree(context);
      if (ready) return true;
    } else if (context != nullptr) {
      redisFree(context);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

bool RedisServer::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (running()) {
    if (Clock::now() >= deadline) return kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void RedisServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void RedisServer::restart() {
  if (running()) throw std::logic_error("RedisServer::restart while it runs");
  start();
  if (!wait_until_ready(std::chrono::seconds(10))) {
    throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_) +
                             "\n" + log_tail());
  }
}

std::string RedisServer::log_tail(std::size_t lines) const {
  std::ifstream in(dir_ / "redis.log");
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);)
    all.push_back(line);
  std::ostringstream out;
  out << "---- redis-server log (port " << port_ << "), last lines ----\n";
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out << all[i] << "\n";
  }
  return out.str();
}

// ---------------------------------------------------------------------------------------------

BlockingRedis::BlockingRedis(std::uint16_t port, std::string_view password, int db) {
  timeval timeout{5, 0};
  context_ = redisConnectWithTimeout("127.0.0.1", port, timeout);
  if (context_ == nullptr || context_->err != 0) {
    std::string error = context_ != nullptr ? context_->errstr : "out of memory";
    if (context_ != nullptr) redisFree(context_);
    throw std::runtime_error("cannot connect to redis on port " + std::to_string(port) + ": " +
                             error);
  }
  redisSetTimeout(context_, timeout);
  auto must_succeed = [this](redis::Reply reply, const char* what) {
    if (reply.is_error()) {
      redisFree(context_);
      throw std::runtime_error(std::string(what) + " failed: " + std::string(reply.text()));
    }
  };
  if (!password.empty()) must_succeed(command({"AUTH", password}), "AUTH");
  if (db != 0) must_succeed(command({"SELECT", std::to_string(db)}), "SELECT");
}

BlockingRedis::~BlockingRedis() {
  redisFree(context_);
}

redis::Reply BlockingRedis::command(std::initializer_list<std::string_view> args) {
  send(args);
  return read_reply();
}

void BlockingRedis::send(std::initializer_list<std::string_view> args) {
  std::vector<std::size_t> lengths;
  std::vector<const char*> argv = argv_of(args, lengths);
  if (redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(),
                             lengths.data()) != REDIS_OK) {
    throw std::runtime_error(std::string("redis: cannot queue a command: ") + context_->errstr);
  }
  for (int done = 0; !done;) {
    if (redisBufferWrite(context_, &done) != REDIS_OK) {
      throw std::runtime_error(std::string("redis: cannot send: ") + context_->errstr);
    }
  }
}

redis::Reply BlockingRedis::read_reply() {
  void* raw = nullptr;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    throw std::runtime_error(std::string("redis: no reply: ") + context_->errstr);
  }
  redis::Reply reply;
  reply.assign(*static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return reply;
}

}  // namespace sluice::test
