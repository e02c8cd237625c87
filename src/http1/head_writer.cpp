#include <charconv>
#include <cstring>

#include <sluice/http1/head_writer.hpp>

namespace sluice::http1 {
namespace {

constexpr char to_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive; `lower` is already lower case, as every name below is. For a lower-case
// letter l, (c | 0x20) == l holds exactly for l and its upper case; other bytes compare as they
// are.
constexpr bool iequals(std::string_view name, std::string_view lower) noexcept {
  if (name.size() != lower.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char l = lower[i];
    const char c = (l >= 'a' && l <= 'z') ? static_cast<char>(name[i] | 0x20) : name[i];
    if (c != l) return false;
  }
  return true;
}

// Both sides as sent.
constexpr bool iequals_both(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

// The field names the writers treat specially. Classified with one switch on the length, so a
// field sluice passes through costs one or two failed comparisons, usually at the first byte.
enum class Name : std::uint8_t {
  other,
  hop_by_hop,  // one of the fixed list, Connection included
  content_length,
  transfer_encoding,
  host,
  expect,
  x_forwarded_for,
  x_forwarded_proto,
  x_forwarded_host,
  // What else upstream frameworks read for the client, scheme, host or path (Spring, Rails, Rack,
  // request-ip): passed only from a trusted proxy.
  other_forwarding,
};

constexpr Name classify(std::string_view name) noexcept {
  switch (name.size()) {
    case 2:
      if (iequals(name, "te")) return Name::hop_by_hop;
      break;
    case 4:
      if (iequals(name, "host")) return Name::host;
      break;
    case 6:
      if (iequals(name, "expect")) return Name::expect;
      break;
    case 7:
      if (iequals(name, "trailer") || iequals(name, "upgrade")) return Name::hop_by_hop;
      break;
    case 9:
      if (iequals(name, "forwarded") || iequals(name, "x-real-ip")) return Name::other_forwarding;
      break;
    case 11:
      if (iequals(name, "x-client-ip")) return Name::other_forwarding;
      break;
    case 12:
      if (iequals(name, "x-url-scheme")) return Name::other_forwarding;
      break;
    case 10:
      if (iequals(name, "connection") || iequals(name, "keep-alive")) return Name::hop_by_hop;
      break;
    case 14:
      if (iequals(name, "content-length")) return Name::content_length;
      if (iequals(name, "true-client-ip")) return Name::other_forwarding;
      break;
    case 15:
      if (iequals(name, "x-forwarded-for")) return Name::x_forwarded_for;
      if (iequals(name, "x-forwarded-ssl")) return Name::other_forwarding;
      break;
    case 16:
      if (iequals(name, "proxy-connection")) return Name::hop_by_hop;
      if (iequals(name, "x-forwarded-host")) return Name::x_forwarded_host;
      if (iequals(name, "x-forwarded-port") || iequals(name, "cf-connecting-ip")) {
        return Name::other_forwarding;
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) return Name::transfer_encoding;
      if (iequals(name, "x-forwarded-proto")) return Name::x_forwarded_proto;
      break;
    case 18:
      if (iequals(name, "proxy-authenticate")) return Name::hop_by_hop;
      if (iequals(name, "x-forwarded-prefix") || iequals(name, "x-forwarded-scheme")) {
        return Name::other_forwarding;
      }
      break;
    case 19:
      if (iequals(name, "proxy-authorization")) return Name::hop_by_hop;
      if (iequals(name, "x-cluster-client-ip")) return Name::other_forwarding;
      break;
    default:
      break;
  }
  return Name::other;
}

constexpr bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

// Calls `visit` with each element of a comma-separated list, blanks around it removed; stops
// when `visit` returns true.
template <class Visit>
bool any_element(std::string_view list, Visit visit) noexcept {
  std::size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (is_ows(list[i]) || list[i] == ','))
      ++i;
    const std::size_t begin = i;
    while (i < list.size() && list[i] != ',')
      ++i;
    std::size_t end = i;
    while (end > begin && is_ows(list[end - 1]))
      --end;
    if (end > begin && visit(list.substr(begin, end - begin))) return true;
  }
  return false;
}

// The fields a message's Connection fields name (RFC 9110 7.6.1), however many they list.
class ConnectionOptions {
 public:
  explicit ConnectionOptions(const std::vector<Field>& fields) noexcept : fields_(fields) {
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      if (!iequals(fields_[i].name, "connection")) continue;
      if (first_ == kNone) first_ = i;
      last_ = i;
      any_element(fields_[i].value, [&](std::string_view element) {
        lengths_ |= length_bit(element.size());
        return false;
      });
    }
  }

  // `kind` is classify(name). A client must not be able to strip the framing or the Host
  // (Connection itself is hop-by-hop anyway).
  bool names(std::string_view name, Name kind) const noexcept {
    // Most fields are ruled out by their length alone ("Connection: keep-alive" or none at all).
    if ((lengths_ & length_bit(name.size())) == 0) return false;
    if (kind == Name::content_length || kind == Name::transfer_encoding || kind == Name::host) {
      return false;
    }
    return listed(name);
  }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  static constexpr std::uint64_t length_bit(std::size_t length) noexcept {
    return std::uint64_t{1} << (length < 63 ? length : 63);
  }

