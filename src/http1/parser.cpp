#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <type_traits>

#include <sluice/http1/message.hpp>

namespace sluice::http1 {
namespace {

// The largest Content-Length accepted: no reader along the way may see it as negative or
// overflow adding to it.
constexpr std::uint64_t kMaxContentLength = std::uint64_t{1} << 62;

// Byte classes: one table lookup per byte where SWAR does not apply.
constexpr std::uint8_t kTokenChar = 1;   // tchar (RFC 9110 5.6.2)
constexpr std::uint8_t kValueChar = 2;   // field-vchar, SP, HTAB (RFC 9110 5.5)
constexpr std::uint8_t kTargetChar = 4;  // what a request-target may hold: visible ASCII

constexpr std::array<std::uint8_t, 256> kClasses = [] {
  std::array<std::uint8_t, 256> classes{};
  for (unsigned c = 0; c < 256; ++c) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool token = alnum;
    for (char special : std::string_view("!#$%&'*+-.^_`|~"))
      token |= c == std::uint8_t(special);
    const bool visible = c >= 0x21 && c <= 0x7e;
    std::uint8_t bits = 0;
    if (token) bits |= kTokenChar;
    if (visible || c >= 0x80 || c == ' ' || c == '\t') bits |= kValueChar;
    if (visible) bits |= kTargetChar;
    classes[c] = bits;
  }
  return classes;
}();

constexpr bool has_class(char c, std::uint8_t bits) noexcept {
  return (kClasses[static_cast<unsigned char>(c)] & bits) != 0;
}

// Control bytes other than HTAB: always bad_character, wherever they are. HTAB where it may not
// be is a syntax error (malformed) instead.
constexpr bool is_control(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && u != '\t') || u == 0x7f;
}

constexpr bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// iequals for a lowercase `lower` (a literal) and an `a` already screened to hold no control
// bytes: then setting bit 0x20 lowercases a letter and leaves every other possible byte alone.
inline bool equals_lowercase(std::string_view a, std::string_view lower) noexcept {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != lower[i]) return false;
  }
  return true;
}

inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back()))
    s.remove_suffix(1);
  return s;
}

