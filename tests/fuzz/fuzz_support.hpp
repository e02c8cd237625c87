#pragma once
// What the fuzz targets share: invariant checks that abort (libFuzzer then reports a crash and
// saves the input), and the classification a proxy session performs on every request, run against
// one fixed policy.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sluice/classify/ip.hpp>
#include <sluice/classify/key_builder.hpp>
#include <sluice/classify/path.hpp>
#include <sluice/classify/request.hpp>
#include <sluice/classify/router.hpp>
#include <sluice/config/config.hpp>
#include <sluice/limit/store.hpp>

namespace sluice::fuzz {

// Aborts with `what` when `ok` is false.
void require(bool ok, std::string_view what);

// Checks what normalize_target promises about `path` and `query`, the result of normalising
// `target` with `error`: a rooted path without "//", "." or ".." segments, canonical escapes, and
// normalising it again changes nothing.
void check_normalized(std::string_view target, classify::PathError error, std::string_view path,
                      std::string_view query);

// Header fields by name (case-insensitive, first wins), as the session's FieldsLookup answers.
class HeaderList final : public classify::HeaderLookup {
 public:
  void clear() { fields_.clear(); }
  void add(std::string_view name, std::string_view value) { fields_.emplace_back(name, value); }
  std::string_view get(std::string_view name) const noexcept override;
  const std::vector<std::pair<std::string_view, std::string_view>>& fields() const {
    return fields_;
  }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> fields_;
};

// One request as the session sees it once its header is parsed.
struct RequestInput {
  classify::IpAddress peer;
  std::string_view x_forwarded_for;  // every X-Forwarded-For line, joined with ", "
  std::string_view forwarded;
  std::string_view method;
  std::string_view target;
  const classify::HeaderLookup* headers = nullptr;
};

// What classifying one request decided; equal for equal requests.
struct Classification {
  classify::PathError path_error = classify::PathError::none;
  std::string path;     // normalised: what the upstream receives
  std::string routing;  // what routes and keys see (classify::routing_path)
  const config::Route* route = nullptr;
  classify::IpAddress client;
  std::vector<limit::KeyDigest> digests;  // one per limit of the route

  friend bool operator==(const Classification&, const Classification&) = default;
};

// Classifies requests against a fixed policy: every kind of path pattern and key part, shared
// and route-only limits, trusted proxies of both address families.
class Classifier {
 public:
  Classifier();

  const config::Config& config() const { return *config_; }
  bool is_trusted(const classify::IpAddress& ip) const;

  // Normalises the target, picks the route, the client IP and the limit keys as the session does,
  // checking each step's invariants, into `out` (whose buffers are reused).
  void classify(const RequestInput& request, Classification& out);

 private:
  std::shared_ptr<const config::Config> config_;
  classify::Router router_;  // refers to *config_
  classify::KeyBuilder keys_;
  std::vector<limit::LimitCheck> checks_;
  std::string routing_scratch_;
};

}  // namespace sluice::fuzz
