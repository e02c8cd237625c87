#pragma once
#include <string>
#include <string_view>

namespace sluice::classify {

// Why a request target could not be normalised (each answered with 400).
enum class PathError {
  none,
  not_origin_form,
  bad_percent_encoding,
  control_character,
  backslash,  // a raw '\' in the path: many servers read it as '/', others as a name character
};

// Splits an origin-form request target ("/a/b?x=1") into its normalised path and its raw query.
// Normalisation: percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other
// percent-encodings get upper-case hex (so "%2F" stays encoded; see routing_path),
// runs of '/' collapse to one, "." and ".." segments are resolved (never above the root), also
// when they carry matrix parameters ("..;x" is "..", as servlet containers read it). A raw '\' is
// refused. `path` is cleared and reused, so a session's buffer is recycled.
// Routes are matched and keys built on the normalised path, and it is what the upstream receives,
// so sluice and the upstream never disagree about which resource was asked for.
PathError normalize_target(std::string_view target, std::string& path, std::string_view& query);

// The path routes are matched and keys built on: `normalized` with every "%2F" read as a '/' and
// normalised again ("/api%2Flogin" → "/api/login", "/a/x%2F..%2Flogin" → "/a/login"). The upstream
// still receives the encoded form; matching on the decoded one means a route's limits hold whether
// the upstream splits on "%2F" (WSGI, older Go) or not (Express, which then answers 404 to a
// request sluice charged: an over-count, never a bypass). Returns `normalized` itself when it has
// no "%2F", so the common case costs one search; otherwise the result lives in `out`.
std::string_view routing_path(std::string_view normalized, std::string& scratch, std::string& out);

// Appends a segment of a normalised path to `out` with every escape decoded once, as a handler
// receives it (Express's req.params): "a%40b" becomes "a@b", "a%2540b" becomes "a%40b".
void append_segment_decoded(std::string_view segment, std::string& out);

// Walks the segments of a normalised path the way routes see them: each segment's matrix
// parameters (";jsessionid=1", up to the next '/') are cut off, and segments left empty (a
// trailing '/', "/;x/") are skipped, as servlet containers do before routing. So
// "/api/login;jsessionid=1/" walks "api", "login". Views into the path; nothing is allocated.
// With `literal`, segments are taken as written instead, as Express reads them (';' is an ordinary
// character there): "/items/;7" walks "items", ";7"; only empty segments are skipped.
class RouteSegments {
 public:
  explicit RouteSegments(std::string_view path, bool literal = false) noexcept
      : rest_(path), literal_(literal) {}

  // Sets `segment` to the next non-empty segment; false at the end.
  bool next(std::string_view& segment) noexcept;

 private:
  std::string_view rest_;
  bool literal_;
};

}  // namespace sluice::classify
