#pragma once
#include <span>
#include <string>
#include <string_view>

#include <sluice/classify/request.hpp>
#include <sluice/config/config.hpp>
#include <sluice/limit/key.hpp>
#include <sluice/limit/store.hpp>

namespace sluice::classify {

// The value used for a key part none of whose alternatives is present in the request.
inline constexpr std::string_view kAnonymous = "anonymous";

// Builds the store checks for every limit of a route from one request. Owns a scratch buffer that
// is reused from request to request, so building keys does not allocate once it has grown.
// A `path` key part is the path as the route matches it (RouteSegments: no matrix parameters, no
// trailing '/'), lower-cased when the route's pattern is case-insensitive.
class KeyBuilder {
 public:
  explicit KeyBuilder(limit::DigestKey digest_key = {}) : digest_key_(digest_key) {}

  // Fills out[i] for route.limits[i]; out.size() must be >= route.limits.size().
  void build(const config::Route& route, const RequestView& request,
             std::span<limit::LimitCheck> out);

  // The readable key of one limit for one request, e.g. "login-per-ip|ip=10.0.0.1", or
  // "per-key|api_key=anonymous" when the request lacks the part: the choices the digest is computed
  // from (exposed for tests; never logged with raw identities). The view is valid until
  // the next call to build() or describe().
  std::string_view describe(const config::Route& route, const config::Limit& limit,
                            const RequestView& request);

 private:
  limit::DigestKey digest_key_;
  std::string scratch_;
};

}  // namespace sluice::classify
