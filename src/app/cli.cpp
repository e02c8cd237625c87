#include <cstdio>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include <sluice/app/cli.hpp>
#include <sluice/app/server.hpp>
#include <sluice/config/loader.hpp>
#include <sluice/limit/clock.hpp>

namespace sluice::app {
namespace {

constexpr std::string_view kUsage = R"(sluice — a rate-limiting HTTP reverse proxy

Usage:
  sluice --config FILE [--log-level LEVEL]   run with the policies in FILE
  sluice check FILE                          validate FILE and print a summary of its routes and limits
  sluice --version                           print the version
  sluice --help                              print this help

LEVEL is one of trace, debug, info (default), warn, error, off.
Exit codes: 0 success, 1 invalid configuration or start-up failure, 2 usage error.
)";

int usage_error(std::string_view message) {
  std::fprintf(stderr, "sluice: %.*s\n\n%.*s", static_cast<int>(message.size()), message.data(),
               static_cast<int>(kUsage.size()), kUsage.data());
  return 2;
}

// Prints every problem as file:line:column: message; returns whether the config is usable.
bool report(const config::LoadResult& result) {
  for (const auto& error : result.errors)
    std::fprintf(stderr, "%s\n", error.to_string().c_str());
  for (const auto& warning : result.warnings)
    std::fprintf(stderr, "%s (warning)\n", warning.to_string().c_str());
  return result.ok();
}

int check(const std::string& path) {
  const auto result = config::load_file(path);
  if (!report(result)) {
    std::fprintf(stderr, "%s: %zu problem%s found\n", path.c_str(), result.errors.size(),
                 result.errors.size() == 1 ? "" : "s");
    return 1;
  }
  std::fputs(config::summarize(*result.config).c_str(), stdout);
  return 0;
}

int serve(const std::string& path, std::string_view level) {
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  const auto parsed_level = spdlog::level::from_str(std::string(level));
  if (parsed_level == spdlog::level::off && level != "off") {
    return usage_error("unknown log level '" + std::string(level) + "'");
  }
  spdlog::set_level(parsed_level);
  const auto result = config::load_file(path);
  if (!report(result)) return 1;
  limit::SystemClock clock;
  Server server(result.config, clock);
  return server.run();
}

}  // namespace

int run_cli(int argc, char** argv) {
  std::string config_path;
  std::string_view level = "info";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view flag) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    if (arg == "--version" || arg == "-V") {
      std::printf("sluice %s\n", SLUICE_VERSION);
      return 0;
    }
    if (arg == "check") {
      if (i + 2 != argc) return usage_error("check takes exactly one FILE");
      return check(argv[i + 1]);
    }
    if (arg == "--config" || arg == "-c") {
      const char* v = value(arg);
      if (v == nullptr) return usage_error("--config needs a FILE");
      config_path = v;
    } else if (arg.starts_with("--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--log-level") {
      const char* v = value(arg);
      if (v == nullptr) return usage_error("--log-level needs a LEVEL");
      level = v;
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (config_path.empty()) return usage_error("missing --config FILE");
  return serve(config_path, level);
}

}  // namespace sluice::app
