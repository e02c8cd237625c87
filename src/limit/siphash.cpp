// SipHash-2-4 (Aumasson & Bernstein), 64- and 128-bit outputs. A keyed hash, so the digests that
// name counters cannot be precomputed by a caller trying to collide with someone else's bucket, and
// raw identities never need to be stored.
#include <cstring>

#include <sluice/limit/key.hpp>

namespace sluice::limit {
namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) noexcept {
  return (x << b) | (x >> (64 - b));
}

struct SipState {
  std::uint64_t v0, v1, v2, v3;

  void round() noexcept {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }

  void absorb(std::uint64_t m) noexcept {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }

  std::uint64_t finish(std::uint8_t final_xor) noexcept {
    v2 ^= final_xor;
    for (int i = 0; i < 4; ++i)
      round();
    return v0 ^ v1 ^ v2 ^ v3;
  }
};

std::uint64_t load_le64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

SipState absorb_all(const DigestKey& key, std::string_view bytes, bool wide) noexcept {
  SipState s{0x736f6d6570736575ULL ^ key.k0, 0x646f72616e646f6dULL ^ key.k1,
             0x6c7967656e657261ULL ^ key.k0, 0x7465646279746573ULL ^ key.k1};
  if (wide) s.v1 ^= 0xee;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  const std::size_t whole = n & ~std::size_t{7};
  for (std::size_t i = 0; i < whole; i += 8)
    s.absorb(load_le64(p + i));
  std::uint64_t last = static_cast<std::uint64_t>(n & 0xff) << 56;
  for (std::size_t i = 0; i < (n & 7); ++i)
    last |= static_cast<std::uint64_t>(p[whole + i]) << (8 * i);
  s.absorb(last);
  return s;
}

}  // namespace

std::uint64_t siphash64(const DigestKey& key, std::string_view bytes) noexcept {
  SipState s = absorb_all(key, bytes, false);
  return s.finish(0xff);
}

KeyDigest siphash128(const DigestKey& key, std::string_view bytes) noexcept {
  SipState s = absorb_all(key, bytes, true);
  KeyDigest d;
  d.lo = s.finish(0xee);
  s.v1 ^= 0xdd;
  for (int i = 0; i < 4; ++i)
    s.round();
  d.hi = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  return d;
}

}  // namespace sluice::limit