// Calls `visit` with each element of a comma-separated list, OWS trimmed (empty ones included);
// stops early when `visit` returns false.
template <class Visit>
bool for_each_list_element(std::string_view list, Visit&& visit) {
  for (;;) {
    const auto comma = list.find(',');
    if (!visit(trim_ows(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// SWAR, 8 bytes at a time. Each mask has the high bit set in the lowest byte (the first in
// memory, on little-endian machines) that matches; higher bytes may be flagged wrongly by a borrow
// or carry, so only the lowest flag is used.
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;

constexpr std::uint64_t bytes_below(std::uint64_t word, std::uint8_t n) noexcept {  // n <= 0x80
  return (word - kOnes * n) & ~word & kHighs;
}
constexpr std::uint64_t bytes_from_7f(std::uint64_t word) noexcept {
  return ((word + kOnes) | word) & kHighs;
}
constexpr std::uint64_t bytes_7f(std::uint64_t word) noexcept {
  const std::uint64_t x = word ^ (kOnes * 0x7f);
  return (x - kOnes) & ~x & kHighs;
}

std::uint64_t load8(const char* p) noexcept {
  std::uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}

static_assert(std::endian::native == std::endian::little,
              "first_flagged() takes the lowest-addressed byte to be the least significant");

// Index in the word of the first flagged byte of a non-zero mask.
unsigned first_flagged(std::uint64_t mask) noexcept {
  return static_cast<unsigned>(std::countr_zero(mask)) / 8;
}

// The first byte of `s` that may not appear in a field value, or npos. In the common case this is
// the CR ending the line.
std::size_t find_bad_value_byte(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i + 8 <= s.size()) {
    const std::uint64_t word = load8(s.data() + i);
    const std::uint64_t mask = bytes_below(word, 0x20) | bytes_7f(word);
    if (mask == 0) {
      i += 8;
      continue;
    }
    i += first_flagged(mask);
    if (s[i] != '\t') return i;
    ++i;  // a tab is fine: go on just after it
  }
  for (; i < s.size(); ++i) {
    if (!has_class(s[i], kValueChar)) return i;
  }
  return std::string_view::npos;
}

// The first byte of `s` that may not appear in a request-target, or npos. In the common case this
// is the SP before the version.
std::size_t find_bad_target_byte(std::string_view s) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    const std::uint64_t word = load8(s.data() + i);
    const std::uint64_t mask = bytes_below(word, 0x21) | bytes_from_7f(word);
    if (mask != 0) {
      i += first_flagged(mask);
      break;
    }
  }
  for (; i < s.size(); ++i) {
    if (!has_class(s[i], kTargetChar)) return i;
  }
  return std::string_view::npos;
}

HeadError syntax_error_at(char c) noexcept {
  return is_control(c) ? HeadError::bad_character : HeadError::malformed;
}

// Length of the token at the start of `s`.
std::size_t token_length(std::string_view s) noexcept {
  std::size_t i = 0;
  if (!s.empty() && !has_class(s.back(), kTokenChar)) {
    // The last byte stops the loop (usually the LF of a complete head): no bound check needed.
    while (has_class(s[i], kTokenChar))
      ++i;
  } else {
    while (i < s.size() && has_class(s[i], kTokenChar))
      ++i;
  }
  return i;
}

// "HTTP/1.1" -> 1, "HTTP/1.0" -> 0; anything else is bad_version when it looks like an HTTP
// version, malformed otherwise.
HeadError parse_version(std::string_view text, unsigned& minor) noexcept {
  constexpr std::string_view kPrefix = "HTTP/1.";
  if (text.size() == 8 && text.substr(0, 7) == kPrefix && (text[7] == '0' || text[7] == '1')) {
    minor = static_cast<unsigned>(text[7] - '0');
    return HeadError::none;
  }
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (text.size() == 8 && text.substr(0, 5) == "HTTP/" && digit(text[5]) && text[6] == '.' &&
      digit(text[7])) {
    return HeadError::bad_version;
  }
  for (char c : text) {
    if (is_control(c)) return HeadError::bad_character;
  }
  return HeadError::malformed;
}

// method SP request-target SP HTTP-version (RFC 9112 3), CRLF already removed.
HeadError parse_request_line(std::string_view line, RequestHead& head) noexcept {
  const std::size_t method_length = token_length(line);
  if (method_length == line.size()) return HeadError::malformed;  // no target, no version
  if (line[method_length] != ' ') return syntax_error_at(line[method_length]);
  if (method_length == 0) return HeadError::malformed;
  std::string_view rest = line.substr(method_length + 1);
  // The version is the last word; a space left in the target makes the target invalid below.
  const auto last_space = rest.rfind(' ');
  if (last_space == std::string_view::npos) {
    const auto bad = find_bad_target_byte(rest);
    return bad == std::string_view::npos ? HeadError::malformed : syntax_error_at(rest[bad]);
  }
  const std::string_view target = rest.substr(0, last_space);
  if (target.empty()) return HeadError::malformed;
  if (const auto bad = find_bad_target_byte(target); bad != std::string_view::npos) {
    return syntax_error_at(target[bad]);
  }
  if (const HeadError error = parse_version(rest.substr(last_space + 1), head.version_minor);
      error != HeadError::none) {
    return error;
  }
  head.method = line.substr(0, method_length);
  head.target = target;
  return HeadError::none;
}

// HTTP-version SP 3DIGIT SP reason-phrase (RFC 9112 4); the SP before an empty reason may be
// missing, as several servers send it that way.
HeadError parse_status_line(std::string_view line, ResponseHead& head) noexcept {
  const HeadError version =
      parse_version(line.substr(0, std::min<std::size_t>(line.size(), 8)), head.version_minor);
  if (version != HeadError::none) return version;
  if (line.size() < 12 || line[8] != ' ') return HeadError::malformed;
  unsigned status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return syntax_error_at(line[i]);
    status = status * 10 + static_cast<unsigned>(line[i] - '0');
  }
  if (status < 100) return HeadError::malformed;
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') return syntax_error_at(line[12]);
    reason = line.substr(13);
    if (const auto bad = find_bad_value_byte(reason); bad != std::string_view::npos) {
      return syntax_error_at(reason[bad]);
    }
  }
  head.status = status;
  head.reason = reason;
  return HeadError::none;
}

