// A flood of over-limit requests must not make everybody else wait: the order in which sluice
// answers connections whose requests were all ready at once, read from the kernel's receive
// timestamps.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <linux/sockios.h>
#include <memory>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"

namespace {

using namespace sluice::test;
using namespace std::chrono_literals;

// A loopback connection whose received bytes carry the time the kernel took them in
// (SO_TIMESTAMPNS): when sluice answers many connections in one burst, the stamps tell the order
// it sent the answers in.
class StampedConnection {
 public:
  explicit StampedConnection(std::uint16_t port) : fd_(connect_loopback(port, 5s)) {
    const int on = 1;
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0);
  }
  ~StampedConnection() { ::close(fd_); }
  StampedConnection(const StampedConnection&) = delete;
  StampedConnection& operator=(const StampedConnection&) = delete;

  void send(std::string_view bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }

  // Waits until the peer's kernel has acknowledged every byte sent.
  void wait_delivered() {
    for (int i = 0; i < 1000; ++i) {
      int unacknowledged = 0;
      REQUIRE(::ioctl(fd_, SIOCOUTQ, &unacknowledged) == 0);
      if (unacknowledged == 0) return;
      std::this_thread::sleep_for(1ms);
    }
    FAIL("sent bytes were not acknowledged within a second");
  }

  // Reads one whole response (head and Content-Length body); its status, and when its first
  // byte arrived (nanoseconds of CLOCK_REALTIME). The kernel turns stamping on a moment after the
  // first socket asks (a deferred work item), so the first responses may come unstamped (0).
  struct Answer {
    int status = 0;
    std::int64_t arrived_ns = 0;
  };
  Answer read_response() {
    Answer answer;
    std::string bytes;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      if (auto size = complete_size(bytes)) {
        REQUIRE(bytes.size() == *size);  // nothing past it: one request, one response
        answer.status = std::stoi(bytes.substr(9, 3));
        return answer;
      }
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      ::poll(&p, 1, 100);
      char data[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
      iovec io{.iov_base = data, .iov_len = sizeof data};
      msghdr msg{};
      msg.msg_iov = &io;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (n == 0) FAIL("sluice closed the connection");
      if (n < 0) continue;
      if (bytes.empty()) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec stamp;
            std::memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
            answer.arrived_ns = std::int64_t{stamp.tv_sec} * 1'000'000'000 + stamp.tv_nsec;
          }
        }
      }
      bytes.append(data, static_cast<std::size_t>(n));
    }
  }

 private:
  static std::optional<std::size_t> complete_size(const std::string& bytes) {
    const auto head_end = bytes.find("\r\n\r\n");
    if (head_end == std::string::npos) return std::nullopt;
    const auto at = bytes.find("Content-Length: ");
    REQUIRE(at < head_end);
    const std::size_t size = head_end + 4 + std::stoul(bytes.substr(at + 16));
    if (bytes.size() < size) return std::nullopt;
    return size;
  }

  int fd_;
};

// True once the kernel reports the process stopped (state T in /proc/PID/stat).
bool is_stopped(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto state_at = line.rfind(") ");
  return state_at != std::string::npos && line[state_at + 2] == 'T';
}

// Stops a process for the life of the guard; it runs again however the test leaves the scope.
class StoppedProcess {
 public:
  explicit StoppedProcess(pid_t pid) : pid_(pid) {
    REQUIRE(::kill(pid_, SIGSTOP) == 0);
    for (int i = 0; i < 200 && !is_stopped(pid_); ++i)
      std::this_thread::sleep_for(5ms);
    REQUIRE(is_stopped(pid_));
  }
  ~StoppedProcess() { resume(); }
  StoppedProcess(const StoppedProcess&) = delete;
  StoppedProcess& operator=(const StoppedProcess&) = delete;
  void resume() {
    if (pid_ > 0) ::kill(std::exchange(pid_, -1), SIGCONT);
  }

 private:
  pid_t pid_;
};

constexpr int kFlooders = 40;

