#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <random>
#include <sys/resource.h>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include <sluice/app/server.hpp>
#include <sluice/limit/memory_store.hpp>
#include <sluice/limit/redis_store.hpp>
#include <sluice/proxy/listener.hpp>
#include <sluice/proxy/session.hpp>

namespace sluice::app {
namespace {

tcp::endpoint listen_endpoint(const config::HostPort& listen) {
  const std::string host = listen.host == "localhost" ? "127.0.0.1" : listen.host;
  return {net::ip::make_address(host), listen.port};
}

// Each client connection can hold a second descriptor (to the upstream), and the soft limit is
// often 1024 while the hard one is far higher: raise the soft limit towards what max_connections
// needs, as far as the hard limit allows, and say so when it stays short.
void raise_open_file_limit(std::size_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(max_connections) * 2 + 1024;
  if (limit.rlim_cur >= wanted) return;
  const rlim_t raised = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  if (raised > limit.rlim_cur) {
    rlimit higher = limit;
    higher.rlim_cur = raised;
    if (::setrlimit(RLIMIT_NOFILE, &higher) == 0) limit = higher;
  }
  if (limit.rlim_cur < wanted) {
    spdlog::warn(
        "open file limit is {} (hard limit {}); client.max_connections {} needs about {}: "
        "past the limit new connections wait (raise it with ulimit -n or LimitNOFILE=)",
        limit.rlim_cur, limit.rlim_max, max_connections, wanted);
  }
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

std::string_view environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// The config's key_salt, else SLUICE_KEY_SALT.
std::string_view key_salt(const config::RedisSettings& redis) {
  return redis.key_salt.empty() ? environment("SLUICE_KEY_SALT") : std::string_view(redis.key_salt);
}

// The Redis store's settings from the config, plus the secrets that may live in the environment
// instead: SLUICE_REDIS_PASSWORD when the URL has no password, SLUICE_KEY_SALT when the config
// has no key_salt. Throws on a bad URL (which the loader has already rejected).
limit::RedisStoreSettings redis_store_settings(const config::RedisSettings& redis) {
  limit::RedisStoreSettings settings;
  const std::string why =
      redis::parse_url(redis.url, settings.redis, environment("SLUICE_REDIS_PASSWORD"));
  if (!why.empty()) throw std::runtime_error(why);
  settings.redis.call_timeout = redis.timeout;
  settings.connections = std::max(1u, redis.connections);
  settings.key_names = limit::redis_key_names(key_salt(redis));
  settings.refusal_cache = redis.refusal_cache;
  return settings;
}

// See Worker::digest_key.
limit::DigestKey digest_key(const config::StoreSettings& store) {
  if (store.type == config::StoreType::redis) {
    if (key_salt(store.redis).empty()) {
      spdlog::warn(
          "store.redis.key_salt is not set (nor SLUICE_KEY_SALT): Redis key names use a "
          "public default, so whoever can read Redis can tell which IP a counter is for "
          "by hashing candidates. Set a secret salt, the same on every instance");
    }
    return limit::redis_digest_key(key_salt(store.redis));
  }
  std::random_device random;
  auto word = [&] { return (std::uint64_t{random()} << 32) | random(); };
  return limit::DigestKey{word(), word()};
}

proxy::SessionLimits session_limits(const config::ClientLimits& client) {
  return {
      .header_timeout = client.header_timeout,
      .idle_timeout = client.idle_timeout,
      .body_timeout = client.body_timeout,
      .send_timeout = client.send_timeout,
      .max_header_bytes = client.max_header_bytes,
      .max_target_bytes = client.max_uri_bytes,
  };
}

}  // namespace

struct Server::Impl {
  // One event loop: its io_context, the sessions' shared per-thread state, and its listener.
  struct Loop {
    // One thread per io_context, and every socket and timer of a loop used only by its thread:
    // Asio can skip the per-descriptor locks of its reactor (the scheduler's lock stays, since
    // other threads post to a loop to stop it).
    // Outlives ioc: the sessions it destroys give their buffers back here.
    proxy::SessionSpares spares;
    net::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    // This loop's own connections to the shared Redis (null with the memory store). Declared
    // after ioc: destroyed before it, as the Redis client requires.
    std::unique_ptr<limit::RedisStore> redis_store;
    std::unique_ptr<proxy::Worker> worker;  // made in place: its upstream pool never moves
    std::shared_ptr<proxy::Listener> listener;
  };

