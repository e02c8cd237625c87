#include "support/http_client.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/time.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

// Boost.JSON compiled into the test support code (header-only mode), once.
#include <boost/json/src.hpp>

namespace sluice::test {
namespace {

constexpr std::size_t kPieceSize = 64 * 1024;
constexpr std::size_t kPatternPeriod = 251;
constexpr std::size_t kMaxLine = 1024 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

// Bytes as readable text for error messages: CR and LF shown, the rest cut after `limit`.
std::string printable(std::string_view bytes, std::size_t limit = 2000) {
  std::string out;
  for (char c : bytes.substr(0, limit)) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n\n";
    } else if (std::isprint(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else {
      out += '.';
    }
  }
  if (bytes.size() > limit) out += "... (" + std::to_string(bytes.size()) + " bytes in all)";
  return out;
}

std::string pattern_buffer() {
  std::string pattern(kPieceSize + kPatternPeriod, '\0');
  for (std::size_t i = 0; i < pattern.size(); ++i)
    pattern[i] = static_cast<char>(i % kPatternPeriod);
  return pattern;
}

timeval to_timeval(std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  return tv;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::optional<std::string> Response::header(std::string_view name) const {
  for (const auto& field : headers) {
    if (iequals(field.name, name)) return field.value;
  }
  return std::nullopt;
}

std::size_t Response::header_count(std::string_view name) const {
  return static_cast<std::size_t>(
      std::count_if(headers.begin(), headers.end(),
                    [&](const Header& field) { return iequals(field.name, name); }));
}

std::optional<std::int64_t> Response::header_number(std::string_view name) const {
  auto value = header(name);
  if (!value) return std::nullopt;
  std::int64_t number = 0;
  auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), number);
  if (ec != std::errc{} || end != value->data() + value->size()) return std::nullopt;
  return number;
}

// ---------------------------------------------------------------------------------------------

// Where body bytes go: into Response::body, or counted and checked against the pattern.
struct HttpClient::BodySink {
  bool keep = true;
  std::uint64_t bytes = 0;
  bool pattern_ok = true;

  void take(Response& response, const char* data, std::size_t size) {
    if (keep) {
      response.body.append(data, size);
      response.raw.append(data, size);
    } else if (pattern_ok) {
      for (std::size_t i = 0; i < size; ++i) {
        if (static_cast<unsigned char>(data[i]) != (bytes + i) % kPatternPeriod) {
          pattern_ok = false;
          break;
        }
      }
    }
    bytes += size;
  }
};

int connect_loopback(std::uint16_t port, std::chrono::milliseconds timeout, bool receive_timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  timeval tv = to_timeval(timeout);
  if (receive_timeout) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  // Requests are often written in several small pieces; do not let Nagle hold them back.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(),
                            "connect to 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

HttpClient::HttpClient(std::uint16_t port, std::chrono::milliseconds timeout)
    : fd_(connect_loopback(port, timeout)) {}

HttpClient::~HttpClient() {
  if (fd_ >= 0) ::close(fd_);
}

HttpClient::HttpClient(HttpClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      pos_(std::exchange(other.pos_, 0)),
      eof_(other.eof_) {}

std::uint16_t HttpClient::local_port() const {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

namespace {

// Writes everything or reports why not (timeout, reset, peer closed).
std::error_code send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return {errno, std::generic_category()};
    }
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return {};
}

}  // namespace

void HttpClient::send(std::string_view bytes) {
  if (auto error = send_all(fd_, bytes)) throw std::system_error(error, "send");
}

bool HttpClient::fill() {
  if (eof_) return false;
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  } else if (pos_ > kPieceSize) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  std::size_t old_size = buffer_.size();
  buffer_.resize(old_size + kPieceSize);
  ssize_t got;
  do {
    got = ::recv(fd_, buffer_.data() + old_size, kPieceSize, 0);
  } while (got < 0 && errno == EINTR);
  if (got <= 0) {
    buffer_.resize(old_size);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      throw std::runtime_error("timed out waiting for the server");
    }
    if (got < 0 && errno != ECONNRESET) {
      throw std::system_error(errno, std::generic_category(), "recv");
    }
    eof_ = true;  // closed, or reset: either way nothing more will come
    return false;
  }
  buffer_.resize(old_size + static_cast<std::size_t>(got));
  return true;
}

