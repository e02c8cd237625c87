// Route matching. A trailing '/' on the request path is optional for every pattern, as in Express
// (non-strict routing): "/api/login/" reaches the same upstream handler as "/api/login", so it
// must meet the same limits.
#include <sluice/classify/router.hpp>

namespace sluice::classify {
namespace {

std::string_view without_trailing_slash(std::string_view s) noexcept {
  if (s.size() > 1 && s.back() == '/') s.remove_suffix(1);
  return s;
}

// The next segment of `rest` (which starts after a '/'), advancing past it and its '/'.
std::string_view next_segment(std::string_view& rest) noexcept {
  const std::size_t slash = rest.find('/');
  const std::string_view segment = rest.substr(0, slash);
  rest.remove_prefix(slash == std::string_view::npos ? rest.size() : slash + 1);
  return segment;
}

std::string_view without_leading_slash(std::string_view s) noexcept {
  if (!s.empty() && s.front() == '/') s.remove_prefix(1);
  return s;
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
  body_ = without_trailing_slash(text);
}

bool CompiledPattern::matches(std::string_view path) const noexcept {
  path = without_trailing_slash(path);
  if (exact_) return path == body_;

  std::string_view pattern_rest = without_leading_slash(body_);
  std::string_view path_rest = without_leading_slash(path);
  while (!pattern_rest.empty()) {
    const std::string_view expected = next_segment(pattern_rest);
    if (path_rest.empty()) return false;
    const std::string_view actual = next_segment(path_rest);
    if (expected.size() > 1 && expected.front() == ':') {
      if (actual.empty()) return false;
    } else if (expected != actual) {
      return false;
    }
  }
  return any_tail_ || path_rest.empty();
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

bool path_matches(const config::PathPattern& pattern, std::string_view path) noexcept {
  return CompiledPattern(pattern).matches(path);
}

}  // namespace sluice::classify
