// Route matching. A trailing '/' on the request path is optional for every pattern, as in Express
// (non-strict routing): "/api/login/" reaches the same upstream handler as "/api/login", so it
// must meet the same limits. For the same reason matrix parameters are ignored: a Java upstream
// serves "/api/login;jsessionid=x" with its "/api/login" handler.
#include <sluice/classify/path.hpp>
#include <sluice/classify/router.hpp>

namespace sluice::classify {
namespace {

char ascii_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool accepts_method(const config::Route& route, std::string_view method) noexcept {
  if (route.methods.empty()) return true;
  for (const std::string& accepted : route.methods) {
    if (accepted == method) return true;
    // A HEAD is a GET without the body; servers answer it with the GET handler.
    if (method == "HEAD" && accepted == "GET") return true;
  }
  return false;
}

}  // namespace

CompiledPattern::CompiledPattern(const config::PathPattern& pattern) noexcept {
  std::string_view text = pattern.text;
  exact_ = pattern.kind == config::PathPattern::Kind::exact;
  case_sensitive_ = pattern.case_sensitive;
  if (!exact_) {
    if (text.ends_with("/*")) {
      text.remove_suffix(2);
      any_tail_ = true;
    } else if (text == "*") {
      text = {};
      any_tail_ = true;
    }
    // A prefix is a prefix even when written without "/*".
    if (pattern.kind == config::PathPattern::Kind::prefix) any_tail_ = true;
  }
  body_ = text;
}

bool CompiledPattern::matches(std::string_view path, bool literal) const noexcept {
  RouteSegments pattern_segments(body_);
  RouteSegments path_segments(path, literal);
  std::string_view expected;
  std::string_view actual;
  while (pattern_segments.next(expected)) {
    if (!path_segments.next(actual)) return false;
    // A ":name" parameter accepts any segment; RouteSegments yields only non-empty ones.
    if (!exact_ && expected.size() > 1 && expected.front() == ':') continue;
    if (case_sensitive_ ? expected != actual : !equals_ignoring_case(expected, actual)) {
      return false;
    }
  }
  return any_tail_ || !path_segments.next(actual);
}

Router::Router(const config::Config& config) : config_(config) {
  entries_.reserve(config_.routes.size());
  for (const config::Route& route : config_.routes) {
    entries_.push_back(Entry{&route, CompiledPattern(route.path)});
  }
}

const config::Route* Router::match(std::string_view method, std::string_view path) const noexcept {
  for (const Entry& entry : entries_) {
    if (accepts_method(*entry.route, method) && entry.pattern.matches(path)) return entry.route;
  }
  return nullptr;
}

const config::Route* Router::match_request(std::string_view method, std::string_view routing,
                                           std::string_view normalized) const noexcept {
  // Without "%2F" or ';' both readings are the same path.
  const bool two_readings = routing != normalized || normalized.find(';') != std::string_view::npos;
  if (!two_readings) return match(method, routing);
  for (const Entry& entry : entries_) {
    if (!accepts_method(*entry.route, method)) continue;
    // "%2F" decoded or kept, times ';' cut or kept: servlets, WSGI and old Go, Express.
    if (entry.pattern.matches(routing) || entry.pattern.matches(routing, /*literal=*/true) ||
        entry.pattern.matches(normalized, /*literal=*/true) || entry.pattern.matches(normalized)) {
      return entry.route;
    }
  }
  return nullptr;
}

bool path_matches(const config::PathPattern& pattern, std::string_view path) noexcept {
  return CompiledPattern(pattern).matches(path);
}

}  // namespace sluice::classify
