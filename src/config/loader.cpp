// YAML text -> Config, reporting every problem with its file:line:column.
//
// The loader keeps going after an error so one `sluice check` shows all of them, but it avoids
// cascades: a broken section is skipped as a whole, references to a section that failed to load
// are not reported as missing, and a limit with errors is not compared with its namesakes.
// Errors are returned sorted by position, whatever order the sections were read in.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <sluice/classify/path.hpp>
#include <sluice/classify/router.hpp>
#include <sluice/config/duration.hpp>
#include <sluice/config/loader.hpp>
#include <sluice/config/size.hpp>
#include <sluice/limit/key.hpp>
#include <sluice/redis/client.hpp>

namespace sluice::config {

std::string Error::to_string() const {
  // Problems with the file as a whole (cannot read it) have no position.
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

using namespace std::chrono_literals;

// A config is a few kilobytes; reading /dev/zero must end.
constexpr std::size_t kMaxFileBytes = 16 * 1024 * 1024;

// The algorithms compute in doubles (to match the Lua transcription bit for bit); with these bounds
// counts stay exact and a decision is off by a few microseconds at the very most (algorithm.cpp).
constexpr std::int64_t kMaxLimit = 1'000'000'000;
constexpr std::chrono::microseconds kMinWindow = 1ms;
constexpr std::chrono::microseconds kMaxWindow = 365 * 24h;
constexpr std::chrono::microseconds kMinTimeout = 1ms;
constexpr std::chrono::microseconds kMaxTimeout = 24h;
constexpr std::int64_t kMaxThreads = 256;
constexpr std::int64_t kMinIpv6Prefix = 32;
constexpr std::int64_t kMaxStoreKeys = 1'000'000'000;

constexpr std::string_view kTopKeys[] = {
    "listen", "threads", "trusted_proxies", "client_ip_header", "ipv6_prefix",          "headers",
    "client", "store",   "upstreams",       "identities",       "case_sensitive_paths", "routes"};
constexpr std::string_view kClientKeys[] = {"max_connections", "max_header_bytes", "max_uri_bytes",
                                            "max_body",        "header_timeout",   "idle_timeout",
                                            "body_timeout",    "send_timeout"};
constexpr std::int64_t kMaxClientConnections = 1'000'000;
constexpr std::uint64_t kMinHeaderBytes = 1024;
constexpr std::uint64_t kMaxHeaderBytes = 1024 * 1024;
constexpr std::uint64_t kMinUriBytes = 256;
constexpr std::uint64_t kUnlimitedBytes = std::numeric_limits<std::uint64_t>::max();
constexpr std::string_view kStoreKeys[] = {"type", "max_keys", "redis"};
constexpr std::string_view kStoreTypes[] = {"memory", "redis"};
constexpr std::string_view kRedisKeys[] = {"url", "timeout", "connections", "key_salt",
                                           "refusal_cache"};
// A request waits this long at most for its decision; past a few seconds a deadline protects
// nothing.
constexpr std::chrono::microseconds kMaxRedisTimeout = 10s;
constexpr std::int64_t kMaxRedisConnections = 16;
// A refusal repeated locally outlives an operator's reset in Redis by at most this.
constexpr std::chrono::microseconds kMaxRefusalCache = 1min;
constexpr std::string_view kStoreErrorModes[] = {"allow", "deny", "local"};
constexpr std::string_view kUpstreamKeys[] = {"servers", "connect_timeout", "timeout",
                                              "idle_timeout"};
constexpr std::string_view kIdentityKeys[] = {"header"};
constexpr std::string_view kRouteKeys[] = {"name",   "match",          "upstream",
                                           "limits", "on_store_error", "max_body"};
constexpr std::string_view kMatchKeys[] = {"path", "methods", "case_sensitive"};
constexpr std::string_view kLimitKeys[] = {"name", "key", "algorithm", "limit", "window", "burst"};
constexpr std::string_view kMethods[] = {"GET",    "HEAD",  "POST",   "PUT",
                                         "DELETE", "PATCH", "OPTIONS"};
constexpr std::string_view kHeaderStyles[] = {"legacy", "ietf", "both", "none"};
constexpr std::string_view kAlgorithms[] = {"token_bucket", "gcra", "sliding_window",
                                            "fixed_window"};
// Key parts with a built-in meaning; identities may not take these names.
constexpr std::string_view kBuiltinKeyParts[] = {"ip", "method", "route", "path", "header"};

// ---------------------------------------------------------------------------------------------
// Small text helpers

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::string join(std::span<const std::string_view> items, std::string_view separator) {
  std::string out;
  for (const auto item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Names end up in store keys, metric labels and log lines: keep them plain.
bool is_plain_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// An HTTP header name (RFC 9110 token).
bool is_token(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_alnum(c) || kExtra.find(c) != std::string_view::npos;
  });
}

// A whole number, optionally negative (so "-1" is reported as out of range, not as garbage).
std::optional<std::int64_t> parse_whole(std::string_view s) {
  bool negative = false;
  if (!s.empty() && s.front() == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t value = 0;
  for (const char c : s) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return negative ? -value : value;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'window'?)" when one candidate is within two edits (one for short words, where
// two edits turn anything into anything), else "".
template <typename Range>
std::string_view closest(std::string_view word, const Range& candidates) {
  std::string_view best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& candidate : candidates) {
    const std::string_view c(candidate);
    const std::size_t allowed = c.size() <= 3 ? 1 : 2;
    const std::size_t d = edit_distance(to_lower(word), to_lower(c));
    if (d <= allowed && d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

template <typename Range>
std::string did_you_mean(std::string_view word, const Range& candidates) {
  const std::string_view best = closest(word, candidates);
  if (best.empty()) return "";
  return " (did you mean " + quoted(best) + "?)";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "the value " + quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

std::string at_line(Mark m) {
  return "line " + std::to_string(m.line) + ", column " + std::to_string(m.column);
}

Mark mark_of(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  return {m.line + 1, m.column + 1};
}

// yaml-cpp marks a quoted scalar at its opening quote; positions inside the text are one further.
int text_offset(const YAML::Node& node) {
  return node.Tag() == "!" ? 1 : 0;
}

// One entry of a YAML map.
struct Field {
  std::string key;
  YAML::Node value;
  Mark key_mark;
  // yaml-cpp marks an empty value at whatever token follows it, so empty values point at their key.
  Mark value_mark;
};

using Fields = std::vector<Field>;

const Field* find(const Fields& fields, std::string_view key) {
  for (const Field& f : fields) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::optional<HostPort> parse_host_port(std::string_view text, bool names_allowed,
                                        std::string& why) {
  if (text.empty()) {
    why = "it is empty";
    return std::nullopt;
  }
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      why = "missing ']' after the IPv6 address";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      why = "a port is needed after ']', e.g. [::1]:8080";
      return std::nullopt;
    }
    port = rest.substr(1);
    const auto ip = classify::IpAddress::parse(host);
    if (!ip || host.find(':') == std::string_view::npos) {
      why = quoted(host) + " is not an IPv6 address";
      return std::nullopt;
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      why = "a port is needed, e.g. 127.0.0.1:8080";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      why = "IPv6 addresses need brackets, e.g. [::1]:8080";
      return std::nullopt;
    }
    if (host.empty()) {
      why = "a host is needed before the port";
      return std::nullopt;
    }
    const bool looks_numeric =
        std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
    if (looks_numeric || !names_allowed) {
      if (!(host == "localhost" && !names_allowed) && !classify::IpAddress::parse(host)) {
        why = names_allowed ? quoted(host) + " is not an IPv4 address"
                            : quoted(host) + " is not an IP address or 'localhost'";
        return std::nullopt;
      }
    } else {
      // A DNS name: dot-separated labels of letters, digits and '-'.
      bool valid = host.size() <= 253 && host.front() != '.' && host.back() != '.';
      for (std::size_t i = 0; valid && i < host.size(); ++i) {
        const char c = host[i];
        valid = is_alnum(c) || c == '-' || (c == '.' && host[i - 1] != '.');
      }
      if (!valid) {
        why = quoted(host) + " is not a valid host name or IP address";
        return std::nullopt;
      }
    }
  }
  const auto number = parse_whole(port);
  if (!number || *number < 1 || *number > 65535) {
    why = "port " + quoted(port) + " must be a number from 1 to 65535";
    return std::nullopt;
  }
  return HostPort{std::string(host), static_cast<std::uint16_t>(*number)};
}

std::optional<PathPattern> parse_path_pattern(std::string_view text, std::string& why) {
  if (text.empty() || text.front() != '/') {
    why = "it must start with '/'";
    return std::nullopt;
  }
  if (text.find_first_of("?#") != std::string_view::npos) {
    why = "it cannot contain '?' or '#' (only the path is matched, never the query)";
    return std::nullopt;
  }
  if (text.find(';') != std::string_view::npos) {
    why =
        "it cannot contain ';' (matrix parameters such as ';jsessionid=1' are ignored when "
        "matching, so such a pattern would never match)";
    return std::nullopt;
  }
  const auto star = text.find('*');
  const bool prefix = star != std::string_view::npos;
  if (prefix && (star != text.size() - 1 || text[star - 1] != '/')) {
    why = "'*' is only allowed at the end, as '/*' (e.g. /api/*)";
    return std::nullopt;
  }
  // Normalised exactly like request paths, so "/api//login" matches what requests become.
  std::string normalised;
  std::string_view query;
  const std::string_view base = prefix ? text.substr(0, star) : text;
  switch (classify::normalize_target(base, normalised, query)) {
    case classify::PathError::none:
      break;
    case classify::PathError::bad_percent_encoding:
      why = "it has a bad percent-encoding (use %XX with two hex digits)";
      return std::nullopt;
    case classify::PathError::control_character:
      why = "it contains a control character";
      return std::nullopt;
    case classify::PathError::not_origin_form:
      why = "it must start with '/'";
      return std::nullopt;
    case classify::PathError::backslash:
      why = "it contains a '\\' (requests with one are rejected with 400)";
      return std::nullopt;
  }
  // Requests are routed with "%2F" as '/', so a pattern keeping one in a segment never matches.
  if (normalised.find("%2F") != std::string::npos || normalised.find("%2f") != std::string::npos) {
    why = "it contains '%2F', which requests are routed as '/': write '/' instead";
    return std::nullopt;
  }
  bool has_params = false;
  std::string_view rest = normalised;
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    const auto end = std::min(rest.find('/'), rest.size());
    const std::string_view segment = rest.substr(0, end);
    if (!segment.empty() && segment.front() == ':') {
      const std::string_view name = segment.substr(1);
      if (name.empty() ||
          !std::all_of(name.begin(), name.end(), [](char c) { return is_alnum(c) || c == '_'; })) {
        why = "a ':' segment needs a name of letters, digits and '_', e.g. /users/:id";
        return std::nullopt;
      }
      has_params = true;
    }
    rest.remove_prefix(end);
  }
  if (prefix && has_params) {
    why = "':name' segments cannot be combined with a '/*' suffix";
    return std::nullopt;
  }
  PathPattern pattern;
  if (prefix) {
    pattern.kind = PathPattern::Kind::prefix;
    if (normalised.back() != '/') normalised += '/';
    normalised += '*';
  } else if (has_params) {
    pattern.kind = PathPattern::Kind::segments;
  }
  pattern.text = std::move(normalised);
  return pattern;
}

// ---------------------------------------------------------------------------------------------

// Where a second YAML document with content starts, if there is one. Parses at most two
// documents: YAML::LoadAll loops forever on some malformed input (found by fuzz_config).
std::optional<Mark> second_document(std::string_view yaml) {
  struct FirstContent final : YAML::EventHandler {
    std::optional<Mark> at;
    void note(const YAML::Mark& mark) {
      if (!at) at = Mark{mark.line + 1, mark.column + 1};
    }
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}  // an empty document
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { note(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
      note(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      note(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
      note(mark);
    }
    void OnMapEnd() override {}
  };
  std::istringstream input{std::string(yaml)};
  YAML::Parser parser(input);
  FirstContent first;
  if (!parser.HandleNextDocument(first)) return std::nullopt;
  FirstContent second;
  if (!parser.HandleNextDocument(second)) return std::nullopt;
  return second.at;
}

class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  LoadResult load(std::string_view yaml) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(yaml));
      // A second document (two files joined, a stray "---") is an error rather than silently
      // ignored, syntax errors in it included.
      if (const auto second = second_document(yaml)) {
        error(*second,
              "a second YAML document: a config file holds one (remove the '---' or '...' line)");
        return finish();
      }
    } catch (const YAML::Exception& e) {  // ParserException, and anything else yaml-cpp throws
      error({e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg);
      return finish();
    }
    config_.source = source_;
    load_root(root);
    return finish();
  }

 private:
  struct SharedLimit {
    std::string canonical;
    std::string route;
    Mark mark;
  };

  void error(Mark at, std::string message) {
    errors_.push_back(Error{source_, at.line, at.column, std::move(message)});
  }

  // Routes an earlier route takes every request from (first match wins), found conservatively: a
  // warning is certain, its absence proves nothing.
  std::vector<Error> unreachable_routes() const {
    std::vector<Error> warnings;
    const auto& routes = config_.routes;
    for (std::size_t later = 1; later < routes.size(); ++later) {
      for (std::size_t earlier = 0; earlier < later; ++earlier) {
        if (!takes_all_of(routes[earlier], routes[later])) continue;
        const Route& shadowed = routes[later];
        warnings.push_back(Error{source_, shadowed.mark.line, shadowed.mark.column,
                                 "route " + quoted(shadowed.name) + " is never reached: route " +
                                     quoted(routes[earlier].name) + " (" +
                                     routes[earlier].path.text +
                                     ") comes first and takes every request it would match "
                                     "(first match wins: move it up)"});
        break;
      }
    }
    return warnings;
  }

  static bool takes_all_of(const Route& first, const Route& then) {
    if (!first.methods.empty()) {
      if (then.methods.empty()) return false;
      for (const std::string& method : then.methods) {
        if (std::find(first.methods.begin(), first.methods.end(), method) == first.methods.end()) {
          return false;
        }
      }
    }
    // A case-insensitive route matches spellings a case-sensitive one does not.
    if (first.path.case_sensitive && !then.path.case_sensitive) return false;
    if (then.path.kind == PathPattern::Kind::exact) {
      return classify::path_matches(first.path, then.path.text);
    }
    // Every path of a prefix or parameter pattern starts with its literal head: only a prefix
    // without parameters is sure to take all of them.
    if (first.path.kind != PathPattern::Kind::prefix ||
        first.path.text.find("/:") != std::string::npos) {
      return false;
    }
    std::string_view head = then.path.text;
    head = head.substr(0, std::min(head.find("/:"), head.find("/*")));
    return classify::path_matches(first.path, head.empty() ? "/" : head);
  }

  LoadResult finish() {
    LoadResult result;
    if (errors_.empty()) {
      result.warnings = unreachable_routes();
      result.config = std::make_shared<const Config>(std::move(config_));
      return result;
    }
    std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    result.errors = std::move(errors_);
    return result;
  }

  // Reads a map's entries in file order. Repeated keys are reported (yaml-cpp keeps them all, and
  // lookups would silently use one); only the first of each is returned.
  Fields read_map(const YAML::Node& map, std::string_view repeated_what = "key") {
    Fields fields;
    // A range-for keeps each entry alive; yaml-cpp's `it->first` refers into a temporary proxy.
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        error(mark_of(key), "a key must be a plain name, found " + describe(key));
        continue;
      }
      const Mark key_mark = mark_of(key);
      if (const Field* first = find(fields, key.Scalar())) {
        error(key_mark, "duplicate " + std::string(repeated_what) + " " + quoted(key.Scalar()) +
                            " (first at " + at_line(first->key_mark) + ")");
        continue;
      }
      const YAML::Node& value = entry.second;
      fields.push_back(
          Field{key.Scalar(), value, key_mark, value.IsNull() ? key_mark : mark_of(value)});
    }
    return fields;
  }

  void check_keys(const Fields& fields, std::span<const std::string_view> allowed,
                  std::string_view where) {
    for (const Field& f : fields) {
      if (std::find(allowed.begin(), allowed.end(), f.key) != allowed.end()) continue;
      std::string hint = did_you_mean(f.key, allowed);
      if (hint.empty()) hint = "; expected one of " + join(allowed, ", ");
      error(f.key_mark, "unknown key " + quoted(f.key) + " " + std::string(where) + hint);
    }
  }

  // The map under `field`, or nothing (reported) when it is something else.
  std::optional<Fields> map_of(const Field& field, std::string_view what,
                               std::string_view repeated_what = "key") {
    if (field.value.IsMap()) return read_map(field.value, repeated_what);
    error(field.value_mark, quoted(field.key) + " must be a map (" + std::string(what) +
                                "), found " + describe(field.value));
    return std::nullopt;
  }

  bool is_list(const Field& field, std::string_view example) {
    if (field.value.IsSequence()) return true;
    error(field.value_mark, quoted(field.key) + " must be a list, e.g. " + std::string(example) +
                                ", found " + describe(field.value));
    return false;
  }

  std::optional<std::string> scalar(const Field& field, std::string_view what = "a single value") {
    if (field.value.IsScalar()) return field.value.Scalar();
    error(field.value_mark,
          quoted(field.key) + " must be " + std::string(what) + ", found " + describe(field.value));
    return std::nullopt;
  }

  std::optional<std::string> scalar_item(const YAML::Node& item, std::string_view list,
                                         std::string_view what) {
    if (item.IsScalar()) return item.Scalar();
    error(mark_of(item), "each entry of " + quoted(list) + " must be " + std::string(what) +
                             ", found " + describe(item));
    return std::nullopt;
  }

  std::optional<std::int64_t> whole_number(const Field& field, std::int64_t min, std::int64_t max,
                                           std::string_view why_max = "") {
    const auto text = scalar(field, "a whole number");
    if (!text) return std::nullopt;
    const auto value = parse_whole(*text);
    if (!value) {
      error(field.value_mark,
            quoted(field.key) + " must be a whole number, found " + quoted(*text));
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      error(field.value_mark, quoted(field.key) + " must be from " + std::to_string(min) + " to " +
                                  std::to_string(max) + std::string(why_max) + ", found " +
                                  std::to_string(*value));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::chrono::microseconds> duration(const Field& field,
                                                    std::chrono::microseconds min,
                                                    std::chrono::microseconds max,
                                                    std::string_view why_max = "") {
    const auto text = scalar(field, "a duration such as 10s");
    if (!text) return std::nullopt;
    const auto value = parse_duration(*text);
    if (!value) {
      const bool bare_number =
          !text->empty() && std::all_of(text->begin(), text->end(), is_digit) && *text != "0";
      error(field.value_mark,
            "bad duration " + quoted(*text) + " for " + quoted(field.key) +
                (bare_number ? ": add a unit (ms, s, m, h or d), e.g. " + *text + "s"
                             : ": expected a positive whole number and a unit (ms, s, m, h or "
                               "d), e.g. 250ms, 10s, 5m"));
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      error(field.value_mark, quoted(field.key) + " must be from " + format_duration(min) + " to " +
                                  format_duration(max) + std::string(why_max) + ", found " + *text);
      return std::nullopt;
    }
    return value;
  }

  // A size within [min, max]; `unlimited` (when allowed) is returned as 0.
  std::optional<std::uint64_t> size(const Field& field, std::uint64_t min, std::uint64_t max,
                                    std::string_view why_max = "", bool unlimited_allowed = false) {
    const std::string_view what =
        unlimited_allowed ? "a size such as 10MiB, or 'unlimited'" : "a size such as 32KiB";
    const auto text = scalar(field, what);
    if (!text) return std::nullopt;
    if (unlimited_allowed && *text == "unlimited") return 0;
    const auto value = parse_size(*text);
    if (!value) {
      error(field.value_mark, "bad size " + quoted(*text) + " for " + quoted(field.key) + ": " +
                                  size_hint(*text, unlimited_allowed));
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      const std::string unlimited = unlimited_allowed ? " (or 'unlimited')" : "";
      error(field.value_mark,
            quoted(field.key) +
                (max == kUnlimitedBytes ? " must be at least " + format_size(min) + unlimited
                                        : " must be from " + format_size(min) + " to " +
                                              format_size(max) + unlimited + std::string(why_max)) +
                ", found " + *text);
      return std::nullopt;
    }
    return value;
  }

  // Why `text` is not a size, suggesting the binary spelling of a decimal or miscased unit.
  static std::string size_hint(std::string_view text, bool unlimited_allowed) {
    const auto digits_end =
        std::find_if(text.begin(), text.end(), [](char c) { return !is_digit(c); });
    const std::string_view digits(text.begin(), digits_end);
    const std::string unit = to_lower(text.substr(digits.size()));
    struct Spelling {
      std::string_view binary;
      std::uint64_t multiplier;  // of the decimal reading
      int shift;                 // of the binary reading
    };
    std::optional<Spelling> spelling;
    if (unit == "k" || unit == "kb" || unit == "kib") spelling = Spelling{"KiB", 1000, 10};
    if (unit == "m" || unit == "mb" || unit == "mib") spelling = Spelling{"MiB", 1'000'000, 20};
    if (unit == "g" || unit == "gb" || unit == "gib") spelling = Spelling{"GiB", 1'000'000'000, 30};
    const auto count = parse_whole(digits);
    if (spelling && count && *count < (std::int64_t{1} << 32)) {
      const auto n = static_cast<std::uint64_t>(*count);
      std::string hint = "units are binary and spelled B, KiB, MiB, GiB: write " +
                         std::string(digits) + std::string(spelling->binary) + " for " +
                         std::to_string(n << spelling->shift) + " bytes";
      if (!unit.ends_with("ib")) {
        hint += ", or " + std::to_string(n * spelling->multiplier) + " for " +
                std::to_string(n * spelling->multiplier) + " bytes";
      }
      return hint;
    }
    return std::string(
               "expected a whole number of bytes and an optional unit (B, KiB, MiB or "
               "GiB), e.g. 32KiB") +
           (unlimited_allowed ? ", or 'unlimited'" : "");
  }

  std::optional<bool> boolean(const Field& field) {
    const auto text = scalar(field, "true or false");
    if (!text) return std::nullopt;
    if (*text == "true") return true;
    if (*text == "false") return false;
    error(field.value_mark, quoted(field.key) + " must be true or false, found " + quoted(*text));
    return std::nullopt;
  }

  // Reports a required key as missing, unless an unknown key in the same map is a typo of it (that
  // error, with its "did you mean", already tells the whole story).
  void missing(const Fields& fields, std::span<const std::string_view> allowed, Mark at,
               std::string_view owner, std::string_view key, std::string_view what) {
    for (const Field& f : fields) {
      const bool unknown = std::find(allowed.begin(), allowed.end(), f.key) == allowed.end();
      if (unknown && closest(f.key, allowed) == key) return;
    }
    error(at, std::string(owner) + " needs " + quoted(key) + " (" + std::string(what) + ")");
  }

  // --- top level ---------------------------------------------------------------------------

  void load_root(const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull()) {
      error({1, 1}, "the config is empty: it needs at least 'upstreams' and 'routes'");
      return;
    }
    if (!root.IsMap()) {
      error(mark_of(root),
            "the config must be a map of settings (listen, upstreams, routes, ...), "
            "found " +
                describe(root));
      return;
    }
    const Fields fields = read_map(root);
    check_keys(fields, kTopKeys, "at the top level");

    if (const Field* f = find(fields, "listen")) load_listen(*f);
    if (const Field* f = find(fields, "threads")) {
      load_threads(*f);
    } else {
      config_.threads = hardware_threads();
    }
    if (const Field* f = find(fields, "trusted_proxies")) load_trusted_proxies(*f);
    if (const Field* f = find(fields, "client_ip_header")) load_client_ip_header(*f);
    if (const Field* f = find(fields, "ipv6_prefix")) load_ipv6_prefix(*f);
    if (const Field* f = find(fields, "headers")) load_headers(*f);
    if (const Field* f = find(fields, "store")) load_store(*f);
    // Routes take their defaults from these, so they load first wherever they are.
    if (const Field* f = find(fields, "client")) load_client(*f);
    if (const Field* f = find(fields, "case_sensitive_paths")) {
      if (const auto value = boolean(*f)) config_.case_sensitive_paths = *value;
    }

    // Routes refer to upstreams and identities by name, so those load first wherever they are.
    if (const Field* f = find(fields, "upstreams")) {
      upstreams_known_ = load_upstreams(*f);
    } else {
      missing(fields, kTopKeys, {1, 1}, "the config", "upstreams", "where routes send requests");
    }
    if (const Field* f = find(fields, "identities")) identities_known_ = load_identities(*f);

    if (const Field* f = find(fields, "routes")) {
      load_routes(*f);
    } else {
      missing(fields, kTopKeys, {1, 1}, "the config", "routes",
              "which requests to proxy, and their limits");
    }
  }

  static unsigned hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

  void load_listen(const Field& f) {
    const auto text = scalar(f, "an address such as 0.0.0.0:8080");
    if (!text) return;
    std::string why;
    if (auto address = parse_host_port(*text, /*names_allowed=*/false, why)) {
      config_.listen = std::move(*address);
    } else {
      error(f.value_mark, "bad listen address " + quoted(*text) + ": " + why);
    }
  }

  void load_threads(const Field& f) {
    const auto text = scalar(f, "'auto' or a number from 1 to 256");
    if (!text) return;
    if (*text == "auto") {
      config_.threads = hardware_threads();
      return;
    }
    const auto n = parse_whole(*text);
    if (!n || *n < 1 || *n > kMaxThreads) {
      error(f.value_mark, "'threads' must be 'auto' or a number from 1 to " +
                              std::to_string(kMaxThreads) + ", found " + quoted(*text));
      return;
    }
    config_.threads = static_cast<unsigned>(*n);
  }

  void load_trusted_proxies(const Field& f) {
    if (f.value.IsNull()) return;  // written but left empty: no trusted proxies
    if (!is_list(f, "[10.0.0.0/8, 192.168.1.7]")) return;
    for (const auto& item : f.value) {
      const auto text = scalar_item(item, f.key, "an address or CIDR such as 10.0.0.0/8");
      if (!text) continue;
      if (const auto cidr = classify::Cidr::parse(*text)) {
        config_.trusted_proxies.push_back(*cidr);
      } else {
        error(mark_of(item), "bad address or CIDR " + quoted(*text) +
                                 " in 'trusted_proxies' (e.g. 10.0.0.0/8, 2001:db8::/32, "
                                 "192.168.1.7)");
      }
    }
  }

  void load_client_ip_header(const Field& f) {
    const auto text = scalar(f, "X-Forwarded-For or Forwarded");
    if (!text) return;
    const std::string name = to_lower(*text);
    if (name == "x-forwarded-for") {
      config_.client_ip_header = classify::ForwardingHeader::x_forwarded_for;
    } else if (name == "forwarded") {
      config_.client_ip_header = classify::ForwardingHeader::forwarded;
    } else {
      error(f.value_mark,
            "'client_ip_header' must be X-Forwarded-For or Forwarded (the header your "
            "trusted proxies write), found " +
                quoted(*text));
    }
  }

  void load_ipv6_prefix(const Field& f) {
    const auto text = scalar(f, "a prefix length from 32 to 128, e.g. 64");
    if (!text) return;
    const auto n = parse_whole(*text);
    // Shorter than /32 would put whole providers behind one key.
    if (!n || *n < kMinIpv6Prefix || *n > 128) {
      error(f.value_mark, "'ipv6_prefix' must be a prefix length from " +
                              std::to_string(kMinIpv6Prefix) + " to 128 (128: every address " +
                              "on its own), found " + quoted(*text));
      return;
    }
    config_.ipv6_prefix = static_cast<std::uint8_t>(*n);
  }

  void load_headers(const Field& f) {
    const auto text = scalar(f, "one of legacy, ietf, both, none");
    if (!text) return;
    for (std::size_t i = 0; i < std::size(kHeaderStyles); ++i) {
      if (*text == kHeaderStyles[i]) {
        config_.headers = static_cast<HeaderStyle>(i);
        return;
      }
    }
    error(f.value_mark, "'headers' must be one of " + join(kHeaderStyles, ", ") + ", found " +
                            quoted(*text) + did_you_mean(*text, kHeaderStyles));
  }

  void load_client(const Field& f) {
    const auto fields = map_of(f, "e.g. { max_connections: 10000, header_timeout: 10s }");
    if (!fields) return;
    check_keys(*fields, kClientKeys, "in 'client'");
    ClientLimits& client = config_.client;
    if (const Field* n = find(*fields, "max_connections")) {
      if (const auto value = whole_number(*n, 1, kMaxClientConnections, " per process")) {
        client.max_connections = static_cast<std::size_t>(*value);
      }
    }
    bool header_bytes_known = true;
    if (const Field* n = find(*fields, "max_header_bytes")) {
      const auto value = size(*n, kMinHeaderBytes, kMaxHeaderBytes);
      if (value) client.max_header_bytes = static_cast<std::size_t>(*value);
      header_bytes_known = value.has_value();
    }
    if (const Field* n = find(*fields, "max_uri_bytes")) {
      // The request target is part of the header section, so it cannot be allowed more room. When
      // max_header_bytes is broken (reported), its own bound stands in, to avoid a second error.
      const std::uint64_t max = header_bytes_known ? client.max_header_bytes : kMaxHeaderBytes;
      if (const auto value = size(*n, kMinUriBytes, max,
                                  header_bytes_known ? " (max_header_bytes, which includes the "
                                                       "request target)"
                                                     : "")) {
        client.max_uri_bytes = static_cast<std::size_t>(*value);
      }
    } else if (client.max_uri_bytes > client.max_header_bytes) {
      client.max_uri_bytes = client.max_header_bytes;  // the default shrinks with a small header
    }
    if (const Field* n = find(*fields, "max_body")) {
      if (const auto value = size(*n, 1, kUnlimitedBytes, "", /*unlimited_allowed=*/true)) {
        client.max_body = *value;
      }
    }
    const std::pair<std::string_view, Milliseconds*> timeouts[] = {
        {"header_timeout", &client.header_timeout},
        {"idle_timeout", &client.idle_timeout},
        {"body_timeout", &client.body_timeout},
        {"send_timeout", &client.send_timeout},
    };
    for (const auto& [key, target] : timeouts) {
      if (const Field* t = find(*fields, key)) {
        if (const auto d = duration(*t, kMinTimeout, kMaxTimeout)) {
          *target = std::chrono::duration_cast<Milliseconds>(*d);
        }
      }
    }
  }

  void load_store(const Field& f) {
    const auto fields = map_of(f, "e.g. { type: memory, max_keys: 1000000 }");
    if (!fields) return;
    check_keys(*fields, kStoreKeys, "in 'store'");
    bool type_known = true;
    if (const Field* type = find(*fields, "type")) {
      type_known = false;
      if (const auto text = scalar(*type, "memory or redis")) {
        if (*text == "memory") {
          config_.store.type = StoreType::memory;
          type_known = true;
        } else if (*text == "redis") {
          config_.store.type = StoreType::redis;
          type_known = true;
        } else {
          error(type->value_mark, "unknown store type " + quoted(*text) +
                                      " (expected memory or redis)" +
                                      did_you_mean(*text, kStoreTypes));
        }
      }
    }
    if (const Field* max_keys = find(*fields, "max_keys")) {
      if (const auto n = whole_number(*max_keys, 1, kMaxStoreKeys)) {
        config_.store.max_keys = static_cast<std::size_t>(*n);
      }
    }
    if (const Field* redis = find(*fields, "redis")) {
      // Redis settings under a memory store would be ignored, and limits meant to be shared by
      // several instances would silently count per instance.
      if (type_known && config_.store.type != StoreType::redis) {
        error(redis->key_mark,
              "'redis' settings need 'type: redis' in 'store' (the store is "
              "the in-process memory store otherwise)");
      } else {
        load_redis(*redis);
      }
    }
  }

  void load_redis(const Field& f) {
    const auto fields =
        map_of(f, "e.g. { url: \"redis://127.0.0.1:6379/0\", timeout: 50ms, connections: 1 }");
    if (!fields) return;
    check_keys(*fields, kRedisKeys, "in 'store.redis'");
    RedisSettings& redis = config_.store.redis;
    if (const Field* url = find(*fields, "url")) {
      if (const auto text = scalar(*url, "a URL such as redis://127.0.0.1:6379/0")) {
        // Checked here so `sluice check` catches it; the password may still come from
        // SLUICE_REDIS_PASSWORD at start-up.
        redis::Settings parsed;
        const std::string why = redis::parse_url(*text, parsed);
        if (why.empty()) {
          redis.url = *text;
        } else {
          error(url->value_mark, why);
        }
      }
    }
    if (const Field* timeout = find(*fields, "timeout")) {
      if (const auto d = duration(*timeout, kMinTimeout, kMaxRedisTimeout)) {
        redis.timeout = std::chrono::duration_cast<Milliseconds>(*d);
      }
    }
    if (const Field* connections = find(*fields, "connections")) {
      if (const auto n = whole_number(*connections, 1, kMaxRedisConnections, " per thread")) {
        redis.connections = static_cast<unsigned>(*n);
      }
    }
    if (const Field* cache = find(*fields, "refusal_cache")) {
      if (cache->value.IsScalar() &&
          (cache->value.Scalar() == "off" || cache->value.Scalar() == "0")) {
        redis.refusal_cache = Milliseconds{0};
      } else if (const auto d = duration(*cache, 1ms, kMaxRefusalCache, " (or off)")) {
        redis.refusal_cache = std::chrono::duration_cast<Milliseconds>(*d);
      }
    }
    if (const Field* salt = find(*fields, "key_salt")) {
      if (salt->value.IsNull()) return;  // left empty: the default salt
      if (const auto text = scalar(*salt, "a string")) redis.key_salt = *text;
    }
  }

  void load_on_store_error(const Field& f, Route& route) {
    const auto text = scalar(f, "one of allow, deny, local");
    if (!text) return;
    for (std::size_t i = 0; i < std::size(kStoreErrorModes); ++i) {
      if (*text == kStoreErrorModes[i]) {
        route.on_store_error = static_cast<OnStoreError>(i);
        return;
      }
    }
    error(f.value_mark, "'on_store_error' must be one of " + join(kStoreErrorModes, ", ") +
                            ", found " + quoted(*text) + did_you_mean(*text, kStoreErrorModes));
  }

  // --- upstreams and identities -------------------------------------------------------------

  // False when the section is unusable, so routes do not report every upstream as missing.
  bool load_upstreams(const Field& f) {
    const auto entries = map_of(f, "upstream names, each with its servers", "upstream");
    if (!entries) return false;
    for (const Field& entry : *entries) {
      Upstream upstream;
      upstream.name = entry.key;
      upstream.mark = entry.key_mark;
      if (!is_plain_name(entry.key)) {
        error(entry.key_mark, bad_name_message("upstream", entry.key));
      }
      load_upstream(entry, upstream);
      // Kept even when broken, so routes naming it do not also report it as missing.
      upstream_index_.emplace(upstream.name, config_.upstreams.size());
      config_.upstreams.push_back(std::move(upstream));
    }
    return true;
  }

  static std::string bad_name_message(std::string_view what, std::string_view name) {
    return std::string(what) + " name " + quoted(name) +
           " must be 1 to 64 letters, digits, '-', '_' or '.'";
  }

  void load_upstream(const Field& entry, Upstream& upstream) {
    const std::string owner = "upstream " + quoted(upstream.name);
    const auto fields =
        map_of(entry, "e.g. { servers: [\"127.0.0.1:3000\"], connect_timeout: 2s, timeout: 30s }");
    if (!fields) return;
    check_keys(*fields, kUpstreamKeys, "in " + owner);
    if (const Field* servers = find(*fields, "servers")) {
      if (is_list(*servers, "[\"127.0.0.1:3000\"]")) {
        if (servers->value.size() == 0) {
          error(servers->value_mark, owner + " needs at least one server in 'servers'");
        }
        for (const auto& item : servers->value) {
          const auto text = scalar_item(item, "servers", "a \"host:port\" text");
          if (!text) continue;
          std::string why;
          if (auto server = parse_host_port(*text, /*names_allowed=*/true, why)) {
            upstream.servers.push_back(std::move(*server));
          } else {
            error(mark_of(item), "bad server " + quoted(*text) + " in " + owner + ": " + why);
          }
        }
      }
    } else {
      missing(*fields, kUpstreamKeys, entry.key_mark, owner, "servers", "a list of \"host:port\"");
    }
    if (const Field* t = find(*fields, "connect_timeout")) {
      if (const auto d = duration(*t, kMinTimeout, kMaxTimeout)) {
        upstream.connect_timeout = std::chrono::duration_cast<Milliseconds>(*d);
      }
    }
    if (const Field* t = find(*fields, "timeout")) {
      if (const auto d = duration(*t, kMinTimeout, kMaxTimeout)) {
        upstream.timeout = std::chrono::duration_cast<Milliseconds>(*d);
      }
    }
    if (const Field* t = find(*fields, "idle_timeout")) {
      if (const auto d = duration(*t, kMinTimeout, kMaxTimeout)) {
        upstream.idle_timeout = std::chrono::duration_cast<Milliseconds>(*d);
      }
    }
  }

  bool load_identities(const Field& f) {
    const auto entries =
        map_of(f, "identity names, each with the header that carries it", "identity");
    if (!entries) return false;
    for (const Field& entry : *entries) {
      Identity identity;
      identity.name = entry.key;
      identity.mark = entry.key_mark;
      const std::string owner = "identity " + quoted(entry.key);
      if (!is_plain_name(entry.key)) {
        error(entry.key_mark, bad_name_message("identity", entry.key));
      } else if (std::find(std::begin(kBuiltinKeyParts), std::end(kBuiltinKeyParts), entry.key) !=
                 std::end(kBuiltinKeyParts)) {
        error(entry.key_mark, "identity name " + quoted(entry.key) +
                                  " is taken by a built-in key part (" +
                                  join(kBuiltinKeyParts, ", ") + ")");
      }
      if (const auto fields = map_of(entry, "e.g. { header: X-API-Key }")) {
        check_keys(*fields, kIdentityKeys, "in " + owner);
        if (const Field* header = find(*fields, "header")) {
          if (const auto text = scalar(*header, "a header name such as X-API-Key")) {
            if (is_token(*text)) {
              identity.header = *text;
            } else {
              error(header->value_mark,
                    "bad header name " + quoted(*text) + " in " + owner +
                        " (letters, digits and !#$%&'*+-.^_`|~ only, e.g. X-API-Key)");
            }
          }
        } else {
          missing(*fields, kIdentityKeys, entry.key_mark, owner, "header", "e.g. X-API-Key");
        }
      }
      identity_index_.emplace(identity.name, config_.identities.size());
      config_.identities.push_back(std::move(identity));
    }
    return true;
  }

  // --- routes -------------------------------------------------------------------------------

  void load_routes(const Field& f) {
    if (!is_list(f, "- name: login ...")) return;
    if (f.value.size() == 0) {
      error(f.value_mark, "'routes' is empty: every request would be answered 404");
      return;
    }
    std::map<std::string, Mark, std::less<>> route_names;
    for (const auto& item : f.value) {
      if (!item.IsMap()) {
        error(item.IsNull() ? f.value_mark : mark_of(item),
              "each route must be a map with name, match, upstream and limits, found " +
                  describe(item));
        continue;
      }
      Route route;
      route.mark = mark_of(item);
      route.max_body = config_.client.max_body;
      const Fields fields = read_map(item);

      std::string owner = "a route";
      if (const Field* name = find(fields, "name")) {
        if (const auto text = scalar(*name, "a name")) {
          route.name = *text;
          owner = "route " + quoted(route.name);
          if (!is_plain_name(route.name)) {
            error(name->value_mark, bad_name_message("route", route.name));
          } else if (const auto [it, inserted] = route_names.emplace(route.name, name->value_mark);
                     !inserted) {
            error(name->value_mark, "duplicate route name " + quoted(route.name) + " (first at " +
                                        at_line(it->second) + ")");
          }
        }
      } else {
        missing(fields, kRouteKeys, route.mark, "a route", "name", "e.g. name: login");
      }
      check_keys(fields, kRouteKeys, "in " + owner);

      if (const Field* match = find(fields, "match")) {
        load_match(*match, owner, route);
      } else {
        missing(fields, kRouteKeys, route.mark, owner, "match", "e.g. match: { path: /api/* }");
      }
      if (const Field* upstream = find(fields, "upstream")) {
        load_route_upstream(*upstream, owner, route);
      } else {
        missing(fields, kRouteKeys, route.mark, owner, "upstream",
                "the name of one of 'upstreams'");
      }
      if (const Field* limits = find(fields, "limits")) load_limits(*limits, owner, route);
      if (const Field* mode = find(fields, "on_store_error")) load_on_store_error(*mode, route);
      if (const Field* max_body = find(fields, "max_body")) {
        if (const auto value =
                size(*max_body, 1, kUnlimitedBytes, "", /*unlimited_allowed=*/true)) {
          route.max_body = *value;
        }
      }
      collect_key_headers(route);
      config_.routes.push_back(std::move(route));
    }
  }

  static void collect_key_headers(Route& route) {
    for (const Limit& limit : route.limits) {
      for (const KeyPart& part : limit.key) {
        for (const KeySource& source : part.alternatives) {
          if (source.kind != KeySource::Kind::identity && source.kind != KeySource::Kind::header) {
            continue;
          }
          const std::string lower = to_lower(source.header);
          const bool known =
              std::any_of(route.key_headers.begin(), route.key_headers.end(),
                          [&](const std::string& name) { return to_lower(name) == lower; });
          if (!known) route.key_headers.push_back(source.header);
        }
      }
    }
  }

  void load_match(const Field& f, const std::string& owner, Route& route) {
    const auto fields = map_of(f, "e.g. { path: /api/login, methods: [POST] }");
    if (!fields) return;
    check_keys(*fields, kMatchKeys, "in 'match' of " + owner);
    route.path.case_sensitive = config_.case_sensitive_paths;
    if (const Field* case_sensitive = find(*fields, "case_sensitive")) {
      if (const auto value = boolean(*case_sensitive)) route.path.case_sensitive = *value;
    }
    if (const Field* path = find(*fields, "path")) {
      if (const auto text = scalar(*path, "a path such as /api/*")) {
        std::string why;
        if (auto pattern = parse_path_pattern(*text, why)) {
          const bool case_sensitive = route.path.case_sensitive;
          route.path = std::move(*pattern);
          route.path.case_sensitive = case_sensitive;
        } else {
          error(path->value_mark, "bad path pattern " + quoted(*text) + ": " + why);
        }
      }
    } else {
      missing(*fields, kMatchKeys, f.key_mark, "'match' of " + owner, "path",
              "e.g. /api/login, /api/*, /users/:id");
    }
    if (const Field* methods = find(*fields, "methods")) {
      if (!is_list(*methods, "[GET, POST]")) return;
      if (methods->value.size() == 0) {
        error(methods->value_mark, "'methods' is empty: leave it out to match every method");
      }
      for (const auto& item : methods->value) {
        const auto text = scalar_item(item, "methods", "a method such as GET");
        if (!text) continue;
        const std::string upper = to_upper(*text);
        if (std::find(std::begin(kMethods), std::end(kMethods), upper) == std::end(kMethods)) {
          error(mark_of(item), "unknown method " + quoted(*text) + "; expected one of " +
                                   join(kMethods, ", ") + did_you_mean(upper, kMethods));
        } else if (std::find(route.methods.begin(), route.methods.end(), upper) ==
                   route.methods.end()) {
          route.methods.push_back(upper);
        }
      }
    }
  }

  void load_route_upstream(const Field& f, const std::string& owner, Route& route) {
    const auto name = scalar(f, "the name of an upstream");
    if (!name) return;
    if (const auto it = upstream_index_.find(*name); it != upstream_index_.end()) {
      route.upstream = it->second;
      return;
    }
    if (!upstreams_known_) return;  // already reported: the whole section is unusable
    std::vector<std::string_view> names;
    for (const auto& u : config_.upstreams)
      names.push_back(u.name);
    std::string hint = did_you_mean(*name, names);
    if (hint.empty()) {
      hint = names.empty() ? " (none are defined)" : "; defined upstreams: " + join(names, ", ");
    }
    error(f.value_mark,
          owner + " names upstream " + quoted(*name) + ", which is not defined" + hint);
  }

  void load_limits(const Field& f, const std::string& owner, Route& route) {
    if (f.value.IsNull()) return;  // "limits:" left empty: proxied without limits
    if (!is_list(f, "- { name: per-ip, key: [ip], algorithm: gcra, limit: 10, window: 1s }")) {
      return;
    }
    std::map<std::string, Mark, std::less<>> names_in_route;
    for (const auto& item : f.value) {
      if (!item.IsMap()) {
        error(item.IsNull() ? f.value_mark : mark_of(item),
              "each limit must be a map with name, key, algorithm, limit and window, found " +
                  describe(item));
        continue;
      }
      auto limit = load_limit(item, owner);
      if (!limit) continue;
      if (const auto [it, inserted] = names_in_route.emplace(limit->name, limit->mark); !inserted) {
        error(limit->mark, "limit " + quoted(limit->name) + " appears twice in " + owner +
                               " (first at " + at_line(it->second) + ")");
        continue;
      }
      route.limits.push_back(std::move(*limit));
    }
  }

  // A limit, or nothing when it has errors (all of them reported).
  std::optional<Limit> load_limit(const YAML::Node& node, const std::string& route_owner) {
    const std::size_t errors_before = errors_.size();
    Limit limit;
    limit.mark = mark_of(node);
    const Fields fields = read_map(node);

    std::string owner = "a limit in " + route_owner;
    Mark name_mark = limit.mark;
    if (const Field* name = find(fields, "name")) {
      if (const auto text = scalar(*name, "a name")) {
        limit.name = *text;
        owner = "limit " + quoted(limit.name);
        name_mark = name->value_mark;
        if (!is_plain_name(limit.name)) {
          error(name->value_mark, bad_name_message("limit", limit.name));
        }
      }
    } else {
      missing(fields, kLimitKeys, limit.mark, owner, "name", "e.g. name: login-per-ip");
    }
    check_keys(fields, kLimitKeys, "in " + owner);

    if (const Field* key = find(fields, "key")) {
      load_key(*key, owner, limit);
    } else {
      missing(fields, kLimitKeys, limit.mark, owner, "key",
              "a list of parts such as [ip] or [\"user|ip\"]");
    }

    bool algorithm_known = false;
    if (const Field* algorithm = find(fields, "algorithm")) {
      if (const auto text = scalar(*algorithm, "one of " + join(kAlgorithms, ", "))) {
        if (const auto parsed = limit::parse_algorithm(*text)) {
          limit.algorithm = *parsed;
          algorithm_known = true;
        } else {
          error(algorithm->value_mark, "unknown algorithm " + quoted(*text) + "; expected one of " +
                                           join(kAlgorithms, ", ") +
                                           did_you_mean(*text, kAlgorithms));
        }
      }
    } else {
      // Required: each algorithm admits bursts differently, and a silent default would surprise.
      missing(fields, kLimitKeys, limit.mark, owner, "algorithm",
              "one of " + join(kAlgorithms, ", "));
    }

    const std::string precision = " (larger values would lose precision in the algorithms)";
    if (const Field* n = find(fields, "limit")) {
      if (const auto value = whole_number(*n, 1, kMaxLimit, precision)) {
        limit.quota.limit = *value;
      }
    } else {
      missing(fields, kLimitKeys, limit.mark, owner, "limit",
              "how many requests per window, e.g. limit: 100");
    }
    if (const Field* window = find(fields, "window")) {
      if (const auto value = duration(*window, kMinWindow, kMaxWindow, precision)) {
        limit.quota.window = value->count();
      }
    } else {
      missing(fields, kLimitKeys, limit.mark, owner, "window", "a duration such as 1m");
    }

    limit.quota.burst = limit.quota.limit;
    if (const Field* burst = find(fields, "burst")) {
      const bool bucket = limit.algorithm == limit::Algorithm::token_bucket ||
                          limit.algorithm == limit::Algorithm::gcra;
      if (algorithm_known && !bucket) {
        error(burst->key_mark, "'burst' only applies to token_bucket and gcra; " +
                                   std::string(limit::to_string(limit.algorithm)) +
                                   " admits exactly 'limit' per window");
      } else if (const auto value = whole_number(*burst, 1, kMaxLimit, precision)) {
        limit.quota.burst = *value;
      }
    }

    if (errors_.size() != errors_before) return std::nullopt;
    const std::string canonical = canonical_text(limit);
    limit.identity_hash = limit::siphash64(limit::DigestKey{}, canonical);
    check_shared_definition(limit, canonical, route_owner, name_mark);
    return limit;
  }

  void load_key(const Field& f, const std::string& owner, Limit& limit) {
    if (!is_list(f, "[ip] or [\"user|ip\", method]")) return;
    if (f.value.size() == 0) {
      error(f.value_mark, quoted("key") + " of " + owner +
                              " is empty; use [route] for one counter shared by every caller");
      return;
    }
    for (const auto& item : f.value) {
      const auto text = scalar_item(item, "key", "a key part such as ip or \"user|ip\"");
      if (!text) continue;
      KeyPart part;
      const Mark item_mark = mark_of(item);
      // Alternatives are reported at their own column when the part sits on one line.
      int offset = text_offset(item);
      std::string_view rest = *text;
      bool part_ok = true;
      while (true) {
        const auto bar = rest.find('|');
        const std::string_view raw = rest.substr(0, bar);
        const auto first = raw.find_first_not_of(" \t");
        const int leading = first == std::string_view::npos ? 0 : static_cast<int>(first);
        const Mark at{item_mark.line, item_mark.column + offset + leading};
        if (auto source = key_source(trim(raw), at, *text)) {
          part.alternatives.push_back(std::move(*source));
        } else {
          part_ok = false;
        }
        if (bar == std::string_view::npos) break;
        offset += static_cast<int>(bar) + 1;
        rest.remove_prefix(bar + 1);
      }
      if (part_ok) limit.key.push_back(std::move(part));
    }
  }

  std::optional<KeySource> key_source(std::string_view text, Mark at, std::string_view whole) {
    KeySource source;
    source.text = std::string(text);
    if (text.empty()) {
      error(at, "empty alternative in key part " + quoted(whole));
      return std::nullopt;
    }
    if (text == "ip") {
      source.kind = KeySource::Kind::ip;
      source.ipv6_prefix = config_.ipv6_prefix;
    } else if (text == "method") {
      source.kind = KeySource::Kind::method;
    } else if (text == "route") {
      source.kind = KeySource::Kind::route;
    } else if (text == "path") {
      source.kind = KeySource::Kind::path;
    } else if (text.starts_with("header:")) {
      const std::string_view name = trim(text.substr(7));
      if (!is_token(name)) {
        error(at, name.empty()
                      ? "key part 'header:' needs a header name, e.g. header:X-Tenant"
                      : "bad header name " + quoted(name) + " in key part " + quoted(text));
        return std::nullopt;
      }
      source.kind = KeySource::Kind::header;
      source.header = std::string(name);
    } else if (const auto it = identity_index_.find(text); it != identity_index_.end()) {
      source.kind = KeySource::Kind::identity;
      source.identity = it->second;
      source.header = config_.identities[it->second].header;
    } else {
      std::vector<std::string_view> choices = {"ip", "method", "route", "path"};
      for (const auto& identity : config_.identities)
        choices.push_back(identity.name);
      std::string hint = did_you_mean(text, choices);
      if (hint.empty() && !identities_known_ && text.find(':') == std::string_view::npos) {
        // The identities section failed to load; this is probably one of them.
        return std::nullopt;
      }
      if (hint.empty()) hint = "; expected " + join(choices, ", ") + " or header:NAME";
      error(at, "unknown key part " + quoted(text) + hint);
      return std::nullopt;
    }
    return source;
  }

  // A stable text of everything that decides what a limit counts. Its hash names the limit's
  // counters, so editing any of these starts fresh counters and leaving them alone keeps them.
  std::string canonical_text(const Limit& limit) const {
    std::string text =
        "limit/1\n" + limit.name + "\n" + std::string(limit::to_string(limit.algorithm)) + "\n" +
        std::to_string(limit.quota.limit) + "\n" + std::to_string(limit.quota.window) + "us\n" +
        std::to_string(limit.quota.burst) + "\n";
    for (const KeyPart& part : limit.key) {
      for (std::size_t i = 0; i < part.alternatives.size(); ++i) {
        const KeySource& s = part.alternatives[i];
        if (i > 0) text += '|';
        switch (s.kind) {
          case KeySource::Kind::header:
            text += "header:" + to_lower(s.header);
            break;
          case KeySource::Kind::identity:
            text += "identity:" + config_.identities[s.identity].name + "=" + to_lower(s.header);
            break;
          default:
            text += s.text;
        }
      }
      text += '\n';
    }
    return text;
  }

  // The same limit name in several routes is one limit with one counter per caller (e.g. a
  // per-user budget across the whole API); that only makes sense if every route defines it alike.
  void check_shared_definition(const Limit& limit, const std::string& canonical,
                               const std::string& route_owner, Mark name_mark) {
    const auto [it, inserted] =
        shared_limits_.emplace(limit.name, SharedLimit{canonical, route_owner, name_mark});
    if (inserted || it->second.canonical == canonical) return;
    error(name_mark, "limit " + quoted(limit.name) + " in " + route_owner +
                         " differs from its definition in " + it->second.route + " at " +
                         at_line(it->second.mark) +
                         "; routes sharing a limit name share its counters, so the definitions "
                         "must be identical (or use another name)");
  }

  std::string source_;
  Config config_;
  std::vector<Error> errors_;
  std::map<std::string, std::size_t, std::less<>> upstream_index_;
  std::map<std::string, std::size_t, std::less<>> identity_index_;
  std::map<std::string, SharedLimit, std::less<>> shared_limits_;
  bool upstreams_known_ = false;
  bool identities_known_ = true;  // absent is fine: no identities
};

}  // namespace

LoadResult load_string(std::string_view yaml, const std::string& source) {
  return Loader(source).load(yaml);
}

LoadResult load_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  std::string text;
  int read_errno = 0;
  if (file == nullptr) {
    read_errno = errno;
  } else {
    char buffer[8192];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0 && text.size() <= kMaxFileBytes)
      text.append(buffer, n);
    if (std::ferror(file)) read_errno = errno != 0 ? errno : EIO;
    std::fclose(file);
  }
  if (read_errno == 0 && text.size() > kMaxFileBytes) {
    LoadResult result;
    result.errors.push_back(Error{path, 0, 0, "cannot read: larger than 16 MiB, not a config"});
    return result;
  }
  if (read_errno != 0) {
    LoadResult result;
    result.errors.push_back(
        Error{path, 0, 0, std::string("cannot read: ") + std::strerror(read_errno)});
    return result;
  }
  return load_string(text, path);
}

}  // namespace sluice::config
