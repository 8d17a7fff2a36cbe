#include "harness/pg_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include "harness/subprocess.h"

namespace sluice::testing {
namespace {

constexpr int kStartAttempts = 8;
constexpr int kToolTimeoutMs = 120000;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Abbreviate(const std::string& s, size_t max) {
  return s.size() <= max ? s : s.substr(0, max) + "...";
}

std::string ReadFileFrom(const std::string& path, std::streamoff offset) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "";
  file.seekg(offset);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::streamoff FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<std::streamoff>(st.st_size) : 0;
}

// The kernel hands out a port nobody is bound to. Another process may take
// it before the server binds it; Start() then retries with a new one.
Result<int> FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    close(fd);
    return Status::IoError(std::string("cannot find a free port: ") + std::strerror(e));
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string QuoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string FindRunuser() {
  for (const char* path : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "runuser";  // let PATH decide; the spawn error will say if it is missing
}

// Whether pid is a live (not zombie) process whose command line mentions
// data_dir: the postmaster runs as `postgres -D <data_dir> ...`. Checking
// the command line keeps a stale pid file from making us signal whatever
// process reused that pid.
bool IsPostmasterOf(pid_t pid, const std::string& data_dir) {
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  if (!cmdline) return false;
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  if (args.find(data_dir) == std::string::npos) return false;
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat_line;
  std::getline(stat_file, stat_line);
  size_t paren = stat_line.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat_line.size() || stat_line[paren + 2] != 'Z';
}

pid_t ReadPostmasterPid(const std::string& data_dir) {
  std::ifstream file(data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(file >> pid) || pid <= 0) return -1;
  return static_cast<pid_t>(pid);
}

bool WaitUntilGone(pid_t pid, const std::string& data_dir, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (IsPostmasterOf(pid, data_dir)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void IgnoreNotice(void* /*arg*/, const char* /*message*/) {}

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* res) const { PQclear(res); }
};

// Runs when the test process is gone (its end of the pipe closes, however
// it died): ends the postmaster if one still runs from this directory and
// removes the directory. $1 is the server's directory.
constexpr const char* kWatchdogScript = R"sh(
read -r _unused
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1/data"; then
    kill -QUIT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
)sh";

}  // namespace

Result<std::unique_ptr<PgServer>> PgServer::Start(const PgServerOptions& options) {
  for (const char* tool : {"initdb", "pg_ctl", "postgres"}) {
    std::string path = options.bin_dir + "/" + tool;
    if (access(path.c_str(), X_OK) != 0) {
      return Status::NotFound("PostgreSQL tool '" + path +
                              "' not found (Debian: apt-get install postgresql-15)");
    }
  }
  std::unique_ptr<PgServer> server(new PgServer(options));
  server->as_root_ = geteuid() == 0;

  uid_t pg_uid = 0;
  gid_t pg_gid = 0;
  if (server->as_root_) {
    passwd entry;
    passwd* found = nullptr;
    char buf[4096];
    if (getpwnam_r("postgres", &entry, buf, sizeof buf, &found) != 0 || found == nullptr) {
      return Status::NotFound("running as root, but there is no 'postgres' OS user to run PostgreSQL as");
    }
    pg_uid = entry.pw_uid;
    pg_gid = entry.pw_gid;
  }

  char templ[] = "/tmp/sluice-pg-XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    return Status::IoError(std::string("mkdtemp(/tmp/sluice-pg-XXXXXX): ") + std::strerror(errno));
  }
  server->dir_ = templ;
  if (server->as_root_ && chown(templ, pg_uid, pg_gid) != 0) {
    return Status::IoError("chown " + server->dir_ + " to postgres: " + std::strerror(errno));
  }

  SLUICE_RETURN_IF_ERROR(server->StartWatchdog());
  SLUICE_RETURN_IF_ERROR(server->InitDb());

  Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    SLUICE_ASSIGN_OR_RETURN(server->port_, FreePort());
    bool port_in_use = false;
    last = server->StartOnce(&port_in_use);
    if (last.ok()) return server;
    if (!port_in_use) return last;
  }
  return last.WithContext("no free port after " + std::to_string(kStartAttempts) + " attempts");
}

