#pragma once
// Reads from upstream connections that tell Asio when the socket is drained, so that an idle
// pooled connection can be checked for unrequested input without a system call.
//
// Asio's epoll reactor keeps per socket whether a read may find data: every readiness event sets
// it, and a read that came back short of its buffer could clear it, since the kernel then had
// nothing more (edge-triggered epoll reports each later arrival as a new event). Asio 1.81 clears
// it only after end-of-file; later Asio makes clearing on a short read an option
// ("reset_edge_on_partial_read"). `DrainingBuffer` is that option for the reads of one buffer
// type, and `InputProbe` asks the question the flag answers: may this socket hold input? When the
// flag is clear the probe makes no system call at all; when it is set the probe peeks.
//
// Both are specialisations of Asio's own operation for these buffer types only, written against
// Boost 1.81 (the version Debian bookworm ships, see docs/design.md). With any other Boost
// `kProbesWithoutSyscall` is false and callers peek as before.
#include <sys/socket.h>

#include <boost/version.hpp>

#include <sluice/net.hpp>

namespace sluice::proxy {

// A read into this buffer that returns fewer bytes than it holds marks the socket drained.
struct DrainingBuffer : net::mutable_buffer {
  DrainingBuffer(void* data, std::size_t size) noexcept : net::mutable_buffer(data, size) {}
};

// What a probe found. `not_asked` means the reactor knew there was nothing to read.
enum class ProbeResult : unsigned char { not_asked, nothing, input };

// One byte peeked (never consumed) into `scratch`; the outcome lands in *result while the read is
// being started, before async_receive returns.
struct InputProbe : net::mutable_buffer {
  InputProbe(char& scratch, ProbeResult& found) noexcept
      : net::mutable_buffer(&scratch, 1), result(&found) {}
  ProbeResult* result;
};

#if BOOST_VERSION == 108100
inline constexpr bool kProbesWithoutSyscall = true;
#else
inline constexpr bool kProbesWithoutSyscall = false;
#endif

}  // namespace sluice::proxy

#if BOOST_VERSION == 108100
#include <boost/asio/detail/reactive_socket_recv_op.hpp>

namespace boost::asio::detail {

// As the generic reactive_socket_recv_op_base (same members, same constructor), but a short read
// also reports the socket exhausted.
template <>
class reactive_socket_recv_op_base<sluice::proxy::DrainingBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state,
                               const sluice::proxy::DrainingBuffer& buffer,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffer),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    if (!socket_ops::non_blocking_recv1(o->socket_, o->buffer_.data(), o->buffer_.size(), o->flags_,
                                        (o->state_ & socket_ops::stream_oriented) != 0, o->ec_,
                                        o->bytes_transferred_)) {
      return not_done;
    }
    // An error, end-of-file, or less than asked for: nothing more until the next event.
    return o->bytes_transferred_ < o->buffer_.size() ? done_and_exhausted : done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  sluice::proxy::DrainingBuffer buffer_;
  socket_base::message_flags flags_;
};

// Runs only when the reactor thinks the socket may be readable: peeks one byte and reports it.
// Either way the probe is complete; it waits in the reactor only when it was never run.
template <>
class reactive_socket_recv_op_base<sluice::proxy::InputProbe> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state, const sluice::proxy::InputProbe& probe,
                               socket_base::message_flags /*flags*/, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        probe_(probe) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    if (!socket_ops::non_blocking_recv1(o->socket_, o->probe_.data(), 1, MSG_PEEK,
                                        (o->state_ & socket_ops::stream_oriented) != 0, o->ec_,
                                        o->bytes_transferred_)) {
      // Nothing there now: the probe is answered, and that answer also clears the reactor's
      // flag, as a drained read would.
      *o->probe_.result = sluice::proxy::ProbeResult::nothing;
      return done_and_exhausted;
    }
    *o->probe_.result = sluice::proxy::ProbeResult::input;  // bytes, end-of-file or an error
    return done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  sluice::proxy::InputProbe probe_;
};

}  // namespace boost::asio::detail
#endif