// 40 kept-alive connections of one client over its limit, each told 429 once, and one more
// connection that was told 429 once too but then asked for something else (a 404 from sluice: no
// limit refused it). Stops sluice, has the next request of every flooder arrive, then the other
// connection's; lets sluice run again, so that one loop turn finds them all ready in that order.
// Returns how many flood answers went out before the other connection's.
int flood_answers_before_polite(ProxyStack& stack) {
  const std::string flood_request = make_request("GET", "/tight/x", {{"X-API-Key", "flooder"}});
  const std::string polite_request = make_request("GET", "/elsewhere");
  // The flooder's budget goes on its first request.
  REQUIRE(fetch(stack.port(), flood_request).status == 200);
  std::vector<std::unique_ptr<StampedConnection>> flooders;
  for (int i = 0; i < kFlooders; ++i) {
    flooders.push_back(std::make_unique<StampedConnection>(stack.port()));
    flooders.back()->send(flood_request);
    REQUIRE(flooders.back()->read_response().status == 429);
  }
  StampedConnection polite(stack.port());
  polite.send(flood_request);
  REQUIRE(polite.read_response().status == 429);
  polite.send(polite_request);
  REQUIRE(polite.read_response().status == 404);

  StoppedProcess stopped(stack.sluice().pid());
  for (auto& flooder : flooders)
    flooder->send(flood_request);
  polite.send(polite_request);
  // Delivered means acknowledged by sluice's kernel (nothing left in our send queues), not
  // merely handed to the loopback device, whose softirq work a loaded machine may defer.
  polite.wait_delivered();
  for (auto& flooder : flooders)
    flooder->wait_delivered();
  stopped.resume();

  const auto polite_answer = polite.read_response();
  CHECK(polite_answer.status == 404);
  REQUIRE(polite_answer.arrived_ns != 0);
  int answered_before = 0;
  for (auto& flooder : flooders) {
    const auto answer = flooder->read_response();
    CHECK(answer.status == 429);
    REQUIRE(answer.arrived_ns != 0);
    if (answer.arrived_ns < polite_answer.arrived_ns) ++answered_before;
  }
  return answered_before;
}

// /tight/*: `limit` requests per hour for each X-API-Key.
std::string tight_routes(int limit) {
  return R"(identities:
  api_key: { header: X-API-Key }
routes:
  - name: tight
    match: { path: /tight/* }
    upstream: api
    limits:
      - { name: per-key, key: [api_key], algorithm: fixed_window, limit: )" +
         std::to_string(limit) + R"(, window: 1h }
)";
}

}  // namespace

TEST_CASE(
    "a client within its limits is answered before a flooder's requests that were ready "
    "first",
    "[rate_limit][isolation]") {
  ProxyStack stack(config_head() + tight_routes(1));
  const int answered_before = flood_answers_before_polite(stack);
  INFO(stack.log_tail());
  // Ready last, served first: none of the flooder's requests goes before it. (Served in arrival
  // order, all 40 would; and all 40 would if its own earlier 429 still counted against it.)
  CHECK(answered_before == 0);
}

TEST_CASE("a trusted proxy's connections never wait for one of their clients' 429s",
          "[rate_limit][isolation]") {
  // Behind a proxy, one connection carries many clients: the next request on it may be anyone's.
  ProxyStack stack(
      replace_once(config_head(), "trusted_proxies: []", "trusted_proxies: [127.0.0.1/32]") +
      tight_routes(1));
  const int answered_before = flood_answers_before_polite(stack);
  INFO(stack.log_tail());
  // Every connection is served in arrival order, as if no queue existed.
  CHECK(answered_before == kFlooders);
}

TEST_CASE("requests pipelined behind a 429 are all answered, in order", "[rate_limit][isolation]") {
  // The second and later requests of the write are already buffered when the first is answered:
  // the connection, now over its limit, queues for each of them.
  ProxyStack stack(config_head() + tight_routes(2) + R"(  - name: open
    match: { path: /open/* }
    upstream: api
)");
  std::string pipelined;
  for (int i = 0; i < 4; ++i)
    pipelined += make_request("GET", "/tight/" + std::to_string(i), {{"X-API-Key", "k"}});
  pipelined += make_request("GET", "/open/after");
  HttpClient client(stack.port());
  client.send(pipelined);
  INFO(stack.log_tail());
  for (const int expected : {200, 200, 429, 429}) {
    CHECK(client.read_response().status == expected);
  }
  const Response last = client.read_response();
  CHECK(last.status == 200);
  CHECK(parse_json(last.body).at("target") == "/open/after");
}
