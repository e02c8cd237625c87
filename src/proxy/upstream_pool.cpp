#include <algorithm>
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
    target.idle_timeout = upstream.idle_timeout;
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
      next_server_(targets_->size(), 0),
      expiry_timer_(executor) {}

bool UpstreamPool::take_idle(std::size_t upstream, Socket& out) {
  auto& idle = idle_[upstream];
  while (!idle.empty()) {
    Socket socket = std::move(idle.back().socket);
    idle.pop_back();
    // An idle connection must have nothing to read: EOF means the upstream closed it, and bytes
    // mean it sent something nobody asked for, which would be taken for the next response. A
    // non-blocking peek (one syscall) finds both. (Asio 1.81 keeps no readiness of its own that
    // could stand in for it: a read kept waiting on idle connections costs the same recv.)
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

void UpstreamPool::give_back(std::size_t upstream, Socket&& socket, TimePoint idle_since) {
  auto& idle = idle_[upstream];
  if (idle.size() >= kMaxIdlePerUpstream) {
    boost::system::error_code ec;
    socket.close(ec);
    return;
  }
  const TimePoint expires = idle_since + (*targets_)[upstream].idle_timeout;
  idle.push_back({std::move(socket), expires});
  // One timer for the whole pool, set for the connection that expires first.
  if (!expiry_armed_ || expires < expiry_timer_.expiry()) arm_expiry(expires);
}

void UpstreamPool::arm_expiry(TimePoint at) {
  expiry_armed_ = true;
  expiry_timer_.expires_at(at);
  expiry_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec == net::error::operation_aborted) return;  // set again, or the pool is closing
    expiry_armed_ = false;
    close_expired();
  });
}

void UpstreamPool::close_expired() {
  const TimePoint now = std::chrono::steady_clock::now();
  TimePoint next = TimePoint::max();
  for (auto& idle : idle_) {
    // Given back in the order their clients finished, not their upstreams: look at them all.
    std::erase_if(idle, [&](Idle& connection) {
      if (connection.expires > now) {
        next = std::min(next, connection.expires);
        return false;
      }
      boost::system::error_code ec;
      connection.socket.close(ec);
      return true;
    });
  }
  if (next != TimePoint::max()) arm_expiry(next);
}

}  // namespace sluice::proxy
