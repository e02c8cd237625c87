#pragma once
#include <memory>

#include <sluice/config/config.hpp>
#include <sluice/limit/clock.hpp>

namespace sluice::app {

// Wires one process: an io_context and a thread per configured event loop, each with its own
// listener and upstream pool; one store shared by all; signals. Blocks in run() until SIGINT or
// SIGTERM, then returns the process exit code.
class Server {
 public:
  Server(std::shared_ptr<const config::Config> config, const limit::Clock& clock);
  ~Server();

  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::app
