#include "fuzz_support.hpp"

#include <cstdio>
#include <cstdlib>

#include <sluice/config/loader.hpp>

namespace sluice::fuzz {
namespace {

// The policy of fuzz_classify and fuzz_request. Its routes overlap on purpose, so the order in
// which they are tried matters; "login-per-ip" appears in two routes (one shared counter).
constexpr std::string_view kPolicy = R"(
listen: 127.0.0.1:8080
threads: 1
trusted_proxies: [10.0.0.0/8, 127.0.0.1, "2001:db8::/32", "::1"]
upstreams:
  api: { servers: ["127.0.0.1:3000"] }
identities:
  api_key: { header: X-API-Key }
  user: { header: X-User-Id }
routes:
  - name: login
    match: { path: /api/login, methods: [POST] }
    upstream: api
    limits:
      - { name: login-per-ip, key: [ip], algorithm: sliding_window, limit: 5, window: 10m }
      - { name: login-per-caller, key: ["user|api_key|ip"], algorithm: fixed_window,
          limit: 20, window: 1h }
  - name: items
    match: { path: /users/:id/items, methods: [GET, PUT] }
    upstream: api
    limits:
      - { name: items-per-tenant, key: ["header:X-Tenant", user, method], algorithm: gcra,
          limit: 100, window: 1m, burst: 20 }
  - name: search
    match: { path: /api/search/* }
    upstream: api
    limits:
      - { name: search-per-key, key: ["api_key|ip", path], algorithm: token_bucket,
          limit: 60, window: 1m, burst: 10 }
      - { name: login-per-ip, key: [ip], algorithm: sliding_window, limit: 5, window: 10m }
  - name: deletes
    match: { path: /api/*, methods: [DELETE] }
    upstream: api
    limits:
      - { name: deletes-per-route, key: [route, "user|ip"], algorithm: fixed_window,
          limit: 10, window: 1s }
  - name: admin
    match: { path: /Admin/:section/Settings, case_sensitive: false }
    upstream: api
    limits:
      - { name: admin-per-path, key: [path, ip], algorithm: fixed_window, limit: 30, window: 1m }
  - name: assets
    match: { path: /Static/*, case_sensitive: false }
    upstream: api
  - name: open
    match: { path: /public }
    upstream: api
  - name: default
    match: { path: /* }
    upstream: api
    limits:
      - { name: everything-per-ip, key: [ip], algorithm: token_bucket, limit: 1000, window: 1s }
)";

bool is_hex_upper(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  return c <= '9' ? c - '0' : c - 'A' + 10;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The non-empty segments of a route pattern's text: "/a/:id/" → {a, :id}. (Patterns hold no ';'.)
std::vector<std::string_view> pattern_segments(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const std::size_t slash = text.find('/');
    const std::string_view segment = text.substr(0, slash);
    if (!segment.empty()) out.push_back(segment);
    text.remove_prefix(slash == std::string_view::npos ? text.size() : slash + 1);
  }
  return out;
}

// The segments a route sees in a normalised path, by the README's rules ("Paths"), written
// independently of classify::routing_path and RouteSegments as a second opinion: every "%2F" is
// read as '/', and the dot segments that makes are resolved as normalisation resolves them ("..",
// also "..;x", drops the segment before it, never above the root; "." goes); then each segment's
// matrix parameters (';' up to the next '/') are cut off, and segments left empty are skipped.
std::vector<std::string> reference_route_segments(std::string_view path) {
  std::string decoded;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path.substr(i, 3) == "%2F") {
      decoded.push_back('/');
      i += 2;
    } else {
      decoded.push_back(path[i]);
    }
  }
  std::vector<std::string> resolved;
  for (std::string_view rest = decoded; !rest.empty();) {
    const std::size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    rest.remove_prefix(slash == std::string_view::npos ? rest.size() : slash + 1);
    const std::string_view name = segment.substr(0, segment.find(';'));
    if (segment.empty() || name == ".") continue;
    if (name == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    resolved.emplace_back(segment);
  }
  std::vector<std::string> out;
  for (const std::string& segment : resolved) {
    const std::string_view name = std::string_view(segment).substr(0, segment.find(';'));
    if (!name.empty()) out.emplace_back(name);
  }
  return out;
}

// The README's matching rules over those segments: a trailing '/' is optional (empty segments
// are skipped); "/p/*" or a prefix pattern matches "/p" and everything below it; ":name" matches
// one segment; literal segments compare exactly, or ASCII-case-insensitively on routes with
// `case_sensitive: false`.
bool reference_path_match(const config::PathPattern& pattern,
                          const std::vector<std::string>& actual) {
  using Kind = config::PathPattern::Kind;
  std::string_view text = pattern.text;
  bool any_tail = pattern.kind == Kind::prefix;
  if (pattern.kind != Kind::exact && (text.ends_with("/*") || text == "*")) {
    text.remove_suffix(1);
    any_tail = true;
  }
  const auto expected = pattern_segments(text);
  if (actual.size() < expected.size()) return false;
  if (!any_tail && actual.size() != expected.size()) return false;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const bool parameter =
        pattern.kind != Kind::exact && expected[i].size() > 1 && expected[i].front() == ':';
    if (parameter) continue;
    const bool same =
        pattern.case_sensitive ? expected[i] == actual[i] : iequals(expected[i], actual[i]);
    if (!same) return false;
  }
  return true;
}

bool reference_accepts_method(const config::Route& route, std::string_view method) {
  if (route.methods.empty()) return true;
  for (const std::string& accepted : route.methods) {
    if (accepted == method || (accepted == "GET" && method == "HEAD")) return true;
  }
  return false;
}

// `path` is the normalised path, before routing_path: the reference reads "%2F" itself.
const config::Route* reference_route(const config::Config& config, std::string_view method,
                                     std::string_view path) {
  const auto segments = reference_route_segments(path);
  for (const config::Route& route : config.routes) {
    if (reference_accepts_method(route, method) && reference_path_match(route.path, segments)) {
      return &route;
    }
  }
  return nullptr;
}

std::shared_ptr<const config::Config> load_policy() {
  auto result = config::load_string(kPolicy, "fuzz-policy.yaml");
  for (const auto& error : result.errors)
    std::fprintf(stderr, "%s\n", error.to_string().c_str());
  require(result.ok(), "the fuzz policy does not load");
  return result.config;
}

}  // namespace

void require(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "invariant violated: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

void check_normalized(std::string_view target, classify::PathError error, std::string_view path,
                      std::string_view query) {
  if (error != classify::PathError::none) {
    require(path.empty() && query.empty(), "a rejected target leaves path and query empty");
    return;
  }
  require(!path.empty() && path.front() == '/', "a normalised path starts with '/'");
  require(path.find("//") == std::string_view::npos, "a normalised path has no \"//\"");
  require(path.find("/./") == std::string_view::npos && !path.ends_with("/."),
          "a normalised path has no \".\" segment");
  require(path.find("/../") == std::string_view::npos && !path.ends_with("/.."),
          "a normalised path has no \"..\" segment");
  require(path.size() <= target.size() + 1, "normalising never lengthens a path beyond its root");
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    require(c > 0x20 && c != 0x7f, "a normalised path has no control characters or spaces");
    require(c != '?' && c != '#', "a normalised path has no raw '?' or '#'");
    if (c != '%') continue;
    require(i + 2 < path.size() && is_hex_upper(path[i + 1]) && is_hex_upper(path[i + 2]),
            "every escape left in a normalised path is '%' and two upper-case hex digits");
    const int decoded = hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]);
    require(!is_unreserved(static_cast<unsigned char>(decoded)),
            "escaped unreserved characters are decoded");
  }
  require(query.empty() ||
              (query.data() >= target.data() && query.data() + query.size() <= target.end()),
          "the query is a view into the target");
  require(query.find('#') == std::string_view::npos, "the fragment is not part of the query");

  std::string again;
  std::string_view again_query;
  const auto again_error = classify::normalize_target(path, again, again_query);
  require(again_error == classify::PathError::none, "a normalised path normalises again");
  require(again == path, "normalising is idempotent");
  require(again_query.empty(), "a normalised path has no query");
}

std::string_view HeaderList::get(std::string_view name) const noexcept {
  for (const auto& [field, value] : fields_) {
    if (iequals(field, name)) return value;
  }
  return {};
}

Classifier::Classifier() : config_(load_policy()), router_(*config_) {}

bool Classifier::is_trusted(const classify::IpAddress& ip) const {
  for (const classify::Cidr& cidr : config_->trusted_proxies) {
    if (cidr.contains(ip)) return true;
  }
  return false;
}

void Classifier::classify(const RequestInput& request, Classification& out) {
  std::string_view query;
  out.path_error = classify::normalize_target(request.target, out.path, query);
  check_normalized(request.target, out.path_error, out.path, query);
  out.routing.clear();
  out.route = nullptr;
  out.client = {};
  out.digests.clear();
  if (out.path_error != classify::PathError::none) return;

  // As the session does: routes and keys see "%2F" as a '/'; the upstream gets out.path.
  const std::string_view routing = classify::routing_path(out.path, routing_scratch_, out.routing);
  if (routing.data() != out.routing.data()) out.routing.assign(routing);
  require(out.routing.find("%2F") == std::string::npos, "the routing path has no \"%2F\" left");
  require(out.path.find("%2F") != std::string::npos || out.routing == out.path,
          "a path without \"%2F\" is routed as it is");
  check_normalized(out.routing, classify::PathError::none, out.routing, {});

  out.route = router_.match(request.method, out.routing);
  require(out.route == reference_route(*config_, request.method, out.path),
          "the router picks the first route, in file order, accepting the method and the path");

  using classify::ForwardingHeader;
  const bool forwarded = config_->client_ip_header == ForwardingHeader::forwarded;
  out.client = classify::client_ip(request.peer, config_->trusted_proxies,
                                   forwarded ? request.forwarded : request.x_forwarded_for,
                                   config_->client_ip_header);
  // The other header's parser sees its line too, whatever the config reads.
  const classify::IpAddress other = classify::client_ip(
      request.peer, config_->trusted_proxies,
      forwarded ? request.x_forwarded_for : request.forwarded,
      forwarded ? ForwardingHeader::x_forwarded_for : ForwardingHeader::forwarded);
  if (!is_trusted(request.peer)) {
    require(out.client == request.peer && other == request.peer,
            "headers from an untrusted peer change the client IP");
  }
  if (out.route == nullptr || out.route->limits.empty()) return;

  const classify::RequestView view{
      .method = request.method,
      .path = out.routing,
      .client = out.client,
      .headers = request.headers,
  };
  const std::size_t n = out.route->limits.size();
  if (checks_.size() < n) checks_.resize(n);
  keys_.build(*out.route, view, std::span(checks_.data(), n));
  for (std::size_t i = 0; i < n; ++i) {
    const config::Limit& limit = out.route->limits[i];
    const limit::LimitCheck& check = checks_[i];
    require(check.algorithm == limit.algorithm && check.quota.limit == limit.quota.limit &&
                check.cost == 1,
            "a check carries its limit's algorithm and quota, at cost 1");
    for (std::size_t j = 0; j < i; ++j) {
      require(!(checks_[j].key == check.key), "two limits of one route share a counter");
    }
    out.digests.push_back(check.key);
  }
}

}  // namespace sluice::fuzz
