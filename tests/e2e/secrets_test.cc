// Secrets never leak: seeded random passwords of 8 to 64 printable ASCII
// characters, written raw and escaped (percent-encoded in URLs, quoted in
// key=value strings), as the password of a real PostgreSQL role where libpq
// can read them and as a wrong one, in the destination's url, the [state]
// url and a postgres_cdc source's url. Nothing sluice prints (`run`, `run
// --log-format json`, `validate`), serves (/status, /ready) or records (the
// run log's error columns, in SQLite and in PostgreSQL) may hold a
// 6-character piece of the password, in any of its spellings.
#include <httplib.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>

#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "e2e_support.h"
#include "harness/secret_strings.h"

namespace sluice::e2e {
namespace {

using sluice::testing::RandomPassword;
using sluice::testing::PercentEncode;
using sluice::testing::LeakedPiece;
using sluice::testing::QuoteKeyValue;

using sluice::testing::CliProcess;
using std::string;

constexpr const char* kRole = "sluice_secret_loader";

/// How the password is written into the connection string.
enum class Form {
  kUrlRaw,          // postgresql://role:<as is>@host...
  kUrlEncoded,      // postgresql://role:<percent-encoded>@host...
  kKeyValueRaw,     // host=... password=<as is>
  kKeyValueQuoted,  // host=... password='<\' and \\ escaped>'
};

const char* FormName(Form form) {
  switch (form) {
    case Form::kUrlRaw:
      return "url-raw";
    case Form::kUrlEncoded:
      return "url-encoded";
    case Form::kKeyValueRaw:
      return "key=value-raw";
    case Form::kKeyValueQuoted:
      return "key=value-quoted";
  }
  return "?";
}

/// A TOML basic string holding `text` as sluice reads it ($ doubled: sluice
/// expands ${VAR} in every value).
string Toml(const string& text) {
  string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '$') out += '$';
    out += c;
  }
  return out + "\"";
}

/// `text` with JSON's escapes undone, so that a piece of the password
/// holding a quote or a backslash is found in JSON output too.
string JsonUnescaped(const string& text) {
  string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && std::strchr("\"\\/", text[i + 1]) != nullptr) ++i;
    out += text[i];
  }
  return out;
}

/// Every value of `column` in an SQLite table ("" when the file or the table
/// is missing).
string SqliteColumn(const string& path, const string& table, const string& column) {
  if (!std::filesystem::exists(path)) return {};
  sqlite3* db = nullptr;
  string out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    string sql = "SELECT coalesce(" + column + ", '') FROM " + table;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) {
        out += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        out += '\n';
      }
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

class SecretsTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(RequirePasswordsForRole());
    state_db_ = db_ + "_state";
    (void)pg_->Exec("postgres", "DROP DATABASE IF EXISTS " + state_db_ + " WITH (FORCE)");
    Exec("GRANT ALL ON SCHEMA public TO " + string(kRole));
    Exec("CREATE DATABASE " + state_db_ + " OWNER " + kRole);
    // The source the CDC pipeline names.
    Exec("CREATE TABLE cdc_items (id int PRIMARY KEY)");
    Exec("CREATE PUBLICATION secrets_pub FOR TABLE cdc_items");
    csv_ = dir_.Write("in.csv", "id,name,amount\n1,a,1.50\n2,b,2.50\n");
  }

  /// Creates the role and makes the server ask it for its password (the
  /// harness trusts everyone else); pg_hba.conf is read top down.
  void RequirePasswordsForRole() {
    static bool done = false;
    if (done) return;
    ASSERT_TRUE(pg_->Exec("postgres", "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" +
                                          string(kRole) + "') THEN CREATE ROLE " + kRole +
                                          " LOGIN; END IF; END$$")
                    .ok());
    string hba_path = pg_->data_dir() + "/pg_hba.conf";
    std::ifstream in(hba_path);
    std::stringstream hba;
    hba << in.rdbuf();
    in.close();
    {
      std::ofstream out(hba_path, std::ios::trunc);
      out << "host all " << kRole << " 127.0.0.1/32 scram-sha-256\n"
          << "host replication " << kRole << " 127.0.0.1/32 scram-sha-256\n"
          << hba.str();
    }
    ASSERT_TRUE(pg_->Exec("postgres", "SELECT pg_reload_conf()").ok());
    SetRolePassword("not the one in the file");
    // The reload is asynchronous: wait until a wrong password is refused.
    for (int i = 0; i < 100; ++i) {
      string conninfo = "host=127.0.0.1 port=" + std::to_string(pg_->port()) +
                        " dbname=postgres user=" + kRole + " password=wrong sslmode=disable";
      PGconn* conn = PQconnectdb(conninfo.c_str());
      bool refused = PQstatus(conn) != CONNECTION_OK;
      PQfinish(conn);
      if (refused) {
        done = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "pg_hba.conf change not in effect";
  }

  void SetRolePassword(const string& password) {
    string quoted;
    for (char c : password) quoted += c == '\'' ? string("''") : string(1, c);
    Status s = pg_->Exec("postgres", "ALTER ROLE " + string(kRole) + " PASSWORD '" + quoted + "'");
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  /// The role's connection string to `db` with the password in `form`.
  string ConnString(Form form, const string& password, const string& db) const {
    string port = std::to_string(pg_->port());
    string base = "host=127.0.0.1 port=" + port + " dbname=" + db + " user=" + kRole + " sslmode=disable";
    switch (form) {
      case Form::kUrlRaw:
        return "postgresql://" + string(kRole) + ":" + password + "@127.0.0.1:" + port + "/" + db;
      case Form::kUrlEncoded:
        return "postgresql://" + string(kRole) + ":" + PercentEncode(password) + "@127.0.0.1:" + port + "/" +
               db + "?sslmode=disable";
      case Form::kKeyValueRaw:
        return base + " password=" + password;
      case Form::kKeyValueQuoted:
        return base + " password=" + QuoteKeyValue(password);
    }
    return {};
  }

  /// Whether libpq reads exactly what was meant from the string, so that
  /// the right password must get in.
  static bool LibpqReadsAsMeant(const string& conninfo, const string& password, const string& db) {
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
    if (options == nullptr) return false;
    std::map<string, string> values;
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
      if (o->val != nullptr) values[o->keyword] = o->val;
    }
    PQconninfoFree(options);
    return values["password"] == password && values["user"] == kRole && values["host"] == "127.0.0.1" &&
           values["dbname"] == db;
  }

  /// A file source into the role's table; the run log in SQLite, or in
  /// PostgreSQL through the harness's (trusted) user.
  string BatchPipeline(const string& name, const string& destination_url, bool postgres_state) const {
    return "name = \"" + name + "\"\n" + SimpleCsvSource(csv_) +
           "[destination]\ntype = \"postgres\"\nurl = " + Toml(destination_url) +
           "\ntable = \"public.items\"\n" +
           (postgres_state ? "[state]\nurl = " + Toml(url_) + "\n"
                           : "[state]\npath = " + Toml(dir_.Path(name + ".db")) + "\n") +
           "[retry]\nmax_attempts = 1\n" + EngineSection();
  }

  /// The role's database as the state store; the destination is trusted.
  string StatePipeline(const string& name, const string& state_url) const {
    return "name = \"" + name + "\"\n" + SimpleCsvSource(csv_) +
           "[destination]\ntype = \"postgres\"\nurl = " + Toml(url_) + "\ntable = \"public.state_items\"\n" +
           "[state]\nurl = " + Toml(state_url) + "\n[retry]\nmax_attempts = 1\n" + EngineSection();
  }

  string CdcPipeline(const string& name, const string& source_url) const {
    return "name = \"" + name + "\"\n[source]\ntype = \"postgres_cdc\"\nurl = " + Toml(source_url) +
           "\npublication = \"secrets_pub\"\n[destination]\ntype = \"null\"\n[state]\npath = " +
           Toml(dir_.Path(name + ".db")) + "\n";
  }

  void Record(const string& what, const CliResult& r) {
    outputs_.push_back({what + " stdout", r.out});
    outputs_.push_back({what + " stderr", r.err});
  }

  /// Runs every command on a pipeline file and records what it printed.
  CliResult RunAndRecord(const string& what, const std::vector<string>& args) {
    CliOptions options;
    options.timeout_ms = 30000;
    CliResult r = Sluice(args, options);
    Record(what, r);
    return r;
  }

  /// `sluice serve` on the files: the log, /status (after each pipeline has
  /// run or failed to start) and /ready.
  void ServeAndRecord(const string& what, const std::vector<string>& files) {
    std::vector<string> args = {"serve"};
    args.insert(args.end(), files.begin(), files.end());
    args.insert(args.end(), {"--listen", "127.0.0.1:0"});
    auto started = CliProcess::Start(args);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    std::unique_ptr<CliProcess> proc = std::move(started).value();
    if (proc->WaitForOutput("monitoring on http://", 20000)) {
      std::smatch m;
      string err = proc->StderrSoFar();
      ASSERT_TRUE(std::regex_search(err, m, std::regex("monitoring on http://127\\.0\\.0\\.1:([0-9]+)")))
          << err;
      httplib::Client http("127.0.0.1", std::stoi(m[1]));
      http.set_read_timeout(20, 0);
      string status_body;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (std::chrono::steady_clock::now() < deadline) {
        auto status = http.Get("/status");
        if (status) status_body = status->body;
        // Every pipeline has finished its first run (or never got to it).
        if (status && status_body.find("\"running\"") == string::npos &&
            status_body.find("\"last_run\":null") == string::npos) {
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      outputs_.push_back({what + " /status", status_body});
      auto ready = http.Get("/ready");
      outputs_.push_back({what + " /ready", ready ? ready->body : string()});
      proc->Kill(SIGTERM);
    }
    CliResult r = proc->Wait();
    Record(what, r);
  }

  /// Fails for every output that holds a 6-character piece of a spelling.
  void ExpectNoPiece(const std::vector<string>& spellings, const string& context) {
    for (const auto& [what, raw] : outputs_) {
      for (const string& text : {raw, JsonUnescaped(raw)}) {
        for (const string& spelling : spellings) {
          string piece = LeakedPiece(text, spelling);
          if (piece.empty()) continue;
          size_t at = text.find(piece);
          ADD_FAILURE() << context << ": " << what << " holds \"" << piece << "\" of \"" << spelling
                        << "\":\n..." << text.substr(at < 300 ? 0 : at - 300, 600) << "...";
          break;
        }
      }
    }
    outputs_.clear();
  }

  std::vector<std::pair<string, string>> outputs_;
  string state_db_;
  string csv_;
};

TEST_F(SecretsTest, RandomPasswordsNeverReachOutputLogsStatusReadinessOrTheRunLog) {
  std::mt19937 rng(20240914);
  const auto t0 = std::chrono::steady_clock::now();
  int n = 0;
  for (Form form : {Form::kUrlRaw, Form::kUrlEncoded, Form::kKeyValueRaw, Form::kKeyValueQuoted}) {
    for (int i = 0; i < 2; ++i, ++n) {
      const string password = RandomPassword(rng, i == 1);
      const string dest = ConnString(form, password, db_);
      const string state = ConnString(form, password, state_db_);
      const bool readable = LibpqReadsAsMeant(dest, password, db_);
      const string context = string(FormName(form)) + " password #" + std::to_string(i) + " (" +
                             (readable ? "libpq reads it as written" : "libpq cannot read it as written") +
                             ")";
      SCOPED_TRACE(context);
      std::vector<string> spellings = {password};
      if (form == Form::kUrlEncoded) spellings.push_back(PercentEncode(password));
      if (form == Form::kKeyValueQuoted) spellings.push_back(QuoteKeyValue(password));
      const string tag = "p" + std::to_string(n);

      // The role's password is this one: a form libpq reads as written gets in.
      ASSERT_NO_FATAL_FAILURE(SetRolePassword(password));
      string batch = dir_.Write(tag + "_batch.toml", BatchPipeline(tag + "_batch", dest, false));
      CliResult run = RunAndRecord("run", {"run", batch, "--once", "--progress", "never"});
      CliResult validate = RunAndRecord("validate", {"validate", batch});
      string with_state = dir_.Write(tag + "_state.toml", StatePipeline(tag + "_state", state));
      CliResult state_run =
          RunAndRecord("run ([state] url)", {"run", with_state, "--once", "--progress", "never"});
      CliResult cdc_validate = RunAndRecord(
          "validate (cdc)", {"validate", dir_.Write(tag + "_cdc.toml", CdcPipeline(tag + "_cdc", dest))});
      if (readable) {
        EXPECT_EQ(run.exit_code, 0) << Describe(run);
        EXPECT_EQ(validate.exit_code, 0) << Describe(validate);
        EXPECT_EQ(state_run.exit_code, 0) << Describe(state_run);
      } else {
        EXPECT_NE(run.exit_code, 0) << Describe(run);
      }
      if (form == Form::kUrlRaw && password.find_first_of("@/") != string::npos) {
        // The config check explains what to write instead.
        EXPECT_NE(run.err.find("[destination] url: the "), string::npos) << Describe(run);
        EXPECT_NE(run.err.find("write it as %"), string::npos) << Describe(run);
      }
      outputs_.push_back(
          {"run log (SQLite runs)", SqliteColumn(dir_.Path(tag + "_batch.db"), "runs", "error")});
      ExpectNoPiece(spellings, context + ", right password");

      // A wrong password: every error path, the run logs and the monitor.
      ASSERT_NO_FATAL_FAILURE(SetRolePassword("wrong-" + password.substr(0, 2)));
      string failing = dir_.Write(tag + "_fail.toml", BatchPipeline(tag + "_fail", dest, i % 2 == 1));
      RunAndRecord("run", {"run", failing, "--once", "--progress", "never"});
      RunAndRecord("run --log-format json",
                   {"run", failing, "--once", "--progress", "never", "--log-format", "json"});
      RunAndRecord("validate", {"validate", failing});
      RunAndRecord("run ([state] url)",
                   {"run", with_state, "--once", "--progress", "never", "--log-format", "json"});
      RunAndRecord("validate ([state] url)", {"validate", with_state});
      string cdc = dir_.Write(tag + "_cdc.toml", CdcPipeline(tag + "_cdc", dest));
      RunAndRecord("run (cdc)", {"run", cdc, "--log-format", "json"});
      ASSERT_NO_FATAL_FAILURE(ServeAndRecord("serve", {failing}));
      ASSERT_NO_FATAL_FAILURE(ServeAndRecord("serve ([state] url)", {with_state}));
      outputs_.push_back(
          {"run log (SQLite runs)", SqliteColumn(dir_.Path(tag + "_fail.db"), "runs", "error")});
      outputs_.push_back(
          {"run log (SQLite run_files)", SqliteColumn(dir_.Path(tag + "_fail.db"), "run_files", "error")});
      ExpectNoPiece(spellings, context + ", wrong password");
    }
  }
  // The run logs in PostgreSQL: the harness's for the failing pipelines and
  // the role's own for the [state] url ones.
  for (const auto& [db, table] :
       {std::pair{db_, "sluice.runs"}, std::pair{db_, "sluice.run_files"},
        std::pair{state_db_, "sluice.runs"}, std::pair{state_db_, "sluice.run_files"}}) {
    auto rows =
        pg_->Query(db, string("SELECT coalesce(string_agg(coalesce(error, ''), E'\\n'), '') FROM ") + table);
    ASSERT_TRUE(rows.ok()) << table << ": " << rows.status().ToString();
    outputs_.push_back({db + " " + table, rows->empty() ? string() : rows->at(0).at(0).value_or("")});
  }
  auto failed_runs = pg_->QueryScalar(db_, "SELECT count(*) FROM sluice.runs WHERE status = 'failed'");
  EXPECT_TRUE(failed_runs.ok() && *failed_runs != "0") << "the run log recorded failed runs";
  std::mt19937 replay(20240914);
  std::vector<string> all;
  for (int i = 0; i < n; ++i) {
    string password = RandomPassword(replay, i % 2 == 1);
    all.insert(all.end(), {password, PercentEncode(password), QuoteKeyValue(password)});
  }
  ExpectNoPiece(all, "PostgreSQL run logs");
  std::cerr << "[ secrets  ] " << n << " passwords in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
}

}  // namespace
}  // namespace sluice::e2e
