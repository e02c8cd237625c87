// classify::normalize_target on arbitrary request targets: it must accept or reject without
// crashing, and what it accepts must be a canonical path (see check_normalized).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <sluice/classify/path.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  // One buffer for the whole run, as a session reuses its own: a previous input must not leak in.
  static std::string path;
  std::string_view query;
  const auto error = sluice::classify::normalize_target(target, path, query);
  sluice::fuzz::check_normalized(target, error, path, query);

  std::string fresh;
  std::string_view fresh_query;
  const auto fresh_error = sluice::classify::normalize_target(target, fresh, fresh_query);
  sluice::fuzz::require(fresh_error == error && fresh == path && fresh_query == query,
                        "the result does not depend on the buffer's previous contents");
  return 0;
}
