#pragma once
// How the listener accepts a connection: with two system calls fewer than Asio's own accept.
//
// Asio 1.81 accepts with accept(2), so every connection is blocking until its first operation
// switches it with ioctl(FIONBIO); and it marks the socket as one that may be a duplicate of
// another descriptor (it came from outside Asio), so closing it first removes it from epoll with
// epoll_ctl(EPOLL_CTL_DEL). Neither is needed: accept4(SOCK_NONBLOCK) returns it non-blocking,
// and a descriptor nobody duplicated leaves the epoll set by itself when it is closed. With
// keep-alive off a connection is one request, so these two calls were a fifth of its system calls.
//
// This is a specialisation of Asio's accept operation for the proxy's Socket type, written against
// Boost 1.81 (the version Debian bookworm ships, see docs/design.md), like proxy/drained_read.hpp.
// With any other Boost the listener accepts as Asio does.
#include <cerrno>
#include <sys/socket.h>

#include <boost/version.hpp>

#if BOOST_VERSION == 108100
#include <boost/asio/detail/reactive_socket_accept_op.hpp>

namespace sluice::proxy {

// The state flags Asio keeps for a socket, reached through the protected member of basic_socket
// (a pointer to member named through a derived class may be applied to any object of the base).
struct AcceptedSocketState : Socket {
  static net::detail::socket_ops::state_type& of(Socket& socket) {
    return (socket.*&AcceptedSocketState::impl_).get_implementation().state_;
  }
};

}  // namespace sluice::proxy

namespace boost::asio::detail {

// As the generic reactive_socket_accept_op_base<Socket, Protocol> (same constructor, same
// members), but accepts with accept4 and tells Asio what that socket is.
template <>
class reactive_socket_accept_op_base<sluice::proxy::Socket, ip::tcp> : public reactor_op {
 public:
  reactive_socket_accept_op_base(const boost::system::error_code& success_ec, socket_type socket,
                                 socket_ops::state_type state, sluice::proxy::Socket& peer,
                                 const ip::tcp& protocol, ip::tcp::endpoint* peer_endpoint,
                                 func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_accept_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        peer_(peer),
        protocol_(protocol),
        peer_endpoint_(peer_endpoint),
        addrlen_(peer_endpoint ? peer_endpoint->capacity() : 0) {}

  // The error handling of socket_ops::non_blocking_accept: retry on a signal, wait on EAGAIN, and
  // on a connection aborted before it was accepted (unless the acceptor asked to hear of those).
  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_accept_op_base*>(base);
    for (;;) {
      auto length = static_cast<socklen_t>(o->addrlen_);
      const socket_type accepted =
          ::accept4(o->socket_, o->peer_endpoint_ ? o->peer_endpoint_->data() : nullptr,
                    o->peer_endpoint_ ? &length : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (accepted != invalid_socket) {
        o->addrlen_ = length;
        o->ec_ = boost::system::error_code();
        o->new_socket_.reset(accepted);
        return done;
      }
      const int error = errno;
      o->ec_ = boost::system::error_code(error, boost::asio::error::get_system_category());
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) return not_done;
      if (error == ECONNABORTED || error == EPROTO) {
        return (o->state_ & socket_ops::enable_connection_aborted) ? done : not_done;
      }
      return done;
    }
  }

  void do_assign() {
    if (new_socket_.get() == invalid_socket) return;
    if (peer_endpoint_) peer_endpoint_->resize(addrlen_);
    peer_.assign(protocol_, new_socket_.get(), ec_);
    if (ec_) return;
    new_socket_.release();
    auto& state = sluice::proxy::AcceptedSocketState::of(peer_);
    state |= socket_ops::internal_non_blocking;  // accept4 made it so: no ioctl before first use
    state &= ~socket_ops::possible_dup;          // only we hold it: close without EPOLL_CTL_DEL
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  socket_holder new_socket_;
  sluice::proxy::Socket& peer_;
  ip::tcp protocol_;
  ip::tcp::endpoint* peer_endpoint_;
  std::size_t addrlen_;
};

}  // namespace boost::asio::detail
#endif
