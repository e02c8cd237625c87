// IP address and CIDR text parsing and canonical formatting. Strict on input (an address that a
// human would read two ways must not become two identities), canonical on output (RFC 5952), so one
// client always maps to one key.
#include <sluice/classify/ip.hpp>

namespace sluice::classify {
namespace {

constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

// Strict dotted quad: four decimal parts of 1-3 digits, each <= 255, no leading zeros (some
// parsers read "010" as octal, so accepting it would let one client be two addresses).
bool parse_v4(std::string_view text, std::uint8_t* out) noexcept {
  std::size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= text.size() || text[i] != '.') return false;
      ++i;
    }
    const std::size_t start = i;
    unsigned value = 0;
    while (i < text.size() && is_digit(text[i]) && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
      ++i;
    }
    const std::size_t digits = i - start;
    if (digits == 0 || value > 255) return false;
    if (digits > 1 && text[start] == '0') return false;
    out[part] = static_cast<std::uint8_t>(value);
  }
  return i == text.size();
}

// RFC 4291 section 2.2 text: eight groups of 1-4 hex digits, at most one "::" standing for one or
// more zero groups, and optionally a dotted IPv4 tail in place of the last two groups.
bool parse_v6(std::string_view text, std::uint8_t* out) noexcept {
  std::uint16_t groups[8] = {};
  int count = 0;
  int gap = -1;  // index in `groups` where "::" was seen
  std::size_t i = 0;
  const std::size_t n = text.size();
  if (n < 2) return false;
  if (text[0] == ':') {
    if (text[1] != ':') return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const std::size_t start = i;
    unsigned value = 0;
    while (i < n && hex_value(text[i]) >= 0 && i - start < 5) {
      value = (value << 4) | static_cast<unsigned>(hex_value(text[i]));
      ++i;
    }
    if (i < n && text[i] == '.') {
      // The IPv4 tail: must be last and leave room for its two groups.
      std::uint8_t v4[4];
      if (count > 6 || !parse_v4(text.substr(start), v4)) return false;
      groups[count++] = static_cast<std::uint16_t>((v4[0] << 8) | v4[1]);
      groups[count++] = static_cast<std::uint16_t>((v4[2] << 8) | v4[3]);
      i = n;
      break;
    }
    const std::size_t digits = i - start;
    if (digits == 0 || digits > 4 || count == 8) return false;
    groups[count++] = static_cast<std::uint16_t>(value);
    if (i == n) break;
    if (text[i] != ':') return false;
    ++i;
    if (i < n && text[i] == ':') {
      if (gap >= 0) return false;
      gap = count;
      ++i;
    } else if (i == n) {
      return false;  // a single trailing ':'
    }
  }
  if (gap < 0 ? count != 8 : count > 7) return false;

  std::uint16_t full[8] = {};
  if (gap < 0) {
    for (int g = 0; g < 8; ++g)
      full[g] = groups[g];
  } else {
    const int tail = count - gap;
    for (int g = 0; g < gap; ++g)
      full[g] = groups[g];
    for (int g = 0; g < tail; ++g)
      full[8 - tail + g] = groups[gap + g];
  }
  for (int g = 0; g < 8; ++g) {
    out[2 * g] = static_cast<std::uint8_t>(full[g] >> 8);
    out[2 * g + 1] = static_cast<std::uint8_t>(full[g] & 0xff);
  }
  return true;
}

char* write_decimal(char* p, unsigned value) noexcept {
  if (value >= 100) *p++ = static_cast<char>('0' + value / 100);
  if (value >= 10) *p++ = static_cast<char>('0' + value / 10 % 10);
  *p++ = static_cast<char>('0' + value % 10);
  return p;
}

char* write_hex_group(char* p, unsigned value) noexcept {
  static constexpr char kDigits[] = "0123456789abcdef";
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    const unsigned nibble = (value >> shift) & 0xf;
    if (nibble != 0 || started || shift == 0) {
      *p++ = kDigits[nibble];
      started = true;
    }
  }
  return p;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) noexcept {
  IpAddress ip;
  if (text.find(':') == std::string_view::npos) {
    for (int i = 0; i < 12; ++i)
      ip.bytes[i] = kMappedPrefix[i];
    if (!parse_v4(text, ip.bytes.data() + 12)) return std::nullopt;
    return ip;
  }
  if (!parse_v6(text, ip.bytes.data())) return std::nullopt;
  return ip;
}

