// Classification of one request against a fixed policy: client IP, path normalisation, route and
// limit keys. The input is
//   [family byte][peer address: 4 bytes if the family byte is even, else 16]
//   then lines: X-Forwarded-For \n Forwarded \n method \n target \n X-API-Key \n X-User-Id \n
//   X-Tenant (a missing line is an absent header).
// Beyond each step's own invariants (see Classifier::classify): the same request classifies the
// same way twice, and spaces around header values change no key.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"

namespace {

using sluice::fuzz::Classification;
using sluice::fuzz::Classifier;
using sluice::fuzz::HeaderList;
using sluice::fuzz::RequestInput;
using sluice::fuzz::require;

constexpr std::array<std::string_view, 3> kIdentityHeaders = {"X-API-Key", "X-User-Id", "X-Tenant"};

std::string_view next_line(std::string_view& rest) {
  const std::size_t newline = rest.find('\n');
  const std::string_view line = rest.substr(0, newline);
  rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Classifier classifier;
  static Classification first;
  static Classification second;
  static HeaderList headers;
  static HeaderList padded_headers;
  static std::array<std::string, kIdentityHeaders.size()> padded_values;

  std::string_view rest(reinterpret_cast<const char*>(data), size);
  if (rest.empty()) return 0;
  const std::size_t address_size = (static_cast<unsigned char>(rest.front()) & 1) ? 16 : 4;
  rest.remove_prefix(1);
  if (rest.size() < address_size) return 0;
  RequestInput request;
  if (address_size == 4) {
    std::uint32_t v4 = 0;
    for (std::size_t i = 0; i < 4; ++i)
      v4 = v4 << 8 | static_cast<unsigned char>(rest[i]);
    request.peer = sluice::classify::IpAddress::from_v4(v4);
  } else {
    for (std::size_t i = 0; i < 16; ++i)
      request.peer.bytes[i] = static_cast<std::uint8_t>(rest[i]);
  }
  rest.remove_prefix(address_size);

  request.x_forwarded_for = next_line(rest);
  request.forwarded = next_line(rest);
  request.method = next_line(rest);
  request.target = next_line(rest);
  headers.clear();
  padded_headers.clear();
  for (std::size_t i = 0; i < kIdentityHeaders.size() && !rest.empty(); ++i) {
    const std::string_view value = next_line(rest);
    headers.add(kIdentityHeaders[i], value);
    padded_values[i].assign(" \t ").append(value).append("\t ");
    padded_headers.add(kIdentityHeaders[i], padded_values[i]);
  }

  request.headers = &headers;
  classifier.classify(request, first);
  classifier.classify(request, second);
  require(first == second, "the same request classifies the same way twice");

  request.headers = &padded_headers;
  classifier.classify(request, second);
  require(first == second, "spaces around header values change no key");
  return 0;
}
