// Request-target normalisation. One pass over the path, writing into a reused buffer; "..", the
// only step that looks back, removes what it scans, so the work stays linear in the target's length
// whatever a fuzzer or an attacker sends.
#include <optional>

#include <sluice/classify/path.hpp>

namespace sluice::classify {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool is_control(unsigned char c) noexcept {
  return c < 0x21 || c == 0x7f;
}

bool starts_with_ignoring_case(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// The path of an absolute-form target ("http://host:80/p?q" → "/p?q"), or nullopt when the target
// is not http(s) with a non-empty authority. An empty path becomes "" (the caller writes "/").
std::optional<std::string_view> strip_scheme_and_authority(std::string_view target) noexcept {
  std::size_t scheme_length = 0;
  if (starts_with_ignoring_case(target, "http://")) {
    scheme_length = 7;
  } else if (starts_with_ignoring_case(target, "https://")) {
    scheme_length = 8;
  } else {
    return std::nullopt;
  }
  target.remove_prefix(scheme_length);
  const std::size_t authority_end = target.find_first_of("/?#");
  if (authority_end == 0) return std::nullopt;
  if (authority_end == std::string_view::npos) return std::string_view{};
  return target.substr(authority_end);
}

// Appends one raw segment to `out`, decoded. Returns none or the reason it cannot be.
PathError append_decoded(std::string_view segment, std::string& out) {
  static constexpr char kHexDigits[] = "0123456789ABCDEF";
  for (std::size_t i = 0; i < segment.size(); ++i) {
    const auto c = static_cast<unsigned char>(segment[i]);
    if (c != '%') {
      if (is_control(c)) return PathError::control_character;
      if (c == '\\') return PathError::backslash;
      out.push_back(static_cast<char>(c));
      continue;
    }
    if (i + 2 >= segment.size()) return PathError::bad_percent_encoding;
    const int high = hex_value(segment[i + 1]);
    const int low = hex_value(segment[i + 2]);
    if (high < 0 || low < 0) return PathError::bad_percent_encoding;
    const auto decoded = static_cast<unsigned char>(high * 16 + low);
    if (decoded == 0) return PathError::control_character;
    if (is_unreserved(decoded)) {
      out.push_back(static_cast<char>(decoded));
    } else {
      out.push_back('%');
      out.push_back(kHexDigits[decoded >> 4]);
      out.push_back(kHexDigits[decoded & 0xf]);
    }
    i += 2;
  }
  return PathError::none;
}

}  // namespace

PathError normalize_target(std::string_view target, std::string& path, std::string_view& query) {
  path.clear();
  query = {};
  std::string_view raw;
  if (!target.empty() && target.front() == '/') {
    raw = target;
  } else if (auto after_authority = strip_scheme_and_authority(target)) {
    raw = *after_authority;
  } else {
    return PathError::not_origin_form;
  }

  // A request target has no fragment (RFC 9112 3.2): clients cut it off before sending, and
  // parsers that do not would each place the path's end differently.
  if (raw.find('#') != std::string_view::npos) return PathError::not_origin_form;
  const std::size_t question = raw.find('?');
  if (question != std::string_view::npos) {
    query = raw.substr(question + 1);
    raw = raw.substr(0, question);
  }
  if (!raw.empty() && raw.front() == '/') raw.remove_prefix(1);

  // The output never outgrows the input (decoding and collapsing only shrink it) plus the root '/'.
  path.reserve(raw.size() + 1);
  path.push_back('/');
  // Invariant: before each segment, `path` ends with '/'.
  while (true) {
    const std::size_t slash = raw.find('/');
    const bool last = slash == std::string_view::npos;
    const std::size_t segment_start = path.size();
    if (const PathError error = append_decoded(raw.substr(0, slash), path);
        error != PathError::none) {
      path.clear();
      query = {};
      return error;
    }
    const std::string_view segment = std::string_view(path).substr(segment_start);
    // "..;x" climbs like ".." in servlet containers, which drop a segment's parameters first.
    const std::string_view name = segment.substr(0, segment.find(';'));
    if (name == "..") {
      path.resize(segment_start);
      if (path.size() > 1) {  // drop the previous segment; at the root there is none to drop
        path.pop_back();
        path.resize(path.rfind('/') + 1);
      }
    } else if (name == ".") {
      path.resize(segment_start);
    } else if (!segment.empty() && !last) {
      path.push_back('/');
    }
    if (last) break;
    raw.remove_prefix(slash + 1);
  }
  return PathError::none;
}

std::string_view routing_path(std::string_view normalized, std::string& scratch, std::string& out) {
  static constexpr std::string_view kEncodedSlash = "%2F";
  if (normalized.find(kEncodedSlash) == std::string_view::npos) return normalized;
  scratch.clear();
  for (std::size_t at = 0;;) {
    const std::size_t found = normalized.find(kEncodedSlash, at);
    scratch.append(normalized.substr(at, found - at));
    if (found == std::string_view::npos) break;
    scratch.push_back('/');
    at = found + kEncodedSlash.size();
  }
  std::string_view query;
  // The input is a normalised path with '/' for "%2F": it cannot be malformed.
  normalize_target(scratch, out, query);
  return out;
}

void append_segment_decoded(std::string_view segment, std::string& out) {
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '%' && i + 2 < segment.size()) {
      const int high = hex_value(segment[i + 1]);
      const int low = hex_value(segment[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(segment[i]);
  }
}

bool RouteSegments::next(std::string_view& segment) noexcept {
  while (!rest_.empty()) {
    if (rest_.front() == '/') rest_.remove_prefix(1);
    const std::string_view whole = rest_.substr(0, rest_.find('/'));
    segment = literal_ ? whole : whole.substr(0, whole.find(';'));
    rest_.remove_prefix(whole.size());
    if (!segment.empty()) return true;
  }
  return false;
}

}  // namespace sluice::classify