  [[gnu::noinline]] bool listed(std::string_view name) const noexcept {
    for (std::size_t i = first_; i <= last_; ++i) {
      if (!iequals(fields_[i].name, "connection")) continue;
      if (any_element(fields_[i].value,
                      [&](std::string_view element) { return iequals_both(element, name); })) {
        return true;
      }
    }
    return false;
  }

  const std::vector<Field>& fields_;
  std::size_t first_ = kNone;
  std::size_t last_ = 0;
  std::uint64_t lengths_ = 0;  // bit n: an element of n bytes is listed (63: 63 or more)
};

// One resize and two copies instead of four appends: this runs for every field of every message.
void append_field(std::string& out, std::string_view name, std::string_view value) {
  const std::size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

void append_framing(std::string& out, Framing framing, std::uint64_t content_length) {
  if (framing == Framing::content_length) {
    out.append("Content-Length: ");
    append_number(out, content_length);
    out.append("\r\n");
  } else if (framing == Framing::chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
}

}  // namespace

bool is_hop_by_hop(std::string_view name) noexcept {
  return classify(name) == Name::hop_by_hop;
}

void write_upstream_request_head(const RequestHead& head, const ForwardedRequest& forwarded,
                                 std::string& out) {
  out.clear();
  out.reserve(head.head_bytes + forwarded.target.size() + forwarded.client_address.size() + 128);
  out.append(head.method).append(" ").append(forwarded.target).append(" HTTP/1.1\r\n");

  const ConnectionOptions connection(head.fields);
  bool has_prior_hops = false;  // a non-empty X-Forwarded-For
  for (const Field& field : head.fields) {
    const Name kind = classify(field.name);
    // Other forwarding fields pass only from a trusted proxy, whose own they may be; anyone else's
    // are dropped, or the upstream would believe what a client says about itself. (Even a trusted
    // proxy may leave a client's copy in: X-Forwarded-Proto and -Host are always sluice's own.)
    const bool passes =
        kind == Name::other || (forwarded.peer_trusted && kind == Name::other_forwarding);
    if (passes && !connection.names(field.name, kind)) append_field(out, field.name, field.value);
    // Host passes too; everything else classified is dropped here, or restated below.
    if (kind == Name::host) append_field(out, field.name, field.value);
    has_prior_hops = has_prior_hops || (kind == Name::x_forwarded_for && !field.value.empty());
  }

  // The client's X-Forwarded-For lines, joined, then the client itself. An empty value adds
  // nothing, so it does not leave an empty element behind.
  if (has_prior_hops || !forwarded.client_address.empty()) {
    out.append("X-Forwarded-For: ");
    const std::size_t values_start = out.size();
    for (const Field& field : head.fields) {
      if (!has_prior_hops) break;
      if (field.value.empty() || !iequals(field.name, "x-forwarded-for")) continue;
      if (out.size() != values_start) out.append(", ");
      out.append(field.value);
    }
    if (!forwarded.client_address.empty()) {
      if (out.size() != values_start) out.append(", ");
      out.append(forwarded.client_address);
    }
    out.append("\r\n");
  }

  out.append("X-Forwarded-Proto: http\r\n");
  if (!head.host.empty()) append_field(out, "X-Forwarded-Host", head.host);
  append_framing(out, head.framing, head.content_length);
  out.append("\r\n");
}

void write_client_response_head(const ResponseHead& head, std::span<const Field> extra,
                                Framing framing, std::uint64_t content_length, bool keep_alive,
                                std::string& out) {
  out.clear();
  out.reserve(head.head_bytes + 256);
  out.append("HTTP/1.1 ");
  append_number(out, head.status);
  out.append(" ").append(head.reason).append("\r\n");

  const ConnectionOptions connection(head.fields);
  for (const Field& field : head.fields) {
    const Name kind = classify(field.name);
    if (kind == Name::hop_by_hop || kind == Name::transfer_encoding ||
        connection.names(field.name, kind)) {
      continue;
    }
    // Without a body the upstream's Content-Length describes the representation (HEAD, 304).
    if (kind == Name::content_length && framing != Framing::none) continue;
    bool replaced = false;
    for (const Field& own : extra) {
      if (iequals_both(field.name, own.name)) {
        replaced = true;
        break;
      }
    }
    if (replaced) continue;
    append_field(out, field.name, field.value);
  }
  for (const Field& own : extra)
    append_field(out, own.name, own.value);
  append_framing(out, framing, content_length);
  // A body delimited by the close (until_close, not a valid output framing) must close.
  if (!keep_alive || framing == Framing::until_close) out.append("Connection: close\r\n");
  out.append("\r\n");
}

}  // namespace sluice::http1
