// Bodies stream through sluice both ways: byte counts and contents arrive intact, and sluice's
// peak memory stays far below the size of the bodies it carried, which it could not if it
// buffered any of them whole.
#include <chrono>
#include <string>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"

namespace {

using namespace sluice::test;

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kLargeBody = 256 * kMiB;
constexpr std::uint64_t kPeakRssLimitKib = 64 * 1024;

std::string streaming_config() {
  return config_head() + R"(routes:
  - name: files
    match: { path: /* }
    upstream: api
    limits:
      - { name: files-per-ip, key: [ip], algorithm: token_bucket, limit: 1000, window: 1m }
)";
}

const std::string kUploadHead = "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n";

// After a body went through: the connection still works and sluice's peak memory stayed far
// below what it carried.
void check_connection_and_peak_memory(ProxyStack& stack, HttpClient& client,
                                      std::uint64_t carried) {
  auto after = client.request(make_request("GET", "/after"));
  CHECK(after.status == 200);
  auto peak = stack.sluice().peak_rss_kib();
  REQUIRE(peak.has_value());
  INFO("sluice peak RSS: " << *peak << " KiB after carrying " << carried / kMiB << " MiB");
  CHECK(*peak < kPeakRssLimitKib);
}

void check_upload(std::uint64_t size, Framing framing) {
  ProxyStack stack(streaming_config());
  HttpClient client(stack.port(), std::chrono::seconds(30));
  auto uploaded = client.upload(kUploadHead, size, framing);
  INFO(uploaded.raw);
  REQUIRE(uploaded.status == 200);
  auto result = parse_json(uploaded.body);
  CHECK(result.at("bodyBytes") == size);
  CHECK(result.at("patternOk") == true);
  CHECK(uploaded.header("X-RateLimit-Remaining").has_value());
  check_connection_and_peak_memory(stack, client, size);
}

void check_download(std::uint64_t size, bool chunked) {
  ProxyStack stack(streaming_config());
  HttpClient client(stack.port(), std::chrono::seconds(30));
  auto downloaded = client.download(
      make_request("GET", "/bytes?n=" + std::to_string(size) + (chunked ? "&chunked=1" : "")));
  INFO(downloaded.head.raw);
  REQUIRE(downloaded.head.status == 200);
  if (chunked) {
    CHECK(downloaded.head.header("Transfer-Encoding") == "chunked");
  } else {
    CHECK(downloaded.head.header_number("Content-Length") == static_cast<std::int64_t>(size));
  }
  CHECK(downloaded.body_bytes == size);
  CHECK(downloaded.pattern_ok);
  check_connection_and_peak_memory(stack, client, size);
}

// Separate test cases, so that ctest can run them side by side.
TEST_CASE("a 256 MiB upload streams through sluice", "[proxy][streaming]") {
  check_upload(kLargeBody, Framing::content_length);
}

TEST_CASE("a chunked upload streams through sluice", "[proxy][streaming]") {
  check_upload(kLargeBody / 4 + 5, Framing::chunked);
}

TEST_CASE("a 256 MiB download streams through sluice", "[proxy][streaming]") {
  check_download(kLargeBody, false);
}

TEST_CASE("a chunked download streams through sluice", "[proxy][streaming]") {
  check_download(kLargeBody / 4 + 9, true);
}

}  // namespace
