// Limit keys. The digest input is unambiguous by construction: the limit's identity hash, then for
// each key part a tag naming the alternative that supplied it (or "missing") and the value with its
// length. So "user=1.2.3.4" never meets "ip=1.2.3.4", values cannot run into each other, and the
// shared "anonymous" bucket of callers lacking a part never meets a caller who sends "anonymous".
// A `path` part is keyed by the path as the router sees it (no matrix parameters, no trailing '/',
// lower-cased on a case-insensitive route): spellings that reach the same route and handler share
// one counter, so varying ";x=1" or the case cannot buy a fresh budget.
#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>

#include <sluice/classify/key_builder.hpp>
#include <sluice/classify/path.hpp>

namespace sluice::classify {
namespace {

constexpr std::uint8_t kMissingTag = 0xff;

std::string_view trim_header_value(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Where a part's value is written: IP text needs a buffer that outlives the lookup.
struct ValueBuffer {
  std::array<char, 46 + 4> ip_text;  // an address, then "/NN" or "/NNN" for an IPv6 network
};

// The client's address, or for IPv6 its network ("2001:db8:1:2::/64"): see Config::ipv6_prefix.
std::string_view ip_value(const IpAddress& client, std::uint8_t ipv6_prefix,
                          ValueBuffer& buffer) noexcept {
  std::span<char, 46> text(buffer.ip_text.data(), 46);
  if (client.is_v4() || ipv6_prefix >= 128) return {text.data(), client.format(text)};
  std::size_t n = client.masked(ipv6_prefix).format(text);
  buffer.ip_text[n++] = '/';
  if (ipv6_prefix >= 100) buffer.ip_text[n++] = static_cast<char>('0' + ipv6_prefix / 100);
  buffer.ip_text[n++] = static_cast<char>('0' + ipv6_prefix / 10 % 10);
  buffer.ip_text[n++] = static_cast<char>('0' + ipv6_prefix % 10);
  return {buffer.ip_text.data(), n};
}

// The value `source` gives for this request; empty when the request lacks it.
std::string_view source_value(const config::KeySource& source, const config::Route& route,
                              const RequestView& request, ValueBuffer& buffer) noexcept {
  using Kind = config::KeySource::Kind;
  switch (source.kind) {
    case Kind::ip:
      return ip_value(request.client, source.ipv6_prefix, buffer);
    case Kind::method:
      // A HEAD runs the GET handler (and a GET route accepts it): one budget for both.
      return request.method == "HEAD" ? std::string_view("GET") : request.method;
    case Kind::route:
      return route.name;
    case Kind::path:
      return request.path;
    case Kind::identity:
    case Kind::header:
      if (request.headers == nullptr || source.header.empty()) return {};
      return trim_header_value(request.headers->get(source.header));
  }
  return {};
}

struct ChosenValue {
  std::uint8_t tag = kMissingTag;  // index of the alternative used
  std::string_view value;
};

ChosenValue choose(const config::KeyPart& part, const config::Route& route,
                   const RequestView& request, ValueBuffer& buffer) noexcept {
  const std::size_t n = std::min<std::size_t>(part.alternatives.size(), kMissingTag);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view value = source_value(part.alternatives[i], route, request, buffer);
    if (!value.empty()) return {static_cast<std::uint8_t>(i), value};
  }
  return {};
}

void append_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

void write_le(char* out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

// "/" and the route segments of `path`, each decoded once as the upstream hands it to a handler
// ("/files/a%40b" and "/files/a@b" are one file, so one counter), lower-cased when the route
// ignores case.
void append_route_path(std::string& out, std::string_view path, bool case_sensitive) {
  const std::size_t start = out.size();
  RouteSegments segments(path);
  std::string_view segment;
  while (segments.next(segment)) {
    out.push_back('/');
    const std::size_t segment_start = out.size();
    append_segment_decoded(segment, out);
    if (case_sensitive) continue;
    for (std::size_t i = segment_start; i < out.size(); ++i) {
      if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
    }
  }
  if (out.size() == start) out.push_back('/');
}

// Appends the chosen value of `part` (nothing for a missing one).
void append_value(std::string& out, const config::KeyPart& part, const ChosenValue& chosen,
                  const config::Route& route) {
  if (chosen.tag == kMissingTag) return;
  if (part.alternatives[chosen.tag].kind == config::KeySource::Kind::path) {
    append_route_path(out, chosen.value, route.path.case_sensitive);
  } else {
    out += chosen.value;
  }
}

void append_source_label(std::string& out, const config::KeySource& source) {
  if (!source.text.empty()) {
    out += source.text;
    return;
  }
  using Kind = config::KeySource::Kind;
  switch (source.kind) {
    case Kind::ip:
      out += "ip";
      return;
    case Kind::method:
      out += "method";
      return;
    case Kind::route:
      out += "route";
      return;
    case Kind::path:
      out += "path";
      return;
    case Kind::identity:
      out += "identity:";
      out += source.header;
      return;
    case Kind::header:
      out += "header:";
      out += source.header;
      return;
  }
}

}  // namespace

void KeyBuilder::build(const config::Route& route, const RequestView& request,
                       std::span<limit::LimitCheck> out) {
  assert(out.size() >= route.limits.size());
  const std::size_t count = std::min(out.size(), route.limits.size());
  ValueBuffer buffer;
  for (std::size_t i = 0; i < count; ++i) {
    const config::Limit& limit = route.limits[i];
    scratch_.clear();
    append_le(scratch_, limit.identity_hash, 8);
    for (const config::KeyPart& part : limit.key) {
      const ChosenValue chosen = choose(part, route, request, buffer);
      scratch_.push_back(static_cast<char>(chosen.tag));
      const std::size_t length_at = scratch_.size();
      append_le(scratch_, 0, 4);
      append_value(scratch_, part, chosen, route);
      write_le(scratch_.data() + length_at, scratch_.size() - length_at - 4, 4);
    }
    out[i] = limit::LimitCheck{limit::siphash128(digest_key_, scratch_), limit.algorithm,
                               limit.quota, 1};
  }
}

std::string_view KeyBuilder::describe(const config::Route& route, const config::Limit& limit,
                                      const RequestView& request) {
  ValueBuffer buffer;
  scratch_.clear();
  scratch_ += limit.name;
  for (const config::KeyPart& part : limit.key) {
    const ChosenValue chosen = choose(part, route, request, buffer);
    scratch_.push_back('|');
    if (chosen.tag != kMissingTag) {
      append_source_label(scratch_, part.alternatives[chosen.tag]);
      scratch_.push_back('=');
      append_value(scratch_, part, chosen, route);
      continue;
    }
    // Missing: name the part as written ("api_key|user=anonymous").
    for (std::size_t i = 0; i < part.alternatives.size(); ++i) {
      if (i > 0) scratch_.push_back('|');
      append_source_label(scratch_, part.alternatives[i]);
    }
    scratch_.push_back('=');
    scratch_ += kAnonymous;
  }
  return scratch_;
}

}  // namespace sluice::classify
