#include <algorithm>
#include <sched.h>

#include <sluice/proxy/yield_queue.hpp>

namespace sluice::proxy {

void YieldQueue::push(std::shared_ptr<Member> member) {
  if (count_ == ring_.size()) {
    // Grow by unrolling the ring into a larger one, oldest first.
    std::vector<std::shared_ptr<Member>> grown(std::max<std::size_t>(16, ring_.size() * 2));
    for (std::size_t i = 0; i < count_; ++i)
      grown[i] = std::move(ring_[(head_ + i) % ring_.size()]);
    ring_ = std::move(grown);
    head_ = 0;
  }
  ring_[(head_ + count_) % ring_.size()] = std::move(member);
  ++count_;
  post_slice();
}

void YieldQueue::post_slice() {
  // A post goes behind the handlers of the current loop turn, the other connections' ready work
  // among them.
  if (slice_posted_) return;
  slice_posted_ = true;
  net::post(executor_, [this] { run_slice(); });
}

void YieldQueue::run_slice() {
  // Members pushed while this slice runs wait for the next one (slice_posted_ stays set until
  // then; an exception from a member ends the loop's thread anyway).
  const std::size_t slice = std::min(count_, this->slice());
  resumed_since_other_ = std::min(kSharedFor, resumed_since_other_ + slice);
  for (std::size_t n = slice; n > 0; --n) {
    auto member = std::move(ring_[head_]);
    head_ = (head_ + 1) % ring_.size();
    --count_;
    member->resume();
  }
  slice_posted_ = false;
  if (count_ == 0) return;
  // The next slice goes through two posts. Asio runs epoll when it reaches its reactor's place in
  // the handler queue, which is ahead of anything posted now, but appends what epoll finds at the
  // end: behind a slice posted directly. The hop runs after that epoll, so the slice it posts
  // goes behind the work epoll found there.
  slice_posted_ = true;
  net::post(executor_, [this] {
    // Only this thread's own over-limit work is due before that new work is seen: offer the core
    // to any other runnable process first. A co-located upstream (a sidecar's app, the
    // benchmark's) otherwise waits out the scheduler's time slice behind sluice's flood work
    // before it can answer a client within its limits; the polite client's p99 under flood fell
    // from 3.4-3.7 ms to 2.1-2.5 ms with it (docs/performance.md). With nothing else runnable it
    // returns at once.
    ::sched_yield();
    net::post(executor_, [this] { run_slice(); });
  });
}

}  // namespace sluice::proxy