  Impl(std::shared_ptr<const config::Config> cfg, const limit::Clock& clk)
      : config(std::move(cfg)),
        clock(clk),
        // The store with type memory; with redis, the fallback of on_store_error: local.
        memory_store(std::make_unique<limit::MemoryStore>(clock, config->store.max_keys)),
        snapshots(std::make_shared<const proxy::Snapshot>(config)),
        connections(config->client.max_connections) {}

  std::shared_ptr<const config::Config> config;
  const limit::Clock& clock;
  std::unique_ptr<limit::MemoryStore> memory_store;
  std::shared_ptr<limit::RedisStoreMonitor> redis_monitor;  // shared by every loop's RedisStore
  proxy::SnapshotHolder snapshots;
  // Declared before the loops: sessions destroyed with a loop's io_context still leave it.
  proxy::ConnectionGate connections;
  std::vector<std::unique_ptr<Loop>> loops;
};

Server::Server(std::shared_ptr<const config::Config> config, const limit::Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config), clock)) {}

Server::~Server() = default;

int Server::run() {
  const auto& cfg = *impl_->config;
  std::shared_ptr<const std::vector<proxy::UpstreamTarget>> targets;
  tcp::endpoint endpoint;
  const unsigned threads = std::max(1u, cfg.threads);
  const bool use_redis = cfg.store.type == config::StoreType::redis;
  limit::RedisStoreSettings redis_settings;
  try {
    targets =
        std::make_shared<const std::vector<proxy::UpstreamTarget>>(proxy::resolve_upstreams(cfg));
    endpoint = listen_endpoint(cfg.listen);
    ensure_port_free(endpoint);
    raise_open_file_limit(cfg.client.max_connections);
    if (use_redis) {
      redis_settings = redis_store_settings(cfg.store.redis);
      impl_->redis_monitor = std::make_shared<limit::RedisStoreMonitor>(
          redis_settings.redis.host + ":" + std::to_string(redis_settings.redis.port),
          std::size_t{threads} * redis_settings.connections);
    }
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return 1;
  }

  const limit::DigestKey key_digests = digest_key(cfg.store);
  for (unsigned i = 0; i < threads; ++i) {
    auto loop = std::make_unique<Impl::Loop>();
    if (use_redis) {
      // Connects in the background once the loop runs: sluice serves (per on_store_error) while
      // Redis is unreachable and picks it up when it appears.
      loop->redis_store = std::make_unique<limit::RedisStore>(
          loop->ioc.get_executor(), redis_settings, impl_->redis_monitor,
          std::size_t{i} * redis_settings.connections);
      net::post(loop->ioc, [&store = *loop->redis_store] { store.run(); });
    }
    loop->worker.reset(new proxy::Worker{
        .connections = impl_->connections,
        .snapshots = impl_->snapshots,
        .store = use_redis ? static_cast<limit::Store&>(*loop->redis_store) : *impl_->memory_store,
        .fallback_store = use_redis ? impl_->memory_store.get() : nullptr,
        .pool = proxy::UpstreamPool(loop->ioc.get_executor(), targets),
        .limits = session_limits(cfg.client),
        .digest_key = key_digests,
        .spares = loop->spares,
        .yield_queue = proxy::YieldQueue(loop->ioc.get_executor()),
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
  signals.async_wait([this](boost::system::error_code ec, int signal) {
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
