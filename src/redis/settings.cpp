// parse_url, the reconnect backoff and the enum names: the parts of the client with no I/O.
#include <algorithm>
#include <charconv>
#include <limits>

#include <sluice/redis/client.hpp>

namespace sluice::redis {
namespace {

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return (a | 0x20) == (b | 0x20);  // prefixes here are letters and punctuation only
         });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int high = hex_value(in[i + 1]);
    int low = hex_value(in[i + 2]);
    if (high < 0 || low < 0) return false;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return true;
}

template <typename Int>
bool parse_number(std::string_view text, Int& value) {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string parse_url(std::string_view url, Settings& settings,
                      std::string_view fallback_password) {
  constexpr std::string_view scheme = "redis://";
  std::string_view rest = url;
  // Error messages quote the URL with everything before the '@' masked past "user:".
  std::string shown(url);
  if (const std::size_t start = url.find("://"), at = url.rfind('@');
      start != std::string_view::npos && at != std::string_view::npos && at > start) {
    std::string_view userinfo = url.substr(start + 3, at - start - 3);
    const std::size_t colon = userinfo.find(':');
    const std::size_t keep = colon == std::string_view::npos ? 0 : colon + 1;
    shown = std::string(url.substr(0, start + 3 + keep)) + "***" + std::string(url.substr(at));
  }
  auto fail = [&](std::string_view what) {
    return "redis URL \"" + shown + "\": " + std::string(what);
  };

  if (starts_with_ignoring_case(rest, "rediss://")) {
    return fail("TLS (rediss://) is not supported");
  }
  if (!starts_with_ignoring_case(rest, scheme)) {
    return fail("must start with redis:// (redis://[:password@]host[:port][/db])");
  }
  rest.remove_prefix(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail("query parameters and fragments are not supported");
  }

  std::string username;
  std::string password;
  bool has_password = false;
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const std::size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return fail("a username needs a password (redis://user:password@host)");
    }
    if (!percent_decode(userinfo.substr(0, colon), username) ||
        !percent_decode(userinfo.substr(colon + 1), password)) {
      return fail("bad %-escape in the username or password");
    }
    has_password = !password.empty();
    if (!has_password && !username.empty()) {
      return fail("a username needs a password (redis://user:password@host)");
    }
  }

  std::string_view host_port = rest.substr(0, rest.find('/'));
  std::string_view path =
      host_port.size() < rest.size() ? rest.substr(host_port.size() + 1) : std::string_view{};

  std::string_view host;
  std::string_view port_text;
  if (host_port.starts_with('[')) {
    const std::size_t close = host_port.find(']');
    if (close == std::string_view::npos) return fail("unclosed [ in an IPv6 host");
    host = host_port.substr(1, close - 1);
    std::string_view after = host_port.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return fail("expected :port after ]");
      port_text = after.substr(1);
      if (port_text.empty()) return fail("empty port");
    }
  } else {
    const std::size_t colon = host_port.find(':');
    host = host_port.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = host_port.substr(colon + 1);
      if (port_text.empty()) return fail("empty port");
    }
  }
  if (host.empty()) return fail("no host");

  std::uint16_t port = 6379;
  if (!port_text.empty()) {
    unsigned value = 0;
    if (!parse_number(port_text, value) || value == 0 || value > 65535) {
      return fail("port must be a number from 1 to 65535");
    }
    port = static_cast<std::uint16_t>(value);
  }

  int db = 0;
  if (!path.empty()) {
    if (!parse_number(path, db) || db < 0) return fail("db must be a number from 0 up");
  }

  settings.host = std::string(host);
  settings.port = port;
  settings.username = std::move(username);
  settings.password = has_password ? std::move(password) : std::string(fallback_password);
  settings.db = db;
  return {};
}

// ---------------------------------------------------------------------------------------------

Backoff::Backoff(Milliseconds min, Milliseconds max, std::uint64_t seed) noexcept
    : min_(std::max(min, Milliseconds(1))), max_(std::max(max, min_)), state_(seed) {}

std::uint64_t Backoff::random() noexcept {
  // splitmix64: tiny, fast and good enough for jitter.
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Milliseconds Backoff::next() noexcept {
  // min * 2^attempt, capped; the shift is bounded so it cannot overflow.
  const unsigned shift = std::min(attempt_, 30u);
  const auto uncapped = min_.count() * (std::int64_t{1} << shift);
  const std::int64_t delay = std::min<std::int64_t>(uncapped, max_.count());
  if (uncapped < max_.count()) ++attempt_;
  const std::int64_t low = delay / 2;
  const std::int64_t spread = delay - low + 1;  // [low, delay], both ends included
  return Milliseconds(low +
                      static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(spread)));
}

// ---------------------------------------------------------------------------------------------

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::none:
      return "none";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::disconnected:
      return "disconnected";
    case ErrorKind::server_error:
      return "server_error";
    case ErrorKind::protocol:
      return "protocol";
  }
  return "?";
}

std::string_view to_string(State state) noexcept {
  switch (state) {
    case State::connecting:
      return "connecting";
    case State::up:
      return "up";
    case State::down:
      return "down";
  }
  return "?";
}

}  // namespace sluice::redis
