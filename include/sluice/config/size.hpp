#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

// Parses a size in bytes: a whole number and an optional binary unit, nothing else: "512",
// "512B", "32KiB", "10MiB", "1GiB" (1 KiB = 1024 B). Decimal units ("KB", "MB") are refused, as
// are spaces, fractions and signs: "KB" means 1000 to some readers and 1024 to others.
std::optional<std::uint64_t> parse_size(std::string_view text) noexcept;

// Formats a size in the largest unit that divides it ("32KiB", "1500B").
std::string format_size(std::uint64_t bytes);

}  // namespace sluice::config