// field-name ":" OWS field-value OWS (RFC 9112 5), CRLF already removed.
HeadError parse_field_line(std::string_view line, Field& field) noexcept {
  if (is_ows(line.front())) return HeadError::obs_fold;
  const std::size_t name_length = token_length(line);
  if (name_length == line.size()) return HeadError::malformed;  // no colon
  if (line[name_length] != ':') return syntax_error_at(line[name_length]);
  if (name_length == 0) return HeadError::malformed;
  const std::string_view value = line.substr(name_length + 1);
  if (const auto bad = find_bad_value_byte(value); bad != std::string_view::npos) {
    return syntax_error_at(value[bad]);
  }
  field.name = line.substr(0, name_length);
  field.value = trim_ows(value);
  return HeadError::none;
}

// Content-Length = 1*DIGIT; a list or repeated field only when every value is the same
// (RFC 9110 8.6). False when invalid.
bool merge_content_length(std::string_view list, bool& seen, std::uint64_t& length) noexcept {
  return for_each_list_element(list, [&](std::string_view element) {
    if (element.empty()) return false;
    std::uint64_t value = 0;
    for (char c : element) {
      if (c < '0' || c > '9') return false;
      const auto digit = static_cast<std::uint64_t>(c - '0');
      if (value > (kMaxContentLength - digit) / 10) return false;
      value = value * 10 + digit;
    }
    if (seen && value != length) return false;
    seen = true;
    length = value;
    return true;
  });
}

// What the fields say about framing and the connection, gathered while they are parsed.
struct FieldSummary {
  unsigned transfer_encodings = 0;
  bool chunked = false;  // the (only) Transfer-Encoding is exactly "chunked"
  bool has_content_length = false;
  bool bad_content_length = false;
  std::uint64_t content_length = 0;
  unsigned hosts = 0;
  std::string_view host;
  bool close = false;
  bool keep_alive = false;
  bool expects = false;
  bool expect_continue = false;

  void note(const Field& field) noexcept {
    // Dispatch on length first: most fields are none of these and cost one switch.
    switch (field.name.size()) {
      case 4:
        if (equals_lowercase(field.name, "host")) {
          if (hosts++ == 0) host = field.value;
        }
        break;
      case 6:
        if (equals_lowercase(field.name, "expect") && !expects) {
          expects = true;
          expect_continue = equals_lowercase(field.value, "100-continue");
        }
        break;
      case 10:
        if (equals_lowercase(field.name, "connection")) {
          for_each_list_element(field.value, [&](std::string_view token) {
            close |= equals_lowercase(token, "close");
            keep_alive |= equals_lowercase(token, "keep-alive");
            return true;
          });
        }
        break;
      case 14:
        if (equals_lowercase(field.name, "content-length") && !bad_content_length) {
          bad_content_length =
              !merge_content_length(field.value, has_content_length, content_length);
          has_content_length = true;
        }
        break;
      case 17:
        if (equals_lowercase(field.name, "transfer-encoding")) {
          chunked = transfer_encodings++ == 0 && equals_lowercase(field.value, "chunked");
        }
        break;
      default:
        break;
    }
  }

  bool keeps_alive(unsigned version_minor) const noexcept {
    return version_minor == 1 ? !close : keep_alive && !close;
  }
  // Transfer-Encoding present and exactly one "chunked", on HTTP/1.1, without Content-Length.
  bool chunked_is_valid(unsigned version_minor) const noexcept {
    return transfer_encodings == 1 && chunked && version_minor == 1 && !has_content_length;
  }
};

