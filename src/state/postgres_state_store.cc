#include "state/postgres_state_store.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "state/http_url_key.h"
#include "state/pg_session.h"
#include "state/postgres_migrate.h"

namespace sluice::state {
namespace {

// Unix milliseconds to timestamptz and back (extract(epoch ...) * 1000),
// exactly: integer and numeric arithmetic both ways.
#define SLUICE_MS_TO_TS(p) "('epoch'::timestamptz + (" p ")::bigint * interval '1 millisecond')"

// The ledger keeps every version loaded: recording one twice changes
// nothing, so the statement is idempotent (MarkLoaded repeats it after a
// lost connection). In a destination's transaction it affects no row when
// the version is already there: another process loaded the object first (a
// concurrent one waits on the version's index entry, then sees the
// committed row), and the load must roll back.
constexpr const char* kInsertLedger =
    "INSERT INTO sluice.file_ledger (pipeline, key, etag, size, modified_at, run_id, loaded_at) "
    "VALUES ($1, $2, $3, $4::bigint, " SLUICE_MS_TO_TS("$5") ", $6::bigint, now()) "
    "ON CONFLICT (pipeline, key, etag) DO NOTHING";

// The versions of the page that are in the ledger: exact (key, etag) pairs,
// looked up through the primary key, so a key with many versions loaded
// costs no more than one with a single version.
constexpr const char* kLoadedVersions =
    "SELECT l.key, l.etag FROM sluice.file_ledger AS l "
    "JOIN unnest($2::text[], $3::text[]) AS p(key, etag) ON l.key = p.key AND l.etag = p.etag "
    "WHERE l.pipeline = $1";

// The run lock of a pipeline: a session-level advisory lock in the
// two-int key space (the migration lock is a one-bigint key, so the two
// never collide). Two pipeline names with the same hashtext() share a lock,
// which costs only their running at the same time.
constexpr const char* kTryLockPipeline =
    "SELECT pg_try_advisory_lock(hashtext('sluice.pipeline'), hashtext($1))";
constexpr const char* kUnlockPipeline =
    "SELECT pg_advisory_unlock(hashtext('sluice.pipeline'), hashtext($1))";

// A worker is alive while its row has not expired; what it holds (leases,
// claims) is free for the others once it has. Times are the database's, so
// the machines' clocks need not agree.
#define SLUICE_WORKER_ALIVE(pipeline, worker)                                                     \
  "EXISTS (SELECT 1 FROM sluice.workers w WHERE w.pipeline = " pipeline " AND w.worker = " worker \
  " AND w.expires_at > now())"

// Runs left "running" by workers that are gone (a run of this worker left by
// an earlier process with the same host:pid is gone too). Runs from before
// migration 5 have no worker: only one process could have run them.
constexpr const char* kCloseAbandonedRuns =
    "UPDATE sluice.runs AS r SET status = 'failed', error = $2, finished_at = " SLUICE_MS_TO_TS(
        "$3") " WHERE r.pipeline = $1 AND r.status = 'running' AND (r.worker IS NULL OR r.worker = $4 OR NOT "
    SLUICE_WORKER_ALIVE("r.pipeline", "r.worker") ")";

constexpr const char* kHeartbeat =
    "INSERT INTO sluice.workers (pipeline, worker, started_at, seen_at, expires_at, doing) "
    "VALUES ($1, $2, now(), now(), now() + $3::bigint * interval '1 millisecond', nullif($4, '')) "
    "ON CONFLICT (pipeline, worker) DO UPDATE SET seen_at = now(), expires_at = excluded.expires_at, "
    "doing = excluded.doing";

// Free (holder ''), held by this worker already, or held by a worker that is
// gone: taken, with a new epoch when the holder changes.
constexpr const char* kAcquireLease =
    "INSERT INTO sluice.leases AS l (pipeline, name, holder, epoch, acquired_at) VALUES ($1, $2, $3, 1, "
    "now()) "
    "ON CONFLICT (pipeline, name) DO UPDATE SET holder = excluded.holder, "
    "epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END, "
    "acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE now() END "
    "WHERE l.holder = excluded.holder OR l.holder = '' OR NOT " SLUICE_WORKER_ALIVE(
        "l.pipeline", "l.holder") " RETURNING epoch";

// The lease row stays (holder '') so that its epoch only ever grows.
constexpr const char* kReleaseLease =
    "UPDATE sluice.leases SET holder = '' WHERE pipeline = $1 AND name = $2 AND holder = $3";

constexpr const char* kLeaseFence =
    "SELECT 1 FROM sluice.leases WHERE pipeline = $1 AND name = $2 AND holder = $3 AND epoch = $4::bigint "
    "FOR SHARE";

constexpr const char* kOfferFiles =
    "INSERT INTO sluice.file_claims (pipeline, key, etag, size, modified_at) "
    "SELECT $1, o.key, o.etag, o.size, ('epoch'::timestamptz + o.modified * interval '1 millisecond') "
    "FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS o(key, etag, size, modified) "
    "ON CONFLICT (pipeline, key, etag) DO NOTHING";

// Offers of versions that are in the ledger (loaded by a worker whose
// listing came before another's commit): nothing left to do.
constexpr const char* kPruneClaims =
    "DELETE FROM sluice.file_claims AS c USING sluice.file_ledger AS l WHERE c.pipeline = $1 "
    "AND l.pipeline = c.pipeline AND l.key = c.key AND l.etag = c.etag";

// Each row once: rows other workers are claiming right now are skipped,
// not waited for.
constexpr const char* kClaimFiles =
    "WITH free AS (SELECT c.key, c.etag FROM sluice.file_claims AS c WHERE c.pipeline = $1 "
    "AND (c.holder IS NULL OR (c.holder <> $2 AND NOT " SLUICE_WORKER_ALIVE("c.pipeline", "c.holder") ")) "
    "AND NOT EXISTS (SELECT 1 FROM sluice.file_ledger l WHERE l.pipeline = c.pipeline AND l.key = c.key "
    "AND l.etag = c.etag) ORDER BY c.key, c.etag LIMIT $3::int FOR UPDATE OF c SKIP LOCKED) "
    "UPDATE sluice.file_claims AS c SET holder = $2, claimed_at = now() FROM free "
    "WHERE c.pipeline = $1 AND c.key = free.key AND c.etag = free.etag "
    "RETURNING c.key, c.etag, c.size, (extract(epoch FROM c.modified_at) * 1000)::bigint";

constexpr const char* kGiveBackClaims =
    "UPDATE sluice.file_claims AS c SET holder = NULL, claimed_at = NULL "
    "FROM unnest($3::text[], $4::text[]) AS o(key, etag) "
    "WHERE c.pipeline = $1 AND c.holder = $2 AND c.key = o.key AND c.etag = o.etag";

constexpr const char* kDropClaims =
    "DELETE FROM sluice.file_claims AS c USING unnest($3::text[], $4::text[]) AS o(key, etag) "
    "WHERE c.pipeline = $1 AND c.holder = $2 AND c.key = o.key AND c.etag = o.etag";

constexpr const char* kDropClaim =
    "DELETE FROM sluice.file_claims WHERE pipeline = $1 AND key = $2 AND etag = $3 AND holder = $4";

constexpr const char* kWorkers =
    "SELECT w.worker, (extract(epoch FROM w.started_at) * 1000)::bigint, "
    "(extract(epoch FROM w.seen_at) * 1000)::bigint, (extract(epoch FROM w.expires_at) * 1000)::bigint, "
    "coalesce(w.doing, ''), "
    "coalesce((SELECT string_agg(l.name, ',' ORDER BY l.name) FROM sluice.leases l "
    "WHERE l.pipeline = w.pipeline AND l.holder = w.worker), ''), "
    "(SELECT count(*) FROM sluice.file_claims c WHERE c.pipeline = w.pipeline AND c.holder = w.worker), "
    "coalesce((SELECT (extract(epoch FROM min(c.claimed_at)) * 1000)::bigint FROM sluice.file_claims c "
    "WHERE c.pipeline = w.pipeline AND c.holder = w.worker), 0) "
    "FROM sluice.workers w WHERE w.pipeline = $1 AND w.expires_at > now() ORDER BY w.started_at, w.worker";

// HTTP validators per statement: a few hundred kilobytes of parameters.
constexpr size_t kValidatorChunk = 1000;

// The validators of a chunk of URL hashes: one primary key lookup per hash.
// LIMIT 1 (the key is unique anyway) keeps the planner from turning this into
// a scan of the pipeline's every row, which it does for `url_hash = ANY($2)`
// and, on a table whose statistics are stale, for a plain join.
constexpr const char* kSelectValidators =
    "SELECT h.url_hash, coalesce(v.etag, ''), coalesce(v.last_modified, '') "
    "FROM unnest($2::text[]) AS h(url_hash) CROSS JOIN LATERAL ("
    "SELECT etag, last_modified FROM sluice.http_validators "
    "WHERE pipeline = $1 AND url_hash = h.url_hash LIMIT 1) AS v";

// A chunk of validators, each URL once (ON CONFLICT DO UPDATE cannot touch
// a row twice in one statement); empty validators are NULL. Repeating it
// leaves the same values, so it is idempotent.
constexpr const char* kUpsertValidators =
    "INSERT INTO sluice.http_validators (pipeline, url_hash, url, etag, last_modified, updated_at) "
    "SELECT $1, v.url_hash, v.url, nullif(v.etag, ''), nullif(v.last_modified, ''), now() "
    "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS v(url_hash, url, etag, last_modified) "
    "ON CONFLICT (pipeline, url_hash) DO UPDATE SET url = excluded.url, etag = excluded.etag, "
    "last_modified = excluded.last_modified, updated_at = excluded.updated_at";

// A join, not `url_hash = ANY($2)`: with statistics the planner looks each
// hash up through the primary key, where ANY would scan the pipeline's rows.
constexpr const char* kDeleteValidators =
    "DELETE FROM sluice.http_validators AS t USING unnest($2::text[]) AS h(url_hash) "
    "WHERE t.pipeline = $1 AND t.url_hash = h.url_hash";

/// A validator as the table keeps it: the URL's hash and redacted form.
struct ValidatorRow {
  std::string url_hash;
  std::string url;
  std::string etag;
  std::string last_modified;
};

constexpr const char* kRunColumns =
    "id, pipeline, (extract(epoch FROM started_at) * 1000)::bigint, "
    "(extract(epoch FROM finished_at) * 1000)::bigint, status, coalesce(error, ''), files, rows, "
    "coalesce(worker, '')";

std::string Int(int64_t v) { return std::to_string(v); }

std::string Double(double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

/// Negative counts are unknown: NULL.
PgValue CountOrNull(int64_t v) { return v >= 0 ? PgValue(Int(v)) : std::nullopt; }

int64_t ToInt(const PgValue& v) {
  int64_t out = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

double ToDouble(const PgValue& v) {
  if (!v) return 0;
  double out = 0;
  std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

std::string Text(const PgValue& v) { return v.value_or(""); }

/// A text[] literal of one field of each item (e.g. &ObjectInfo::key):
/// every element double-quoted, with '"' and '\' backslash-escaped, so
/// commas, braces, quotes, spaces and NULL-like words stay plain text. Sent
/// as a parameter, never pasted into SQL.
template <typename Range, typename Field>
std::string TextArrayLiteral(const Range& items, Field field) {
  std::string out = "{";
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ',';
    first = false;
    out += '"';
    for (char c : std::invoke(field, item)) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

/// A bigint[] literal of one integer field of each item.
template <typename Range, typename Field>
std::string IntArrayLiteral(const Range& items, Field field) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += std::to_string(std::invoke(field, item));
  }
  return out + "}";
}

PgParams LedgerParams(const std::string& pipeline, int64_t run_id, const ObjectInfo& o) {
  return {pipeline, o.key, o.etag, Int(o.size), Int(o.modified_unix_ms), Int(run_id)};
}

class PostgresStateStore final : public StateStore {
 public:
  explicit PostgresStateStore(std::unique_ptr<PgConnection> session) : session_(std::move(session)) {}

  Status Migrate() {
    std::lock_guard<std::mutex> lock(mu_);
    return MigratePostgresStore(*session_, Describe());
  }

  std::string Describe() const override { return "postgres " + session_->where() + " (schema sluice)"; }
  std::string PostgresDatabase() const override { return session_->where(); }

  Status Ping() override {
    return Locked(kIdempotent, [](PgConnection& s) { return s.Statement("SELECT 1").status(); });
  }

  Result<std::vector<ObjectInfo>> FilterNew(const std::string& pipeline,
                                            const std::vector<ObjectInfo>& page) override {
    if (page.empty()) return std::vector<ObjectInfo>{};
    const PgParams params = {pipeline, TextArrayLiteral(page, &ObjectInfo::key),
                             TextArrayLiteral(page, &ObjectInfo::etag)};
    auto loaded = Locked(kIdempotent, [&](PgConnection& s) { return s.Statement(kLoadedVersions, params); });
    if (!loaded.ok()) return loaded.status();
    std::set<std::pair<std::string, std::string>> versions;
    for (auto& row : loaded->rows) versions.emplace(Text(row[0]), Text(row[1]));
    std::vector<ObjectInfo> out;
    for (const ObjectInfo& object : page) {
      if (!versions.contains({object.key, object.etag})) out.push_back(object);
    }
    return out;
  }

  Status MarkLoaded(const std::string& pipeline, int64_t run_id,
                    const std::vector<ObjectInfo>& objects) override {
    if (objects.empty()) return Status::OK();
    // Repeating the whole transaction after a lost connection (even one
    // lost during COMMIT) leaves the same rows.
    return Locked(kIdempotent, [&](PgConnection& s) {
      return Transaction(s, "BEGIN", [&](PgConnection& t) -> Status {
        for (const ObjectInfo& o : objects) {
          SLUICE_RETURN_IF_ERROR(t.Statement(kInsertLedger, LedgerParams(pipeline, run_id, o)).status());
        }
        return Status::OK();
      });
    });
  }

  Result<std::vector<CommitStatement>> MarkLoadedStatements(const std::string& pipeline, int64_t run_id,
                                                            const std::vector<ObjectInfo>& objects) override {
    std::vector<CommitStatement> out;
    out.reserve(objects.size());
    for (const ObjectInfo& o : objects) {
      CommitStatement st;
      st.sql = kInsertLedger;
      st.params = LedgerParams(pipeline, run_id, o);
      st.expect_rows = 1;
      out.push_back(std::move(st));
    }
    return out;
  }

  Result<std::vector<HttpValidator>> HttpValidators(const std::string& pipeline,
                                                    const std::vector<std::string>& urls) override {
    HttpValidatorLookup lookup(urls);
    const std::vector<std::string>& hashes = lookup.hashes();
    for (size_t begin = 0; begin < hashes.size(); begin += kValidatorChunk) {
      const std::span<const std::string> chunk =
          std::span(hashes).subspan(begin, std::min(kValidatorChunk, hashes.size() - begin));
      const PgParams params = {pipeline, TextArrayLiteral(chunk, std::identity())};
      auto r = Locked(kIdempotent, [&](PgConnection& s) { return s.Statement(kSelectValidators, params); });
      if (!r.ok()) return r.status().WithContext("HTTP validators of pipeline " + pipeline);
      for (auto& row : r->rows) lookup.Found(Text(row[0]), Text(row[1]), Text(row[2]));
    }
    return lookup.Take();
  }

  Status SaveHttpValidators(const std::string& pipeline,
                            const std::vector<HttpValidator>& validators) override {
    std::vector<ValidatorRow> upserts;
    std::vector<std::string> deletes;  // url hashes
    for (const HttpValidator& v : LastValidatorPerUrl(validators)) {
      if (v.etag.empty() && v.last_modified.empty()) {
        deletes.push_back(HttpUrlHash(v.url));
      } else {
        upserts.push_back(ValidatorRow{HttpUrlHash(v.url), StoredHttpUrl(v.url), v.etag, v.last_modified});
      }
    }
    if (upserts.empty() && deletes.empty()) return Status::OK();
    // Each URL appears once, so the transaction as a whole is idempotent:
    // repeating it after a lost connection (even during COMMIT) leaves the
    // same rows.
    Status st = Locked(kIdempotent, [&](PgConnection& s) {
      return Transaction(s, "BEGIN", [&](PgConnection& t) -> Status {
        for (size_t begin = 0; begin < upserts.size(); begin += kValidatorChunk) {
          const std::span<const ValidatorRow> chunk =
              std::span(upserts).subspan(begin, std::min(kValidatorChunk, upserts.size() - begin));
          SLUICE_RETURN_IF_ERROR(
              t.Statement(kUpsertValidators, {pipeline, TextArrayLiteral(chunk, &ValidatorRow::url_hash),
                                              TextArrayLiteral(chunk, &ValidatorRow::url),
                                              TextArrayLiteral(chunk, &ValidatorRow::etag),
                                              TextArrayLiteral(chunk, &ValidatorRow::last_modified)})
                  .status());
        }
        for (size_t begin = 0; begin < deletes.size(); begin += kValidatorChunk) {
          const std::span<const std::string> chunk =
              std::span(deletes).subspan(begin, std::min(kValidatorChunk, deletes.size() - begin));
          SLUICE_RETURN_IF_ERROR(
              t.Statement(kDeleteValidators, {pipeline, TextArrayLiteral(chunk, std::identity())}).status());
        }
        return Status::OK();
      });
    });
    return st.WithContext("HTTP validators of pipeline " + pipeline);
  }

  Result<bool> TryLockPipeline(const std::string& pipeline) override {
    // Through Locked: a connection found broken is reset first, which drops
    // held_ (the server released the locks with the old session), so the
    // lock is then taken again on the new connection.
    auto r = Locked(kIdempotent, [&](PgConnection& s) -> Result<bool> {
      if (held_.contains(pipeline)) {
        // Held on this connection, if it is still alive: one round trip
        // tells (a failure resets the connection and clears held_, and the
        // retry takes the lock anew).
        SLUICE_RETURN_IF_ERROR(s.Statement("SELECT 1").status());
        return true;
      }
      SLUICE_ASSIGN_OR_RETURN(PgQueryResult taken, s.Statement(kTryLockPipeline, {pipeline}));
      if (Text(taken.rows.at(0).at(0)) != "t") return false;
      held_.insert(pipeline);
      return true;
    });
    if (!r.ok()) return r.status().WithContext("run lock of pipeline " + pipeline);
    return r;
  }

  void UnlockPipeline(const std::string& pipeline) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_.erase(pipeline) == 0) return;
    // A connection that is gone took the lock with it; one that fails now
    // is reset by the next call, which ends the session and so the lock.
    if (!session_->alive()) return;
    // An aborted transaction would refuse the unlock.
    if (session_->in_transaction()) (void)session_->Exec("ROLLBACK");
    (void)session_->Statement(kUnlockPipeline, {pipeline});
  }

  Result<int64_t> BeginRun(const std::string& pipeline, int64_t started_unix_ms) override {
    // Not repeated after a lost connection: the first INSERT may have
    // committed, and a second would leave a phantom "running" run.
    auto r = Locked(kOnce, [&](PgConnection& s) {
      return s.Statement(
          "INSERT INTO sluice.runs (pipeline, started_at, status, worker) VALUES ($1, " SLUICE_MS_TO_TS(
              "$2") ", 'running', $3) RETURNING id",
          {pipeline, Int(started_unix_ms), worker()});
    });
    if (!r.ok()) return r.status();
    return ToInt(r->rows.at(0).at(0));
  }

  Status FinishRun(int64_t run_id, const std::string& status, const std::string& error, int64_t files,
                   int64_t rows, int64_t finished_unix_ms) override {
    auto r = Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement(
          "UPDATE sluice.runs SET status = $2, error = nullif($3, ''), files = $4::bigint, "
          "rows = $5::bigint, finished_at = " SLUICE_MS_TO_TS("$6") " WHERE id = $1::bigint",
          {Int(run_id), status, error, Int(files), Int(rows), Int(finished_unix_ms)});
    });
    if (!r.ok()) return r.status();
    if (r->affected == 0) {
      return Status::NotFound("run " + Int(run_id) + " is not in the run log of " + Describe());
    }
    return Status::OK();
  }

