#include <algorithm>

#include <sluice/http1/chunked.hpp>

namespace sluice::http1 {
namespace {

// A chunk size must fit in 63 bits, so that no reader along the way sees it as negative.
constexpr std::uint64_t kMaxChunkSize = 0x7fff'ffff'ffff'ffffULL;
constexpr unsigned kMaxSizeDigits = 16;

// -1 when `c` is not a hex digit.
constexpr int hex_value(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// tchar (RFC 9110 5.6.2).
constexpr bool is_tchar(unsigned char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

constexpr bool is_space(unsigned char c) noexcept {
  return c == ' ' || c == '\t';
}

// qdtext (RFC 9110 5.6.4): anything printable but `"` and `\`, blanks and obs-text.
constexpr bool is_qdtext(unsigned char c) noexcept {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
         (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

// What may follow a backslash in a quoted-string: HTAB, SP, VCHAR, obs-text.
constexpr bool is_quotable(unsigned char c) noexcept {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

// A field value byte: no control byte but HTAB.
constexpr bool is_field_value_byte(unsigned char c) noexcept {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

}  // namespace

void ChunkedScanner::reset() noexcept {
  *this = ChunkedScanner{};
}

bool ChunkedScanner::done() const noexcept {
  return state_ == State::done;
}

bool ChunkedScanner::failed() const noexcept {
  return state_ == State::failed;
}

std::size_t ChunkedScanner::scan(std::string_view bytes) noexcept {
  const char* const begin = bytes.data();
  const char* const end = begin + bytes.size();
  const char* p = begin;
  if (state_ == State::done || state_ == State::failed) return 0;

  while (p != end) {
    if (state_ == State::data) {
      // The payload is relayed as it is: skip it whole, never look at it.
      const auto take = std::min<std::uint64_t>(remaining_, static_cast<std::size_t>(end - p));
      p += take;
      remaining_ -= take;
      data_bytes_ += take;
      if (remaining_ == 0) state_ = State::data_cr;
      continue;
    }
    const auto c = static_cast<unsigned char>(*p);
    bool ok = true;
    switch (state_) {
      case State::size:
        ok = size_byte(c);
        break;
      case State::extension:
        ok = extension_byte(c);
        break;
      case State::size_lf:
        ok = c == '\n';
        if (remaining_ == 0) {
          state_ = State::trailer_start;  // the last chunk
        } else {
          state_ = State::data;
        }
        break;
      case State::data_cr:
        ok = c == '\r';
        state_ = State::data_lf;
        break;
      case State::data_lf:
        ok = c == '\n';
        state_ = State::size;
        size_digits_ = 0;
        line_bytes_ = 0;
        break;
      case State::trailer_start:
      case State::trailer:
      case State::trailer_lf:
      case State::final_lf:
        ok = trailer_byte(c);
        break;
      case State::data:
      case State::done:
      case State::failed:
        break;  // handled above
    }
    if (!ok) {
      state_ = State::failed;
      return static_cast<std::size_t>(p - begin);
    }
    ++p;
    if (state_ == State::done) return static_cast<std::size_t>(p - begin);
  }
  return bytes.size();
}

bool ChunkedScanner::size_byte(unsigned char c) noexcept {
  if (++line_bytes_ > kMaxLineBytes) return false;
  if (const int digit = hex_value(c); digit >= 0) {
    if (size_digits_ == kMaxSizeDigits || remaining_ > (kMaxChunkSize >> 4)) return false;
    remaining_ = remaining_ << 4 | static_cast<std::uint64_t>(digit);
    ++size_digits_;
    return true;
  }
  if (size_digits_ == 0) return false;
  if (c == '\r') {
    state_ = State::size_lf;
    return true;
  }
  if (c == ';') {
    state_ = State::extension;
    part_ = Part::before_name;
    return true;
  }
  if (is_space(c)) {
    state_ = State::extension;
    part_ = Part::space_before_semicolon;
    return true;
  }
  return false;
}

// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string.
// Whitespace is only allowed where the grammar has BWS: never right before the line's CR.
bool ChunkedScanner::extension_byte(unsigned char c) noexcept {
  if (++line_bytes_ > kMaxLineBytes) return false;
  // Where a complete extension may end the line, or a next one begin.
  const auto after_extension = [&] {
    if (c == '\r') {
      state_ = State::size_lf;
    } else if (c == ';') {
      part_ = Part::before_name;
    } else if (is_space(c)) {
      part_ = Part::space_before_semicolon;
    } else {
      return false;
    }
    return true;
  };
  switch (part_) {
    case Part::space_before_semicolon:
      if (c == ';') part_ = Part::before_name;
      return c == ';' || is_space(c);
    case Part::before_name:
      if (is_tchar(c)) part_ = Part::name;
      return is_tchar(c) || is_space(c);
    case Part::name:
      if (is_tchar(c)) return true;
      if (c == '=') {
        part_ = Part::before_value;
        return true;
      }
      if (is_space(c)) {
        part_ = Part::space_after_name;
        return true;
      }
      return after_extension();
    case Part::space_after_name:
      if (c == '=') {
        part_ = Part::before_value;
      } else if (c == ';') {
        part_ = Part::before_name;
      } else {
        return is_space(c);
      }
      return true;
    case Part::before_value:
      if (is_tchar(c)) {
        part_ = Part::token_value;
      } else if (c == '"') {
        part_ = Part::quoted_value;
      } else {
        return is_space(c);
      }
      return true;
    case Part::token_value:
      return is_tchar(c) || after_extension();
    case Part::quoted_value:
      if (c == '"') {
        part_ = Part::after_quoted;
      } else if (c == '\\') {
        part_ = Part::quoted_escape;
      } else {
        return is_qdtext(c);
      }
      return true;
    case Part::quoted_escape:
      part_ = Part::quoted_value;
      return is_quotable(c);
    case Part::after_quoted:
      return after_extension();
    case Part::field_name:
    case Part::field_value:
      break;
  }
  return false;
}

// trailer-section = *( field-line CRLF ), then CRLF. Field lines are checked as strictly as the
// head's: a token name directly followed by ":", a value without control bytes, no obs-fold.
bool ChunkedScanner::trailer_byte(unsigned char c) noexcept {
  if (++trailer_bytes_ > kMaxTrailerBytes) return false;
  switch (state_) {
    case State::trailer_start:
      line_bytes_ = 1;
      if (c == '\r') {
        state_ = State::final_lf;
        return true;
      }
      // A line starting with a blank would be obs-fold (or an empty name): refused.
      if (!is_tchar(c)) return false;
      state_ = State::trailer;
      part_ = Part::field_name;
      return true;
    case State::trailer:
      if (++line_bytes_ > kMaxLineBytes) return false;
      if (part_ == Part::field_name) {
        if (c == ':') {
          part_ = Part::field_value;
          return true;
        }
        return is_tchar(c);
      }
      if (c == '\r') {
        state_ = State::trailer_lf;
        return true;
      }
      return is_field_value_byte(c);
    case State::trailer_lf:
      state_ = State::trailer_start;
      return c == '\n';
    case State::final_lf:
      state_ = State::done;
      return c == '\n';
    default:
      return false;
  }
}

}  // namespace sluice::http1
