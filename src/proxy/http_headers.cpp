#include <array>

#include <sluice/proxy/http_headers.hpp>

namespace sluice::proxy {
namespace {

// Headers that describe one connection, not the message (RFC 9110 7.6.1): never forwarded.
// Transfer-Encoding is not listed: the serializers re-apply the message's framing themselves.
constexpr std::array<http::field, 7> kHopByHop = {
    http::field::connection,        http::field::keep_alive,
    http::field::proxy_connection,  http::field::te,
    http::field::upgrade,           http::field::proxy_authorization,
    http::field::proxy_authenticate};

}  // namespace

std::string_view FieldsLookup::get(std::string_view name) const noexcept {
  auto it = fields_.find(name);
  return it == fields_.end() ? std::string_view{} : std::string_view(it->value());
}

std::string_view joined_values(const http::fields& fields, std::string_view name,
                               std::string& out) {
  auto [first, last] = fields.equal_range(name);
  if (first == last) return {};
  if (std::next(first) == last) return first->value();
  out.clear();
  for (auto it = first; it != last; ++it) {
    if (!out.empty()) out.append(", ");
    out.append(it->value());
  }
  return out;
}

void remove_hop_by_hop(http::fields& fields) {
  // Headers named in Connection are hop-by-hop too ("Connection: close, X-Secret"). Collected
  // first: erasing while walking equal_range would invalidate its end, which is the next field in
  // the list.
  std::array<std::string_view, 16> named;
  std::size_t count = 0;
  for (auto [it, end] = fields.equal_range(http::field::connection); it != end; ++it) {
    std::string_view list = it->value();
    while (!list.empty() && count < named.size()) {
      const auto comma = list.find(',');
      std::string_view token = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      // Never let a client strip framing or the headers sluice itself relies on.
      if (token.empty() || beast::iequals(token, "transfer-encoding") ||
          beast::iequals(token, "content-length") || beast::iequals(token, "host") ||
          beast::iequals(token, "connection")) {
        continue;
      }
      named[count++] = token;
    }
  }
  // The views point into Connection's value, which outlives these erasures.
  for (std::size_t i = 0; i < count; ++i)
    fields.erase(named[i]);
  for (auto field : kHopByHop)
    fields.erase(field);
}

}  // namespace sluice::proxy
