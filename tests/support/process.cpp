#include "support/process.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

extern char** environ;

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(10);

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string last_lines(const std::string& text, std::size_t lines) {
  std::size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;  // a trailing newline does not start a line
  std::size_t start = end;
  std::size_t seen = 0;
  while (start > 0) {
    if (text[start - 1] == '\n' && ++seen == lines) break;
    --start;
  }
  return text.substr(start, end - start);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

std::string binary_path(const char* env_name, const char* built_in) {
  if (const char* from_env = std::getenv(env_name); from_env && *from_env) return from_env;
  return built_in;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/sluice-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  if (std::getenv("SLUICE_KEEP_TEST_DIRS") != nullptr) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// ---------------------------------------------------------------------------------------------

Process Process::spawn(const std::vector<std::string>& argv, const std::filesystem::path& log_dir,
                       std::string_view name, const std::vector<EnvVar>& env) {
  if (argv.empty()) throw std::invalid_argument("Process::spawn: empty argv");
  Process process;
  process.name_ = name;
  process.stdout_path_ = log_dir / (std::string(name) + ".stdout");
  process.stderr_path_ = log_dir / (std::string(name) + ".stderr");

  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<char*> child_argv;
  for (const auto& arg : argv)
    child_argv.push_back(const_cast<char*>(arg.c_str()));
  child_argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view current = *entry;
    bool overridden = false;
    for (const auto& var : env) {
      overridden |= current.starts_with(var.name + "=");
    }
    if (!overridden) env_strings.emplace_back(current);
  }
  for (const auto& var : env)
    env_strings.push_back(var.name + "=" + var.value);
  std::vector<char*> child_env;
  for (auto& entry : env_strings)
    child_env.push_back(entry.data());
  child_env.push_back(nullptr);

  int out_fd = ::open(process.stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) throw_errno("open " + process.stdout_path_.string());
  int err_fd = ::open(process.stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err_fd < 0) {
    ::close(out_fd);
    throw_errno("open " + process.stderr_path_.string());
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // The child reports a failed exec through this pipe; a successful exec closes it silently.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // If the test process dies (crash, ctest timeout), take the child with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execve(child_argv[0], child_argv.data(), child_env.data());
    int error = errno;
    [[maybe_unused]] auto written = ::write(exec_pipe[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(exec_pipe[1]);
  ::close(out_fd);
  ::close(err_fd);
  if (null_fd >= 0) ::close(null_fd);
  process.pid_ = pid;
  process.reaped_ = false;

  int exec_error = 0;
  ssize_t got = ::read(exec_pipe[0], &exec_error, sizeof exec_error);
  ::close(exec_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof exec_error)) {
    process.reap(true);
    throw std::system_error(exec_error, std::generic_category(), "cannot run " + argv[0]);
  }
  return process;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(std::exchange(other.reaped_, true)),
      exit_code_(other.exit_code_),
      name_(std::move(other.name_)),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (!reaped_) terminate();
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = std::exchange(other.reaped_, true);
    exit_code_ = other.exit_code_;
    name_ = std::move(other.name_);
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
  }
  return *this;
}

Process::~Process() {
  if (!reaped_) terminate();
}

void Process::reap(bool block) {
  if (reaped_) return;
  int status = 0;
  pid_t result;
  do {
    result = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result == 0) return;  // still running
  reaped_ = true;
  if (result < 0) {
    exit_code_ = -1;
  } else if (WIFEXITED(status)) {
    exit_code_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit_code_ = 128 + WTERMSIG(status);
  }
}

bool Process::is_running() {
  reap(false);
  return !reaped_;
}

std::optional<int> Process::exit_code() {
  reap(false);
  if (!reaped_) return std::nullopt;
  return exit_code_;
}

std::optional<int> Process::wait_for_exit(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    reap(false);
    if (reaped_) return exit_code_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
}

int Process::terminate(std::chrono::milliseconds grace) {
  reap(false);
  if (reaped_) return exit_code_;
  ::kill(pid_, SIGTERM);
  if (auto code = wait_for_exit(grace)) return *code;
  ::kill(pid_, SIGKILL);
  reap(true);
  return exit_code_;
}

std::string Process::stdout_text() const {
  return read_file(stdout_path_);
}

std::string Process::stderr_text() const {
  return read_file(stderr_path_);
}

std::string Process::log_tail(std::size_t lines) const {
  std::string out;
  out += "---- " + name_ + " (pid " + std::to_string(pid_) + ") stdout, last lines ----\n";
  out += last_lines(stdout_text(), lines);
  out += "\n---- " + name_ + " stderr, last lines ----\n";
  out += last_lines(stderr_text(), lines);
  out += "\n";
  return out;
}

std::optional<std::uint64_t> Process::peak_rss_kib() const {
  if (reaped_) return std::nullopt;
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) {
      return std::stoull(line.substr(6));  // "VmHWM:     4612 kB"
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

std::uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in address = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    throw_errno("bind 127.0.0.1:0");
  }
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout, Process* process) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    sockaddr_in address = loopback(port);
    bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (connected) return true;
    if (process != nullptr && !process->is_running()) return false;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string substitute(std::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find("${", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    std::size_t close = text.find('}', open);
    if (close == std::string_view::npos) throw std::invalid_argument("unterminated ${ in template");
    std::string name(text.substr(open + 2, close - open - 2));
    auto found = values.find(name);
    if (found == values.end()) throw std::invalid_argument("no value for ${" + name + "}");
    out.append(text.substr(pos, open - pos));
    out.append(found->second);
    pos = close + 1;
  }
  return out;
}

std::string replace_once(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  if (at == std::string::npos)
    throw std::invalid_argument("no '" + std::string(from) + "' to replace");
  text.replace(at, from.size(), to);
  return text;
}

void write_file(const std::filesystem::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

namespace {

// The one piece of shared state in the harness: the runner's listener counts failed assertions,
// and a ProxyStack compares the count at its start and end.
std::atomic<std::uint64_t>& failed_assertions() {
  static std::atomic<std::uint64_t> count{0};
  return count;
}

}  // namespace

void note_failed_assertion() noexcept {
  failed_assertions().fetch_add(1);
}

std::string config_head(std::string_view headers, std::string_view api_timeout) {
  return substitute(R"(listen: 127.0.0.1:${PORT}
threads: 1
trusted_proxies: []
headers: ${HEADERS}
store: { type: memory, max_keys: 100000 }
upstreams:
  api: { servers: ["127.0.0.1:${UPSTREAM_PORT}"], connect_timeout: 2s, timeout: ${TIMEOUT} }
)",
                    {{"HEADERS", std::string(headers)},
                     {"TIMEOUT", std::string(api_timeout)},
                     // left for ProxyStack to fill in
                     {"PORT", "${PORT}"},
                     {"UPSTREAM_PORT", "${UPSTREAM_PORT}"}});
}

// ---------------------------------------------------------------------------------------------

namespace {

// The upstream prints "ready <port>" once it listens on the port the kernel gave it, so the
// tests never race another process for the upstream's port.
std::uint16_t wait_for_ready_line(Process& upstream, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    std::string out = upstream.stdout_text();
    if (auto at = out.find("ready "); at != std::string::npos && out.find('\n', at) != out.npos) {
      return static_cast<std::uint16_t>(std::stoul(out.substr(at + 6)));
    }
    if (!upstream.is_running() || Clock::now() >= deadline) {
      throw std::runtime_error("the test upstream did not start\n" + upstream.log_tail());
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace

RunningUpstream start_test_upstream(const std::filesystem::path& log_dir) {
  auto process = Process::spawn(
      {binary_path("SLUICE_TEST_UPSTREAM_BINARY", SLUICE_TEST_UPSTREAM_BINARY), "--port", "0"},
      log_dir, "upstream");
  std::uint16_t port = wait_for_ready_line(process, std::chrono::seconds(10));
  return {std::move(process), port};
}

ProxyStack::ProxyStack(std::string_view yaml_template)
    : uncaught_at_start_(std::uncaught_exceptions()), failures_at_start_(failed_assertions()) {
  const std::string sluice_binary = binary_path("SLUICE_BINARY", SLUICE_BINARY);
  auto upstream = start_test_upstream(dir());
  upstream_.emplace(std::move(upstream.process));
  upstream_port_ = upstream.port;

  // sluice must be told its port up front, so another process may take that port between
  // free_loopback_port() and sluice's bind; if sluice exits at start, try a fresh port.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    port_ = free_loopback_port();
    do {
      closed_port_ = free_loopback_port();
    } while (closed_port_ == port_ || closed_port_ == upstream_port_);
    std::string yaml = substitute(yaml_template, {{"PORT", std::to_string(port_)},
                                                  {"UPSTREAM_PORT", std::to_string(upstream_port_)},
                                                  {"CLOSED_PORT", std::to_string(closed_port_)}});
    auto config_path = dir() / "sluice.yaml";
    write_file(config_path, yaml);
    sluice_.reset();
    sluice_.emplace(
        Process::spawn({sluice_binary, "--config", config_path.string()}, dir(), "sluice"));
    if (wait_for_port(port_, std::chrono::seconds(10), &*sluice_)) return;
    if (sluice_->is_running() || attempt == kAttempts) {
      throw std::runtime_error(
          "sluice did not start listening on 127.0.0.1:" + std::to_string(port_) + " (exit code " +
          (sluice_->exit_code() ? std::to_string(*sluice_->exit_code())
                                : std::string("none, still running")) +
          ")\nconfig:\n" + yaml + "\n" + sluice_->log_tail());
    }
  }
}

ProxyStack::~ProxyStack() {
  // A failed REQUIRE (or a harness error) throws through this destructor; a failed CHECK does
  // not, but was counted. Either way, show what the processes said.
  bool failing =
      std::uncaught_exceptions() > uncaught_at_start_ || failed_assertions() > failures_at_start_;
  if (failing) std::cerr << "\n==== the test failed; logs of its processes ====\n" << log_tail();
  if (sluice_) {
    bool was_running = sluice_->is_running();
    int code = sluice_->terminate();
    if (failing && !was_running)
      std::cerr << "sluice had already exited with code " << code << "\n";
  }
  if (upstream_) upstream_->terminate();
}

std::string ProxyStack::log_tail(std::size_t lines) const {
  std::string out;
  if (sluice_) out += sluice_->log_tail(lines);
  if (upstream_) out += upstream_->log_tail(lines);
  return out;
}

}  // namespace sluice::test
