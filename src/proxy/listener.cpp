#include <cerrno>
#include <chrono>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <sluice/proxy/listener.hpp>
#include <sluice/proxy/responses.hpp>

namespace sluice::proxy {

Listener::Listener(net::io_context& ioc, const tcp::endpoint& endpoint, Worker& worker)
    : acceptor_(ioc.get_executor()), pause_timer_(ioc.get_executor()), worker_(worker) {
  using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.set_option(reuse_port(true));
  // Linux copies a listener's TCP options into every connection it accepts: one setsockopt here
  // instead of one per connection (keep-alive off pays every system call per request).
  acceptor_.set_option(tcp::no_delay(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(net::socket_base::max_listen_connections);
  std::string body;
  write_error_response({.kind = ErrorKind::overloaded, .retry_after = 1}, {}, false, false, body,
                       overloaded_response_);
}

void Listener::start() {
  accept();
}

void Listener::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  pause_timer_.cancel();
}

tcp::endpoint Listener::local_endpoint() const {
  return acceptor_.local_endpoint();
}

void Listener::accept() {
  acceptor_.async_accept(peer_,
                         [self = shared_from_this()](boost::system::error_code ec, Socket socket) {
                           self->on_accept(ec, std::move(socket));
                         });
}

void Listener::on_accept(boost::system::error_code ec, Socket socket) {
  if (ec == net::error::operation_aborted) return;  // stopped
  if (ec) {
    const int code = ec.value();
    if (code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM) {
      return pause_accepting(ec);
    }
    // A connection reset before it was accepted, and the like: about that one only.
    spdlog::debug("accept failed: {}", ec.message());
  } else {
    if (failed_accepts_ > 0) {
      spdlog::info("accepting connections again, after {} failed attempt{}", failed_accepts_,
                   failed_accepts_ == 1 ? "" : "s");
      failed_accepts_ = 0;
    }
    if (worker_.connections.try_enter()) {
      start_session(std::move(socket), peer_, worker_);
    } else {
      turn_away(socket);
    }
  }
  accept();
}

// Out of descriptors or memory: the connection stays in the backlog, so accepting again at once
// would fail at once, forever, at full CPU. Sessions keep running meanwhile and free descriptors
// as they end; accepting resumes after a pause (as nginx does).
void Listener::pause_accepting(const boost::system::error_code& ec) {
  static constexpr std::chrono::milliseconds kPause{100};
  if (failed_accepts_++ == 0) {
    spdlog::warn(
        "cannot accept connections: {}; trying again every {} ms (see the open file "
        "limit, ulimit -n, and client.max_connections)",
        ec.message(), kPause.count());
  }
  pause_timer_.expires_after(kPause);
  pause_timer_.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
    if (!wait_ec && self->acceptor_.is_open()) self->accept();
  });
}

// Past max_connections a connection is accepted and told why it is closed, rather than left in
// the kernel's backlog where the client cannot tell a full proxy from a dead one. Best effort: one
// non-blocking send of a prepared 503; the socket's buffer always has room for it.
void Listener::turn_away(Socket& socket) {
  const auto sent = ::send(socket.native_handle(), overloaded_response_.data(),
                           overloaded_response_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)sent;
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

}  // namespace sluice::proxy
