// Durations in the config: a positive whole number and one unit, nothing else. No fractions, no
// spaces, no bare numbers: "10" could mean seconds or milliseconds, and a config is read more often
// than it is written.
#include <array>
#include <cstdint>
#include <limits>

#include <sluice/config/duration.hpp>

namespace sluice::config {
namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t micros;
};

// Longest suffix first, so "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 5> kUnits{{
    {"ms", 1'000},
    {"s", 1'000'000},
    {"m", 60'000'000},
    {"h", 3'600'000'000},
    {"d", 86'400'000'000},
}};

}  // namespace

std::optional<std::chrono::microseconds> parse_duration(std::string_view text) noexcept {
  for (const Unit& unit : kUnits) {
    if (text.size() <= unit.suffix.size() || !text.ends_with(unit.suffix)) continue;
    const std::string_view digits = text.substr(0, text.size() - unit.suffix.size());
    std::int64_t count = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      if (count > (std::numeric_limits<std::int64_t>::max() - 9) / 10) return std::nullopt;
      count = count * 10 + (c - '0');
    }
    if (count == 0 || count > std::numeric_limits<std::int64_t>::max() / unit.micros) {
      return std::nullopt;
    }
    return std::chrono::microseconds(count * unit.micros);
  }
  return std::nullopt;
}

std::string format_duration(std::chrono::microseconds d) {
  const std::int64_t us = d.count();
  if (us == 0) return "0s";
  // Unsigned, so that even the most negative count has a magnitude.
  const std::uint64_t magnitude =
      us < 0 ? 0 - static_cast<std::uint64_t>(us) : static_cast<std::uint64_t>(us);
  const std::string sign = us < 0 ? "-" : "";
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    const auto unit = static_cast<std::uint64_t>(it->micros);
    if (magnitude % unit == 0) {
      return sign + std::to_string(magnitude / unit) + std::string(it->suffix);
    }
  }
  // Not a whole number of milliseconds: only computed values get here, never parsed ones.
  return sign + std::to_string(magnitude) + "us";
}

}  // namespace sluice::config