// Where the scan of a head stands between calls.
struct Progress {
  std::size_t line_start = 0;  // the first line not yet looked at
  std::size_t searched = 0;    // no LF in [line_start, searched)
  std::size_t fields = 0;
  bool start_line_done = false;
};

HeadError parse_start_line(std::string_view line, RequestHead& head) noexcept {
  return parse_request_line(line, head);
}
HeadError parse_start_line(std::string_view line, ResponseHead& head) noexcept {
  return parse_status_line(line, head);
}

enum class ScanResult : std::uint8_t { need_more, complete, error };

enum class FastLine : std::uint8_t { taken, end_of_head, not_taken };

FastLine take_valid_request_line(std::string_view rest, std::size_t name_length,
                                 const HeadLimits& limits, Progress& p, RequestHead& head) noexcept;

// The common case in one pass, without looking for the LF first: a valid, complete request line,
// field line or blank line at `rest` (the bytes from the line start to the end of the window).
// Anything else is left to the general path in scan_lines, which gives the same answer for the
// lines taken here, and the right error for the others.
template <bool Build, class Head>
FastLine take_valid_line(std::string_view rest, const HeadLimits& limits, Progress& p, Head& head,
                         FieldSummary& summary) noexcept {
  if (rest.size() >= 2 && rest[0] == '\r' && rest[1] == '\n') {
    if (!p.start_line_done) return FastLine::not_taken;  // leading empty lines: rare
    p.line_start += 2;
    return FastLine::end_of_head;
  }
  const std::size_t name_length = token_length(rest);
  if (name_length == 0 || name_length == rest.size()) return FastLine::not_taken;
  if (p.start_line_done) {
    if (rest[name_length] != ':' || p.fields + 1 > limits.max_fields) return FastLine::not_taken;
    const std::string_view value = rest.substr(name_length + 1);
    const std::size_t end = find_bad_value_byte(value);
    if (end == std::string_view::npos || end + 1 >= value.size() || value[end] != '\r' ||
        value[end + 1] != '\n') {
      return FastLine::not_taken;
    }
    ++p.fields;
    if constexpr (Build) {
      const Field field{rest.substr(0, name_length), trim_ows(value.substr(0, end))};
      head.fields.push_back(field);
      summary.note(field);
    }
    p.line_start += name_length + 1 + end + 2;
    return FastLine::taken;
  }
  if constexpr (!std::is_same_v<Head, RequestHead>) {
    return FastLine::not_taken;  // a status line: once per response, the general path will do
  } else {
    return take_valid_request_line(rest, name_length, limits, p, head);
  }
}

FastLine take_valid_request_line(std::string_view rest, std::size_t name_length,
                                 const HeadLimits& limits, Progress& p,
                                 RequestHead& head) noexcept {
  if (rest[name_length] != ' ') return FastLine::not_taken;
  const std::string_view after_method = rest.substr(name_length + 1);
  const std::size_t target_length = find_bad_target_byte(after_method);
  if (target_length == 0 || target_length == std::string_view::npos) return FastLine::not_taken;
  // " HTTP/1.x\r\n"
  const std::string_view tail = after_method.substr(target_length);
  if (tail.size() < 11 || tail.substr(0, 8) != " HTTP/1." || (tail[8] != '1' && tail[8] != '0') ||
      tail[9] != '\r' || tail[10] != '\n') {
    return FastLine::not_taken;
  }
  const std::size_t line_length = name_length + 1 + target_length + 9;
  if (line_length > limits.max_request_line) return FastLine::not_taken;
  head.method = rest.substr(0, name_length);
  head.target = after_method.substr(0, target_length);
  head.version_minor = static_cast<unsigned>(tail[8] - '0');
  p.start_line_done = true;
  p.line_start += line_length + 2;
  return FastLine::taken;
}

