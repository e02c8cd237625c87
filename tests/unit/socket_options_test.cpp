// Facts of the platform that sluice relies on instead of paying a system call per connection.
#include <catch2/catch.hpp>

#include <sluice/net.hpp>

TEST_CASE("an accepted connection inherits TCP_NODELAY from its listening socket", "[platform]") {
  // proxy::Listener sets TCP_NODELAY once on the listener, and sessions do not set it again:
  // without it, a response written in two pieces could wait for the client's delayed ACK.
  using sluice::tcp;
  sluice::net::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(sluice::net::ip::address_v4::loopback(), 0));
  acceptor.set_option(tcp::no_delay(true));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  tcp::socket accepted = acceptor.accept();
  tcp::no_delay option;
  accepted.get_option(option);
  CHECK(option.value());

  // And one accepted from a listener without it has Nagle on: the check above can fail.
  tcp::acceptor plain(io, tcp::endpoint(sluice::net::ip::address_v4::loopback(), 0));
  tcp::socket client2(io);
  client2.connect(plain.local_endpoint());
  tcp::socket accepted2 = plain.accept();
  accepted2.get_option(option);
  CHECK_FALSE(option.value());
}
