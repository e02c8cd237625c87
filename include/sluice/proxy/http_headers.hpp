#pragma once
// Header handling shared by the session and its fuzz target: lookups for the classifier, joined
// repeatable headers, and the hop-by-hop rules of a proxy.
#include <string>
#include <string_view>

#include <sluice/classify/request.hpp>
#include <sluice/net.hpp>

namespace sluice::proxy {

// Lets the classifier read Beast's fields: the first field of a name.
class FieldsLookup final : public classify::HeaderLookup {
 public:
  explicit FieldsLookup(const http::fields& fields) : fields_(fields) {}
  std::string_view get(std::string_view name) const noexcept override;

 private:
  const http::fields& fields_;
};

// Every value of a repeatable header (X-Forwarded-For) joined with ", "; `out` is the storage when
// there is more than one.
std::string_view joined_values(const http::fields& fields, std::string_view name, std::string& out);

// Removes the headers that describe one connection, not the message (RFC 9110 7.6.1), and those the
// Connection header names. Transfer-Encoding stays: the serializers re-apply the framing.
void remove_hop_by_hop(http::fields& fields);

}  // namespace sluice::proxy
