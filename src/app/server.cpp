#include <csignal>
#include <optional>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include <sluice/app/server.hpp>
#include <sluice/limit/memory_store.hpp>
#include <sluice/proxy/listener.hpp>
#include <sluice/proxy/session.hpp>

namespace sluice::app {
namespace {

tcp::endpoint listen_endpoint(const config::HostPort& listen) {
  const std::string host = listen.host == "localhost" ? "127.0.0.1" : listen.host;
  return {net::ip::make_address(host), listen.port};
}

// The listeners use SO_REUSEPORT, which would let a second sluice on the same port silently take
// half the traffic of a running one. A plain bind first makes "address in use" an error again.
void ensure_port_free(const tcp::endpoint& endpoint) {
  net::io_context ioc;
  tcp::acceptor probe(ioc);
  probe.open(endpoint.protocol());
  probe.set_option(tcp::acceptor::reuse_address(true));
  boost::system::error_code ec;
  probe.bind(endpoint, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + endpoint.address().to_string() + ":" +
                             std::to_string(endpoint.port()) + ": " + ec.message());
  }
}

}  // namespace

struct Server::Impl {
  // One event loop: its io_context, the sessions' shared per-thread state, and its listener.
  struct Loop {
    net::io_context ioc{1};  // one thread per io_context: Asio may skip its internal locking
    std::optional<proxy::Worker> worker;
    std::shared_ptr<proxy::Listener> listener;
  };

  Impl(std::shared_ptr<const config::Config> cfg, const limit::Clock& clk)
      : config(std::move(cfg)),
        clock(clk),
        store(std::make_unique<limit::MemoryStore>(clock, config->store.max_keys)),
        snapshots(std::make_shared<const proxy::Snapshot>(config)) {}

  std::shared_ptr<const config::Config> config;
  const limit::Clock& clock;
  std::unique_ptr<limit::Store> store;
  proxy::SnapshotHolder snapshots;
  std::vector<std::unique_ptr<Loop>> loops;
};

Server::Server(std::shared_ptr<const config::Config> config, const limit::Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config), clock)) {}

Server::~Server() = default;

int Server::run() {
  const auto& cfg = *impl_->config;
  std::shared_ptr<const std::vector<proxy::UpstreamTarget>> targets;
  tcp::endpoint endpoint;
  try {
    targets =
        std::make_shared<const std::vector<proxy::UpstreamTarget>>(proxy::resolve_upstreams(cfg));
    endpoint = listen_endpoint(cfg.listen);
    ensure_port_free(endpoint);
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return 1;
  }

  const unsigned threads = std::max(1u, cfg.threads);
  for (unsigned i = 0; i < threads; ++i) {
    auto loop = std::make_unique<Impl::Loop>();
    loop->worker.emplace(proxy::Worker{
        .snapshots = impl_->snapshots,
        .store = *impl_->store,
        .fallback_store = nullptr,
        .pool = proxy::UpstreamPool(loop->ioc.get_executor(), targets),
        .limits = {},
    });
    try {
      loop->listener = std::make_shared<proxy::Listener>(loop->ioc, endpoint, *loop->worker);
    } catch (const boost::system::system_error& e) {
      spdlog::error("cannot listen on {}:{}: {}", cfg.listen.host, cfg.listen.port,
                    e.code().message());
      return 1;
    }
    loop->listener->start();
    impl_->loops.push_back(std::move(loop));
  }

  auto& main_loop = *impl_->loops.front();
  net::signal_set signals(main_loop.ioc, SIGINT, SIGTERM);
  signals.async_wait([this](beast::error_code ec, int signal) {
    if (ec) return;
    spdlog::info("received signal {}, stopping", signal);
    for (auto& loop : impl_->loops) {
      net::post(loop->ioc, [&l = *loop] {
        l.listener->stop();
        l.ioc.stop();
      });
    }
  });

  spdlog::info("sluice {} listening on {}:{} with {} thread{}, {} store, {} route{}",
               SLUICE_VERSION, cfg.listen.host, cfg.listen.port, threads, threads == 1 ? "" : "s",
               cfg.store.type == config::StoreType::memory ? "memory" : "redis", cfg.routes.size(),
               cfg.routes.size() == 1 ? "" : "s");

  std::vector<std::thread> others;
  for (std::size_t i = 1; i < impl_->loops.size(); ++i) {
    others.emplace_back([&ioc = impl_->loops[i]->ioc] { ioc.run(); });
  }
  main_loop.ioc.run();
  for (auto& t : others)
    t.join();
  return 0;
}

}  // namespace sluice::app
