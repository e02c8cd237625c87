#include <sluice/proxy/header_screen.hpp>

namespace sluice::proxy {

void HeaderScreen::reset() noexcept {
  scanned_ = 0;
  line_ = 0;
  line_start_ = 0;
}

HeaderScreen::Verdict HeaderScreen::scan(std::string_view buffered) noexcept {
  std::size_t i = scanned_;
  for (; i < buffered.size(); ++i) {
    const auto c = static_cast<unsigned char>(buffered[i]);
    if (c == '\r') {
      if (i + 1 == buffered.size()) break;  // judge it when the next byte arrives
      if (buffered[i + 1] != '\n') return Verdict::bare_cr;
      continue;  // the LF that follows ends the line
    }
    if (c == '\n') {
      const std::size_t line_length = i - line_start_;
      // A line holding only CR (or nothing) ends the header section; a request line may be
      // preceded by empty lines (RFC 9112 2.2), which Beast skips too.
      const bool empty = line_length == 0 || (line_length == 1 && buffered[i - 1] == '\r');
      if (empty && line_ > 0) {
        scanned_ = i + 1;
        return Verdict::complete;
      }
      if (!empty) ++line_;
      line_start_ = i + 1;
      continue;
    }
    if (i == line_start_ && line_ >= 1 && (c == ' ' || c == '\t')) return Verdict::obs_fold;
    if ((c < 0x20 && c != '\t') || c == 0x7f) return Verdict::control_byte;
    if (line_ == 0 && i - line_start_ >= max_request_line_) return Verdict::request_line_too_long;
  }
  scanned_ = i;
  return Verdict::need_more;
}

}  // namespace sluice::proxy
