// PgServer: a real, private PostgreSQL 15 server for one test (or suite).
//
// Start() runs initdb into a fresh directory under /tmp and starts the
// server on 127.0.0.1 at a free port, with trust authentication for user
// "postgres" and, by default, wal_level=logical so CDC tests can create
// replication slots. PostgreSQL refuses to run as root, so when the tests
// run as root the server tools are run as the `postgres` OS user through
// runuser. The destructor stops the server and deletes its directory; a
// watchdog process does the same if the test binary dies without running
// destructors (crash, SIGKILL from a ctest timeout). Many servers may run
// at once, in one process or in parallel ctest jobs.
//
// Thread-safety: port(), Url(), Query(), Exec(), QueryScalar() and
// CreateDatabase() open their own connection per call and may be used from
// several threads at once. Stop() and StartAgain() must not run
// concurrently with anything else on the same server.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/status.h"

namespace sluice::testing {

struct PgServerOptions {
  /// wal_level=logical, max_replication_slots=10, max_wal_senders=10.
  bool logical = true;
  /// Off by default: tests never survive an OS crash, and fsync makes
  /// initdb and every commit slow.
  bool fsync = false;
  /// postgresql.conf lines ("name = value") appended after the harness's
  /// own settings, so they override them.
  std::vector<std::string> extra_settings;
  /// Where initdb and pg_ctl live.
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
};

enum class PgStopMode {
  kImmediate,  // SIGQUIT: like a crash; recovery runs on the next start
  kFast,       // clean shutdown: clients are disconnected, a checkpoint is written
};

/// Rows of text values, NULL as nullopt.
using PgRows = std::vector<std::vector<std::optional<std::string>>>;

class PgServer {
 public:
  static Result<std::unique_ptr<PgServer>> Start(const PgServerOptions& options = {});

  /// Stops the server (immediately) and removes its directory.
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  /// postgresql://USER@127.0.0.1:PORT/DB (no password: auth is trust).
  std::string Url(const std::string& db = "postgres", const std::string& user = "postgres") const;

  Status CreateDatabase(const std::string& name) const;
  /// Runs sql (PQexec: several statements allowed, the last one's rows are
  /// returned) as user postgres in database db.
  Result<PgRows> Query(const std::string& db, const std::string& sql) const;
  Status Exec(const std::string& db, const std::string& sql) const;
  /// The single value of a one-row, one-column result; NULL is an error.
  Result<std::string> QueryScalar(const std::string& db, const std::string& sql) const;

  /// Stops the server, keeping its data; pg_ctl first, then the pid file
  /// and signals if pg_ctl fails. OK if it was not running.
  Status Stop(PgStopMode mode = PgStopMode::kImmediate);
  /// Starts a stopped server again on the same port, so URLs stay valid.
  Status StartAgain();
  bool running() const { return running_; }

  /// The server's data directory (PGDATA).
  std::string data_dir() const { return dir_ + "/data"; }
  /// The server log, where errors of the server side are explained.
  std::string log_path() const { return dir_ + "/postgres.log"; }
  /// The last max_bytes of the server log, for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  explicit PgServer(PgServerOptions options) : options_(std::move(options)) {}

  std::vector<std::string> AsPostgresUser(std::vector<std::string> argv) const;
  Status InitDb();
  Status StartWatchdog();
  /// One pg_ctl start on port_; sets *port_in_use when the bind failed.
  Status StartOnce(bool* port_in_use);
  /// Ends the postmaster named in postmaster.pid by signals.
  void KillFromPidFile();

  PgServerOptions options_;
  bool as_root_ = false;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  int watchdog_fd_ = -1;  // write end; its closing tells the watchdog to act
};

}  // namespace sluice::testing