IpAddress IpAddress::from_v4(std::uint32_t host_order) noexcept {
  IpAddress ip;
  for (int i = 0; i < 12; ++i)
    ip.bytes[i] = kMappedPrefix[i];
  ip.bytes[12] = static_cast<std::uint8_t>(host_order >> 24);
  ip.bytes[13] = static_cast<std::uint8_t>(host_order >> 16);
  ip.bytes[14] = static_cast<std::uint8_t>(host_order >> 8);
  ip.bytes[15] = static_cast<std::uint8_t>(host_order);
  return ip;
}

bool IpAddress::is_v4() const noexcept {
  for (int i = 0; i < 12; ++i) {
    if (bytes[i] != kMappedPrefix[i]) return false;
  }
  return true;
}

std::string IpAddress::to_string() const {
  std::array<char, 46> buf;
  return std::string(buf.data(), format(buf));
}

std::size_t IpAddress::format(std::span<char, 46> buf) const noexcept {
  char* const begin = buf.data();
  char* p = begin;
  if (is_v4()) {
    for (int i = 12; i < 16; ++i) {
      if (i > 12) *p++ = '.';
      p = write_decimal(p, bytes[i]);
    }
    return static_cast<std::size_t>(p - begin);
  }

  unsigned groups[8];
  for (int g = 0; g < 8; ++g)
    groups[g] = (unsigned{bytes[2 * g]} << 8) | bytes[2 * g + 1];
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the first one on ties.
  int best_start = -1;
  int best_length = 1;
  for (int g = 0; g < 8;) {
    if (groups[g] != 0) {
      ++g;
      continue;
    }
    int end = g;
    while (end < 8 && groups[end] == 0)
      ++end;
    if (end - g > best_length) {
      best_start = g;
      best_length = end - g;
    }
    g = end;
  }
  for (int g = 0; g < 8; ++g) {
    if (g == best_start) {
      *p++ = ':';
      *p++ = ':';
      g += best_length - 1;
      continue;
    }
    if (g > 0 && g != best_start + best_length) *p++ = ':';
    p = write_hex_group(p, groups[g]);
  }
  return static_cast<std::size_t>(p - begin);
}

// Host bits below the prefix are accepted and cleared: "10.1.2.3/8" is read as 10.0.0.0/8, the
// block its author evidently meant, rather than failing a config over a cosmetic detail.
std::optional<Cidr> Cidr::parse(std::string_view text) noexcept {
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  const bool v4_text = address_text.find(':') == std::string_view::npos;
  const auto address = IpAddress::parse(address_text);
  if (!address) return std::nullopt;

  const unsigned max_prefix = v4_text ? 32 : 128;
  unsigned prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
    prefix = 0;
    for (char c : digits) {
      if (!is_digit(c)) return std::nullopt;
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > max_prefix) return std::nullopt;
  }

  Cidr cidr;
  cidr.prefix = static_cast<std::uint8_t>(v4_text ? prefix + 96 : prefix);
  cidr.base = *address;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= cidr.prefix) {
      cidr.base.bytes[i] = 0;
    } else if (first_bit + 8 > cidr.prefix) {
      const unsigned keep = cidr.prefix - first_bit;
      cidr.base.bytes[i] &= static_cast<std::uint8_t>(0xff00u >> keep);
    }
  }
  return cidr;
}

IpAddress IpAddress::masked(unsigned prefix_bits) const noexcept {
  IpAddress out = *this;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned kept = prefix_bits > 8 * i ? prefix_bits - 8 * i : 0;
    if (kept < 8) out.bytes[i] &= static_cast<std::uint8_t>(0xff00u >> kept);
  }
  return out;
}

bool Cidr::contains(const IpAddress& ip) const noexcept {
  const unsigned whole_bytes = prefix / 8u;
  for (unsigned i = 0; i < whole_bytes && i < 16; ++i) {
    if (ip.bytes[i] != base.bytes[i]) return false;
  }
  const unsigned rest = prefix % 8u;
  if (rest == 0 || whole_bytes >= 16) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return (ip.bytes[whole_bytes] & mask) == (base.bytes[whole_bytes] & mask);
}

}  // namespace sluice::classify
