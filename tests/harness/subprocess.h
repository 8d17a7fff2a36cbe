// Subprocess: runs a program with its stdin fed and its stdout/stderr
// captured, for the test harness (PostgreSQL tools, the sluice CLI).
//
// The child is started with posix_spawn; a background thread writes stdin
// and drains both output pipes while the child runs, so a chatty child
// never blocks on a full pipe even if the test is busy elsewhere (e.g.
// waiting for rows to appear before it kills the process). Signals the
// test process ignores or blocks are reset to default in the child.
//
// Thread-safety: pid(), Kill(), Running() and the *SoFar() accessors may be
// called from any thread while another thread is in Wait(). Wait() itself
// is called by one thread at a time.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/status.h"

namespace sluice::testing {

struct SubprocessOptions {
  /// Written to the child's stdin, which is then closed. Exclusive with
  /// stdin_file; with neither, stdin is /dev/null.
  std::string stdin_data;
  /// A file (or FIFO, or /dev/zero) opened read-only as the child's stdin.
  std::string stdin_file;
  /// Added to (or replacing entries of) the test process's environment.
  std::map<std::string, std::string> env;
  /// After this long the child gets SIGKILL and the result says timed_out.
  /// 0 or negative: no limit.
  int timeout_ms = 120000;
  /// Working directory of the child; empty: the test's own.
  std::string cwd;
};

struct SubprocessResult {
  /// The exit status if the child exited normally, otherwise -1.
  int exit_code = -1;
  /// The signal that ended the child (e.g. SIGKILL), otherwise 0.
  int term_signal = 0;
  std::string out;
  std::string err;
  /// Whether the harness killed the child for exceeding timeout_ms.
  bool timed_out = false;
};

class Subprocess {
 public:
  /// Starts argv[0] (looked up in PATH when it has no '/') with argv.
  static Result<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                   const SubprocessOptions& options = {});

  /// Sends SIGKILL if the child still runs, then reaps it: a test that
  /// fails half-way never leaks a process.
  virtual ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  int pid() const { return pid_; }
  /// Sends sig to the child; does nothing once the child has been reaped,
  /// so a recycled pid is never signalled.
  void Kill(int sig);
  /// Whether the child has not yet been reaped.
  bool Running() const;
  /// Blocks until the child exits (or times out and is killed) and returns
  /// its status and everything it wrote. Later calls return the same result.
  SubprocessResult Wait();
  /// Output captured up to now, for tests that wait for a log line.
  std::string StdoutSoFar() const;
  std::string StderrSoFar() const;
  /// Blocks until stdout or stderr contains text (true), or until the child
  /// has exited without writing it or timeout_ms passed (false). For tests
  /// that act at a known point, e.g. kill -9 once a load has begun.
  bool WaitForOutput(const std::string& text, int timeout_ms);

 protected:
  Subprocess() = default;
  /// Does the work of Start() on an object a subclass constructed.
  static Status Launch(Subprocess* process, const std::vector<std::string>& argv,
                       const SubprocessOptions& options);

 private:
  void IoLoop(std::string stdin_data, int timeout_ms);
  void ReapLocked(bool block);

  int pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int pidfd_ = -1;  // lets poll() wake up on exit; -1 where unsupported
  std::thread io_thread_;
  mutable std::mutex mu_;
  std::condition_variable changed_;  // output appended or child reaped
  bool reaped_ = false;              // guarded by mu_
  int wait_status_ = 0;              // guarded by mu_
  bool timed_out_ = false;           // guarded by mu_
  bool io_done_ = false;             // guarded by mu_; nothing more will be captured
  std::string out_;                  // guarded by mu_
  std::string err_;                  // guarded by mu_
  std::mutex wait_mu_;               // serialises Wait()
  bool joined_ = false;              // guarded by wait_mu_
};

/// Runs argv to completion. A program that cannot be started gives
/// exit_code -1, term_signal 0 and the reason in err.
SubprocessResult RunSubprocess(const std::vector<std::string>& argv, const SubprocessOptions& options = {});

/// Starts a watchdog that outlives the test process: `argv` (typically
/// {"setsid", "-f", "/bin/sh", "-c", script, ...}, possibly wrapped to run as
/// another user) runs with its stdin on a pipe, detached from our session.
/// Returns the pipe's write end: when it closes (also when the test process
/// dies) the script's `read` returns and it cleans up. `what` names it in
/// errors.
Result<int> StartWatchdog(std::vector<std::string> argv, const std::string& what);

/// The last `max` bytes of `s`, marked with "..." when cut: for messages.
std::string Tail(const std::string& s, size_t max);

/// "exit 3", "signal 9 (Killed)", plus "(timed out)": for failure messages.
std::string DescribeExit(const SubprocessResult& result);

}  // namespace sluice::testing
