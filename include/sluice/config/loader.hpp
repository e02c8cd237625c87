#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/config/config.hpp>

namespace sluice::config {

// One problem in a config file, printed as "file:line:column: message" (1-based). A problem with
// the file as a whole (it cannot be read) has line 0 and prints as "file: message", e.g.
// "sluice.yaml: cannot read: No such file or directory".
struct Error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;

  std::string to_string() const;
};

// Either a config or every problem found (loading goes on after the first error, so one run of
// `sluice check` reports them all), sorted by position.
struct LoadResult {
  std::shared_ptr<const Config> config;  // null when errors is not empty
  std::vector<Error> errors;
  // Valid but surely not what was meant (a route no request can reach); with a config only.
  std::vector<Error> warnings;

  bool ok() const noexcept { return config != nullptr; }
};

LoadResult load_file(const std::string& path);
// `source` names the text in error messages.
LoadResult load_string(std::string_view yaml, const std::string& source);

// A one-screen human summary of routes and limits, for `sluice check`.
std::string summarize(const Config& config);

}  // namespace sluice::config
