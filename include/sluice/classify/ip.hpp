#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice::classify {

// An IPv4 or IPv6 address. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so "1.2.3.4" and
// "::ffff:1.2.3.4" are the same client.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};

  // Accepts dotted IPv4 and RFC 4291 IPv6 text (no zone ids, no brackets, no port).
  static std::optional<IpAddress> parse(std::string_view text) noexcept;
  static IpAddress from_v4(std::uint32_t host_order) noexcept;

  bool is_v4() const noexcept;
  // The first `prefix_bits` (of 128) kept, the rest zero: the network the address is in.
  IpAddress masked(unsigned prefix_bits) const noexcept;
  // Canonical text: dotted quad for IPv4 (also when it arrived mapped), RFC 5952 for IPv6.
  std::string to_string() const;
  // Writes the canonical text into buf (at least 46 bytes); returns its length.
  std::size_t format(std::span<char, 46> buf) const noexcept;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// An address block such as 10.0.0.0/8 or 2001:db8::/32. A bare address is a /32 or /128.
struct Cidr {
  IpAddress base;
  std::uint8_t prefix = 128;  // in IPv6 bits (IPv4 prefixes are stored + 96)

  static std::optional<Cidr> parse(std::string_view text) noexcept;
  bool contains(const IpAddress& ip) const noexcept;
};

// Whether `ip` is in one of `trusted`.
bool is_trusted(const IpAddress& ip, std::span<const Cidr> trusted) noexcept;

// The header trusted proxies report the client in. Only one is ever read: most proxies append to
// X-Forwarded-For and pass a client's own Forwarded through untouched, so reading both would let
// a client name itself.
enum class ForwardingHeader : std::uint8_t { x_forwarded_for, forwarded };

// The client's address: the socket peer, unless the peer is a trusted proxy; then the rightmost
// address in `header` (the value of the `kind` header, its lines joined) that is not itself a
// trusted proxy. Headers from untrusted peers are ignored entirely. An unparsable hop stops the
// walk at the last trusted address seen, so garbage never becomes an identity.
IpAddress client_ip(const IpAddress& peer, std::span<const Cidr> trusted_proxies,
                    std::string_view header, ForwardingHeader kind) noexcept;

}  // namespace sluice::classify
