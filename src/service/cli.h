// The sluice command line: run, validate, version.
#pragma once

namespace sluice::service {

/// Parses the command line, runs the command, returns the exit code.
int CliMain(int argc, char** argv);

}  // namespace sluice::service
