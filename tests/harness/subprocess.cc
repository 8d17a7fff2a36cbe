#include "harness/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

extern char** environ;

namespace sluice::testing {
namespace {

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string ErrnoText(int err) { return std::strerror(err); }

// A pidfd becomes readable when the child exits, so the I/O loop can sleep
// in poll() instead of waking up to ask waitpid(). Kernels before 5.3 (and
// some sandboxes) lack it; the loop then polls with a short timeout.
int OpenPidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#else
  (void)pid;
#endif
  return -1;
}

std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (overrides.count(name) == 0) env.push_back(std::move(entry));
  }
  for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Owns what posix_spawn needs so that every early return cleans up.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

struct Pipe {
  int read_end = -1;
  int write_end = -1;
  ~Pipe() {
    CloseFd(read_end);
    CloseFd(write_end);
  }
  Status Open() {
    int fds[2];
    // O_CLOEXEC: a pipe end leaking into a child spawned concurrently by
    // another thread would hold it open and hide EOF from us.
    if (pipe2(fds, O_CLOEXEC) != 0) return Status::IoError("pipe2: " + ErrnoText(errno));
    read_end = fds[0];
    write_end = fds[1];
    return Status::OK();
  }
};

}  // namespace

Result<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                      const SubprocessOptions& options) {
  std::unique_ptr<Subprocess> process(new Subprocess());
  SLUICE_RETURN_IF_ERROR(Launch(process.get(), argv, options));
  return process;
}

Status Subprocess::Launch(Subprocess* process, const std::vector<std::string>& argv,
                          const SubprocessOptions& options) {
  if (argv.empty() || argv[0].empty()) return Status::InvalidArgument("Subprocess: empty argv");
  if (!options.stdin_data.empty() && !options.stdin_file.empty()) {
    return Status::InvalidArgument("Subprocess: set stdin_data or stdin_file, not both");
  }
  SpawnSetup setup;
  Pipe in, out, err;
  SLUICE_RETURN_IF_ERROR(out.Open());
  SLUICE_RETURN_IF_ERROR(err.Open());
  int stdin_file_fd = -1;
  if (!options.stdin_data.empty()) {
    SLUICE_RETURN_IF_ERROR(in.Open());
    posix_spawn_file_actions_adddup2(&setup.actions, in.read_end, 0);
  } else if (!options.stdin_file.empty()) {
    // Opened here rather than by the spawn so that a missing file is not
    // reported as a missing program.
    stdin_file_fd = open(options.stdin_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (stdin_file_fd < 0) {
      int e = errno;
      return Status(e == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError,
                    "cannot open stdin_file '" + options.stdin_file + "': " + ErrnoText(e));
    }
    posix_spawn_file_actions_adddup2(&setup.actions, stdin_file_fd, 0);
  } else {
    // Never the test's own stdin: a child that reads it would hang the run.
    posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&setup.actions, out.write_end, 1);
  posix_spawn_file_actions_adddup2(&setup.actions, err.write_end, 2);
  if (!options.cwd.empty()) {
    posix_spawn_file_actions_addchdir_np(&setup.actions, options.cwd.c_str());
  }

  // gtest, or a test, may block or ignore signals; the child must start
  // with default dispositions so that e.g. SIGPIPE and SIGTERM behave as in
  // production.
  sigset_t empty_mask, default_signals;
  sigemptyset(&empty_mask);
  sigemptyset(&default_signals);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM}) {
    sigaddset(&default_signals, sig);
  }
  posix_spawnattr_setsigmask(&setup.attr, &empty_mask);
  posix_spawnattr_setsigdefault(&setup.attr, &default_signals);
  posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> args = argv;
  std::vector<char*> c_args = CStrings(args);
  std::vector<std::string> env = BuildEnvironment(options.env);
  std::vector<char*> c_env = CStrings(env);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0].c_str(), &setup.actions, &setup.attr, c_args.data(), c_env.data());
  if (stdin_file_fd >= 0) close(stdin_file_fd);
  if (rc != 0) {
    std::string where = options.cwd.empty() ? "" : " in '" + options.cwd + "'";
    return Status(rc == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError,
                  "cannot start '" + argv[0] + "'" + where + ": " + ErrnoText(rc));
  }

  process->pid_ = pid;
  CloseFd(in.read_end);
  CloseFd(out.write_end);
  CloseFd(err.write_end);
  std::swap(process->stdin_fd_, in.write_end);
  std::swap(process->stdout_fd_, out.read_end);
  std::swap(process->stderr_fd_, err.read_end);
  for (int fd : {process->stdin_fd_, process->stdout_fd_, process->stderr_fd_}) {
    if (fd >= 0) SetNonBlocking(fd);
  }
  process->pidfd_ = OpenPidFd(pid);
  process->io_thread_ = std::thread(&Subprocess::IoLoop, process, options.stdin_data, options.timeout_ms);
  return Status::OK();
}

