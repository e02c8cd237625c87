#include "support/raw_connection.hpp"

#include <algorithm>
#include <cerrno>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/http_client.hpp"

namespace sluice::test {

using namespace std::chrono_literals;

RawConnection::RawConnection(std::uint16_t port)
    : fd_(connect_loopback(port, 3s, /*receive_timeout=*/false)) {}

RawConnection::~RawConnection() {
  ::close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

bool RawConnection::readable(std::chrono::milliseconds wait) {
  pollfd poll_fd{fd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&poll_fd, 1, static_cast<int>(wait.count()));
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
}

bool RawConnection::read_some(Received& into) {
  char piece[16 * 1024];
  ssize_t got;
  do {
    got = ::recv(fd_, piece, sizeof piece, 0);
  } while (got < 0 && errno == EINTR);
  if (got <= 0) {
    into.closed = true;
    return false;
  }
  into.bytes.append(piece, static_cast<std::size_t>(got));
  return true;
}

Received RawConnection::read_until_close(Clock::time_point deadline) {
  Received received;
  while (Clock::now() < deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (!readable(std::max(left, 1ms))) continue;
    if (!read_some(received)) break;
  }
  return received;
}

}  // namespace sluice::test
