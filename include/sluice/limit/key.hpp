#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::limit {

// 128-bit keyed digest naming one counter: a limit's identity plus the caller's key parts.
// Stores see only digests, never raw identities (API keys, user ids, IPs).
struct KeyDigest {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  friend bool operator==(const KeyDigest&, const KeyDigest&) = default;
};

struct KeyDigestHash {
  std::size_t operator()(const KeyDigest& d) const noexcept {
    return d.lo ^ (d.hi * 0x9e3779b97f4a7c15ULL);
  }
};

// The secret that keys the digest. A process-wide constant by default; configurable for the Redis
// store so that several instances agree on key names.
struct DigestKey {
  std::uint64_t k0 = 0x736c756963652d30ULL;
  std::uint64_t k1 = 0x6b65792d73616c74ULL;
};

// SipHash-2-4 with 128-bit output.
KeyDigest siphash128(const DigestKey& key, std::string_view bytes) noexcept;
// SipHash-2-4 with 64-bit output (definition hashes, shard selection).
std::uint64_t siphash64(const DigestKey& key, std::string_view bytes) noexcept;

}  // namespace sluice::limit