Subprocess::~Subprocess() {
  Kill(SIGKILL);
  std::lock_guard<std::mutex> wait_lock(wait_mu_);
  if (io_thread_.joinable()) io_thread_.join();
}

void Subprocess::Kill(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  // Holding mu_ excludes the reap, so pid_ still names our child here.
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

bool Subprocess::Running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pid_ > 0 && !reaped_;
}

std::string Subprocess::StdoutSoFar() const {
  std::lock_guard<std::mutex> lock(mu_);
  return out_;
}

std::string Subprocess::StderrSoFar() const {
  std::lock_guard<std::mutex> lock(mu_);
  return err_;
}

bool Subprocess::WaitForOutput(const std::string& text, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto found = [&] { return out_.find(text) != std::string::npos || err_.find(text) != std::string::npos; };
  changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return found() || io_done_; });
  return found();
}

void Subprocess::ReapLocked(bool block) {
  if (reaped_) return;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    reaped_ = true;
    wait_status_ = status;
  } else if (r < 0) {
    // ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN). The status
    // is lost; report it as an abnormal end rather than a success.
    reaped_ = true;
    wait_status_ = -1;
  }
}

void Subprocess::IoLoop(std::string stdin_data, int timeout_ms) {
  // Writing to a child that already exited raises SIGPIPE, which would kill
  // the whole test binary. It is thread-directed, so blocking it on this
  // thread is enough and leaves the rest of the process alone.
  sigset_t pipe_mask;
  sigemptyset(&pipe_mask);
  sigaddset(&pipe_mask, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_mask, nullptr);

  using Clock = std::chrono::steady_clock;
  const bool has_deadline = timeout_ms > 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  size_t written = 0;
  char buf[65536];

  auto read_some = [&](int& fd, std::string& sink) {
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          sink.append(buf, static_cast<size_t>(n));
        }
        changed_.notify_all();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) CloseFd(fd);
      return;
    }
  };

  for (;;) {
    pollfd fds[4];
    int nfds = 0;
    int stdin_slot = -1, out_slot = -1, err_slot = -1;
    if (stdin_fd_ >= 0) {
      stdin_slot = nfds;
      fds[nfds++] = {stdin_fd_, POLLOUT, 0};
    }
    if (stdout_fd_ >= 0) {
      out_slot = nfds;
      fds[nfds++] = {stdout_fd_, POLLIN, 0};
    }
    if (stderr_fd_ >= 0) {
      err_slot = nfds;
      fds[nfds++] = {stderr_fd_, POLLIN, 0};
    }
    if (pidfd_ >= 0) fds[nfds++] = {pidfd_, POLLIN, 0};

    int wait_ms = pidfd_ >= 0 ? -1 : 20;
    if (has_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      int left_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
      wait_ms = wait_ms < 0 ? left_ms : std::min(wait_ms, left_ms);
      // After the timeout kill, keep polling briefly for the reap.
      if (left_ms == 0) wait_ms = 20;
    }
    int ready = poll(fds, static_cast<nfds_t>(nfds), wait_ms);
    if (ready < 0 && errno != EINTR) break;

    if (ready > 0) {
      if (stdin_slot >= 0 && fds[stdin_slot].revents != 0) {
        while (written < stdin_data.size()) {
          ssize_t n = write(stdin_fd_, stdin_data.data() + written, stdin_data.size() - written);
          if (n > 0) {
            written += static_cast<size_t>(n);
          } else {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            written = stdin_data.size();  // EPIPE: the child stopped reading
          }
        }
        if (written >= stdin_data.size()) CloseFd(stdin_fd_);  // EOF for the child
      }
      if (out_slot >= 0 && fds[out_slot].revents != 0) read_some(stdout_fd_, out_);
      if (err_slot >= 0 && fds[err_slot].revents != 0) read_some(stderr_fd_, err_);
    }

    bool reaped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReapLocked(/*block=*/false);
      reaped = reaped_;
      if (!reaped && has_deadline && !timed_out_ && Clock::now() >= deadline) {
        timed_out_ = true;
        kill(pid_, SIGKILL);
      }
    }
    if (reaped) {
      // Whatever the child wrote is in the pipes now; read it without
      // waiting for EOF, which a grandchild holding the pipe could delay.
      if (stdout_fd_ >= 0) read_some(stdout_fd_, out_);
      if (stderr_fd_ >= 0) read_some(stderr_fd_, err_);
      break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reaped_) {
      kill(pid_, SIGKILL);
      ReapLocked(/*block=*/true);
    }
  }
  CloseFd(stdin_fd_);
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
  CloseFd(pidfd_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    io_done_ = true;
  }
  changed_.notify_all();
}

