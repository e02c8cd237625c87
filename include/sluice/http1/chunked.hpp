#pragma once
// Follows a chunked body (RFC 9112 7.1) as its bytes stream past, so sluice can relay them
// unchanged yet know exactly where the body ends, and refuse framing another parser could read
// differently: sizes that are not hex or overflow, missing or bare line ends, over-long chunk
// lines, control bytes in extensions or trailer fields.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::http1 {

class ChunkedScanner {
 public:
  // A chunk-size line (size + extensions) or a trailer line longer than this is refused.
  static constexpr std::size_t kMaxLineBytes = 4096;
  static constexpr std::size_t kMaxTrailerBytes = 16 * 1024;

  void reset() noexcept;
  // Walks `bytes`, the next bytes of the body. Returns how many of them belong to the body: all of
  // them, unless the body ends inside `bytes` (then done()) or they are malformed (then failed(),
  // and the count is where the error was found). Data bytes are skipped in O(1).
  std::size_t scan(std::string_view bytes) noexcept;
  bool done() const noexcept;
  bool failed() const noexcept;
  std::uint64_t data_bytes() const noexcept { return data_bytes_; }  // payload seen so far

 private:
  // One byte of a chunk-size line, of its extensions, of the trailer section: false if refused.
  bool size_byte(unsigned char c) noexcept;
  bool extension_byte(unsigned char c) noexcept;
  bool trailer_byte(unsigned char c) noexcept;

  enum class State : std::uint8_t {
    size,           // hex digits of a chunk size
    extension,      // after the size, up to CR
    size_lf,        // LF ending the size line
    data,           // `remaining_` payload bytes
    data_cr,        // CR after the data
    data_lf,        // LF after the data
    trailer_start,  // first byte of a trailer line, or CR of the final blank line
    trailer,        // inside a trailer field line
    trailer_lf,     // LF ending a trailer line
    final_lf,       // LF of the final blank line
    done,
    failed,
  };
  State state_ = State::size;
  std::uint64_t remaining_ = 0;
  std::uint64_t data_bytes_ = 0;
  std::size_t line_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  unsigned size_digits_ = 0;
  // Where in a chunk extension (State::extension) or a trailer line (State::trailer) the scan is.
  enum class Part : std::uint8_t {
    space_before_semicolon,  // BWS after the size or a value; only ";" may follow
    before_name,             // BWS after ";"
    name,                    // extension name, may end the line
    space_after_name,        // BWS after a name; "=" or ";" follows
    before_value,            // BWS after "="
    token_value,             // may end the line
    quoted_value,            // inside a quoted-string
    quoted_escape,           // after a backslash in one
    after_quoted,            // after the closing quote, may end the line
    field_name,              // trailer field name, up to ":"
    field_value,             // trailer field value, up to CR
  };
  Part part_ = Part::space_before_semicolon;
};

}  // namespace sluice::http1
