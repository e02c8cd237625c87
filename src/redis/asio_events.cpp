#include "asio_events.hpp"

#include <utility>

#include <hiredis/async.h>

namespace sluice::redis::detail {

// Hooks may be called more than once in a row (hiredis calls add_read after every read), so each
// one only records what hiredis wants and starts a wait if none is outstanding. A wait that is no
// longer wanted when it completes is simply not passed on.

AsioEvents::~AsioEvents() {
  // The socket belongs to hiredis: never let the descriptor close it.
  if (descriptor_.is_open()) descriptor_.release();
}

bool AsioEvents::attach(redisAsyncContext& context, std::weak_ptr<void> owner_life, Owner& owner) {
  if (context_ != nullptr) return false;
  boost::system::error_code error;
  descriptor_.assign(context.c.fd, error);
  if (error) return false;
  context_ = &context;
  owner_ = &owner;
  owner_life_ = std::move(owner_life);
  ++generation_;
  want_read_ = read_waiting_ = want_write_ = write_waiting_ = false;

  context.ev.data = this;
  context.ev.addRead = &AsioEvents::add_read;
  context.ev.delRead = &AsioEvents::del_read;
  context.ev.addWrite = &AsioEvents::add_write;
  context.ev.delWrite = &AsioEvents::del_write;
  context.ev.cleanup = &AsioEvents::cleanup;
  want_write_ = true;
  wait_writable();  // the first writable event completes the non-blocking connect
  return true;
}

void AsioEvents::add_read(void* self) {
  auto& events = *static_cast<AsioEvents*>(self);
  events.want_read_ = true;
  if (!events.read_waiting_) events.wait_readable();
}

void AsioEvents::del_read(void* self) {
  static_cast<AsioEvents*>(self)->want_read_ = false;
}

void AsioEvents::add_write(void* self) {
  auto& events = *static_cast<AsioEvents*>(self);
  events.want_write_ = true;
  if (events.write_waiting_) return;
  // A connected socket nearly always has room for a command: write it later in this turn of the
  // loop rather than asking epoll first, which costs an epoll_ctl and a loop turn per command
  // (Asio re-arms the socket for every readiness wait). When hiredis cannot write it all, it asks
  // again from inside that write, and then it waits for room.
  if (!events.writing_ && (events.context_->c.flags & REDIS_CONNECTED) != 0) {
    events.write_soon();
  } else {
    events.wait_writable();
  }
}

void AsioEvents::del_write(void* self) {
  static_cast<AsioEvents*>(self)->want_write_ = false;
}

void AsioEvents::cleanup(void* self) {
  static_cast<AsioEvents*>(self)->detach();
}

void AsioEvents::wait_readable() {
  read_waiting_ = true;
  descriptor_.async_wait(
      net::posix::stream_descriptor::wait_read,
      [this, life = owner_life_, generation = generation_](const boost::system::error_code& error) {
        auto owner = life.lock();
        if (!owner) return;  // the owner (and this adapter) is gone
        on_readable(generation, error);
      });
}

void AsioEvents::wait_writable() {
  write_waiting_ = true;
  descriptor_.async_wait(
      net::posix::stream_descriptor::wait_write,
      [this, life = owner_life_, generation = generation_](const boost::system::error_code& error) {
        auto owner = life.lock();
        if (!owner) return;
        on_writable(generation, error);
      });
}

void AsioEvents::write_soon() {
  write_waiting_ = true;
  net::post(descriptor_.get_executor(), [this, life = owner_life_, generation = generation_] {
    auto owner = life.lock();
    if (!owner) return;
    on_writable(generation, {});
  });
}

void AsioEvents::on_readable(std::uint64_t generation, const boost::system::error_code& error) {
  if (generation != generation_) return;  // a wait of an earlier context
  read_waiting_ = false;
  if (context_ == nullptr || !want_read_ || error == net::error::operation_aborted) return;
  // Any other error is left to hiredis: its read fails and it tears the context down.
  // This may free the context (cleanup → detach), so nothing of it is touched afterwards.
  redisAsyncHandleRead(context_);
}

void AsioEvents::on_writable(std::uint64_t generation, const boost::system::error_code& error) {
  if (generation != generation_) return;
  write_waiting_ = false;
  if (context_ == nullptr || !want_write_ || error == net::error::operation_aborted) return;
  writing_ = true;
  redisAsyncHandleWrite(context_);  // may free the context; this adapter lives on (owner locked)
  writing_ = false;
}

void AsioEvents::detach() {
  if (context_ == nullptr) return;  // hiredis 1.x calls cleanup twice on an error
  const redisAsyncContext* context = std::exchange(context_, nullptr);
  ++generation_;
  want_read_ = read_waiting_ = want_write_ = write_waiting_ = false;
  // release(), never close(): hiredis closes the socket right after this hook returns.
  // Outstanding waits complete with operation_aborted and are ignored (older generation).
  descriptor_.release();
  Owner* owner = std::exchange(owner_, nullptr);
  owner->on_context_gone(*context);
}

}  // namespace sluice::redis::detail
