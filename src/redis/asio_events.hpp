#pragma once
// The hiredis↔Asio adapter: runs the I/O of one redisAsyncContext at a time on an Asio executor
// through hiredis' five event hooks (hiredis 0.14 has no timer hook; deadlines live in Client).
#include <cstdint>
#include <memory>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <sluice/net.hpp>

struct redisAsyncContext;

namespace sluice::redis::detail {

class AsioEvents {
 public:
  class Owner {
   public:
    // hiredis is freeing the context (its cleanup hook): the context can still be read here, but
    // nothing may be asked of it; hiredis frees it and closes its socket right after.
    virtual void on_context_gone(const redisAsyncContext& context) = 0;

   protected:
    ~Owner() = default;
  };

  explicit AsioEvents(net::any_io_executor executor) : descriptor_(std::move(executor)) {}
  ~AsioEvents();
  AsioEvents(const AsioEvents&) = delete;
  AsioEvents& operator=(const AsioEvents&) = delete;

  // Installs the hooks on a freshly connecting `context` and waits for it to become writable,
  // which is how a non-blocking connect completes. `owner_life` is locked around every hiredis
  // call made from a readiness event (hiredis runs reply callbacks from there, which may drop
  // the owner's last other reference); a wait that finds the owner gone does nothing.
  // Returns false if the socket cannot be registered (the context is untouched then).
  bool attach(redisAsyncContext& context, std::weak_ptr<void> owner_life, Owner& owner);

  bool attached() const noexcept { return context_ != nullptr; }

 private:
  static void add_read(void* self);
  static void del_read(void* self);
  static void add_write(void* self);
  static void del_write(void* self);
  static void cleanup(void* self);

  void wait_readable();
  void wait_writable();
  void write_soon();
  void on_readable(std::uint64_t generation, const boost::system::error_code& error);
  void on_writable(std::uint64_t generation, const boost::system::error_code& error);
  void detach();

  net::posix::stream_descriptor descriptor_;
  redisAsyncContext* context_ = nullptr;
  Owner* owner_ = nullptr;
  std::weak_ptr<void> owner_life_;
  // Bumped per context: a wait left over from an earlier context (completed with
  // operation_aborted by release()) must not touch the flags of the current one.
  std::uint64_t generation_ = 0;
  bool want_read_ = false;
  bool read_waiting_ = false;
  bool want_write_ = false;
  bool write_waiting_ = false;  // a wait for room, or a write posted
  bool writing_ = false;        // inside redisAsyncHandleWrite
};

}  // namespace sluice::redis::detail