SubprocessResult Subprocess::Wait() {
  {
    std::lock_guard<std::mutex> wait_lock(wait_mu_);
    if (!joined_ && io_thread_.joinable()) io_thread_.join();
    joined_ = true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  SubprocessResult result;
  result.out = out_;
  result.err = err_;
  result.timed_out = timed_out_;
  if (wait_status_ != -1 && WIFEXITED(wait_status_)) {
    result.exit_code = WEXITSTATUS(wait_status_);
  } else if (wait_status_ != -1 && WIFSIGNALED(wait_status_)) {
    result.term_signal = WTERMSIG(wait_status_);
  }
  return result;
}

SubprocessResult RunSubprocess(const std::vector<std::string>& argv, const SubprocessOptions& options) {
  auto process = Subprocess::Start(argv, options);
  if (!process.ok()) {
    SubprocessResult result;
    result.err = process.status().ToString();
    return result;
  }
  return (*process)->Wait();
}

std::string DescribeExit(const SubprocessResult& result) {
  std::string text;
  if (result.term_signal != 0) {
    text = "signal " + std::to_string(result.term_signal) + " (" + strsignal(result.term_signal) + ")";
  } else {
    text = "exit " + std::to_string(result.exit_code);
  }
  if (result.timed_out) text += " (timed out)";
  return text;
}

std::string Tail(const std::string& s, size_t max) {
  return s.size() <= max ? s : "..." + s.substr(s.size() - max);
}

Result<int> StartWatchdog(std::vector<std::string> argv, const std::string& what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return Status::IoError(std::string("pipe2: ") + std::strerror(errno));
  }
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask, defaults;
  sigemptyset(&empty_mask);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGCHLD);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, c_argv[0], &actions, &attr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[0]);
  if (rc != 0) {
    close(fds[1]);
    return Status::IoError("cannot start the " + what + " (" + argv[0] + "): " + std::strerror(rc));
  }
  // `setsid -f` forks and returns at once; reap that intermediate process.
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    close(fds[1]);
    return Status::IoError("the " + what + " (" + argv[0] + ") failed to start");
  }
  return fds[1];
}

}  // namespace sluice::testing
