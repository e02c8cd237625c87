#include <algorithm>
#include <stdexcept>
#include <sys/socket.h>

#include <sluice/proxy/drained_read.hpp>
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

namespace {

// An idle connection must have nothing to read: end-of-file means the upstream closed it, and bytes
// mean it sent something nobody asked for, which would be taken for the next response.
bool may_hold_input(Socket& socket, IdleCheck check) {
  char byte;
  if (check == IdleCheck::kernel || !kProbesWithoutSyscall) {
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
  ProbeResult found = ProbeResult::not_asked;
  socket.async_receive(InputProbe(byte, found), 0, [](boost::system::error_code, std::size_t) {});
  if (found == ProbeResult::not_asked) {
    // Not run, so waiting in the reactor: a question asked of nobody, withdrawn. Its handler runs
    // later and does nothing.
    boost::system::error_code ec;
    socket.cancel(ec);
  }
  return found == ProbeResult::input;
}

}  // namespace

bool UpstreamPool::take_idle(std::size_t upstream, Socket& out, IdleCheck check) {
  auto& idle = idle_[upstream];
  while (!idle.empty()) {
    Socket socket = std::move(idle.back().socket);
    idle.pop_back();
    if (!may_hold_input(socket, check)) {
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
