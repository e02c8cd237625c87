#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <sluice/proxy/listener.hpp>
#include <sluice/proxy/responses.hpp>

namespace sluice::proxy {

Listener::Listener(net::io_context& ioc, const tcp::endpoint& endpoint, Worker& worker)
    : acceptor_(ioc.get_executor()), worker_(worker) {
  using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.set_option(reuse_port(true));
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
    // Out of descriptors or a connection reset before accept: keep serving the others.
    spdlog::warn("accept failed: {}", ec.message());
  } else if (worker_.connections.try_enter()) {
    start_session(std::move(socket), peer_, worker_);
  } else {
    turn_away(socket);
  }
  accept();
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