PgServer::~PgServer() {
  if (running_) (void)Stop();
  if (!dir_.empty()) {
    // A start that failed half-way may have left a postmaster behind even
    // though running_ was never set.
    KillFromPidFile();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  if (watchdog_fd_ >= 0) close(watchdog_fd_);  // the watchdog finds nothing left and exits
}

std::vector<std::string> PgServer::AsPostgresUser(std::vector<std::string> argv) const {
  if (!as_root_) return argv;
  std::vector<std::string> wrapped = {FindRunuser(), "-u", "postgres", "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

Status PgServer::StartWatchdog() {
  // setsid -f: the watchdog leaves our process tree and session, so neither
  // ctest killing the test's tree nor a terminal's Ctrl-C takes it along.
  SLUICE_ASSIGN_OR_RETURN(
      watchdog_fd_,
      sluice::testing::StartWatchdog(
          AsPostgresUser({"setsid", "-f", "/bin/sh", "-c", kWatchdogScript, "sluice-pg-watchdog", dir_}),
          "PostgreSQL watchdog"));
  return Status::OK();
}

Status PgServer::InitDb() {
  // Flag and value pairs read better side by side.
  // clang-format off
  std::vector<std::string> argv = {options_.bin_dir + "/initdb",
                                   "-D", data_dir(),
                                   "-A", "trust",
                                   "-U", "postgres",
                                   "--encoding=UTF8",
                                   "--locale=C",
                                   "--no-instructions"};
  // clang-format on
  if (!options_.fsync) argv.push_back("--no-sync");
  SubprocessOptions run;
  run.cwd = dir_;  // the postgres user may not be allowed into the test's cwd
  run.env = {{"LC_ALL", "C"}};
  run.timeout_ms = kToolTimeoutMs;
  SubprocessResult result = RunSubprocess(AsPostgresUser(argv), run);
  if (result.exit_code != 0) {
    return Status::IoError("initdb " + data_dir() + " failed (" + DescribeExit(result) +
                           "): " + Trim(result.err + result.out));
  }

  std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
  conf << "\n# Added by the sluice test harness (tests/harness/pg_server.cc).\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "unix_socket_directories = '" << dir_ << "'\n"
       << "fsync = " << (options_.fsync ? "on" : "off") << "\n"
       << "full_page_writes = " << (options_.fsync ? "on" : "off")
       << "\n"
       // Fixed zones make timestamptz text output the same on every machine.
       << "timezone = 'UTC'\n"
       << "log_timezone = 'UTC'\n";
  if (options_.logical) {
    conf << "wal_level = logical\n"
         << "max_replication_slots = 10\n"
         << "max_wal_senders = 10\n";
  }
  for (const std::string& line : options_.extra_settings) conf << line << "\n";
  conf.close();
  if (!conf) return Status::IoError("cannot append to " + data_dir() + "/postgresql.conf");
  return Status::OK();
}

Status PgServer::StartOnce(bool* port_in_use) {
  *port_in_use = false;
  std::streamoff log_offset = FileSize(log_path());
  // clang-format off
  std::vector<std::string> argv = {options_.bin_dir + "/pg_ctl",
                                   "-D", data_dir(),
                                   "-l", log_path(),
                                   "-w", "-t", "60",
                                   "-o", "-p " + std::to_string(port_),
                                   "start"};
  // clang-format on
  SubprocessOptions run;
  run.cwd = dir_;
  run.env = {{"LC_ALL", "C"}};
  run.timeout_ms = kToolTimeoutMs;
  SubprocessResult result = RunSubprocess(AsPostgresUser(argv), run);
  if (result.exit_code == 0) {
    running_ = true;
    return Status::OK();
  }
  // pg_ctl may have given up on a server that is still starting.
  KillFromPidFile();
  std::string log = ReadFileFrom(log_path(), log_offset);
  *port_in_use = log.find("Address already in use") != std::string::npos ||
                 log.find("could not bind") != std::string::npos;
  return Status::Unavailable("PostgreSQL did not start on 127.0.0.1:" + std::to_string(port_) + " (pg_ctl " +
                             DescribeExit(result) + "): " + Trim(result.out + result.err) + "\n--- " +
                             log_path() + " ---\n" + Tail(log, 4000));
}

void PgServer::KillFromPidFile() {
  pid_t pid = ReadPostmasterPid(data_dir());
  if (pid <= 0 || !IsPostmasterOf(pid, data_dir())) return;
  // SIGQUIT is what pg_ctl -m immediate sends: the postmaster takes its
  // backends down with it. SIGKILL would leave them orphaned.
  kill(pid, SIGQUIT);
  if (WaitUntilGone(pid, data_dir(), std::chrono::seconds(10))) return;
  kill(pid, SIGKILL);
  WaitUntilGone(pid, data_dir(), std::chrono::seconds(10));
}

Status PgServer::Stop(PgStopMode mode) {
  if (!running_) return Status::OK();
  // clang-format off
  std::vector<std::string> argv = {options_.bin_dir + "/pg_ctl",
                                   "-D", data_dir(),
                                   "-m", mode == PgStopMode::kFast ? "fast" : "immediate",
                                   "-w", "-t", "60",
                                   "stop"};
  // clang-format on
  SubprocessOptions run;
  run.cwd = dir_;
  run.timeout_ms = kToolTimeoutMs;
  SubprocessResult result = RunSubprocess(AsPostgresUser(argv), run);
  running_ = false;
  if (result.exit_code == 0) return Status::OK();
  KillFromPidFile();
  pid_t pid = ReadPostmasterPid(data_dir());
  if (pid > 0 && IsPostmasterOf(pid, data_dir())) {
    running_ = true;
    return Status::Internal("cannot stop PostgreSQL (pid " + std::to_string(pid) + ", data " + data_dir() +
                            "): pg_ctl " + DescribeExit(result) + ": " + Trim(result.out + result.err));
  }
  return Status::OK();
}

Status PgServer::StartAgain() {
  if (running_) return Status::OK();
  bool port_in_use = false;
  return StartOnce(&port_in_use);
}

std::string PgServer::Url(const std::string& db, const std::string& user) const {
  return "postgresql://" + PercentEncode(user) + "@127.0.0.1:" + std::to_string(port_) + "/" +
         PercentEncode(db);
}

std::string PgServer::LogTail(size_t max_bytes) const { return Tail(ReadFileFrom(log_path(), 0), max_bytes); }

Result<PgRows> PgServer::Query(const std::string& db, const std::string& sql) const {
  std::string port = std::to_string(port_);
  // Keywords rather than the URL so that no PG* environment variable and
  // no character in db changes where we connect.
  const char* keys[] = {"host", "port", "dbname", "user", "sslmode", "connect_timeout", "application_name",
                        nullptr};
  const char* values[] = {"127.0.0.1", port.c_str(),          db.c_str(), "postgres", "disable",
                          "10",        "sluice-test-harness", nullptr};
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdbParams(keys, values, 0));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Unavailable("cannot connect to " + Url(db) + ": " +
                               Trim(conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  // Tests run "DROP ... IF EXISTS" and the like; NOTICEs on stderr are noise.
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);

  std::unique_ptr<PGresult, ResultDeleter> res(PQexec(conn.get(), sql.c_str()));
  ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) return PgRows{};
  if (status == PGRES_TUPLES_OK) {
    PgRows rows;
    int n_rows = PQntuples(res.get());
    int n_cols = PQnfields(res.get());
    rows.reserve(static_cast<size_t>(n_rows));
    for (int r = 0; r < n_rows; ++r) {
      std::vector<std::optional<std::string>> row;
      row.reserve(static_cast<size_t>(n_cols));
      for (int c = 0; c < n_cols; ++c) {
        if (PQgetisnull(res.get(), r, c)) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(
              std::string(PQgetvalue(res.get(), r, c), static_cast<size_t>(PQgetlength(res.get(), r, c))));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }
  if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
    return Status::InvalidArgument("PgServer::Query cannot run COPY ... STDIN/STDOUT: " +
                                   Abbreviate(sql, 300));
  }
  const char* sqlstate = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
  std::string message = Trim(res ? PQresultErrorMessage(res.get()) : "");
  if (message.empty()) message = Trim(PQerrorMessage(conn.get()));
  std::string state = sqlstate != nullptr ? sqlstate : "";
  // Class 08 is a lost connection; anything else is the statement's fault.
  StatusCode code =
      (state.empty() || state.rfind("08", 0) == 0) ? StatusCode::kUnavailable : StatusCode::kInvalidArgument;
  return Status(code,
                "query failed in database '" + db + "'" + (state.empty() ? "" : " (SQLSTATE " + state + ")") +
                    ": " + message + "; sql: " + Abbreviate(sql, 300),
                code == StatusCode::kUnavailable);
}

Status PgServer::Exec(const std::string& db, const std::string& sql) const { return Query(db, sql).status(); }

Result<std::string> PgServer::QueryScalar(const std::string& db, const std::string& sql) const {
  SLUICE_ASSIGN_OR_RETURN(PgRows rows, Query(db, sql));
  if (rows.size() != 1 || rows[0].size() != 1) {
    return Status::InvalidArgument("expected one value, got " + std::to_string(rows.size()) + " rows x " +
                                   std::to_string(rows.empty() ? 0 : rows[0].size()) +
                                   " columns; sql: " + Abbreviate(sql, 300));
  }
  if (!rows[0][0].has_value()) {
    return Status::InvalidArgument("expected one value, got NULL; sql: " + Abbreviate(sql, 300));
  }
  return *std::move(rows[0][0]);
}

Status PgServer::CreateDatabase(const std::string& name) const {
  return Exec("postgres", "CREATE DATABASE " + QuoteIdentifier(name));
}

}  // namespace sluice::testing