// Walks the complete lines from p.line_start, validating each one; with `Build`, also records the
// fields in `head` and `summary`. Never looks at a byte of an unfinished line twice (after a first
// try, it looks for the line's end with memchr from where it stopped), so a head trickled in byte
// by byte costs linear work.
template <bool Build, class Head>
ScanResult scan_lines(std::string_view buffered, const HeadLimits& limits, Progress& p, Head& head,
                      FieldSummary& summary, HeadError& error) noexcept {
  constexpr bool kIsRequest = std::is_same_v<Head, RequestHead>;
  const char* const data = buffered.data();
  // Bytes past the largest head allowed never need to be looked at.
  const std::size_t window = std::min(buffered.size(), limits.max_head_bytes);
  for (;;) {
    // Only on the first look at a line: later looks only search its new bytes for the LF.
    while (p.searched <= p.line_start && p.line_start < window) {
      const std::string_view rest(data + p.line_start, window - p.line_start);
      const FastLine taken = take_valid_line<Build>(rest, limits, p, head, summary);
      if (taken == FastLine::end_of_head) {
        head.head_bytes = p.line_start;
        return ScanResult::complete;
      }
      if (taken == FastLine::not_taken) break;
    }
    const std::size_t from = std::max(p.line_start, p.searched);
    const void* found = from < window ? std::memchr(data + from, '\n', window - from) : nullptr;
    if (found == nullptr) {
      p.searched = window;
      if (!p.start_line_done) {
        std::size_t partial = window - p.line_start;
        if (partial > 0 && data[window - 1] == '\r') --partial;  // may be the line's CR
        if (kIsRequest && partial > limits.max_request_line) {
          error = HeadError::line_too_long;
          return ScanResult::error;
        }
      } else if (window > p.line_start && is_ows(data[p.line_start])) {
        error = HeadError::obs_fold;
        return ScanResult::error;
      }
      if (buffered.size() >= limits.max_head_bytes) {
        error = HeadError::head_too_large;
        return ScanResult::error;
      }
      return ScanResult::need_more;
    }
    const auto lf = static_cast<std::size_t>(static_cast<const char*>(found) - data);
    const bool crlf = lf > p.line_start && data[lf - 1] == '\r';
    const std::string_view line(data + p.line_start, lf - (crlf ? 1 : 0) - p.line_start);
    const std::size_t next = lf + 1;
    // The errors an unfinished line can show come first, so that a head gets the same answer
    // whether it arrives at once or in pieces.
    if (!p.start_line_done && kIsRequest && line.size() > limits.max_request_line) {
      error = HeadError::line_too_long;
      return ScanResult::error;
    }
    if (p.start_line_done && !line.empty() && is_ows(line.front())) {
      error = HeadError::obs_fold;
      return ScanResult::error;
    }
    if (!crlf) {
      error = HeadError::bad_character;  // a bare LF
      return ScanResult::error;
    }
    if (!p.start_line_done) {
      // Empty lines before a request line are skipped (RFC 9112 2.2); before a status line they
      // are an error.
      if (!(kIsRequest && line.empty())) {
        if (line.empty()) {
          error = HeadError::malformed;
          return ScanResult::error;
        }
        error = parse_start_line(line, head);
        if (error != HeadError::none) return ScanResult::error;
        p.start_line_done = true;
      }
    } else if (line.empty()) {
      head.head_bytes = next;
      p.line_start = next;
      return ScanResult::complete;
    } else {
      if (++p.fields > limits.max_fields) {
        error = HeadError::head_too_large;
        return ScanResult::error;
      }
      Field field;
      error = parse_field_line(line, field);
      if (error != HeadError::none) return ScanResult::error;
      if constexpr (Build) {
        head.fields.push_back(field);
        summary.note(field);
      }
    }
    p.line_start = next;
  }
}

void reset_message(MessageHead& head) noexcept {
  head.version_minor = 1;
  head.fields.clear();  // keeps its capacity for the next message
  head.framing = Framing::none;
  head.content_length = 0;
  head.keep_alive = true;
  head.head_bytes = 0;
}

