#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

// Parses "250ms", "10s", "5m", "2h", "1d" (a positive whole number and one unit) into microseconds.
std::optional<std::chrono::microseconds> parse_duration(std::string_view text) noexcept;

// Formats microseconds back in the largest unit that divides them ("10m", "1500ms").
std::string format_duration(std::chrono::microseconds d);

}  // namespace sluice::config
