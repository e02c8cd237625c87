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

  // How many waiting requests one loop turn takes before epoll is asked again. While other
  // clients' requests are coming in, two: a request or an upstream's answer for one of them then
  // waits for about two 429s (a 429 costs about 12 µs of the core with the kernel's share). With
  // 8 the paced client of the benchmark saw its p99 grow 1.7x under a flood, with 2 not at all;
  // but each slice costs an epoll_wait and a sched_yield, so a flood with nobody else to let
  // through costs 18 % more CPU per 429 at 2, and keeps the slice of 8, where that is 3 %.
  static constexpr std::size_t kSlice = 8;
  static constexpr std::size_t kSharedSlice = 2;
  // Requests resumed from the queue after another client's request before the slices grow back:
  // about 12 ms of flood, longer than the gaps between a steady client's requests and than an
  // upstream takes to answer one.
  static constexpr std::size_t kSharedFor = 1024;

  explicit YieldQueue(Executor executor) : executor_(executor) {}
  // The posted slice refers to the queue: it stays where it was made.
  YieldQueue(const YieldQueue&) = delete;
  YieldQueue& operator=(const YieldQueue&) = delete;

  // Queues `member` behind everything already ready on the loop and everything queued before it.
  void push(std::shared_ptr<Member> member);

  std::size_t size() const noexcept { return count_; }

  // A request that is not over a limit started on this thread: slices are short for a while.
  void note_other_request() noexcept { resumed_since_other_ = 0; }
  // How many members the next slice resumes at most.
  std::size_t slice() const noexcept {
    return resumed_since_other_ < kSharedFor ? kSharedSlice : kSlice;
  }

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
  std::size_t resumed_since_other_ = kSharedFor;  // nobody else seen yet
};

}  // namespace sluice::proxy
