#pragma once
#include <string_view>
#include <vector>

#include <sluice/config/config.hpp>

namespace sluice::classify {

// A PathPattern prepared once: its kind settled, its trailing "/*" stripped. Matching walks the
// pattern and the path segment by segment (RouteSegments: matrix parameters cut off, empty
// segments skipped, so a trailing '/' is optional), parsing and allocating nothing. Views point
// into the PathPattern's text, which must outlive it.
class CompiledPattern {
 public:
  explicit CompiledPattern(const config::PathPattern& pattern) noexcept;

  // `literal`: the path's segments as written (RouteSegments).
  bool matches(std::string_view path, bool literal = false) const noexcept;

 private:
  bool exact_ = true;           // compare literally; otherwise ":name" segments are parameters
  bool case_sensitive_ = true;  // false: literal segments compare ASCII-case-insensitively
  bool any_tail_ = false;       // "/*": zero or more further segments
  std::string_view body_;       // the pattern without its "/*" tail
};

// Matches a normalised path and a method to the first route that accepts them, in file order.
// Built once per config snapshot (which must outlive it); matching allocates nothing.
class Router {
 public:
  explicit Router(const config::Config& config);

  // The matching route, or nullptr (answered with 404).
  const config::Route* match(std::string_view method, std::string_view path) const noexcept;

  // The first route that any reading of a request's path matches: "%2F" read as '/' (`routing`,
  // see routing_path: WSGI, Go before 1.22) or kept (`normalized`: Express, servlets), and
  // matrix parameters cut (servlets) or kept as ordinary characters (Express, WSGI). Upstreams
  // differ, so a request meets the limits of the earliest route any of them could hand it to:
  // taking one reading only let "/items/7%2Fx" or "/items/;7" slip from "/items/:id" to a later
  // catch-all.
  const config::Route* match_request(std::string_view method, std::string_view routing,
                                     std::string_view normalized) const noexcept;

 private:
  struct Entry {
    const config::Route* route;
    CompiledPattern pattern;
  };

  const config::Config& config_;
  std::vector<Entry> entries_;
};

// True when `path` matches `pattern` (exported for tests and for `sluice check`).
bool path_matches(const config::PathPattern& pattern, std::string_view path) noexcept;

}  // namespace sluice::classify
