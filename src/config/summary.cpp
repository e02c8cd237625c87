// The one-screen summary `sluice check` prints: what the proxy will do with this config, in the
// order a reader checks it (where it listens, where requests go, which limits apply).
#include <algorithm>
#include <map>
#include <string>

#include <sluice/config/duration.hpp>
#include <sluice/config/loader.hpp>
#include <sluice/config/size.hpp>
#include <sluice/redis/client.hpp>

namespace sluice::config {

std::string_view to_string(HeaderStyle style) noexcept {
  switch (style) {
    case HeaderStyle::legacy:
      return "legacy";
    case HeaderStyle::ietf:
      return "ietf";
    case HeaderStyle::both:
      return "both";
    case HeaderStyle::none:
      return "none";
  }
  return "unknown";
}

namespace {

std::string format_host_port(const HostPort& hp) {
  const bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

std::string format_cidr(const classify::Cidr& cidr) {
  const bool v4 = cidr.base.is_v4();
  const int bits = v4 ? cidr.prefix - 96 : cidr.prefix;
  const std::string address = cidr.base.to_string();
  return bits == (v4 ? 32 : 128) ? address : address + "/" + std::to_string(bits);
}

std::string format_key(const Limit& limit) {
  std::string out;
  for (const KeyPart& part : limit.key) {
    if (!out.empty()) out += ", ";
    for (std::size_t i = 0; i < part.alternatives.size(); ++i) {
      if (i > 0) out += '|';
      out += part.alternatives[i].text;
    }
  }
  return out;
}

std::string format_numbers(const Limit& limit) {
  std::string out = std::to_string(limit.quota.limit) + " per " +
                    format_duration(std::chrono::microseconds(limit.quota.window));
  if (limit.algorithm == limit::Algorithm::token_bucket ||
      limit.algorithm == limit::Algorithm::gcra) {
    out += ", burst " + std::to_string(limit.quota.burst);
  }
  return out;
}

std::string format_methods(const Route& route) {
  if (route.methods.empty()) return "*";
  std::string out;
  for (const auto& m : route.methods) {
    if (!out.empty()) out += ',';
    out += m;
  }
  return out;
}

// Where the Redis store is, without the password; with its deadline and connections.
std::string format_redis_store(const StoreSettings& store) {
  redis::Settings where;
  std::string out = "redis store ";
  if (redis::parse_url(store.redis.url, where).empty()) {
    const bool v6 = where.host.find(':') != std::string::npos;
    out += (v6 ? "[" + where.host + "]" : where.host) + ":" + std::to_string(where.port);
    if (where.db != 0) out += " db " + std::to_string(where.db);
  } else {
    out += "(bad url)";
  }
  const unsigned n = store.redis.connections;
  out +=
      " (timeout " + format_duration(store.redis.timeout) + ", " + std::to_string(n) +
      (n == 1 ? " connection" : " connections") + " per thread, " +
      (store.redis.key_salt.empty() ? "key salt from SLUICE_KEY_SALT or default" : "key salt set") +
      ", refusals repeated locally " +
      (store.redis.refusal_cache.count() == 0
           ? "off"
           : "up to " + format_duration(store.redis.refusal_cache)) +
      "; local fallback max " + std::to_string(store.max_keys) + " keys)";
  return out;
}

std::string_view to_string(OnStoreError mode) {
  switch (mode) {
    case OnStoreError::allow:
      return "allow";
    case OnStoreError::deny:
      return "deny";
    case OnStoreError::local:
      return "local";
  }
  return "?";
}

std::string format_body_limit(std::uint64_t bytes) {
  return bytes == 0 ? "unlimited" : format_size(bytes);
}

// The client limits that differ from their defaults, e.g. "max_connections 500, header_timeout 5s";
// empty when all are defaults (the common case needs no line).
std::string format_client_limits(const ClientLimits& client) {
  const ClientLimits defaults;
  std::string out;
  const auto add = [&out](std::string_view key, const std::string& value) {
    if (!out.empty()) out += ", ";
    out += std::string(key) + " " + value;
  };
  if (client.max_connections != defaults.max_connections) {
    add("max_connections", std::to_string(client.max_connections));
  }
  if (client.max_header_bytes != defaults.max_header_bytes) {
    add("max_header_bytes", format_size(client.max_header_bytes));
  }
  if (client.max_uri_bytes != defaults.max_uri_bytes) {
    add("max_uri_bytes", format_size(client.max_uri_bytes));
  }
  if (client.max_body != defaults.max_body) add("max_body", format_body_limit(client.max_body));
  const std::pair<std::string_view, Milliseconds ClientLimits::*> timeouts[] = {
      {"header_timeout", &ClientLimits::header_timeout},
      {"idle_timeout", &ClientLimits::idle_timeout},
      {"body_timeout", &ClientLimits::body_timeout},
      {"send_timeout", &ClientLimits::send_timeout},
  };
  for (const auto& [key, member] : timeouts) {
    if (client.*member != defaults.*member) add(key, format_duration(client.*member));
  }
  return out;
}

void pad(std::string& out, std::string_view text, std::size_t width) {
  out += text;
  if (text.size() < width) out.append(width - text.size(), ' ');
}

}  // namespace

std::string summarize(const Config& config) {
  std::string out = config.source + " is valid\n";

  out += "listen " + format_host_port(config.listen) + " · " + std::to_string(config.threads) +
         (config.threads == 1 ? " thread" : " threads") + " · ";
  out += config.store.type == StoreType::memory
             ? "memory store (max " + std::to_string(config.store.max_keys) + " keys)"
             : format_redis_store(config.store);
  out += " · headers: " + std::string(to_string(config.headers)) + "\n";

  out += "trusted proxies ";
  if (config.trusted_proxies.empty()) out += "none (the client is the socket peer)";
  for (std::size_t i = 0; i < config.trusted_proxies.size(); ++i) {
    if (i > 0) out += ", ";
    out += format_cidr(config.trusted_proxies[i]);
  }
  if (!config.trusted_proxies.empty()) {
    out += config.client_ip_header == classify::ForwardingHeader::forwarded
               ? " (the client from Forwarded)"
               : " (the client from X-Forwarded-For)";
  }
  out += "\n";
  out += config.ipv6_prefix >= 128
             ? "ip keys per address\n"
             : "ip keys IPv4 per address, IPv6 per /" + std::to_string(config.ipv6_prefix) + "\n";

  if (const std::string client = format_client_limits(config.client); !client.empty()) {
    out += "client " + client + "\n";
  }

  if (!config.identities.empty()) {
    out += "identities ";
    for (std::size_t i = 0; i < config.identities.size(); ++i) {
      if (i > 0) out += ", ";
      out += config.identities[i].name + " (" + config.identities[i].header + ")";
    }
    out += "\n";
  }

  std::size_t upstream_width = 0;
  std::size_t servers_width = 0;
  std::vector<std::string> servers;
  for (const auto& upstream : config.upstreams) {
    std::string list;
    for (const auto& server : upstream.servers) {
      if (!list.empty()) list += ", ";
      list += format_host_port(server);
    }
    upstream_width = std::max(upstream_width, upstream.name.size() + 2);
    servers_width = std::max(servers_width, list.size() + 2);
    servers.push_back(std::move(list));
  }
  out += "upstreams\n";
  for (std::size_t i = 0; i < config.upstreams.size(); ++i) {
    const auto& upstream = config.upstreams[i];
    out += "  ";
    pad(out, upstream.name, upstream_width);
    pad(out, servers[i], servers_width);
    out += "connect " + format_duration(upstream.connect_timeout) + ", timeout " +
           format_duration(upstream.timeout) + ", idle " + format_duration(upstream.idle_timeout) +
           "\n";
  }

  // Column widths over all routes, so the limits of every route line up.
  std::size_t route_width = 0;
  std::size_t methods_width = 0;
  std::size_t limit_width = 0;
  std::size_t algorithm_width = 0;
  std::size_t numbers_width = 0;
  std::map<std::string_view, std::vector<std::string_view>> routes_of_limit;
  for (const auto& route : config.routes) {
    route_width = std::max(route_width, route.name.size() + 2);
    methods_width = std::max(methods_width, format_methods(route).size() + 1);
    for (const auto& limit : route.limits) {
      limit_width = std::max(limit_width, limit.name.size() + 2);
      algorithm_width = std::max(algorithm_width, limit::to_string(limit.algorithm).size() + 2);
      numbers_width = std::max(numbers_width, format_numbers(limit).size() + 2);
      routes_of_limit[limit.name].push_back(route.name);
    }
  }

  out += "routes (first match wins)\n";
  for (const auto& route : config.routes) {
    out += "  ";
    pad(out, route.name, route_width);
    pad(out, format_methods(route), methods_width);
    out += route.path.text + " -> " + config.upstreams.at(route.upstream).name;
    std::string notes;
    const auto note = [&notes](const std::string& text) {
      notes += notes.empty() ? "  (" : ", ";
      notes += text;
    };
    // What a Redis outage means for the route; the default (allow) only when it matters.
    if (!route.limits.empty() &&
        (config.store.type == StoreType::redis || route.on_store_error != OnStoreError::allow)) {
      note("on store error: " + std::string(to_string(route.on_store_error)));
    }
    if (route.path.case_sensitive) note("case-sensitive");
    if (route.max_body != 0) note("max body " + format_size(route.max_body));
    if (!notes.empty()) out += notes + ")";
    out += "\n";
    const std::string indent(2 + route_width, ' ');
    if (route.limits.empty()) out += indent + "no limits\n";
    for (const auto& limit : route.limits) {
      out += indent;
      pad(out, limit.name, limit_width);
      pad(out, limit::to_string(limit.algorithm), algorithm_width);
      pad(out, format_numbers(limit), numbers_width);
      out += "key " + format_key(limit);
      // One name in several routes is one set of counters: say so, it is easy to miss.
      std::string others;
      for (const auto name : routes_of_limit[limit.name]) {
        if (name == route.name) continue;
        if (!others.empty()) others += ", ";
        others += name;
      }
      if (!others.empty()) out += "  (shared with " + others + ")";
      out += "\n";
    }
  }
  return out;
}

}  // namespace sluice::config
