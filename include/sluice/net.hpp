#pragma once
// Namespace aliases used across sluice; nothing else lives here. Only Asio: sluice's HTTP layer is
// its own (http1/), so Beast's headers stay out of every translation unit of the core.
#include <boost/asio.hpp>

namespace sluice {
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;
}  // namespace sluice
