#pragma once
// Where a connection that is over its limit waits before its next request is looked at.
//
// One event-loop thread serves every connection it owns in the order epoll reports them ready.
// Under a flood, each loop turn brings dozens of the flooder's requests, and a well-behaved
// client's request waits behind all of them, twice per exchange (its request, then its upstream's
// response). A connection whose last request was refused by a limit therefore starts its next
// request here instead: behind every other connection's ready work, and a few at a time, so the
// loop goes back to epoll between slices and sees newly arrived work first. The flooder still gets
// every cycle nobody else needs; a client under its limit no longer waits for the flooder's.
#include <cstddef>
#include <memory>
#include <vector>

#include <sluice/proxy/io.hpp>

namespace sluice::proxy {

class YieldQueue {
 public:
  // A connection waiting here; resumed once, on the loop's thread.
  class Member {
   public:
    virtual void resume() = 0;

   protected:
    ~Member() = default;
  };

  // How many waiting requests one loop turn takes before epoll is asked again. Small enough that
  // new work waits for a few of the flooder's requests, not dozens (a 429 costs about 10 µs of
  // the core with the kernel's share); large enough that the extra turns cost the flood little.
  static constexpr std::size_t kSlice = 8;

  explicit YieldQueue(Executor executor) : executor_(executor) {}
  // The posted slice refers to the queue: it stays where it was made.
  YieldQueue(const YieldQueue&) = delete;
  YieldQueue& operator=(const YieldQueue&) = delete;

  // Queues `member` behind everything already ready on the loop and everything queued before it.
  void push(std::shared_ptr<Member> member);

  std::size_t size() const noexcept { return count_; }

 private:
  void post_slice();
  void run_slice();

  Executor executor_;
  // A ring, so steady traffic allocates nothing once it has grown to the number of flooding
  // connections.
  std::vector<std::shared_ptr<Member>> ring_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  bool slice_posted_ = false;
};

}  // namespace sluice::proxy
