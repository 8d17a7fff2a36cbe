// Tests the process runner under RunCli/CliProcess, using /bin/sh as the
// child so that they do not depend on the sluice binary being built.
#include "harness/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "harness/cli_runner.h"
#include "harness/temp_dir.h"

namespace sluice::testing {
namespace {

using std::string;

SubprocessResult Sh(const string& script, const SubprocessOptions& options = {}) {
  return RunSubprocess({"/bin/sh", "-c", script}, options);
}

TEST(Subprocess, CapturesExitCodeAndBothStreams) {
  SubprocessResult r = Sh("echo out; echo err >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(Subprocess, LargeStdinAndOutputsDoNotDeadlock) {
  // 4 MiB in, the same 4 MiB out on stdout and again on stderr: far more
  // than a pipe buffer, so any ordering of reads and writes that waits on
  // one pipe while another is full would hang here.
  SubprocessOptions options;
  options.stdin_data.assign(4 << 20, 'x');
  options.timeout_ms = 60000;
  SubprocessResult r = Sh("tee /dev/stderr", options);
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(0, 200);
  EXPECT_EQ(r.out.size(), options.stdin_data.size());
  EXPECT_EQ(r.err.size(), options.stdin_data.size());
  EXPECT_EQ(r.out, options.stdin_data);
}

TEST(Subprocess, ChildThatIgnoresStdinDoesNotKillTheTest) {
  SubprocessOptions options;
  options.stdin_data.assign(1 << 20, 'x');  // writes hit EPIPE once the child exits
  SubprocessResult r = Sh("exit 0", options);
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Subprocess, EnvCwdAndStdinFileReachTheChild) {
  TempDir dir;
  string input = dir.Write("in.txt", "from file\n");
  SubprocessOptions options;
  options.env = {{"SLUICE_HARNESS_VAR", "v1"}, {"PATH", "/usr/bin:/bin"}};
  options.cwd = dir.path();
  options.stdin_file = input;
  SubprocessResult r = Sh("echo \"$SLUICE_HARNESS_VAR\"; pwd; cat", options);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "v1\n" + dir.path() + "\nfrom file\n");
}

TEST(Subprocess, StdinIsEmptyByDefault) {
  SubprocessResult r = Sh("cat; echo done");
  EXPECT_EQ(r.out, "done\n");
}

TEST(Subprocess, TimeoutKillsTheChild) {
  SubprocessOptions options;
  options.timeout_ms = 200;
  auto start = std::chrono::steady_clock::now();
  SubprocessResult r = Sh("echo started; exec sleep 30", options);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST(Subprocess, KillNineMidRunIsReportedAsSignal) {
  auto process = Subprocess::Start({"/bin/sh", "-c", "echo ready; exec sleep 30"});
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  ASSERT_TRUE((*process)->WaitForOutput("ready", 10000));
  EXPECT_TRUE((*process)->Running());
  EXPECT_GT((*process)->pid(), 0);
  (*process)->Kill(SIGKILL);
  SubprocessResult r = (*process)->Wait();
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE((*process)->Running());
  (*process)->Kill(SIGKILL);  // after the reap: must be a harmless no-op
  EXPECT_EQ((*process)->Wait().term_signal, SIGKILL);
}

TEST(Subprocess, SigpipeIsDefaultInTheChild) {
  // `yes | head` only ends because yes dies of SIGPIPE.
  SubprocessResult r = Sh("yes | head -n 2; echo end");
  EXPECT_EQ(r.out, "y\ny\nend\n");
}

TEST(Subprocess, WaitForOutputGivesUpWhenTheChildExits) {
  auto process = Subprocess::Start({"/bin/sh", "-c", "echo something-else"});
  ASSERT_TRUE(process.ok());
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE((*process)->WaitForOutput("never printed", 30000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ((*process)->Wait().out, "something-else\n");
}

TEST(Subprocess, MissingProgramIsNotFound) {
  auto process = Subprocess::Start({"/nonexistent/program"});
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().code(), StatusCode::kNotFound);
  EXPECT_NE(process.status().message().find("/nonexistent/program"), string::npos);

  SubprocessResult r = RunSubprocess({"/nonexistent/program"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.err.find("/nonexistent/program"), string::npos);
}

TEST(Subprocess, StdinDataAndFileTogetherAreRejected) {
  SubprocessOptions options;
  options.stdin_data = "a";
  options.stdin_file = "/dev/null";
  auto process = Subprocess::Start({"/bin/true"}, options);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().code(), StatusCode::kInvalidArgument);
}

TEST(CliRunner, MissingBinaryIsReportedNotCrashed) {
  setenv("SLUICE_TEST_CLI", "/nonexistent/sluice", 1);
  CliResult r = RunCli({"version"});
  unsetenv("SLUICE_TEST_CLI");
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.err.find("/nonexistent/sluice"), string::npos);
}

TEST(CliRunner, RunsTheConfiguredBinaryWithArguments) {
  // Stand in for sluice with `echo` to check argument passing end to end.
  setenv("SLUICE_TEST_CLI", "/bin/echo", 1);
  CliResult r = RunCli({"run", "pipe line.toml", "--once"});
  unsetenv("SLUICE_TEST_CLI");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "run pipe line.toml --once\n");
}

TEST(TempDir, WritesReadsAndRemovesEverything) {
  string path;
  {
    TempDir dir;
    path = dir.path();
    ASSERT_FALSE(path.empty());
    string file = dir.Write("a/b/c.csv", "id\n1\n");
    EXPECT_EQ(file, path + "/a/b/c.csv");
    EXPECT_EQ(dir.Read("a/b/c.csv"), "id\n1\n");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace sluice::testing
