#pragma once
#include <string>
#include <string_view>

namespace sluice::classify {

// Why a request target could not be normalised (each answered with 400).
enum class PathError { none, not_origin_form, bad_percent_encoding, control_character };

// Splits an origin-form request target ("/a/b?x=1") into its normalised path and its raw query.
// Normalisation: percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other
// percent-encodings get upper-case hex, runs of '/' collapse to one, "." and ".." segments are
// resolved (never above the root). `path` is cleared and reused, so a session's buffer is recycled.
// Routes are matched and keys built on the normalised path, and it is what the upstream receives,
// so sluice and the upstream never disagree about which resource was asked for.
PathError normalize_target(std::string_view target, std::string& path, std::string_view& query);

}  // namespace sluice::classify
