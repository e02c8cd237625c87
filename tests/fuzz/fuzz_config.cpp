// config::load_string on arbitrary text: it must return a config or errors, never crash, throw or
// hang. Errors must point into the text (1-based line and column), and a config that loads must
// load again from its own source to the same result.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <sluice/config/loader.hpp>

#include "fuzz_support.hpp"

using sluice::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  const auto result = sluice::config::load_string(yaml, "fuzz.yaml");
  require(result.ok() != !result.errors.empty(), "a load gives either a config or errors");
  const auto lines = static_cast<int>(std::count(yaml.begin(), yaml.end(), '\n')) + 1;
  for (std::size_t i = 0; i < result.errors.size(); ++i) {
    const auto& error = result.errors[i];
    require(!error.message.empty(), "every error says what is wrong");
    require(error.file == "fuzz.yaml", "every error names the source");
    require(error.line >= 0 && error.column >= 0, "positions are not negative");
    require(error.line <= lines + 1, "an error's line is in the text");
    if (i > 0) {
      const auto& previous = result.errors[i - 1];
      require(previous.line < error.line ||
                  (previous.line == error.line && previous.column <= error.column),
              "errors are sorted by position");
    }
    // to_string() is what `sluice check` prints.
    require(!error.to_string().empty(), "an error prints");
  }
  if (result.ok()) {
    const auto& config = *result.config;
    for (const auto& route : config.routes) {
      require(route.upstream < config.upstreams.size(), "a route's upstream exists");
      for (const auto& limit : route.limits) {
        require(limit.quota.limit >= 1 && limit.quota.window >= 1000,
                "a loaded limit admits at least 1 per window of at least 1ms");
        for (const auto& part : limit.key) {
          require(!part.alternatives.empty(), "every key part has an alternative");
          for (const auto& source : part.alternatives) {
            if (source.kind == sluice::config::KeySource::Kind::identity) {
              require(source.identity < config.identities.size(), "a key's identity exists");
            }
          }
        }
      }
    }
    // `sluice check` prints this summary for every valid config.
    const std::string summary = sluice::config::summarize(config);
    require(!summary.empty(), "a valid config has a summary");
    const auto again = sluice::config::load_string(yaml, "fuzz.yaml");
    require(again.ok() && sluice::config::summarize(*again.config) == summary,
            "loading is deterministic");
  }
  return 0;
}
