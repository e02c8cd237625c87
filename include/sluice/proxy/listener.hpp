#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <sluice/proxy/io.hpp>
#include <sluice/proxy/session.hpp>

namespace sluice::proxy {

// Accepts connections on one event-loop thread. Every thread has its own listener on the same
// address (SO_REUSEPORT), so the kernel spreads connections across threads and an accepted socket
// never changes threads.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Throws boost::system::system_error when the address cannot be bound.
  Listener(net::io_context& ioc, const tcp::endpoint& endpoint, Worker& worker);

  void start();
  void stop();
  tcp::endpoint local_endpoint() const;

 private:
  void accept();
  void on_accept(boost::system::error_code ec, Socket socket);
  void turn_away(Socket& socket);
  void pause_accepting(const boost::system::error_code& ec);

  Acceptor acceptor_;
  SteadyTimer pause_timer_;
  std::uint64_t failed_accepts_ = 0;  // since accepting last worked: logged once per episode
  Worker& worker_;
  tcp::endpoint peer_;               // filled by each accept: saves a getpeername per connection
  std::string overloaded_response_;  // rendered once: sent to connections past max_connections
};

}  // namespace sluice::proxy
