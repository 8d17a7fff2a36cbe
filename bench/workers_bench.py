#!/usr/bin/env python3
"""Workers benchmark: several sluice processes serving one pipeline.

Two measurements, in one run, with the state store in the destination's
PostgreSQL database (exactly once, fenced):

  scale-out  200 Parquet objects (10,000 rows each) in a local S3 server
             (s3rver), an incremental `batch = "per_file"` pipeline
             appending every row into PostgreSQL, served by 1, 2 and 3
             `sluice serve` processes started at once (a fresh database for
             each run). Timed from the start of the first process until the
             file ledger holds every object; then the processes get SIGTERM.
             Reported: rows/s per worker count (median of --repeat runs,
             worker counts interleaved), the speed-up over one worker, how
             many files each worker loaded (sluice.runs.worker joined with
             sluice.file_ledger.run_id), the CPU of sluice, PostgreSQL and
             s3rver, and how busy the machine's cores were. Every row must be
             there exactly once (count and distinct ids).

  failover   a postgres_cdc pipeline served by two processes (one active,
             one standby, `[state] lease = "3s"`) while small transactions
             run. The active one gets kill -9 (3 rounds), then SIGSTOP (3
             rounds): seconds from the signal to the standby's "is active
             (lease epoch N)" log line, and to the arrival in the replica of
             a marker row committed right after the signal. A SIGSTOP round
             whose marker has not arrived after --marker-timeout is BLOCKED:
             the sessions waiting on locks are printed and the paused
             process is resumed. Then the replica must equal the source
             (EXCEPT ALL both ways) with no duplicate in the keyless table.
             Last, the active one gets SIGTERM with the process paused (and
             fenced) in the last SIGSTOP round as the standby: it must take
             over and apply, and the replica is checked again.

The script starts its own throwaway PostgreSQL 15 (wal_level = logical) and
s3rver on free loopback ports, and stops and deletes them at the end, also
on error or Ctrl-C. It builds nothing: it copies the sluice binary (--sluice)
and sluice_duckdb_floor (--floor, which writes the Parquet files) into its
workdir first, so a rebuild of build/ during the run changes nothing.

Python 3 standard library only; the PostgreSQL, s3rver and process helpers
are load_bench.py's, s3_bench.py's and cdc_bench.py's.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing the other drivers
from load_bench import (  # noqa: E402
    write_report,
    REPO,
    Interrupted,
    Postgres,
    cpu_model,
    fmt,
    git_commit,
    install_signal_handlers,
    kill_live_children,
    make_workdir,
    mem_total_gb,
    sql_quote,
    tail,
    toml_quote,
    tool_version,
)
from s3_bench import BUCKET, PREFIX, S3RVER_JS, S3rver, generate_sql, load_average  # noqa: E402
from cdc_bench import (  # noqa: E402
    BATCH_TOML,
    Background,
    SlotWatch,
    log_records,
)

LEASE = "3s"
PIPELINE_FILES = "workers_files"
PIPELINE_CDC = "workers_cdc"

# wal_level = logical for the failover part; the scale-out part runs on the
# same server (logical WAL adds little to plain inserts).
EXTRA_CONF = """# --- workers_bench: logical decoding for the failover part ---
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
"""

ACTIVE_RE = re.compile(r"is active \(lease epoch (\d+)\)")
STANDBY_RE = re.compile(r"worker \S+ stands by")
LOST_RE = re.compile(r"lost the lease")
ENDING_RE = re.compile(r"ending that backend")
STREAMING_RE = re.compile(r"streaming from slot")


def log(msg: str) -> None:
    print(f"[workers_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def db_url(pg: Postgres, db: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{pg.port}/{db}"


def wait_until(pred, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return bool(pred())


# --------------------------------------------------------------------------
# CPU accounting (from /proc), to say where the machine saturates

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int, children: bool = False) -> float:
    """utime + stime of a live process (+ its waited-for children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the ")" that ends the command name, fields start at 3: utime is
    # field 14, stime 15, cutime 16, cstime 17 (proc(5)).
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def postgres_cpu_s(pg: Postgres) -> float:
    """CPU of the whole server: the postmaster with the backends it reaped,
    plus its live children."""
    try:
        pm = int((pg.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = proc_cpu_s(pm, children=True)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pm:  # ppid is field 4
            total += (int(stat[11]) + int(stat[12])) / CLK_TCK
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(vals[:8])  # user nice system idle iowait irq softirq steal
    idle = vals[3] + vals[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


# --------------------------------------------------------------------------
# sluice processes


class Sluice(Background):
    """`sluice --log-format json serve FILE --listen 127.0.0.1:0`, stopped by
    us; logs parsed from its JSON lines."""

    def __init__(self, sluice: Path, toml: Path, log_path: Path, env: dict[str, str]):
        super().__init__([str(sluice), "--log-format", "json", "serve", str(toml),
                          "--listen", "127.0.0.1:0"], log_path, env)
        self.pid = self.proc.pid

    def lines(self, pattern: re.Pattern, since: float = 0.0) -> list[tuple[float, re.Match]]:
        out = []
        for t, _, msg in log_records(self.log_path):
            m = pattern.search(msg)
            if m and t >= since:
                out.append((t, m))
        return out

    def first(self, pattern: re.Pattern, since: float = 0.0) -> tuple[float, re.Match] | None:
        found = self.lines(pattern, since)
        return found[0] if found else None

    def wait_line(self, pattern: re.Pattern, timeout_s: float, since: float = 0.0):
        hit: list = []

        def seen() -> bool:
            h = self.first(pattern, since)
            if h:
                hit.append(h)
            return bool(h) or self.exited()

        wait_until(seen, timeout_s)
        return hit[0] if hit else None

    def warnings(self) -> list[str]:
        return [f"{lvl}: {msg}" for _, lvl, msg in log_records(self.log_path)
                if lvl in ("warning", "error", "critical")]

    def not_json(self) -> list[str]:
        """Lines of its log that are not JSON although it runs with --log-format json."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------
# Part 1: scale-out of a per_file S3 pipeline


def write_files_pipeline(path: Path, pg: Postgres, db: str, s3: S3rver, tmp: Path) -> None:
    url = db_url(pg, db)
    path.write_text(f"""# Generated by bench/workers_bench.py
name = "{PIPELINE_FILES}"

[source]
path = "s3://{BUCKET}/{PREFIX}*.parquet"
batch = "per_file"   # one load, one transaction, one ledger entry per object; divided among the workers

[s3]
endpoint = {toml_quote(s3.endpoint)}
region = "us-east-1"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"

[state]
# The destination's database: each file's rows, its ledger entry and the
# removal of its claim commit together (exactly once, fenced).
url = {toml_quote(url)}
lease = "{LEASE}"

[destination]
type = "postgres"
url = {toml_quote(url)}
table = "public.items"
mode = "append"

[schedule]
every = "1s"

[engine]
temp_directory = {toml_quote(str(tmp))}
""")


@dataclass
class ScaleRun:
    workers: int
    status: str = "ok"
    wall_s: float | None = None
    files_per_worker: list[int] = field(default_factory=list)
    runs: int = 0
    peak_rss_mb: float | None = None
    sluice_cpu_s: float | None = None
    pg_cpu_s: float | None = None
    s3_cpu_s: float | None = None
    busy_pct: float | None = None  # the whole machine's CPU, all cores
    warnings: list[str] = field(default_factory=list)
    overran: int = 0  # "the run took longer than its interval" warnings
    run_statuses: dict[str, str] = field(default_factory=dict)  # sluice.runs: status -> count


OVERRAN = "the run took longer than its interval"


def scale_out_run(n: int, rep: int, sluice: Path, pg: Postgres, s3: S3rver, workdir: Path,
                  logs: Path, n_files: int, n_rows: int, timeout_s: float) -> ScaleRun:
    res = ScaleRun(n)
    db = f"files_w{n}_r{rep}"
    pg.psql(f"CREATE DATABASE {db}", db="postgres")
    tmp = workdir / "tmp"
    toml = workdir / f"{db}.toml"
    write_files_pipeline(toml, pg, db, s3, tmp)
    pg.psql("CHECKPOINT")
    env = pg.env
    env["PGDATABASE"] = db

    def fail(problem: str, procs: list[Sluice]) -> ScaleRun:
        res.status = f"FAILED: {problem}"
        log(f"{n} worker(s) FAILED: {problem}")
        for p in procs:
            log(f"log of worker {p.pid} ({p.log_path}):\n{tail(p.log_path, 20)}")
        return res

    log(f"[{rep}] {n} worker(s): {sluice.name} --log-format json serve {toml.name} "
        "--listen 127.0.0.1:0, started at once")
    pg_cpu0, s3_cpu0, m0 = postgres_cpu_s(pg), proc_cpu_s(s3.proc.pid), machine_cpu()
    t0 = time.monotonic()
    procs = [Sluice(sluice, toml, logs / f"{db}_worker{i + 1}.log", env) for i in range(n)]
    session: SlotWatch | None = None
    try:
        # The ledger exists once the first worker ran the store's migrations.
        def schema() -> bool:
            try:
                return pg.psql("SELECT to_regclass('sluice.file_ledger') IS NOT NULL", db=db) == "t"
            except RuntimeError:
                return False

        if not wait_until(lambda: schema() or any(p.exited() for p in procs), 60, 0.1) or \
                any(p.exited() for p in procs):
            return fail("no sluice.file_ledger after 60 s, or a worker exited", procs)
        session = SlotWatch(pg, db)  # one psql session polls the ledger
        done_at = None
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            loaded = int(session.query("SELECT count(*) FROM sluice.file_ledger"))
            if loaded >= n_files:
                done_at = time.monotonic()
                break
            if any(p.exited() for p in procs):
                return fail(f"a worker exited with {loaded} of {n_files} files loaded", procs)
            time.sleep(0.05)
        if done_at is None:
            return fail(f"timeout after {timeout_s:.0f} s", procs)
        res.wall_s = done_at - t0
        m1 = machine_cpu()
        res.sluice_cpu_s = sum(proc_cpu_s(p.pid) for p in procs)
        res.pg_cpu_s = postgres_cpu_s(pg) - pg_cpu0
        res.s3_cpu_s = proc_cpu_s(s3.proc.pid) - s3_cpu0
        res.busy_pct = 100 * (m1[0] - m0[0]) / max(1e-9, m1[1] - m0[1])
    finally:
        if session is not None:
            session.close()
        results = [p.stop() for p in procs]  # SIGTERM, wait4
    bad = [f"worker {p.pid} exit code {r.exit_code}" for p, r in zip(procs, results)
           if r.exit_code != 0 or r.timed_out]
    if bad:
        return fail("; ".join(bad) + " after SIGTERM", procs)
    res.peak_rss_mb = max(r.peak_rss_kb for r in results) / 1024

    # ---- verification: every row exactly once, every file once ------------
    count, distinct, lo, hi = pg.psql(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.items", db=db).split("|")
    if (count, distinct, lo, hi) != (str(n_rows), str(n_rows), "0", str(n_rows - 1)):
        return fail(f"public.items: count {count}, distinct ids {distinct}, ids {lo}..{hi}; "
                    f"expected {n_rows:,} rows with the distinct ids 0..{n_rows - 1}", procs)
    ledger = pg.psql("SELECT count(*), count(DISTINCT key) FROM sluice.file_ledger", db=db)
    if ledger != f"{n_files}|{n_files}":
        return fail(f"file ledger: {ledger} (rows|keys), expected {n_files}|{n_files}", procs)
    leftovers = pg.psql("SELECT (SELECT count(*) FROM sluice.file_claims) || ' claims, ' || "
                        "(SELECT count(*) FROM sluice.runs WHERE status = 'running') || "
                        "' runs still running'", db=db)
    if leftovers != "0 claims, 0 runs still running":
        return fail(f"after SIGTERM: {leftovers}", procs)
    per_worker = dict(
        line.split("|") for line in pg.psql(
            "SELECT r.worker, count(*) FROM sluice.file_ledger l JOIN sluice.runs r "
            "ON r.id = l.run_id GROUP BY r.worker", db=db).splitlines() if line)
    host = socket.gethostname()
    res.files_per_worker = [int(per_worker.pop(f"{host}:{p.pid}", 0)) for p in procs]
    if per_worker or sum(res.files_per_worker) != n_files:
        return fail(f"files by worker do not add up: ours {res.files_per_worker}, "
                    f"other workers {per_worker}", procs)
    res.run_statuses = dict(
        line.split("|") for line in pg.psql(
            "SELECT status, count(*) FROM sluice.runs GROUP BY status ORDER BY status",
            db=db).splitlines() if line)
    res.runs = sum(int(v) for v in res.run_statuses.values())
    for p in procs:
        for w in p.warnings():
            if OVERRAN in w:
                res.overran += 1  # expected: a tick lasts as long as there are files
            else:
                res.warnings.append(f"worker {p.pid}: {w}")
    log(f"{n} worker(s): {res.wall_s:.2f} s, files per worker {res.files_per_worker}, "
        f"{res.runs} runs, peak RSS {res.peak_rss_mb:.1f} MB, machine CPU busy "
        f"{res.busy_pct:.0f}%" + (f", {len(res.warnings)} warning(s)" if res.warnings else ""))
    pg.psql(f"DROP DATABASE {db}", db="postgres")  # free the disk for the next run
    return res


def scale_table(runs_by_n: dict[int, list[ScaleRun]], n_rows: int, n_bytes: int,
                n_files: int) -> list[str]:
    lines = ["| workers | wall s | rows/s | MB/s | speed-up vs 1 worker | files loaded per worker "
             "| runs | peak RSS MB (largest worker) | CPU s: sluice / PostgreSQL / s3rver "
             "| machine CPU busy | result |",
             "|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---|"]
    base = median_wall(runs_by_n.get(min(runs_by_n), []))
    for n, runs in sorted(runs_by_n.items()):
        ok = [r for r in runs if r.status == "ok"]
        wall = median_wall(runs)
        if not ok or wall is None:
            lines.append(f"| {n} | - | - | - | - | - | - | - | - | - | "
                         f"{next((r.status for r in runs if r.status != 'ok'), 'not run')} |")
            continue
        r = min(ok, key=lambda x: abs(x.wall_s - wall))  # the median run's details
        speed = base / wall if base else None
        result = "ok, every row once" + (
            f" (runs: {', '.join(f'{x.wall_s:.2f}' for x in ok)} s)" if len(ok) > 1 else "")
        if any(x.status != "ok" for x in runs):
            result += "; " + "; ".join(x.status for x in runs if x.status != "ok")
        if r.warnings:
            result += f"; {len(r.warnings)} warning(s)/error(s) in the logs"
        lines.append(
            f"| {n} | {wall:.2f} | {n_rows / wall:,.0f} | {n_bytes / 1e6 / wall:.1f} | "
            f"{fmt(speed, '.2f')}x | {' + '.join(str(f) for f in r.files_per_worker)} = {n_files} | "
            f"{r.runs} ({', '.join(f'{v} {k}' for k, v in r.run_statuses.items())}"
            f"{f'; {r.overran} overran' if r.overran else ''}) | "
            f"{fmt(r.peak_rss_mb, '.1f')} | {fmt(r.sluice_cpu_s, '.1f')} / "
            f"{fmt(r.pg_cpu_s, '.1f')} / {fmt(r.s3_cpu_s, '.1f')} | {fmt(r.busy_pct, '.0f')}% | "
            f"{result} |")
    return lines


def median_wall(runs: list[ScaleRun]) -> float | None:
    walls = [r.wall_s for r in runs if r.status == "ok" and r.wall_s]
    return statistics.median(walls) if walls else None


def saturation_note(runs_by_n: dict[int, list[ScaleRun]], cores: int) -> str:
    walls = {n: median_wall(rs) for n, rs in runs_by_n.items()}
    walls = {n: w for n, w in walls.items() if w}
    if len(walls) < 2 or 1 not in walls:
        return ""
    ns = sorted(walls)
    parts = [f"{n} workers {walls[1] / walls[n]:.2f}x" for n in ns if n != 1]
    sat = None
    for prev, n in zip(ns, ns[1:]):
        if walls[prev] / walls[n] < 1.10:  # less than 10% more from one more worker
            sat = prev
            break
    busy = {n: statistics.median([r.busy_pct for r in rs if r.status == "ok" and r.busy_pct])
            for n, rs in runs_by_n.items() if any(r.status == "ok" and r.busy_pct for r in rs)}
    busy_txt = ", ".join(f"{n}: {b:.0f}%" for n, b in sorted(busy.items()))
    if sat:
        slower = [n for n in ns if n > sat and walls[n] > walls[sat] * 1.05]
        verdict = (f"it saturates at {sat} worker(s): one more adds less than 10%"
                   + (f" ({', '.join(map(str, slower))} worker(s) are slower than {sat})"
                      if slower else ""))
    else:
        verdict = f"it still scales up to {ns[-1]} workers (each one more adds at least 10%)"

    return (f"Speed-up over 1 worker: {', '.join(parts)}; {verdict}. The machine's {cores} cores "
            f"were busy {busy_txt} of the time (all processes, from /proc/stat); sluice, "
            "PostgreSQL (fsync on) and s3rver share them, so beyond the core count more "
            "workers only queue for CPU.")


# --------------------------------------------------------------------------
# Part 2: CDC failover


CDC_SETUP = """
CREATE TABLE big(id bigint PRIMARY KEY, v text, n int);
INSERT INTO big SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g;
CREATE TABLE events(id bigint, v text);
ALTER TABLE events REPLICA IDENTITY FULL;
CREATE TABLE marker(id int PRIMARY KEY, note text);
CREATE PUBLICATION pub FOR TABLE big, events, marker;
"""
CDC_TABLES = ("big", "events", "marker")


def write_cdc_pipeline(path: Path, pg: Postgres, workdir: Path) -> None:
    url = db_url(pg, "cdc")
    path.write_text(f"""# Generated by bench/workers_bench.py
name = "{PIPELINE_CDC}"

[source]
type = "postgres_cdc"
url = {toml_quote(url)}
publication = "pub"
tables = ["public.big", "public.events", "public.marker"]
slot = "workers_bench"
max_table_sync_workers = 2

{BATCH_TOML}
[destination]
type = "postgres"
url = {toml_quote(url)}
schema = "replica"

[state]
# The destination's database: every batch is fenced by the lease's epoch.
url = {toml_quote(url)}
lease = "{LEASE}"

[engine]
temp_directory = {toml_quote(str(workdir / "tmp"))}
""")


class Workload:
    """Small transactions into events (200 rows, no key) and big (an update
    of ~200 rows) every 20 ms, on one psql session, until stopped."""

    def __init__(self, pg: Postgres, first_id: int = 1_000_000):
        self.session = SlotWatch(pg, "cdc")
        self.next_id = first_id
        self.txns = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Workload:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            a = self.next_id
            try:
                self.session.query(
                    f"BEGIN; INSERT INTO events SELECT g, 'w' FROM generate_series({a}, {a + 199}) g; "
                    f"UPDATE big SET n = n + 1 WHERE id % 97 = {(a // 200) % 97}; COMMIT; SELECT 1")
            except RuntimeError as e:
                self.error = str(e)
                return
            self.next_id += 200
            self.txns += 1
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.session.close()


@dataclass
class Failover:
    kind: str  # "kill -9" or "SIGSTOP"
    rnd: int
    epoch: int | None = None
    to_active_s: float | None = None    # signal -> the standby's "is active (lease epoch N)"
    to_streaming_s: float | None = None  # signal -> its "streaming from slot"
    to_marker_s: float | None = None    # signal -> marker row in the replica
    steady_s: float | None = None       # marker latency just before, without a failure
    status: str = "ok"
    note: str = ""

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


def blocked_sessions(pg: Postgres) -> str:
    """Sessions of the cdc database that wait for a lock, and the sessions
    that block them, one line each."""
    try:
        return pg.psql(
            "WITH w AS (SELECT pid, pg_blocking_pids(pid) AS by FROM pg_stat_activity "
            "WHERE datname = 'cdc') "
            "SELECT '    pid ' || a.pid || ' (' || coalesce(nullif(a.application_name, ''), '-') || ', ' "
            "|| coalesce(a.state, '-') || ', transaction open for ' || "
            "coalesce(round(extract(epoch FROM now() - a.xact_start)::numeric, 1)::text || ' s', '-') || "
            "', wait ' || coalesce(a.wait_event_type || '/' || a.wait_event, '-') || "
            "CASE WHEN cardinality(w.by) > 0 THEN ', blocked by ' || array_to_string(w.by, ',') "
            "ELSE ', BLOCKING others' END || '): ' || left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160) "
            "FROM pg_stat_activity a JOIN w USING (pid) "
            "WHERE cardinality(w.by) > 0 OR a.pid IN (SELECT unnest(by) FROM w) ORDER BY a.pid",
            db="postgres")
    except RuntimeError as e:
        return f"    (could not ask pg_stat_activity: {e})"


def failover_part(sluice: Path, pg: Postgres, workdir: Path, logs: Path, repeat: int,
                  timeout_s: float, marker_timeout_s: float) -> tuple[list[Failover], list[str], dict]:
    """Runs the kill -9 series, the SIGSTOP series, then one SIGTERM hand-back
    to the process that was paused last. Returns the rounds, the problems
    found by the final checks, and facts for the report."""
    pg.psql("CREATE DATABASE cdc", db="postgres")
    for stmt in CDC_SETUP.strip().split(";\n"):
        pg.psql(stmt.strip().rstrip(";"), db="cdc")
    toml = workdir / "cdc.toml"
    write_cdc_pipeline(toml, pg, workdir)
    env = pg.env
    env["PGDATABASE"] = "cdc"
    procs: list[Sluice] = []
    rounds: list[Failover] = []
    problems: list[str] = []
    facts: dict = {"blocked": []}

    def start() -> Sluice:
        p = Sluice(sluice, toml, logs / f"cdc_process{len(procs) + 1}.log", env)
        procs.append(p)
        return p

    session = None
    workload = None
    try:
        active = start()
        if not active.wait_line(STREAMING_RE, 120):
            raise RuntimeError(f"the first process did not start streaming:\n{tail(active.log_path)}")
        log(f"process {active.pid} is active and streaming")
        standby = start()
        if not standby.wait_line(STANDBY_RE, 60):
            raise RuntimeError(f"the second process did not stand by:\n{tail(standby.log_path)}")
        log(f"process {standby.pid} stands by")
        session = SlotWatch(pg, "cdc")  # markers in, replica polled: one psql session
        workload = Workload(pg).start()
        time.sleep(2)
        marker_id = [0]

        def marker(note: str) -> int:
            marker_id[0] += 1
            session.query(f"INSERT INTO marker VALUES ({marker_id[0]}, {sql_quote(note)}); SELECT 1")
            return marker_id[0]

        def arrived(mid: int, limit_s: float, watch: Sluice | None = None,
                    since: float = 0.0) -> tuple[float | None, str | None]:
            """When marker mid is in the replica; or None and the first error
            `watch` logged since `since` (5 s after it, if the marker did not
            come), or None, None at the limit."""
            deadline = time.monotonic() + limit_s
            error_at = None
            while time.monotonic() < deadline:
                if session.query(f"SELECT count(*) FROM replica.marker WHERE id = {mid}") == "1":
                    return time.time(), None
                if watch is not None and error_at is None:
                    errors = [(t, msg) for t, lvl, msg in log_records(watch.log_path)
                              if lvl in ("error", "critical") and t >= since]
                    if errors:
                        error_at = time.monotonic()
                        first_error = errors[0][1]
                if error_at is not None and time.monotonic() - error_at > 5:
                    return None, f"process {watch.pid} logged: {first_error}"
                time.sleep(0.02)
            return None, None

        def steady() -> float | None:
            lat = []
            for _ in range(3):
                t = time.time()
                got, _ = arrived(marker("steady"), 30)
                if got is None:
                    return None
                lat.append(got - t)
                time.sleep(0.2)
            return statistics.median(lat)

        def took_over(fo: Failover, new: Sluice, t_sig: float) -> bool:
            hit = new.wait_line(ACTIVE_RE, 30, since=t_sig - 0.001)
            if hit is None:
                fo.status = f"FAILED: process {new.pid} never logged \"is active\""
                return False
            fo.epoch = int(hit[1].group(1))
            fo.to_active_s = hit[0] - t_sig
            if fo.epoch != epoch_now + 1:
                fo.add_note(f"epoch {fo.epoch}, expected {epoch_now + 1}")
            streaming = new.first(STREAMING_RE, since=hit[0])
            if streaming:
                fo.to_streaming_s = streaming[0] - t_sig
            if new.first(ENDING_RE, since=t_sig - 0.001):
                fo.add_note("it ended the old walsender")
            return True

        def verify(limit_s: float, when: str) -> list[str]:
            """Waits (the workload stopped) until the replica equals the
            source; then no duplicate may be in the keyless replica.events."""
            t0 = time.time()
            marker(f"check {when}")
            last = [""]

            def equal() -> bool:
                out = []
                for t in CDC_TABLES:
                    v = session.query(
                        f"SELECT (SELECT count(*) FROM (SELECT s::text FROM public.{t} s EXCEPT ALL "
                        f"SELECT r::text FROM replica.{t} r) a) || ' ' || (SELECT count(*) FROM "
                        f"(SELECT r::text FROM replica.{t} r EXCEPT ALL SELECT s::text FROM "
                        f"public.{t} s) b)")
                    if v != "0 0":
                        out.append(f"{t}: source-only/replica-only rows {v}")
                last[0] = "; ".join(out)
                return not out

            found = []
            if wait_until(equal, limit_s, 0.2):
                facts[f"caught_up_{when}"] = time.time() - t0
            else:
                found.append(f"{when}: the replica differs from the source {limit_s:.0f} s after the "
                             f"workload stopped: {last[0]}")
            dup = session.query("SELECT count(*) - count(DISTINCT id) FROM replica.events")
            if dup != "0":
                found.append(f"{when}: replica.events holds {dup} duplicate row(s)")
            facts[f"events_{when}"] = int(session.query("SELECT count(*) FROM replica.events"))
            return found

        epoch_now = int(active.first(ACTIVE_RE)[1].group(1))
        broken = False
        for kind in ("kill -9", "SIGSTOP"):
            for rnd in range(1, repeat + 1):
                if broken:
                    break
                fo = Failover(kind, rnd)
                rounds.append(fo)
                fo.steady_s = steady()
                if workload.error:
                    raise RuntimeError(f"the workload failed: {workload.error}")
                log(f"{kind} round {rnd}: active {active.pid} (epoch {epoch_now}), standby "
                    f"{standby.pid}; steady-state marker latency {fmt(fo.steady_s, '.2f')} s")
                t_sig = time.time()
                t_cont = None
                if kind == "kill -9":
                    active.signal(signal.SIGKILL)
                    # Reaped at once, as a service manager would: a zombie
                    # still answers kill(pid, 0), so sluice would take it
                    # for alive and wait for its lease to expire instead.
                    active.stop()
                else:
                    active.signal(signal.SIGSTOP)
                mid = marker(f"after {kind} {rnd}")
                got, err = arrived(mid, marker_timeout_s if kind == "SIGSTOP" else timeout_s,
                                   standby, t_sig)
                if got is None and err is None and kind == "SIGSTOP":
                    # The new active process is stuck: say on what, then
                    # resume the paused one and see whether that frees it.
                    diag = blocked_sessions(pg)
                    log(f"SIGSTOP round {rnd}: marker {mid} not in the replica "
                        f"{marker_timeout_s:.0f} s after SIGSTOP; sessions waiting on locks and "
                        f"their blockers:\n{diag or '    (none)'}")
                    facts["blocked"].append((rnd, diag))
                    t_cont = time.time()
                    active.signal(signal.SIGCONT)
                    got, err = arrived(mid, timeout_s, standby, t_sig)
                    if got is not None:
                        fo.status = (f"BLOCKED: no marker {marker_timeout_s:.0f} s after SIGSTOP; it "
                                     f"arrived {got - t_cont:.2f} s after SIGCONT of the paused process")
                if got is None:
                    fo.status = "FAILED: " + (err or f"marker {mid} not in the replica after "
                                              f"{timeout_s:.0f} s")
                    log(f"{kind} round {rnd} {fo.status}; log of {standby.pid}:\n"
                        f"{tail(standby.log_path, 12)}")
                    broken = True
                    break
                if t_cont is None:
                    fo.to_marker_s = got - t_sig
                if not took_over(fo, standby, t_sig):
                    broken = True
                    break
                epoch_now = fo.epoch
                log(f"{kind} round {rnd}: standby {standby.pid} active (epoch {fo.epoch}) "
                    f"{fo.to_active_s:.2f} s after the signal, streaming "
                    f"{fmt(fo.to_streaming_s, '.2f')} s, marker in the replica "
                    f"{fmt(fo.to_marker_s, '.2f')} s ({fo.status})")
                old = active
                active = standby
                standby_since = 0.0  # where to look for the next standby's "stands by"
                if kind == "kill -9":
                    standby = start()
                else:
                    if t_cont is None:
                        t_cont = time.time()
                        old.signal(signal.SIGCONT)
                    # Any line of the paused process logged after the signal.
                    lost = old.wait_line(LOST_RE, 60, since=t_sig)
                    if lost is None:
                        fo.status = "FAILED: the resumed process did not log \"lost the lease\""
                        log(f"{fo.status}:\n{tail(old.log_path, 12)}")
                        broken = True
                        break
                    fo.add_note(f"the resumed one stepped down {lost[0] - t_cont:.2f} s after SIGCONT")
                    if rnd < repeat:
                        # A fresh standby for the next round; the last paused
                        # process stays for the hand-back below.
                        r = old.stop()
                        if r.exit_code != 0:
                            problems.append(f"process {old.pid} exited with {r.exit_code} "
                                            "after SIGTERM")
                        standby = start()
                    else:
                        standby = old
                        standby_since = lost[0]
                if not standby.wait_line(STANDBY_RE, 60, since=standby_since):
                    raise RuntimeError(f"process {standby.pid} did not stand by:\n"
                                       f"{tail(standby.log_path)}")
                time.sleep(2)

        # ---- the failovers lost and duplicated nothing --------------------
        workload.stop()
        facts["txns"] = workload.txns
        next_id = workload.next_id
        workload = None
        if not broken:
            found = verify(120, "before")
            problems += found
            log("after the kill -9 and SIGSTOP rounds: " + ("; ".join(found) if found else
                f"replica = source, no duplicate (caught up in {facts['caught_up_before']:.1f} s)"))
            workload = Workload(pg, next_id).start()
            time.sleep(2)

        # ---- hand-back: SIGTERM of the active; the standby is the process
        # that was paused, fenced and stepped down in the last SIGSTOP round.
        if not broken:
            fo = Failover(HANDBACK, 1)
            rounds.append(fo)
            fo.steady_s = steady()
            log(f"{HANDBACK}: active {active.pid}, standby {standby.pid}")
            t_sig = time.time()
            active.signal(signal.SIGTERM)
            # SIGTERM lets the active one finish its batch: the marker is
            # committed once it has exited, so only the new active can apply it.
            wait_until(active.exited, 60)
            r = active.stop()
            if r.exit_code != 0:
                problems.append(f"process {active.pid} exited with {r.exit_code} after SIGTERM")
            mid = marker("after SIGTERM")
            got, err = arrived(mid, 60, standby, t_sig)
            if got is not None:
                fo.to_marker_s = got - t_sig
            if not took_over(fo, standby, t_sig):
                broken = True
            if got is None:
                fo.status = "FAILED: " + (err or f"marker {mid} not in the replica after 60 s")
                log(f"{HANDBACK} {fo.status}; log of {standby.pid}:\n{tail(standby.log_path, 12)}")
                broken = True
            elif fo.status == "ok":
                log(f"{HANDBACK}: process {standby.pid} active (epoch {fo.epoch}) "
                    f"{fo.to_active_s:.2f} s after SIGTERM, marker {fo.to_marker_s:.2f} s")

        # ---- verification -------------------------------------------------
        if workload is not None:
            workload.stop()
            facts["txns"] += workload.txns
            workload = None
        problems += verify(15 if broken else 120, "end")  # a broken pipeline will not catch up
        facts["epoch"] = session.query("SELECT coalesce((SELECT epoch::text FROM sluice.leases "
                                       f"WHERE name = 'run' AND pipeline = '{PIPELINE_CDC}'), '-')")
    finally:
        if workload is not None:
            workload.stop()
        if session is not None:
            session.close()
        for p in procs:
            if not p.exited():
                p.signal(signal.SIGCONT)
        ends = [(p, p.stop()) for p in procs]
    facts["peak_rss_mb"] = max((r.peak_rss_kb for _, r in ends), default=0) / 1024
    facts["processes"] = len(procs)
    for p, r in ends:
        if r.exit_code not in (0, -signal.SIGKILL):
            problems.append(f"process {p.pid} exited with {r.exit_code} after SIGTERM")
    facts["warnings"] = [(p.pid, w) for p, _ in ends for w in p.warnings()]
    facts["not_json"] = [(p.pid, line) for p, _ in ends for line in p.not_json()]
    return rounds, problems, facts


HANDBACK = "SIGTERM, to the process paused and fenced last"


def failover_table(rounds: list[Failover]) -> list[str]:
    lines = ["| signal to the active process | round | new epoch | signal -> standby \"is active\" s "
             "| signal -> standby \"streaming\" s | signal -> marker in replica s "
             "| steady-state marker latency s | result |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for fo in rounds:
        lines.append(f"| {fo.kind} | {fo.rnd} | {fmt(fo.epoch, 'd')} | {fmt(fo.to_active_s, '.2f')} | "
                     f"{fmt(fo.to_streaming_s, '.2f')} | {fmt(fo.to_marker_s, '.2f')} | "
                     f"{fmt(fo.steady_s, '.2f')} | {fo.status}{'; ' + fo.note if fo.note else ''} |")
    for kind in ("kill -9", "SIGSTOP"):
        these = [fo for fo in rounds if fo.kind == kind]
        if not these:
            continue

        def med(attr: str) -> str:
            # Every round that measured it: a BLOCKED round took over (its
            # "is active" counts) but has no marker time.
            vs = [getattr(f, attr) for f in these if getattr(f, attr) is not None]
            if not vs:
                return "-"
            return f"{statistics.median(vs):.2f}" + (f" (of {len(vs)})" if len(vs) < len(these) else "")

        lines.append(f"| **{kind}, median** | {len(these)} | | **{med('to_active_s')}** | "
                     f"{med('to_streaming_s')} | **{med('to_marker_s')}** | {med('steady_s')} | |")
    return lines


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200, help="Parquet objects (default 200)")
    ap.add_argument("--rows-per-file", type=int, default=10_000,
                    help="rows per object (default 10,000: 2M rows, ~28 MB of Parquet; one "
                         "worker takes ~15-20 s on a 2-core VM)")
    ap.add_argument("--workers", default="1,2,3", help="worker counts to measure (default 1,2,3)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="scale-out runs per worker count, interleaved (default 3; median reported)")
    ap.add_argument("--failovers", type=int, default=3,
                    help="kill -9 rounds and SIGSTOP rounds each (default 3; median reported)")
    ap.add_argument("--marker-timeout", type=float, default=30.0,
                    help="SIGSTOP rounds: seconds to wait for the marker before the paused "
                         "process is resumed and the round reported as BLOCKED (default 30)")
    ap.add_argument("--skip-scale-out", action="store_true")
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--sluice", type=Path, default=REPO / "build" / "sluice",
                    help="the sluice binary, a Release build (copied into the workdir first)")
    ap.add_argument("--floor", type=Path, default=REPO / "build" / "bench" / "sluice_duckdb_floor",
                    help="sluice_duckdb_floor, which writes the Parquet files")
    ap.add_argument("--workdir", type=Path,
                    help="where data, servers and logs live (default: a temp dir, deleted)")
    ap.add_argument("--keep", action="store_true", help="keep the (default, temporary) workdir")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    args = ap.parse_args()
    workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    if args.files < 1 or args.rows_per_file < 1 or args.repeat < 1 or args.failovers < 1 \
            or not workers or workers[0] < 1:
        ap.error("need --files, --rows-per-file, --repeat, --failovers and --workers >= 1")
    for tool, path in (("sluice", args.sluice), ("sluice_duckdb_floor", args.floor)):
        if not os.access(path, os.X_OK) and not (tool == "sluice_duckdb_floor" and args.skip_scale_out):
            print(f"error: {tool} not found at {path}; build it first:\n  cmake -S . -B build "
                  "-DCMAKE_BUILD_TYPE=Release && cmake --build build -j", file=sys.stderr)
            return 2
    if shutil.which("psql") is None:
        print("error: psql not found (apt-get install postgresql-client-15)", file=sys.stderr)
        return 2

    install_signal_handlers()
    t_start = time.monotonic()
    workdir, own_workdir = make_workdir(args.workdir, "sluice-workers-bench-")
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    bindir = workdir / "bin"
    bindir.mkdir(exist_ok=True)
    log(f"workdir {workdir} (free: {shutil.disk_usage(workdir).free / 1e9:.1f} GB)")
    cores = os.cpu_count() or 1
    load_at_start = load_average()
    pg = Postgres(workdir, extra_conf=EXTRA_CONF)
    s3 = S3rver(workdir, logs)
    report: list[str] = []
    failures = 0
    n_rows = args.files * args.rows_per_file
    try:
        # A copy of the binaries: build/ may be rebuilt while we measure.
        sluice = bindir / "sluice"
        shutil.copy2(args.sluice, sluice)
        sluice_version = tool_version([str(sluice), "version"])
        pg.start()
        pg_version = pg.version()

        # ---- part 1: scale-out ---------------------------------------------
        if not args.skip_scale_out:
            floor = bindir / "sluice_duckdb_floor"
            shutil.copy2(args.floor, floor)
            data_dir = workdir / "data"
            data_dir.mkdir(exist_ok=True)
            script = workdir / "generate.sql"
            script.write_text(generate_sql(data_dir, n_rows, args.files))
            log(f"generating {n_rows:,} rows in {args.files} Parquet files")
            t0 = time.monotonic()
            subprocess.run([str(floor), "--quiet", "--threads", "1", "--file", str(script)],
                           check=True, capture_output=True, text=True)
            files = sorted(data_dir.glob("*.parquet"))
            n_bytes = sum(f.stat().st_size for f in files)
            log(f"generated in {time.monotonic() - t0:.1f} s: {len(files)} files, "
                f"{n_bytes / 1e6:.1f} MB")
            s3.start()
            t0 = time.monotonic()
            s3.upload(files)
            log(f"uploaded to s3://{BUCKET}/{PREFIX} in {time.monotonic() - t0:.1f} s")
            shutil.rmtree(data_dir)  # s3rver has them now

            runs_by_n: dict[int, list[ScaleRun]] = {n: [] for n in workers}
            for rep in range(1, args.repeat + 1):
                for n in workers:
                    r = scale_out_run(n, rep, sluice, pg, s3, workdir, logs, args.files, n_rows,
                                      args.timeout)
                    runs_by_n[n].append(r)
                    failures += r.status != "ok"
            report.append(f"## Scale-out: {args.files} Parquet objects, {n_rows:,} rows "
                          f"({n_bytes / 1e6:.1f} MB) from s3rver, batch = \"per_file\", append "
                          "into PostgreSQL, exactly once")
            report.append("")
            report.extend(scale_table(runs_by_n, n_rows, n_bytes, args.files))
            report.append("")
            note = saturation_note(runs_by_n, cores)
            if note:
                report.append(note)
                report.append("")
            warn = [w for rs in runs_by_n.values() for r in rs for w in r.warnings]
            if warn:
                report.append(f"Warnings/errors logged by the workers ({len(warn)}; first 5):")
                report.extend(f"- `{w[:300]}`" for w in warn[:5])
                report.append("")
            report.append(
                f"Notes: each worker count ran in a fresh database (sluice's store created by the "
                f"workers' own migrations, the table by the destination). N `sluice serve` "
                f"processes (`[schedule] every = \"1s\"`, `[state] lease = \"{LEASE}\"`, "
                "`[source] concurrency` default 4, `[engine] threads` default: one per core) are "
                "started at once; wall time is from the first start until a psql session polling "
                "every 50 ms sees all files in sluice.file_ledger, then the workers get SIGTERM. "
                "\"files loaded per worker\" is sluice.file_ledger joined with sluice.runs.worker; "
                "\"runs\" the rows of sluice.runs (every tick of every worker is one; \"overran\": "
                "ticks that logged \"the run took longer than its interval\", expected while a "
                "tick works through the backlog). CPU is "
                "user+system over the measured interval (/proc): all sluice workers together, the "
                "PostgreSQL server (postmaster, backends), s3rver (node); \"machine CPU busy\" is "
                f"the share of all {cores} cores busy with anything (/proc/stat), including other "
                "work on this shared machine. Peak RSS is each worker's ru_maxrss (wait4), the "
                "largest shown. Verified per run: count(*) and count(DISTINCT id) of public.items "
                f"both {n_rows:,}, ids 0..{n_rows - 1:,}, {args.files} distinct keys in the ledger, "
                "no claim left and no run left running after SIGTERM, and the per-worker file "
                "counts add up. The workload is kept modest because the 2 cores are shared with "
                "other work.")
            report.append("")
            s3.stop_and_delete()

        # ---- part 2: CDC failover ------------------------------------------
        if not args.skip_failover:
            log(f"CDC failover: 2 processes, lease {LEASE}, {args.failovers} kill -9 and "
                f"{args.failovers} SIGSTOP rounds")
            try:
                rounds, problems, facts = failover_part(sluice, pg, workdir, logs, args.failovers,
                                                        args.timeout, args.marker_timeout)
            except RuntimeError as e:
                log(f"CDC failover FAILED: {e}")
                report.append("## CDC failover")
                report.append("")
                report.append(f"FAILED: {str(e).splitlines()[0]}")
                report.append("")
                failures += 1
            else:
                failures += len(problems) + sum(fo.status != "ok" for fo in rounds)
                report.append(f"## CDC failover: postgres_cdc served by 2 processes, "
                              f"`[state] lease = \"{LEASE}\"`, small transactions running")
                report.append("")
                report.extend(failover_table(rounds))
                report.append("")
                n_sig = sum(fo.kind != HANDBACK for fo in rounds)
                for when, what in (("before", f"after the {n_sig} kill -9 and SIGSTOP rounds "
                                              "(workload paused)"),
                                   ("end", "at the end, after the SIGTERM hand-back")):
                    mine = [pr for pr in problems if pr.startswith(when + ":")]
                    if f"events_{when}" not in facts:
                        continue
                    if mine:
                        text = "FAILED: " + "; ".join(pr.split(": ", 1)[1] for pr in mine)
                    else:
                        text = (f"replica = source for big, events and marker (EXCEPT ALL both "
                                f"ways), caught up {facts[f'caught_up_{when}']:.1f} s after the "
                                f"workload stopped; no duplicate among the "
                                f"{facts[f'events_{when}']:,} rows of the keyless replica.events")
                    report.append(f"Check {what}: {text}.")
                    report.append("")
                other = [pr for pr in problems if not pr.startswith(("before:", "end:"))]
                report.append(f"{facts.get('txns', 0):,} workload transactions, "
                              f"{facts['processes']} sluice processes in all, final lease epoch "
                              f"{facts.get('epoch')}; largest peak RSS of a CDC process "
                              f"{facts['peak_rss_mb']:.1f} MB."
                              + (" Also: " + "; ".join(other) + "." if other else ""))
                report.append("")
                for rnd, diag in facts["blocked"]:
                    report.append(f"SIGSTOP round {rnd} was BLOCKED: sessions of the cdc database "
                                  f"waiting on locks, and their blockers, {args.marker_timeout:.0f} s "
                                  "after SIGSTOP (pg_stat_activity, pg_blocking_pids):")
                    report.append("")
                    report.append("```")
                    report.extend(line.strip() for line in (diag or "(none)").splitlines())
                    report.append("```")
                    report.append("")
                if facts["warnings"]:
                    report.append(f"Warnings/errors logged by the CDC processes "
                                  f"({len(facts['warnings'])}; first 8):")
                    report.extend(f"- process {pid}: `{w[:300]}`" for pid, w in facts["warnings"][:8])
                    report.append("")
                if facts["not_json"]:
                    report.append(f"Log lines not in JSON despite `--log-format json` "
                                  f"({len(facts['not_json'])}; first 3):")
                    report.extend(f"- process {pid}: `{w[:300]}`" for pid, w in facts["not_json"][:3])
                    report.append("")
                report.append(
                    "Notes: the workload commits a transaction every ~20 ms (200 rows into "
                    "`events`, a table without a key and REPLICA IDENTITY FULL, and an update of "
                    "~200 rows of `big`, 20,000 rows with a key). Each round: three markers without "
                    "a failure (their median latency is the steady-state column; batches are "
                    "written at the latest max_fill_ms = 200 after their first change), then the "
                    "active process gets the signal and a marker row is committed right after it; "
                    "the times are from the signal to the standby's log lines (ms timestamps) and "
                    "to the marker's arrival in replica.marker (polled every 20 ms). kill -9: the "
                    "killed process is reaped at once (as a service manager does) and, being on "
                    "the same machine, noticed as gone at the standby's next heartbeat (every "
                    "lease/3); a new standby is started for the next round. SIGSTOP: the paused "
                    "process still exists, so its lease must expire first (lease after its last "
                    "heartbeat, which was up to lease/3 before the signal, then the standby's poll "
                    "every lease/4, at most 1 s); then it gets SIGCONT and must "
                    "log \"lost the lease\"; it is replaced by a fresh standby, except after the "
                    f"last round, where it stays standby for the last row: \"{HANDBACK}\" (SIGTERM "
                    "releases the lease at once), which shows whether a process that was fenced "
                    "can be active again. A round is BLOCKED when the marker had not arrived "
                    f"{args.marker_timeout:.0f} s after SIGSTOP; the paused process is then "
                    "resumed. The replica is in the source's database (schema replica), as is the "
                    "state store.")
                report.append("")

        report.append("## Environment")
        report.append("")
        report.append(f"- host: {platform.node()}, {cpu_model()}, {cores} CPUs, "
                      f"{mem_total_gb():.1f} GB RAM, Linux {platform.release()}")
        report.append(f"- load average (1/5/15 min) at start: {load_at_start}; at the end: "
                      f"{load_average()} (other work on the machine distorts the numbers)")
        report.append(f"- PostgreSQL {pg_version} (local, 127.0.0.1 TCP, fsync=on, "
                      "shared_buffers=256MB, max_wal_size=4GB, wal_level=logical, otherwise defaults)")
        if not args.skip_scale_out:
            report.append(f"- s3rver {tool_version(['node', str(S3RVER_JS), '--version'])} on node "
                          f"{tool_version(['node', '--version'])}, 127.0.0.1")
        report.append(f"- sluice: {sluice_version} (copied from {args.sluice}); commit {git_commit()}")
        report.append(f"- benchmark wall time: {time.monotonic() - t_start:.0f} s")

    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        detail = getattr(e, "stderr", None)
        log(f"error: {e}" + (f"\n{detail.strip()}" if isinstance(detail, str) and detail else ""))
        return 2
    finally:
        kill_live_children()
        log("stopping s3rver and PostgreSQL")
        s3.stop_and_delete()
        pg.stop_and_delete()
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif own_workdir:
            log(f"kept {workdir}")

    write_report(args.results_dir, "workers", "sluice workers benchmark", report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