std::string HttpClient::take_line(Response& so_far) {
  for (;;) {
    std::size_t end = buffer_.find("\r\n", pos_);
    if (end != std::string::npos) {
      std::string line = buffer_.substr(pos_, end - pos_);
      so_far.raw.append(buffer_, pos_, end + 2 - pos_);
      pos_ = end + 2;
      return line;
    }
    if (buffer_.size() - pos_ > kMaxLine) throw std::runtime_error("a line longer than 1 MiB");
    if (!fill()) throw std::runtime_error("the connection closed in the middle of a response head");
  }
}

Response HttpClient::read_response(bool to_head_request) {
  BodySink sink;
  return read_response(to_head_request, sink);
}

Response HttpClient::read_response(bool to_head_request, BodySink& sink) {
  Response response;
  try {
    for (;;) {
      response = Response{};
      std::string status_line = take_line(response);
      // "HTTP/1.1 429 Too Many Requests"
      if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ' ||
          std::from_chars(status_line.data() + 9, status_line.data() + 12, response.status).ptr !=
              status_line.data() + 12) {
        throw std::runtime_error("malformed status line");
      }
      response.status_line = std::move(status_line);
      for (;;) {
        std::string line = take_line(response);
        if (line.empty()) break;
        auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0) throw std::runtime_error("malformed header");
        response.headers.push_back(
            {line.substr(0, colon), std::string(trim(std::string_view(line).substr(colon + 1)))});
      }
      // Interim responses (100 Continue) precede the real one.
      if (response.status >= 100 && response.status < 200 && response.status != 101) continue;
      break;
    }

    auto take_body = [&](std::uint64_t size) {
      while (size > 0) {
        if (pos_ == buffer_.size() && !fill()) {
          throw std::runtime_error("the connection closed with " + std::to_string(size) +
                                   " body bytes still to come");
        }
        std::size_t piece =
            static_cast<std::size_t>(std::min<std::uint64_t>(size, buffer_.size() - pos_));
        sink.take(response, buffer_.data() + pos_, piece);
        pos_ += piece;
        size -= piece;
      }
    };

    int status = response.status;
    if (to_head_request || status < 200 || status == 204 || status == 304) return response;
    auto transfer_encoding = response.header("Transfer-Encoding");
    if (transfer_encoding && transfer_encoding->find("chunked") != std::string::npos) {
      for (;;) {
        std::string size_line = take_line(response);
        std::uint64_t size = 0;
        auto [end, ec] =
            std::from_chars(size_line.data(), size_line.data() + size_line.size(), size, 16);
        if (ec != std::errc{} || end == size_line.data()) {
          throw std::runtime_error("malformed chunk size line: " + size_line);
        }
        if (size == 0) {
          while (!take_line(response).empty()) {
          }  // trailers
          break;
        }
        take_body(size);
        if (!take_line(response).empty()) throw std::runtime_error("chunk not followed by CRLF");
      }
    } else if (response.header("Content-Length")) {
      auto length = response.header_number("Content-Length");
      if (!length || *length < 0) throw std::runtime_error("malformed Content-Length");
      take_body(static_cast<std::uint64_t>(*length));
    } else {
      // No length: the body runs until the server closes the connection.
      for (;;) {
        if (pos_ < buffer_.size()) {
          sink.take(response, buffer_.data() + pos_, buffer_.size() - pos_);
          pos_ = buffer_.size();
        }
        if (!fill()) break;
      }
      response.ended_by_close = true;
    }
    return response;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("reading a response: ") + e.what() +
                             "\nreceived so far:\n" + printable(response.raw));
  }
}

