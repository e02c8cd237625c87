#pragma once

namespace sluice::app {

// The command line: `sluice --config FILE`, `sluice check FILE`, `--version`, `--help`.
// Returns the process exit code: 0 ok, 1 invalid config or start-up failure, 2 usage error.
int run_cli(int argc, char** argv);

}  // namespace sluice::app
