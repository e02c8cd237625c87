#pragma once
// Screens the raw bytes of a request's header section before Beast parses it, for what Beast
// tolerates but a proxy in front of other parsers must refuse: obsolete line folding, a CR not
// followed by LF, control bytes, and a request line too long to be a sane target (414 rather
// than 431). Incremental: each call looks only at bytes it has not seen, so a client sending its
// header one byte at a time costs linear work.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::proxy {

class HeaderScreen {
 public:
  enum class Verdict : std::uint8_t {
    need_more,     // no end of the header section yet, nothing wrong so far
    complete,      // the whole header section is buffered and clean
    obs_fold,      // a header line continued on the next (RFC 9112 5.2: reject)
    bare_cr,       // CR not followed by LF
    control_byte,  // NUL or another control byte outside line ends
    request_line_too_long,
  };

  explicit HeaderScreen(std::size_t max_request_line) : max_request_line_(max_request_line) {}

  void reset() noexcept;
  // `buffered` is everything received for this request so far (it only grows between calls).
  Verdict scan(std::string_view buffered) noexcept;
  // Still inside the request line (for telling 414 from 431 when the buffer fills up).
  bool in_request_line() const noexcept { return line_ == 0; }

 private:
  std::size_t max_request_line_;
  std::size_t scanned_ = 0;  // bytes already judged
  std::size_t line_ = 0;     // index of the current line
  std::size_t line_start_ = 0;
};

}  // namespace sluice::proxy