Response HttpClient::upload(std::string_view head, std::uint64_t size, Framing framing) {
  std::string head_bytes(head);
  if (!head_bytes.ends_with("\r\n")) head_bytes += "\r\n";
  head_bytes += framing == Framing::chunked ? std::string("Transfer-Encoding: chunked\r\n")
                                            : "Content-Length: " + std::to_string(size) + "\r\n";
  head_bytes += "\r\n";
  send(head_bytes);

  // An early answer (a 4xx before the body is read) makes the sends fail or stall until the
  // socket timeout; then the body is abandoned and the answer read.
  static const std::string pattern = pattern_buffer();
  std::string chunk;
  bool complete = true;
  for (std::uint64_t sent = 0; sent < size;) {
    std::size_t piece = static_cast<std::size_t>(std::min<std::uint64_t>(kPieceSize, size - sent));
    std::string_view data(pattern.data() + sent % kPatternPeriod, piece);
    std::error_code error;
    if (framing == Framing::chunked) {
      char size_line[32];
      auto [end, ec] = std::to_chars(size_line, size_line + sizeof size_line, piece, 16);
      chunk.assign(size_line, end);
      chunk += "\r\n";
      chunk += data;
      chunk += "\r\n";
      error = send_all(fd_, chunk);
    } else {
      error = send_all(fd_, data);
    }
    if (error) {
      complete = false;
      break;
    }
    sent += piece;
  }
  if (complete && framing == Framing::chunked) send_all(fd_, "0\r\n\r\n");
  return read_response();
}

Download HttpClient::download(std::string_view raw_request) {
  send(raw_request);
  BodySink sink;
  sink.keep = false;
  Download result;
  result.head = read_response(false, sink);
  result.body_bytes = sink.bytes;
  result.pattern_ok = sink.pattern_ok;
  return result;
}

bool HttpClient::peer_closed(std::chrono::milliseconds wait) {
  if (pos_ < buffer_.size()) return false;  // it sent bytes nobody has read yet
  if (eof_) return true;
  pollfd poll_fd{fd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&poll_fd, 1, static_cast<int>(wait.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return false;
  return !fill();
}

// ---------------------------------------------------------------------------------------------

std::string make_request(std::string_view method, std::string_view target,
                         const std::vector<Header>& headers, std::string_view body) {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool has_host = std::any_of(headers.begin(), headers.end(),
                              [](const Header& field) { return iequals(field.name, "Host"); });
  if (!has_host) out += "Host: 127.0.0.1\r\n";
  for (const auto& field : headers)
    out.append(field.name).append(": ").append(field.value) += "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out += body;
  return out;
}

Response fetch(std::uint16_t port, std::string_view raw_request) {
  HttpClient client(port);
  return client.request(raw_request);
}

StatusCounts send_concurrently(const std::vector<std::uint16_t>& ports, int connections,
                               int per_connection, std::string_view raw_request) {
  std::atomic<int> ok{0};
  std::atomic<int> limited{0};
  std::atomic<int> other{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < connections; ++c) {
    clients.emplace_back([&, c] {
      try {
        HttpClient client(ports[static_cast<std::size_t>(c) % ports.size()],
                          std::chrono::seconds(10));
        ready.fetch_add(1);
        while (ready.load() < connections)
          std::this_thread::yield();
        for (int i = 0; i < per_connection; ++i) {
          const int status = client.request(raw_request).status;
          (status == 200 ? ok : status == 429 ? limited : other).fetch_add(1);
        }
      } catch (const std::exception&) {
        other.fetch_add(per_connection);
      }
    });
  }
  for (auto& client : clients)
    client.join();
  return {ok.load(), limited.load(), other.load()};
}

boost::json::value parse_json(std::string_view text) {
  boost::json::error_code ec;
  auto value = boost::json::parse(text, ec);
  if (ec) throw std::runtime_error("not JSON (" + ec.message() + "): " + printable(text));
  return value;
}

std::string as_text(const boost::json::value& value) {
  if (value.is_string()) return std::string(value.get_string());
  return boost::json::serialize(value);
}

boost::json::object upstream_stats(std::uint16_t upstream_port) {
  auto response = fetch(upstream_port, make_request("GET", "/stats"));
  if (response.status != 200) throw std::runtime_error("upstream /stats: " + response.status_line);
  return parse_json(response.body).as_object();
}

std::size_t count_of(std::string_view text, std::string_view what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

std::size_t count_target(const boost::json::object& stats, std::string_view target) {
  const auto& targets = stats.at("targets").as_array();
  return static_cast<std::size_t>(std::count_if(targets.begin(), targets.end(), [&](const auto& t) {
    return t.is_string() && t.get_string() == target;
  }));
}

}  // namespace sluice::test
