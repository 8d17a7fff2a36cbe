#include "harness/cli_runner.h"

#include <unistd.h>

#include <cstdlib>
#include <utility>

namespace sluice::testing {

std::string CliPath() {
  if (const char* path = std::getenv("SLUICE_TEST_CLI"); path != nullptr && *path != '\0') {
    return path;
  }
#ifdef SLUICE_CLI_PATH
  return SLUICE_CLI_PATH;
#else
  return "";
#endif
}

Result<std::unique_ptr<CliProcess>> CliProcess::Start(const std::vector<std::string>& args,
                                                      const CliOptions& options) {
  std::string path = CliPath();
  if (path.empty()) {
    return Status::NotFound(
        "no sluice binary: build the harness with SLUICE_CLI_PATH defined or set "
        "SLUICE_TEST_CLI");
  }
  // Checked here because posix_spawn's ENOENT would not say which path.
  if (access(path.c_str(), X_OK) != 0) {
    return Status::NotFound("sluice binary '" + path + "' is missing or not executable");
  }
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(path);
  argv.insert(argv.end(), args.begin(), args.end());
  std::unique_ptr<CliProcess> process(new CliProcess());
  SLUICE_RETURN_IF_ERROR(Launch(process.get(), argv, options));
  return process;
}

CliResult RunCli(const std::vector<std::string>& args, const CliOptions& options) {
  auto process = CliProcess::Start(args, options);
  if (!process.ok()) {
    CliResult result;
    result.err = process.status().ToString();
    return result;
  }
  return (*process)->Wait();
}

}  // namespace sluice::testing
