// Runs the sluice command-line program under test, synchronously (RunCli)
// or in the background (CliProcess) so that a test can kill it mid-load.
//
// The binary is the one the build made: the SLUICE_CLI_PATH compile
// definition of this library, unless the SLUICE_TEST_CLI environment
// variable names another (e.g. an installed sluice). The harness does not
// build the CLI: a test target that runs it needs
// add_dependencies(<test> sluice) so it never runs a stale binary.
//
// Thread-safety: as for Subprocess; RunCli may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness/subprocess.h"
#include "sluice/status.h"

namespace sluice::testing {

/// stdin_data / stdin_file / env / timeout_ms (default 120 s) / cwd.
using CliOptions = SubprocessOptions;
/// exit_code / term_signal / out / err / timed_out.
using CliResult = SubprocessResult;

/// The sluice binary the tests run; empty if none was configured.
std::string CliPath();

/// Runs `sluice args...` to completion. If it cannot be started, exit_code
/// is -1, term_signal 0, and err says why.
CliResult RunCli(const std::vector<std::string>& args, const CliOptions& options = {});

/// A sluice process running in the background: pid(), Kill(sig), Wait(),
/// WaitForOutput() and the *SoFar() accessors come from Subprocess.
class CliProcess : public Subprocess {
 public:
  static Result<std::unique_ptr<CliProcess>> Start(const std::vector<std::string>& args,
                                                   const CliOptions& options = {});

 private:
  CliProcess() = default;
};

}  // namespace sluice::testing
