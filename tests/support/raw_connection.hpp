#pragma once
// A raw connection for hostile and limit tests. Unlike HttpClient it survives being cut off
// mid-send and keeps every byte that arrived, so a test can tell "closed without a word" from
// "answered", and a truncated response from a complete one.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::test {

// What the peer sent on one connection.
struct Received {
  std::string bytes;
  bool closed = false;  // the peer closed (FIN or reset) before the deadline
};

class RawConnection {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RawConnection(std::uint16_t port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Sends as much as the peer takes; false when it stopped taking (closed, reset, send timeout).
  bool send(std::string_view bytes);
  // True when bytes (or the end of the stream) can be read within `wait`.
  bool readable(std::chrono::milliseconds wait);
  // Reads into `into` what is there; false at the end of the stream (FIN or reset).
  bool read_some(Received& into);
  // Everything until the peer closes or `deadline` passes.
  Received read_until_close(Clock::time_point deadline);

 private:
  int fd_ = -1;
};

}  // namespace sluice::test
