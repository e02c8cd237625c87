#pragma once
// Child processes and loopback plumbing for the integration tests: start sluice and the test
// upstream on free ports, wait until they accept, stop them, and show their logs when a test fails.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace sluice::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
// SLUICE_KEEP_TEST_DIRS is set in the environment (to read the logs afterwards).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct EnvVar {
  std::string name;
  std::string value;
};

// A child process whose stdout and stderr go to files. It dies with the test process (parent
// death signal), and the destructor stops it: SIGTERM, then SIGKILL after a grace period.
class Process {
 public:
  // Runs argv[0] (a path) with argv; output goes to <log_dir>/<name>.stdout and .stderr.
  // `env` adds to (or overrides) the test's own environment. Throws when it cannot start.
  static Process spawn(const std::vector<std::string>& argv, const std::filesystem::path& log_dir,
                       std::string_view name, const std::vector<EnvVar>& env = {});

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  bool is_running();
  // The exit code once it has ended (128 + signal number when a signal ended it).
  std::optional<int> exit_code();
  // Waits up to `timeout` for it to end on its own; its exit code, or nullopt if still running.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
  // SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit code as exit_code() does.
  int terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));

  std::string stdout_text() const;
  std::string stderr_text() const;
  // The last `lines` lines of stdout and of stderr, labelled, for failure messages.
  std::string log_tail(std::size_t lines = 40) const;
  // Peak resident set size (VmHWM) in KiB while it runs; nullopt once it has ended.
  std::optional<std::uint64_t> peak_rss_kib() const;

 private:
  Process() = default;
  void reap(bool block);

  pid_t pid_ = -1;
  bool reaped_ = true;
  int exit_code_ = 0;
  std::string name_;
  std::filesystem::path stdout_path_;
  std::filesystem::path stderr_path_;
};

// A loopback port nothing listens on right now (bind 127.0.0.1:0, read it, close).
std::uint16_t free_loopback_port();

// Polls connect() to 127.0.0.1:port until it succeeds or `timeout` passes. Gives up early when
// `process` is given and has exited.
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout,
                   Process* process = nullptr);

// Replaces every ${NAME} in `text` with values.at(NAME); throws on a name with no value.
std::string substitute(std::string_view text, const std::map<std::string, std::string>& values);

// `text` with its first `from` replaced by `to`; throws when `from` is not there (a config
// template that changed under a test).
std::string replace_once(std::string text, std::string_view from, std::string_view to);

void write_file(const std::filesystem::path& path, std::string_view contents);

// Called by the test runner's listener (integration/main.cpp) for every failed assertion, so a
// ProxyStack can tell that its test failed, even by a CHECK that did not stop it.
void note_failed_assertion() noexcept;

// The part of a sluice config the tests share, up to `routes:` (which the caller appends):
// listen on ${PORT}, one thread, the memory store, the quota header `headers` style, and upstream
// `api` at ${UPSTREAM_PORT} with the given response `timeout`.
std::string config_head(std::string_view headers = "both", std::string_view api_timeout = "30s");

struct RunningUpstream {
  Process process;
  std::uint16_t port;
};

// Starts sluice_test_upstream on a port the kernel picks, and returns once it accepts.
RunningUpstream start_test_upstream(const std::filesystem::path& log_dir);

// sluice in front of a fresh test upstream, each on its own loopback port, for one test case.
// The YAML template may use ${PORT} (sluice's listen port), ${UPSTREAM_PORT} (the test upstream)
// and ${CLOSED_PORT} (a port nothing listens on). The constructor returns once both accept
// connections, or throws with sluice's log. When the test failed while it lived (an assertion
// failed, or an exception is passing through), the destructor prints both processes' log tails
// to stderr. The binaries are the ones
// CMake built, unless SLUICE_BINARY / SLUICE_TEST_UPSTREAM_BINARY name others in the environment.
class ProxyStack {
 public:
  explicit ProxyStack(std::string_view yaml_template);
  ~ProxyStack();
  ProxyStack(const ProxyStack&) = delete;
  ProxyStack& operator=(const ProxyStack&) = delete;

  std::uint16_t port() const { return port_; }
  std::uint16_t upstream_port() const { return upstream_port_; }
  std::uint16_t closed_port() const { return closed_port_; }
  Process& sluice() { return *sluice_; }
  Process& upstream() { return *upstream_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  // Both processes' recent output, for INFO() in assertions.
  std::string log_tail(std::size_t lines = 40) const;

 private:
  int uncaught_at_start_;
  std::uint64_t failures_at_start_;
  TempDir dir_;
  std::optional<Process> upstream_;
  std::optional<Process> sluice_;
  std::uint16_t port_ = 0;
  std::uint16_t upstream_port_ = 0;
  std::uint16_t closed_port_ = 0;
};

}  // namespace sluice::test