void reset_head(RequestHead& head) noexcept {
  reset_message(head);
  head.method = {};
  head.target = {};
  head.host = {};
  head.expect_continue = false;
}

void reset_head(ResponseHead& head) noexcept {
  reset_message(head);
  head.status = 0;
  head.reason = {};
}

// Scans what has not been scanned yet; once the blank line is found, parses the whole head once
// more from its first byte into `head` (the views must point into this call's buffer), unless
// this call saw every line anyway. On success `summary` describes the fields of `head`.
template <class Head>
ScanResult scan_head(std::string_view buffered, const HeadLimits& limits, Progress& progress,
                     Head& head, FieldSummary& summary, HeadError& error) noexcept {
  if (progress.line_start == 0) {
    // Nothing looked at yet (the usual case: a whole head in one read): one pass does it all.
    reset_head(head);
    return scan_lines<true>(buffered, limits, progress, head, summary, error);
  }
  const ScanResult screened = scan_lines<false>(buffered, limits, progress, head, summary, error);
  if (screened != ScanResult::complete) return screened;
  Progress again;
  reset_head(head);
  return scan_lines<true>(buffered, limits, again, head, summary, error);
}

bool is_single_authority(std::string_view host) noexcept {
  for (char c : host) {
    if (c == ',' || is_ows(c)) return false;
  }
  return true;
}

}  // namespace

bool is_idempotent(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

std::string_view describe(HeadError error) noexcept {
  switch (error) {
    case HeadError::none:
      return "No error";
    case HeadError::malformed:
      return "Malformed request line or header";
    case HeadError::bad_version:
      return "Unsupported HTTP version";
    case HeadError::bad_character:
      return "Invalid character in header";
    case HeadError::obs_fold:
      return "Obsolete line folding in header";
    case HeadError::line_too_long:
      return "Request line too long";
    case HeadError::head_too_large:
      return "Request header fields too large";
    case HeadError::bad_content_length:
      return "Invalid Content-Length";
    case HeadError::bad_transfer_coding:
      return "Unsupported or ambiguous Transfer-Encoding";
    case HeadError::bad_host:
      return "Missing, duplicate or invalid Host header";
  }
  return "Invalid message";
}

std::string_view MessageHead::field(std::string_view name) const noexcept {
  for (const Field& f : fields) {
    if (iequals(f.name, name)) return f.value;
  }
  return {};
}

std::size_t MessageHead::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (const Field& f : fields) {
    if (iequals(f.name, name)) ++n;
  }
  return n;
}

std::string_view MessageHead::joined(std::string_view name, std::string& storage) const {
  // Empty values add nothing to a list, so they leave no empty element behind.
  const Field* first = nullptr;
  std::size_t count = 0;
  for (const Field& f : fields) {
    if (f.value.empty() || !iequals(f.name, name)) continue;
    if (count++ == 0) first = &f;
  }
  if (count == 0) return {};
  if (count == 1) return first->value;
  storage.clear();
  for (const Field& f : fields) {
    if (f.value.empty() || !iequals(f.name, name)) continue;
    if (!storage.empty()) storage.append(", ");
    storage.append(f.value);
  }
  return storage;
}

bool MessageHead::connection_lists(std::string_view token) const noexcept {
  for (const Field& f : fields) {
    if (!iequals(f.name, "connection")) continue;
    const bool listed = !for_each_list_element(
        f.value, [&](std::string_view element) { return !iequals(element, token); });
    if (listed) return true;
  }
  return false;
}

void RequestParser::reset() noexcept {
  scanned_ = 0;
  searched_ = 0;
  fields_seen_ = 0;
  request_line_done_ = false;
  complete_ = false;
  error_ = HeadError::none;
}

