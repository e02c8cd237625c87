#pragma once
// The configuration as plain data: what config/loader.cpp builds from YAML and every other part
// reads. A loaded Config is immutable and shared (std::shared_ptr<const Config>); a request holds
// one snapshot from start to end.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sluice/classify/ip.hpp>
#include <sluice/limit/algorithm.hpp>

namespace sluice::config {

using Milliseconds = std::chrono::milliseconds;

// Where a value came from in the YAML file (1-based), kept so later checks can point at it.
struct Mark {
  int line = 0;
  int column = 0;
};

struct HostPort {
  std::string host;  // an IP literal or a name (names are resolved once, at start-up)
  std::uint16_t port = 0;
};

enum class HeaderStyle : std::uint8_t { legacy, ietf, both, none };

enum class StoreType : std::uint8_t { memory, redis };

struct RedisSettings {
  std::string url = "redis://127.0.0.1:6379/0";  // redis://[[user]:password@]host:port/db
  Milliseconds timeout{50};                      // per call; past it the call is a store error
  unsigned connections = 1;                      // per event-loop thread
  // Keys the hash that turns identities into Redis key names; instances sharing limits must agree.
  std::string key_salt;
  // How long an instance refuses the exact repeats of a request Redis refused without asking
  // Redis again (never past the instant it could be admitted); 0 = always ask.
  Milliseconds refusal_cache{1000};
};

struct StoreSettings {
  StoreType type = StoreType::memory;
  // Memory store bound (also of the local fallback of the Redis store); least recently used keys
  // are evicted.
  std::size_t max_keys = 1'000'000;
  RedisSettings redis;
};

// What a store error (Redis unreachable, too slow) means for a route's requests. Never a 429.
enum class OnStoreError : std::uint8_t {
  allow,  // fail open: forward without limits
  deny,   // fail closed: 503 limiter_unavailable with Retry-After
  local,  // decide with the in-process memory store until the shared store is back
};

struct Upstream {
  std::string name;
  std::vector<HostPort> servers;  // used round-robin
  Milliseconds connect_timeout{2000};
  Milliseconds timeout{30000};  // for the response header, and between reads of the body
  // A pooled connection unused this long is closed: under Node's default keepAliveTimeout (5 s),
  // so sluice closes first instead of reusing a connection the upstream is closing.
  Milliseconds idle_timeout{4000};
  Mark mark;
};

// A named way to recognise a caller, e.g. api_key from the X-API-Key header.
struct Identity {
  std::string name;
  std::string header;
  Mark mark;
};

// Where one part of a limit key comes from.
struct KeySource {
  enum class Kind : std::uint8_t { ip, identity, method, route, path, header };
  Kind kind = Kind::ip;
  std::string header;        // Kind::header: the header name; Kind::identity: its header
  std::size_t identity = 0;  // Kind::identity: index into Config::identities
  std::string text;          // as written ("user", "header:X-Tenant"), for summaries and hashing
  std::uint8_t ipv6_prefix = 64;  // Kind::ip: an IPv6 client is keyed by its network of this size
};

// One part of a key. Several alternatives ("user|ip") mean the first one present.
// A part with no present alternative is keyed as "anonymous".
struct KeyPart {
  std::vector<KeySource> alternatives;
};

struct Limit {
  std::string name;
  std::vector<KeyPart> key;
  // Required in YAML (each algorithm admits bursts differently; a silent default would surprise).
  limit::Algorithm algorithm = limit::Algorithm::token_bucket;
  limit::Quota quota;  // burst defaults to limit
  // A hash of name + definition: store keys derive from it, so a limit keeps its counters across
  // reloads while its definition is unchanged, and two different limits never share a counter.
  // The same limit (same name, same definition) named in several routes shares one counter.
  std::uint64_t identity_hash = 0;
  Mark mark;
};

struct PathPattern {
  // exact "/api/login"; prefix "/api/*" (matches "/api" and everything below "/api/");
  // segments "/users/:id" (":name" matches exactly one non-empty segment).
  enum class Kind : std::uint8_t { exact, prefix, segments };
  Kind kind = Kind::exact;
  std::string text;  // as written (normalised)
  // Resolved at load from `match.case_sensitive`, else the top-level `case_sensitive_paths`.
  // False: literal segments match ASCII-case-insensitively, and a `path` key part is lower-cased,
  // for upstreams that route "/API/Login" to the "/api/login" handler.
  bool case_sensitive = true;
};

struct Route {
  std::string name;
  PathPattern path;
  std::vector<std::string> methods;  // upper case; empty = any method
  std::size_t upstream = 0;          // index into Config::upstreams
  std::vector<Limit> limits;
  // The headers the limits' keys read (identities and header:NAME), each once, resolved at load:
  // a request that repeats one is refused (a key built from one copy while the upstream may
  // believe another).
  std::vector<std::string> key_headers;
  OnStoreError on_store_error = OnStoreError::allow;
  // Largest request body in bytes (over it: 413), resolved at load: the route's `max_body`, else
  // `client.max_body`. 0 = unlimited.
  std::uint64_t max_body = 0;
  Mark mark;
};

// What one client connection may cost (`client:` in the config). Past a size: 414/431/413; past a
// timeout the connection is closed (408 when a request's header section was started).
struct ClientLimits {
  std::size_t max_connections = 10000;       // per process; past it: 503 and close
  std::size_t max_header_bytes = 32 * 1024;  // request line + header fields (431)
  std::size_t max_uri_bytes = 8 * 1024;      // request target (414); <= max_header_bytes
  std::uint64_t max_body = 0;                // default of Route::max_body; 0 = unlimited
  Milliseconds header_timeout{10000};        // to receive a request's header section (408)
  Milliseconds idle_timeout{60000};          // between requests on a keep-alive connection
  Milliseconds body_timeout{60000};          // between pieces of a request body
  Milliseconds send_timeout{60000};          // for each write to the client
};

struct Config {
  std::string source;  // the file it was loaded from
  HostPort listen{"0.0.0.0", 8080};
  unsigned threads = 0;  // resolved: "auto" becomes the number of cores
  std::vector<classify::Cidr> trusted_proxies;
  classify::ForwardingHeader client_ip_header = classify::ForwardingHeader::x_forwarded_for;
  // The `ip` key part keys an IPv6 client by its /ipv6_prefix network: one host commonly holds a
  // whole /64, and could otherwise rotate through 2^64 fresh budgets. IPv4: per address.
  std::uint8_t ipv6_prefix = 64;
  HeaderStyle headers = HeaderStyle::both;
  ClientLimits client;
  // The default of each route's match.case_sensitive: false, as Express routes (true there would
  // let /API/LOGIN skip /api/login's limits). It must follow the upstream: in front of a
  // case-sensitive one, false lets an early unlimited /health also take /HEALTH.
  bool case_sensitive_paths = false;
  StoreSettings store;
  std::vector<Upstream> upstreams;
  std::vector<Identity> identities;
  std::vector<Route> routes;  // first match wins, in file order
};

std::string_view to_string(HeaderStyle style) noexcept;

}  // namespace sluice::config
