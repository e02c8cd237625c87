#include <stdexcept>
#include <sys/socket.h>

#include <sluice/proxy/upstream_pool.hpp>

namespace sluice::proxy {

std::vector<UpstreamTarget> resolve_upstreams(const config::Config& config) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  std::vector<UpstreamTarget> targets;
  targets.reserve(config.upstreams.size());
  for (const auto& upstream : config.upstreams) {
    UpstreamTarget target;
    target.connect_timeout = upstream.connect_timeout;
    target.timeout = upstream.timeout;
    for (const auto& server : upstream.servers) {
      boost::system::error_code ec;
      auto results = resolver.resolve(server.host, std::to_string(server.port),
                                      tcp::resolver::numeric_service, ec);
      if (ec || results.empty()) {
        throw std::runtime_error("upstream '" + upstream.name + "': cannot resolve " + server.host +
                                 ": " + ec.message());
      }
      // One address per server: the first, as a client would; a name with several addresses is
      // listed as several servers by whoever wants them all.
      target.endpoints.push_back(results.begin()->endpoint());
    }
    targets.push_back(std::move(target));
  }
  return targets;
}

UpstreamPool::UpstreamPool(Executor executor,
                           std::shared_ptr<const std::vector<UpstreamTarget>> targets)
    : executor_(executor),
      targets_(std::move(targets)),
      idle_(targets_->size()),
      next_server_(targets_->size(), 0) {}

bool UpstreamPool::take_idle(std::size_t upstream, Socket& out) {
  auto& idle = idle_[upstream];
  while (!idle.empty()) {
    Socket socket = std::move(idle.back());
    idle.pop_back();
    // An idle connection must have nothing to read: EOF means the upstream closed it, and bytes
    // mean it sent something nobody asked for, which would be taken for the next response. A
    // non-blocking peek (one syscall) finds both.
    char byte;
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      out = std::move(socket);
      return true;
    }
  }
  return false;
}

const tcp::endpoint& UpstreamPool::next_endpoint(std::size_t upstream) {
  const auto& endpoints = (*targets_)[upstream].endpoints;
  const std::size_t i = next_server_[upstream]++ % endpoints.size();
  return endpoints[i];
}

void UpstreamPool::give_back(std::size_t upstream, Socket&& socket) {
  auto& idle = idle_[upstream];
  if (idle.size() >= kMaxIdlePerUpstream) {
    boost::system::error_code ec;
    socket.close(ec);
    return;
  }
  idle.push_back(std::move(socket));
}

}  // namespace sluice::proxy