  Status RecordFile(const FileRecord& f) override {
    return Locked(kOnce, [&](PgConnection& s) {
      return s
          .Statement(
              "INSERT INTO sluice.run_files (run_id, pipeline, file, etag, size, rows_in, rows_out, bytes, "
              "seconds, status, error) VALUES ($1::bigint, $2, $3, nullif($4, ''), $5::bigint, $6::bigint, "
              "$7::bigint, $8::bigint, $9::double precision, $10, nullif($11, ''))",
              {Int(f.run_id), f.pipeline, f.file, f.etag, Int(f.size), CountOrNull(f.rows_in),
               CountOrNull(f.rows_out), Int(f.bytes), Double(f.seconds), f.status, f.error})
          .status();
    });
  }

  Result<std::optional<std::string>> OutputClaim(const std::string& pipeline,
                                                 const std::string& output) override {
    auto r = Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement("SELECT input FROM sluice.file_outputs WHERE pipeline = $1 AND output = $2",
                         {pipeline, output});
    });
    if (!r.ok()) return r.status();
    if (r->rows.empty()) return std::optional<std::string>();
    return std::optional<std::string>(Text(r->rows[0][0]));
  }

  Status ClaimOutput(const std::string& pipeline, const std::string& output, const std::string& input,
                     int64_t run_id) override {
    return Locked(kIdempotent, [&](PgConnection& s) {
      return s
          .Statement(
              "INSERT INTO sluice.file_outputs (pipeline, output, input, run_id) "
              "VALUES ($1, $2, $3, $4::bigint) ON CONFLICT (pipeline, output) DO NOTHING",
              {pipeline, output, input, Int(run_id)})
          .status();
    });
  }

  Result<std::vector<RunRecord>> RecentRuns(const std::string& pipeline, int limit) override {
    if (limit <= 0) return std::vector<RunRecord>{};
    auto r = Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement(
          std::string("SELECT ") + kRunColumns +
              " FROM sluice.runs WHERE pipeline = $1 ORDER BY started_at DESC, id DESC LIMIT $2::int",
          {pipeline, Int(limit)});
    });
    if (!r.ok()) return r.status();
    std::vector<RunRecord> out;
    out.reserve(r->rows.size());
    for (auto& row : r->rows) {
      RunRecord run;
      run.id = ToInt(row[0]);
      run.pipeline = Text(row[1]);
      run.started_unix_ms = ToInt(row[2]);
      if (row[3]) run.finished_unix_ms = ToInt(row[3]);
      run.status = Text(row[4]);
      run.error = Text(row[5]);
      run.files = ToInt(row[6]);
      run.rows = ToInt(row[7]);
      run.worker = Text(row[8]);
      out.push_back(std::move(run));
    }
    return out;
  }

  Result<std::vector<FileRecord>> FilesOfRun(int64_t run_id) override {
    auto r = Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement(
          "SELECT run_id, pipeline, file, coalesce(etag, ''), size, rows_in, rows_out, bytes, seconds, "
          "status, coalesce(error, '') FROM sluice.run_files WHERE run_id = $1::bigint ORDER BY id",
          {Int(run_id)});
    });
    if (!r.ok()) return r.status();
    std::vector<FileRecord> out;
    out.reserve(r->rows.size());
    for (auto& row : r->rows) {
      FileRecord f;
      f.run_id = ToInt(row[0]);
      f.pipeline = Text(row[1]);
      f.file = Text(row[2]);
      f.etag = Text(row[3]);
      f.size = ToInt(row[4]);
      f.rows_in = row[5] ? ToInt(row[5]) : -1;
      f.rows_out = row[6] ? ToInt(row[6]) : -1;
      f.bytes = ToInt(row[7]);
      f.seconds = ToDouble(row[8]);
      f.status = Text(row[9]);
      f.error = Text(row[10]);
      out.push_back(std::move(f));
    }
    return out;
  }

  Status CloseAbandonedRuns(const std::string& pipeline, int64_t now_unix_ms) override {
    return Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement(kCloseAbandonedRuns, {pipeline, kAbandonedRunError, Int(now_unix_ms), worker()})
          .status();
    });
  }

  bool SharesWork() const override { return true; }

  Result<std::vector<std::string>> Heartbeat(const std::string& pipeline, int64_t lease_ms,
                                             const std::string& doing) override {
    auto r = Locked(kIdempotent, [&](PgConnection& s) -> Result<PgQueryResult> {
      SLUICE_RETURN_IF_ERROR(s.Statement(kHeartbeat, {pipeline, worker(), Int(lease_ms), doing}).status());
      // Rows of workers long gone (a machine that never came back).
      SLUICE_RETURN_IF_ERROR(
          s.Statement(
               "DELETE FROM sluice.workers WHERE pipeline = $1 AND expires_at < now() - interval '1 day'",
               {pipeline})
              .status());
      return s.Statement("SELECT name FROM sluice.leases WHERE pipeline = $1 AND holder = $2 ORDER BY name",
                         {pipeline, worker()});
    });
    if (!r.ok()) return r.status().WithContext("heartbeat of worker " + worker());
    std::vector<std::string> leases;
    for (auto& row : r->rows) leases.push_back(Text(row[0]));
    return leases;
  }

  Status LeaveWork(const std::string& pipeline) override {
    return Locked(kIdempotent, [&](PgConnection& s) {
      return Transaction(s, "BEGIN", [&](PgConnection& t) -> Status {
        SLUICE_RETURN_IF_ERROR(t.Statement("UPDATE sluice.file_claims SET holder = NULL, claimed_at = NULL "
                                           "WHERE pipeline = $1 AND holder = $2",
                                           {pipeline, worker()})
                                   .status());
        SLUICE_RETURN_IF_ERROR(
            t.Statement("UPDATE sluice.leases SET holder = '' WHERE pipeline = $1 AND holder = $2",
                        {pipeline, worker()})
                .status());
        return t
            .Statement("DELETE FROM sluice.workers WHERE pipeline = $1 AND worker = $2", {pipeline, worker()})
            .status();
      });
    });
  }

  Result<std::optional<int64_t>> TryAcquireLease(const std::string& pipeline,
                                                 const std::string& name) override {
    auto r = Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement(kAcquireLease, {pipeline, name, worker()});
    });
    if (!r.ok()) return r.status().WithContext("lease " + name + " of pipeline " + pipeline);
    if (r->rows.empty()) return std::optional<int64_t>();
    return std::optional<int64_t>(ToInt(r->rows[0][0]));
  }

  Status ReleaseLease(const std::string& pipeline, const std::string& name) override {
    return Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement(kReleaseLease, {pipeline, name, worker()}).status();
    });
  }

  std::vector<CommitStatement> LeaseFence(const std::string& pipeline, const std::string& name,
                                          int64_t epoch) const override {
    return {CommitStatement{kLeaseFence, {pipeline, name, worker(), Int(epoch)}, 1}};
  }

  Status OfferFiles(const std::string& pipeline, const std::vector<ObjectInfo>& objects) override {
    constexpr size_t kChunk = 1000;
    return Locked(kIdempotent, [&](PgConnection& s) -> Status {
      for (size_t at = 0; at < objects.size(); at += kChunk) {
        std::span<const ObjectInfo> chunk(objects.data() + at, std::min(kChunk, objects.size() - at));
        SLUICE_RETURN_IF_ERROR(
            s.Statement(kOfferFiles, {pipeline, TextArrayLiteral(chunk, &ObjectInfo::key),
                                      TextArrayLiteral(chunk, &ObjectInfo::etag),
                                      IntArrayLiteral(chunk, &ObjectInfo::size),
                                      IntArrayLiteral(chunk, &ObjectInfo::modified_unix_ms)})
                .status());
      }
      return s.Statement(kPruneClaims, {pipeline}).status();
    });
  }

  Result<std::vector<ObjectInfo>> ClaimFiles(const std::string& pipeline, int limit) override {
    auto r = Locked(kOnce, [&](PgConnection& s) {
      return s.Statement(kClaimFiles, {pipeline, worker(), Int(limit)});
    });
    if (!r.ok()) return r.status().WithContext("claiming files of pipeline " + pipeline);
    std::vector<ObjectInfo> out;
    for (auto& row : r->rows) out.push_back({Text(row[0]), Text(row[1]), ToInt(row[2]), ToInt(row[3])});
    // RETURNING gives no order.
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) {
      return std::tie(a.key, a.etag) < std::tie(b.key, b.etag);
    });
    return out;
  }

  Status EndClaims(const std::string& pipeline, const std::vector<ObjectInfo>& objects, bool retry) override {
    if (objects.empty()) return Status::OK();
    return Locked(kIdempotent, [&](PgConnection& s) {
      return s
          .Statement(retry ? kGiveBackClaims : kDropClaims,
                     {pipeline, worker(), TextArrayLiteral(objects, &ObjectInfo::key),
                      TextArrayLiteral(objects, &ObjectInfo::etag)})
          .status();
    });
  }

  std::vector<CommitStatement> EndClaimStatements(const std::string& pipeline,
                                                  const std::vector<ObjectInfo>& objects) const override {
    std::vector<CommitStatement> out;
    for (const ObjectInfo& o : objects) out.push_back({kDropClaim, {pipeline, o.key, o.etag, worker()}, 1});
    return out;
  }

  Status ExpireWorker(const std::string& pipeline, const std::string& worker) override {
    return Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement("DELETE FROM sluice.workers WHERE pipeline = $1 AND worker = $2", {pipeline, worker})
          .status();
    });
  }

  Status EndSessionsOfOtherWorkers(const std::string& pipeline) override {
    auto others = Locked(kIdempotent, [&](PgConnection& s) {
      return s.Statement("SELECT worker FROM sluice.workers WHERE pipeline = $1 AND worker <> $2",
                         {pipeline, worker()});
    });
    if (!others.ok()) return others.status();
    std::vector<std::string> names;
    for (auto& row : others->rows) names.push_back(WorkerSessionName(pipeline, Text(row[0])));
    if (names.empty()) return Status::OK();
    return Locked(kIdempotent, [&](PgConnection& s) {
      return s
          .Statement(
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
              "ANY($1::text[]) AND pid <> pg_backend_pid()",
              {TextArrayLiteral(names, std::identity())})
          .status();
    });
  }

  Result<std::vector<WorkerInfo>> Workers(const std::string& pipeline) override {
    auto r = Locked(kIdempotent, [&](PgConnection& s) { return s.Statement(kWorkers, {pipeline}); });
    if (!r.ok()) return r.status();
    std::vector<WorkerInfo> out;
    for (auto& row : r->rows) {
      WorkerInfo w;
      w.worker = Text(row[0]);
      w.started_unix_ms = ToInt(row[1]);
      w.seen_unix_ms = ToInt(row[2]);
      w.expires_unix_ms = ToInt(row[3]);
      w.doing = Text(row[4]);
      std::string leases = Text(row[5]);
      for (size_t at = 0; !leases.empty() && at != std::string::npos;) {
        size_t comma = leases.find(',', at);
        w.leases.push_back(leases.substr(at, comma == std::string::npos ? comma : comma - at));
        at = comma == std::string::npos ? comma : comma + 1;
      }
      w.claimed_files = ToInt(row[6]);
      w.claimed_since_unix_ms = ToInt(row[7]);
      out.push_back(std::move(w));
    }
    return out;
  }

 private:
  static constexpr bool kIdempotent = true;
  static constexpr bool kOnce = false;

  /// Runs fn on the session under the mutex (see RunOnSession).
  template <typename Fn>
  auto Locked(bool idempotent, Fn&& fn) -> decltype(fn(std::declval<PgConnection&>())) {
    std::lock_guard<std::mutex> lock(mu_);
    return RunOnSession(
        *session_, idempotent, [&] { return ResetSession(); }, fn);
  }

  /// Reconnects. The old session's run locks ended with it (the server
  /// releases them when it notices the connection is gone).
  Status ResetSession() {
    held_.clear();
    return session_->Reset();
  }

  template <typename Fn>
  static Status Transaction(PgConnection& s, const char* begin, Fn&& fn) {
    return RunTransaction(s, begin, fn);
  }

  std::mutex mu_;
  std::unique_ptr<PgConnection> session_;
  std::set<std::string> held_;  // run locks held by the current session
};

}  // namespace

Result<std::unique_ptr<StateStore>> OpenPostgresStateStore(const std::string& url) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> session, ConnectStateStore(url));
  auto store = std::make_unique<PostgresStateStore>(std::move(session));
  SLUICE_RETURN_IF_ERROR(store->Migrate());
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace sluice::state

#undef SLUICE_MS_TO_TS
#undef SLUICE_WORKER_ALIVE
