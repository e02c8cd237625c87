#pragma once
#include <string_view>

#include <sluice/classify/ip.hpp>

namespace sluice::classify {

// Header lookup, so classification does not depend on the HTTP library that parsed the request.
class HeaderLookup {
 public:
  // The value of the first header named `name` (case-insensitive), or empty when absent.
  virtual std::string_view get(std::string_view name) const noexcept = 0;

 protected:
  ~HeaderLookup() = default;
};

// A non-owning view of one request, valid while the session's parser holds it.
struct RequestView {
  std::string_view method;  // as sent, e.g. "GET"
  std::string_view path;    // normalised (see normalize_target)
  IpAddress client;         // after trusted-proxy rules
  const HeaderLookup* headers = nullptr;
};

}  // namespace sluice::classify
