#pragma once
// The socket and timer types of the proxy. Bound to the io_context's own executor type instead of
// Asio's default any_io_executor: every operation then dispatches without type erasure (the
// profile showed any_io_executor's copies and indirect calls on every read and write).
#include <chrono>

#include <sluice/net.hpp>

namespace sluice::proxy {

using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Acceptor = net::basic_socket_acceptor<tcp, Executor>;
using SteadyTimer =
    net::basic_waitable_timer<std::chrono::steady_clock,
                              net::wait_traits<std::chrono::steady_clock>, Executor>;

}  // namespace sluice::proxy

// Every file that names Socket sees how the listener accepts one (a specialisation must be seen
// before the template is used).
#include <sluice/proxy/accepted_socket.hpp>
