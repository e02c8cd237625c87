// The client address after trusted-proxy rules. Proxies append to X-Forwarded-For / Forwarded, so
// only the entries added by our own trusted proxies (the right end of the list) are believed; the
// first entry to their left that is not a trusted proxy is the client. Anything further left was
// written by the client itself and can be forged.
#include <sluice/classify/ip.hpp>

namespace sluice::classify {
namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

}  // namespace

bool is_trusted(const IpAddress& ip, std::span<const Cidr> trusted) noexcept {
  for (const Cidr& cidr : trusted) {
    if (cidr.contains(ip)) return true;
  }
  return false;
}

namespace {

// A port as it may follow an address: decimal, or an RFC 7239 obfuscated port ("_abc").
bool is_port(std::string_view s) noexcept {
  if (s.empty()) return false;
  if (s[0] == '_') {
    if (s.size() == 1) return false;
    for (char c : s.substr(1)) {
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
    return true;
  }
  if (s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// One hop's address: "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]" or
// "[2001:db8::1]:443".
std::optional<IpAddress> parse_node(std::string_view text) noexcept {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !is_port(rest.substr(1)))) return std::nullopt;
    return IpAddress::parse(text.substr(1, close - 1));
  }
  const std::size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    // Exactly one colon: IPv4 with a port (a bare IPv6 address has at least two).
    if (!is_port(text.substr(colon + 1))) return std::nullopt;
    text = text.substr(0, colon);
  }
  return IpAddress::parse(text);
}

// Computes the right-to-left walk in one left-to-right pass, so neither header needs to be split
// into a list first: the answer only depends on the rightmost entry that stops the walk (an
// untrusted or unparsable one) and on its right-hand neighbour.
class HopWalk {
 public:
  HopWalk(const IpAddress& peer, std::span<const Cidr> trusted) : peer_(peer), trusted_(trusted) {}

  void add(const std::optional<IpAddress>& hop) noexcept {
    if (!any_) {
      any_ = true;
      leftmost_ = hop.value_or(IpAddress{});
    }
    if (!hop || !is_trusted(*hop, trusted_)) {
      stop_ = hop ? Stop::untrusted : Stop::unparsable;
      stop_address_ = hop.value_or(IpAddress{});
      after_stop_ = false;
      return;
    }
    if (stop_ != Stop::none && !after_stop_) {
      after_stop_ = true;
      after_stop_address_ = *hop;
    }
  }

  IpAddress result() const noexcept {
    switch (stop_) {
      case Stop::none:
        return any_ ? leftmost_ : peer_;
      case Stop::untrusted:
        return stop_address_;
      case Stop::unparsable:
        // The hop to the right of the garbage reported it; that hop is the best we know.
        return after_stop_ ? after_stop_address_ : peer_;
    }
    return peer_;
  }

 private:
  enum class Stop { none, untrusted, unparsable };

  const IpAddress& peer_;
  std::span<const Cidr> trusted_;
  bool any_ = false;
  IpAddress leftmost_;
  Stop stop_ = Stop::none;
  IpAddress stop_address_;
  bool after_stop_ = false;
  IpAddress after_stop_address_;
};

void walk_x_forwarded_for(std::string_view header, HopWalk& walk) noexcept {
  while (true) {
    const std::size_t comma = header.find(',');
    walk.add(parse_node(header.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    header.remove_prefix(comma + 1);
  }
}

// Finds the next `delimiter` outside a quoted-string, so a quoted value cannot split an element.
std::size_t find_unquoted(std::string_view s, char delimiter) noexcept {
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == delimiter) {
      return i;
    }
  }
  return std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The `for=` node of one Forwarded element ("for=1.2.3.4;proto=https"), or nullopt when the
// element has none or it is not an address ("unknown", "_hidden", quoted-pairs, duplicates).
std::optional<IpAddress> forwarded_for(std::string_view element) noexcept {
  std::optional<std::string_view> value;
  while (true) {
    const std::size_t semicolon = find_unquoted(element, ';');
    const std::string_view pair = element.substr(0, semicolon);
    const std::size_t equals = pair.find('=');
    if (equals != std::string_view::npos && iequals(trim(pair.substr(0, equals)), "for")) {
      if (value) return std::nullopt;
      value = trim(pair.substr(equals + 1));
    }
    if (semicolon == std::string_view::npos) break;
    element.remove_prefix(semicolon + 1);
  }
  if (!value) return std::nullopt;
  std::string_view node = *value;
  if (!node.empty() && node.front() == '"') {
    if (node.size() < 2 || node.back() != '"') return std::nullopt;
    node = node.substr(1, node.size() - 2);
    // No address needs escaping; a quoted-pair here is not an address.
    if (node.find('\\') != std::string_view::npos) return std::nullopt;
  }
  return parse_node(node);
}

void walk_forwarded(std::string_view header, HopWalk& walk) noexcept {
  while (true) {
    const std::size_t comma = find_unquoted(header, ',');
    walk.add(forwarded_for(header.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    header.remove_prefix(comma + 1);
  }
}

}  // namespace

IpAddress client_ip(const IpAddress& peer, std::span<const Cidr> trusted_proxies,
                    std::string_view header, ForwardingHeader kind) noexcept {
  if (!is_trusted(peer, trusted_proxies)) return peer;
  HopWalk walk(peer, trusted_proxies);
  if (trim(header).empty()) return walk.result();
  if (kind == ForwardingHeader::forwarded) {
    walk_forwarded(header, walk);
  } else {
    walk_x_forwarded_for(header, walk);
  }
  return walk.result();
}

}  // namespace sluice::classify