ParseStatus RequestParser::parse(std::string_view buffered, RequestHead& head) noexcept {
  if (error_ != HeadError::none) return ParseStatus::error;
  if (complete_) return ParseStatus::complete;
  Progress progress{scanned_, searched_, fields_seen_, request_line_done_};
  FieldSummary summary;
  const ScanResult result = scan_head(buffered, limits_, progress, head, summary, error_);
  scanned_ = progress.line_start;
  searched_ = progress.searched;
  fields_seen_ = progress.fields;
  request_line_done_ = progress.start_line_done;
  if (result == ScanResult::need_more) return ParseStatus::need_more;
  if (result == ScanResult::error) return ParseStatus::error;

  const unsigned minor = head.version_minor;
  if (summary.transfer_encodings > 0) {
    if (!summary.chunked_is_valid(minor)) error_ = HeadError::bad_transfer_coding;
    head.framing = Framing::chunked;
  } else if (summary.bad_content_length) {
    error_ = HeadError::bad_content_length;
  } else if (summary.content_length > 0) {
    head.framing = Framing::content_length;
    head.content_length = summary.content_length;
  }
  // One Host, on HTTP/1.1 always (RFC 9112 3.2), and one authority: no lists, no spaces.
  if (error_ == HeadError::none && (summary.hosts > 1 || (summary.hosts == 0 && minor == 1) ||
                                    !is_single_authority(summary.host))) {
    error_ = HeadError::bad_host;
  }
  if (error_ != HeadError::none) return ParseStatus::error;
  head.host = summary.host;
  head.keep_alive = summary.keeps_alive(minor);
  // RFC 9110 10.1.1: an HTTP/1.0 request's expectation is ignored (a 1.0 client does not know
  // interim responses, and would take the 100 for the answer).
  head.expect_continue = summary.expect_continue && minor >= 1;
  complete_ = true;
  return ParseStatus::complete;
}

void ResponseParser::reset(bool request_was_head) noexcept {
  scanned_ = 0;
  searched_ = 0;
  fields_seen_ = 0;
  status_line_done_ = false;
  complete_ = false;
  request_was_head_ = request_was_head;
  error_ = HeadError::none;
}

ParseStatus ResponseParser::parse(std::string_view buffered, ResponseHead& head) noexcept {
  if (error_ != HeadError::none) return ParseStatus::error;
  if (complete_) return ParseStatus::complete;
  Progress progress{scanned_, searched_, fields_seen_, status_line_done_};
  FieldSummary summary;
  const ScanResult result = scan_head(buffered, limits_, progress, head, summary, error_);
  scanned_ = progress.line_start;
  searched_ = progress.searched;
  fields_seen_ = progress.fields;
  status_line_done_ = progress.start_line_done;
  if (result == ScanResult::need_more) return ParseStatus::need_more;
  if (result == ScanResult::error) return ParseStatus::error;

  const unsigned minor = head.version_minor;
  const unsigned status = head.status;
  const bool no_body = request_was_head_ || status < 200 || status == 204 || status == 304;
  head.keep_alive = summary.keeps_alive(minor);
  if (no_body) {
    // The body is empty whatever the fields say (RFC 9112 6.3); Transfer-Encoding is dropped on
    // the way, but a Content-Length is passed on, so it must still be a number.
    if (summary.bad_content_length) error_ = HeadError::bad_content_length;
  } else if (summary.transfer_encodings > 0) {
    if (!summary.chunked_is_valid(minor)) error_ = HeadError::bad_transfer_coding;
    head.framing = Framing::chunked;
  } else if (summary.bad_content_length) {
    error_ = HeadError::bad_content_length;
  } else if (summary.has_content_length) {
    // Even 0: the client is then told "Content-Length: 0" rather than left to wait for a close.
    head.framing = Framing::content_length;
    head.content_length = summary.content_length;
  } else {
    head.framing = Framing::until_close;
    head.keep_alive = false;  // the body ends with the connection
  }
  if (error_ != HeadError::none) return ParseStatus::error;
  complete_ = true;
  return ParseStatus::complete;
}

}  // namespace sluice::http1
