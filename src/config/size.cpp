// Sizes in the config. Binary units only, each spelled one way: a config is read more often than
// it is written, and "10MB" would leave the reader guessing between 10^7 and 10 * 2^20 bytes.
#include <array>
#include <limits>

#include <sluice/config/size.hpp>

namespace sluice::config {
namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t bytes;
};

// Longest suffix first, so "KiB" is not read as "B" after garbage.
constexpr std::array<Unit, 4> kUnits{{
    {"GiB", std::uint64_t{1} << 30},
    {"MiB", std::uint64_t{1} << 20},
    {"KiB", std::uint64_t{1} << 10},
    {"B", 1},
}};

std::optional<std::uint64_t> parse_count(std::string_view digits, std::uint64_t unit) noexcept {
  if (digits.empty()) return std::nullopt;
  std::uint64_t count = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (count > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    count = count * 10 + digit;
  }
  if (count > std::numeric_limits<std::uint64_t>::max() / unit) return std::nullopt;
  return count * unit;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) noexcept {
  for (const Unit& unit : kUnits) {
    if (text.ends_with(unit.suffix)) {
      return parse_count(text.substr(0, text.size() - unit.suffix.size()), unit.bytes);
    }
  }
  return parse_count(text, 1);  // a bare number is bytes
}

std::string format_size(std::uint64_t bytes) {
  for (const Unit& unit : kUnits) {
    if (bytes != 0 && bytes % unit.bytes == 0) {
      return std::to_string(bytes / unit.bytes) + std::string(unit.suffix);
    }
  }
  return std::to_string(bytes) + "B";
}

}  // namespace sluice::config
