#include <spdlog/spdlog.h>

#include <sluice/proxy/listener.hpp>

namespace sluice::proxy {

Listener::Listener(net::io_context& ioc, const tcp::endpoint& endpoint, Worker& worker)
    : ioc_(ioc), acceptor_(ioc), worker_(worker) {
  using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.set_option(reuse_port(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(net::socket_base::max_listen_connections);
}

void Listener::start() {
  accept();
}

void Listener::stop() {
  beast::error_code ec;
  acceptor_.close(ec);
}

tcp::endpoint Listener::local_endpoint() const {
  return acceptor_.local_endpoint();
}

void Listener::accept() {
  acceptor_.async_accept(ioc_, beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
}

void Listener::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted) return;  // stopped
  if (ec) {
    // Out of descriptors or a connection reset before accept: keep serving the others.
    spdlog::warn("accept failed: {}", ec.message());
  } else {
    start_session(std::move(socket), worker_);
  }
  accept();
}

}  // namespace sluice::proxy
