#!/usr/bin/env python3
"""CDC benchmark: sluice's PostgreSQL change-data-capture against its floors.

Workload: a table of 5,000,000 rows for the initial copy, then 1,000,000
inserts and 500,000 updates in transactions of 1,000 rows, all in one
source database. Measured side by side in one run:

  initial copy
    COPY pipe   psql -c "COPY bench TO STDOUT (FORMAT binary)" src |
                psql -c "COPY bench FROM STDIN (FORMAT binary)" dst_pipe:
                the server-to-server floor, into an identical empty table
    sluice      build/sluice run <pipeline> (postgres_cdc -> postgres, state
                in the destination database: exactly once), from process
                start to its "initial copy ... done" log line
    sluice      the same source into the discarding ("null") destination:
                what reading the snapshot costs (for information)

  streaming the 1,500,000 changes, one tool after the other
    pg_recvlogical  pg_recvlogical --start ... pgoutput -f /dev/null
                    --endpos=<last commit>: decoding with nothing done with
                    the changes, i.e. the floor
    sluice -> null  the pipeline restarted after its initial copy, from
                    process start until the slot's confirmed_flush_lsn
                    reaches the last commit of the workload
    sluice -> PostgreSQL, exactly once: the same for the pipeline above

Every run is timed (wall clock, including process start-up) and its peak
RSS is taken from wait4()'s rusage. The copies and the final destination
table are verified against the source (count, sums, a hash over every row);
sluice's own count of the changes it saw must equal the workload's.

The script starts its own throwaway PostgreSQL 15 (wal_level = logical) on
a free loopback port and stops and deletes it at the end, also on error or
Ctrl-C. It builds nothing: it expects build/sluice (see --sluice).

Python 3 standard library only; the PostgreSQL and process-measuring helpers
are load_bench.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing load_bench
from load_bench import (  # noqa: E402
    write_report,
    REPO,
    Interrupted,
    Postgres,
    RunResult,
    _live_children,
    cpu_model,
    fmt,
    git_commit,
    install_signal_handlers,
    kill_live_children,
    make_workdir,
    mem_total_gb,
    run_measured,
    sql_quote,
    tail,
    toml_quote,
    tool_version,
)

# Targets from bench/README.md (the issue); printed next to the results.
TARGET_NULL_VS_RECV = 0.9  # sluice -> null events/s >= 0.9x pg_recvlogical's
TARGET_PG_ROWS_S = 50_000  # rows/s applied into PostgreSQL, exactly once
TARGET_COPY_RATIO = 1.2  # sluice initial copy <= 1.2x the COPY pipe
TARGET_PEAK_RSS_MB = 300.0

BUILD_HINT = (
    "Build first, from the repository root:\n"
    "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j --target sluice"
)

# The server must decode WAL for the slots: 3 slots of ours plus sluice's
# temporary ones, and a walsender for each streaming client.
EXTRA_CONF = """# --- cdc_bench: logical decoding ---
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
"""

PUBLICATION = "bench_pub"
TABLE = "public.bench"
TABLE_DDL = (
    "CREATE TABLE public.bench (id bigint PRIMARY KEY, category text, amount numeric(12,2), "
    "ts timestamptz, note text) WITH (autovacuum_enabled = off)"
)
# One row of the workload as a function of its id i: the same expression for
# the initial table and for the inserts, so the data are the same everywhere.
ROW_SELECT = (
    "i, 'cat-' || (i % 20), ((i * 7919) % 2000000 - 500000) / 100.0, "
    "timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second', 'note ' || md5(i::text)"
)

# 1,000 rows per transaction, inserts and updates interleaved in the ratio
# of their counts (2 insert transactions per update transaction by default).
# Updates touch ids 1, 1 + stride, 1 + 2*stride, ... of the initial rows, so
# they are spread over the whole table and each id is updated once.
WORKLOAD_PROCEDURE = f"""
CREATE OR REPLACE PROCEDURE bench_workload(n_rows bigint, n_ins bigint, n_upd bigint, txn bigint)
LANGUAGE plpgsql AS $$
DECLARE
  ins bigint := 0;
  upd bigint := 0;
  k bigint;
  stride bigint := greatest(1, n_rows / greatest(n_upd, 1));
BEGIN
  WHILE ins < n_ins OR upd < n_upd LOOP
    IF upd >= n_upd OR (ins < n_ins AND ins * n_upd <= upd * n_ins) THEN
      k := least(txn, n_ins - ins);
      INSERT INTO public.bench SELECT {ROW_SELECT}
        FROM generate_series(n_rows + ins + 1, n_rows + ins + k) i;
      ins := ins + k;
    ELSE
      k := least(txn, n_upd - upd);
      UPDATE public.bench SET amount = amount + 1.50, ts = ts + interval '1 day',
             note = 'updated ' || md5((id * 3)::text)
       WHERE id IN (SELECT 1 + j * stride FROM generate_series(upd, upd + k - 1) j);
      upd := upd + k;
    END IF;
    IF ins >= n_ins AND upd >= n_upd THEN
      -- The last transaction: where its commit record is, for the target LSN.
      RAISE NOTICE 'bench_last xid=% from=%', pg_current_xact_id(), pg_current_wal_insert_lsn();
    END IF;
    COMMIT;
  END LOOP;
END $$;
"""

BATCH_TOML = """[batch]
max_rows = 10000
max_bytes = "8MB"
max_fill_ms = 200
"""


def log(msg: str) -> None:
    print(f"[cdc_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def lsn_int(text: str) -> int:
    hi, lo = text.strip().split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_str(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def db_url(pg: Postgres, db: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{pg.port}/{db}"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# --------------------------------------------------------------------------
# Processes that we stop ourselves


class Background:
    """A process that runs until we SIGTERM it (`sluice run` of a CDC
    pipeline), with wait4()'s rusage at the end as in run_measured.

    Whether it is still alive is asked with waitid(WNOWAIT), which does not
    reap it: reaping (Popen.poll) would lose the rusage.
    """

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str]):
        log_path.unlink(missing_ok=True)  # parse only this run's log
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.started_wall = time.time()
            self.t0 = time.monotonic()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env)
        _live_children.add(self.proc)
        self.result: RunResult | None = None

    def exited(self) -> bool:
        if self.result is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def stop(self, timeout_s: float = 120.0) -> RunResult:
        """SIGTERM (unless it already exited), then wait4; SIGKILL after timeout_s."""
        if self.result is not None:
            return self.result
        if not self.exited():
            os.kill(self.proc.pid, signal.SIGTERM)  # not Popen.send_signal: it polls (reaps)
        done = threading.Event()
        timed_out = threading.Event()

        def watchdog() -> None:
            if not done.wait(timeout_s):
                timed_out.set()
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass

        t = threading.Thread(target=watchdog, daemon=True)
        t.start()
        try:
            _, status, ru = os.wait4(self.proc.pid, 0)
        finally:
            done.set()
            _live_children.discard(self.proc)
        t.join()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.result = RunResult(exit_code=self.proc.returncode, wall_s=time.monotonic() - self.t0,
                                peak_rss_kb=ru.ru_maxrss, cpu_s=ru.ru_utime + ru.ru_stime,
                                timed_out=timed_out.is_set())
        return self.result


def log_records(path: Path) -> list[tuple[float, str, str]]:
    """(unix time, level, message) of every line of sluice's JSON log."""
    out = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
            t = dt.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            out.append((t, rec["level"], rec["message"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def find_line(path: Path, pattern: re.Pattern) -> tuple[float, re.Match] | None:
    for t, _, msg in log_records(path):
        m = pattern.search(msg)
        if m:
            return t, m
    return None


COPY_DONE_RE = re.compile(r"initial copy of \d+ table\(s\) done in ([0-9.]+) s")
STREAMING_RE = re.compile(r"streaming from slot (\S+) at (\S+)")
STOPPED_RE = re.compile(r"stopped; (-?\d+) row\(s\) copied, (\d+) change\(s\) in (\d+) "
                        r"transaction\(s\), (\d+) batch\(es\)")


def count_warnings(path: Path) -> int:
    return sum(level in ("warning", "error", "critical") for _, level, _ in log_records(path))


# --------------------------------------------------------------------------
# Watching replication slots


class SlotWatch:
    """One long-lived psql session asking for slots' confirmed_flush_lsn.

    Polling every 20 ms with a new psql each time would cost a process
    start per poll on the same cores as the tool being measured; one session
    costs a query.
    """

    def __init__(self, pg: Postgres, db: str = "src"):
        env = pg.env
        env["PGDATABASE"] = db
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, bufsize=1)
        _live_children.add(self.proc)
        self.lock = threading.Lock()

    def query(self, sql: str) -> str:
        """One value; sql must return exactly one row."""
        with self.lock:
            self.proc.stdin.write(sql.rstrip(";") + ";\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the slot-watching psql session ended (query: {sql})")
        return line.rstrip("\n")

    def confirmed(self, slot: str) -> int | None:
        v = self.query("SELECT coalesce((SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                       f"WHERE slot_name = {sql_quote(slot)}), '-')")
        return None if v in ("-", "") else lsn_int(v)

    def active_pid(self, slot: str) -> int | None:
        v = self.query("SELECT coalesce((SELECT active_pid::text FROM pg_replication_slots "
                       f"WHERE slot_name = {sql_quote(slot)}), '-')")
        return None if v in ("-", "") else int(v)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        _live_children.discard(self.proc)


class WalsenderCpu:
    """CPU seconds of the walsender serving `slot`, sampled every 0.1 s.

    The walsender decodes the WAL for every client alike; its CPU next to
    the client's shows which side of the connection is the bottleneck.
    """

    def __init__(self, pg: Postgres, slot: str):
        self.watch = SlotWatch(pg)
        self.slot = slot
        self.cpu_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> WalsenderCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.watch.close()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                pid = self.watch.active_pid(self.slot)
                if pid is None:
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # utime and stime are fields 14 and 15 of stat(5); after the
                # ")" that ends the command name, fields start at 3.
                self.cpu_s = (int(fields[11]) + int(fields[12])) / self._tick
            except (OSError, ValueError, IndexError, RuntimeError):
                continue


# --------------------------------------------------------------------------
# sluice pipelines


def write_pipeline(path: Path, name: str, pg: Postgres, slot: str, dest: str, workdir: Path,
                   db: str = "") -> None:
    """dest "postgres" (database db, state in the same database) or "null"."""
    if dest == "postgres":
        dest_toml = (f'[destination]\ntype = "postgres"\nurl = {toml_quote(db_url(pg, db))}\n'
                     'schema = "public"\n\n'
                     "[state]\n# the destination database: batches and positions commit together "
                     "(exactly once)\n"
                     f"url = {toml_quote(db_url(pg, db))}\n")
    else:
        dest_toml = ('[destination]\ntype = "null"\n\n[state]\n'
                     f"path = {toml_quote(str(workdir / f'{name}_state.db'))}\n")
    path.write_text(
        f"""# Generated by bench/cdc_bench.py
name = {toml_quote(name)}

[source]
type = "postgres_cdc"
url = {toml_quote(db_url(pg, "src"))}
publication = "{PUBLICATION}"
tables = ["{TABLE}"]
slot = {toml_quote(slot)}
max_table_sync_workers = 2

{BATCH_TOML}
{dest_toml}
[engine]
temp_directory = {toml_quote(str(workdir / "tmp"))}
"""
    )


@dataclass
class Row:
    """One line of a result table: the runs of one tool (median of them)."""
    tool: str
    status: str = "ok"
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    walsender_cpus: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None  # the largest of the runs
    notes: list[str] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # sluice's destination batches per run

    def fail(self, problem: str, log_path: Path | None = None) -> None:
        self.status = f"FAILED: {problem}"
        log(f"{self.tool} FAILED: {problem}" +
            (f"; log {log_path}:\n{tail(log_path, 25)}" if log_path else ""))

    def add(self, wall_s: float, res: RunResult, walsender_cpu_s: float | None = None,
            note: str = "") -> None:
        self.walls.append(wall_s)
        self.cpus.append(res.cpu_s)
        if walsender_cpu_s is not None:
            self.walsender_cpus.append(walsender_cpu_s)
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
        if note:
            self.notes.append(note)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.walls)

    @property
    def wall_s(self) -> float | None:
        return statistics.median(self.walls) if self.ok else None

    @property
    def cpu_s(self) -> float | None:
        return statistics.median(self.cpus) if self.ok else None

    @property
    def walsender_cpu_s(self) -> float | None:
        return statistics.median(self.walsender_cpus) if self.ok and self.walsender_cpus else None

    def result(self) -> str:
        if not self.ok:
            return self.status
        runs = (" (runs: " + ", ".join(f"{w:.2f}" for w in self.walls) + " s)"
                if len(self.walls) > 1 else "")
        return "ok" + runs + ("; " + "; ".join(self.notes) if self.notes else "")


def fingerprint(pg: Postgres, db: str) -> tuple[str, ...]:
    """Values that must be identical for two tables with the same rows.

    The hash of every row's text form catches a wrong value in any column;
    both databases are on the same server, so the text forms compare.
    """
    out = pg.psql("SELECT count(*), min(id), max(id), sum(id), sum(amount), "
                  "sum(hashtext(t::text)::bigint) FROM public.bench t", db=db)
    return tuple(out.split("|"))


FINGERPRINT_NAMES = ("count", "min(id)", "max(id)", "sum(id)", "sum(amount)", "row hash")


def compare(pg: Postgres, db: str, expected: tuple[str, ...]) -> str | None:
    try:
        got = fingerprint(pg, db)
    except RuntimeError as e:
        return f"cannot read {db}.bench: {str(e).splitlines()[-1]}"
    if got == expected:
        return None
    return f"{db}.bench differs from src.bench: " + ", ".join(
        f"{n} {a} != {b}" for n, a, b in zip(FINGERPRINT_NAMES, got, expected) if a != b)


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, help="rows of the initial table (default 5,000,000)")
    ap.add_argument("--inserts", type=int, help="inserted rows in the workload (default 1,000,000)")
    ap.add_argument("--updates", type=int, help="updated rows in the workload (default 500,000)")
    ap.add_argument("--txn-rows", type=int, default=1000, help="rows per workload transaction")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 200,000 rows, 40,000 inserts, 20,000 updates "
                         "(explicit --rows/--inserts/--updates still win)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of every measurement, tools interleaved; medians are reported "
                         "(each round has its own slots and, for sluice -> PostgreSQL, its own "
                         "destination database with a full copy)")
    ap.add_argument("--sluice", type=Path, default=REPO / "build" / "sluice",
                    help="the sluice binary, a Release build (default: build/sluice)")
    ap.add_argument("--workdir", type=Path,
                    help="where the server, pipelines and logs live (default: a temp dir, deleted)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the (default, temporary) workdir with its logs")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per step, seconds")
    args = ap.parse_args()
    quick = args.quick
    n_rows = args.rows if args.rows is not None else (200_000 if quick else 5_000_000)
    n_ins = args.inserts if args.inserts is not None else (40_000 if quick else 1_000_000)
    n_upd = args.updates if args.updates is not None else (20_000 if quick else 500_000)
    if n_rows < 1 or n_ins < 0 or n_upd < 0 or n_upd > n_rows or n_ins + n_upd < 1 or args.txn_rows < 1 \
            or args.repeat < 1:
        ap.error("need --repeat >= 1, --rows >= 1, --updates <= --rows, --inserts + --updates >= 1, --txn-rows >= 1")
    n_events = n_ins + n_upd
    n_txns = -(-n_ins // args.txn_rows) + -(-n_upd // args.txn_rows)

    sluice = args.sluice.resolve()
    have_sluice = os.access(sluice, os.X_OK)
    if not have_sluice:
        log(f"WARNING: {sluice} not found; sluice runs will be SKIPPED. {BUILD_HINT}")
    for tool in ("psql", "pg_recvlogical"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found (apt-get install postgresql-client-15)", file=sys.stderr)
            return 2

    install_signal_handlers()
    workdir, own_workdir = make_workdir(args.workdir, "sluice-cdc-bench-")
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    log(f"workdir {workdir} (free: {shutil.disk_usage(workdir).free / 1e9:.1f} GB)")

    load_at_start = load_average()
    pg = Postgres(workdir, extra_conf=EXTRA_CONF)
    report: list[str] = []
    failures = 0
    watch: SlotWatch | None = None
    try:
        pg.start()
        pg_version = pg.version()
        for db in ["src", "dst_pipe"] + [f"dst_{i}" for i in range(1, args.repeat + 1)]:
            pg.psql(f"CREATE DATABASE {db}", db="postgres")
        env = pg.env

        # ---- source table (untimed) ----------------------------------------
        log(f"filling src.bench with {n_rows:,} rows")
        t0 = time.monotonic()
        pg.psql(TABLE_DDL, db="src")
        pg.psql(f"INSERT INTO public.bench SELECT {ROW_SELECT} FROM generate_series(1::bigint, {n_rows}) i",
                db="src")
        # Hint bits and visibility map set now, so no reader pays for them;
        # statistics for the planner. Autovacuum is off for the benchmark's
        # tables so that it does not run in the middle of a timed step.
        pg.psql("VACUUM ANALYZE public.bench", db="src")
        pg.psql(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE}", db="src")
        table_mb = int(pg.psql("SELECT pg_table_size('public.bench')", db="src")) / 1e6
        log(f"filled in {time.monotonic() - t0:.1f} s: {table_mb:.0f} MB")
        source_fp = fingerprint(pg, "src")

        # ---- initial copies and slots (R rounds, tools interleaved) ------
        # Every sluice pipeline makes its slot and initial copy now, before
        # the workload, so that its restart below streams all of it. (A
        # pipeline whose slot exists but whose state store has no tables
        # copies from a new snapshot and skips the changes before it.) Round
        # i's exactly-once pipeline copies into its own database dst_i.
        pipe = Row("COPY pipe: psql COPY TO STDOUT (binary) \\| psql COPY FROM STDIN (binary)")
        sluice_copy = Row("sluice -> PostgreSQL (exactly once): process start -> \"initial copy done\"")
        null_copy = Row("sluice -> null (discard): process start -> \"initial copy done\"")
        copy_rows = [pipe, sluice_copy, null_copy]
        if not have_sluice:
            for row in (sluice_copy, null_copy):
                row.status = f"SKIPPED: {sluice} not found"
            failures += 1  # the benchmark did not measure what it is for

        def sluice_argv(toml: Path) -> list[str]:
            return [str(sluice), "--log-format", "json", "run", str(toml)]

        # key -> (pipeline name, slot, destination, destination database, TOML)
        pipelines: dict[str, tuple[str, str, str, str | None, Path]] = {}
        for i in range(1, args.repeat + 1):
            for dest in ("pg", "null"):
                name, slot = f"cdc_bench_{dest}_{i}", f"sluice_bench_{dest}_{i}"
                db = f"dst_{i}" if dest == "pg" else None
                toml = workdir / f"{name}.toml"
                write_pipeline(toml, name, pg, slot, "postgres" if dest == "pg" else "null", workdir,
                               db or "")
                pipelines[f"{dest}_{i}"] = (name, slot, dest, db, toml)

        pipe_cmd = ("PGDATABASE=src psql -X -v ON_ERROR_STOP=1 -c "
                    f"{sh_quote('COPY public.bench TO STDOUT (FORMAT binary)')} | "
                    "PGDATABASE=dst_pipe psql -X -v ON_ERROR_STOP=1 -c "
                    f"{sh_quote('COPY public.bench FROM STDIN (FORMAT binary)')}")

        def copy_pipe(rep: int) -> None:
            pg.psql("DROP TABLE IF EXISTS public.bench", db="dst_pipe")
            pg.psql(TABLE_DDL, db="dst_pipe")  # what sluice creates: the same columns and key
            pg.psql("CHECKPOINT")
            log(f"[{rep}/{args.repeat}] initial copy, COPY pipe: {pipe_cmd}")
            log_path = logs / f"copy_pipe_{rep}.log"
            # bash waits for both psql processes, so wait4's ru_maxrss is the
            # larger of the two (and CPU their sum).
            res = run_measured(["bash", "-o", "pipefail", "-c", pipe_cmd], log_path=log_path,
                               env=env, stdin=subprocess.DEVNULL, timeout_s=args.timeout)
            if res.timed_out or res.exit_code != 0:
                pipe.fail("timeout" if res.timed_out else f"exit code {res.exit_code}", log_path)
            elif (problem := compare(pg, "dst_pipe", source_fp)) is not None:
                pipe.fail(problem)
            else:
                pipe.add(res.wall_s, res)
                log(f"COPY pipe: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")
            pg.psql("DROP TABLE IF EXISTS public.bench", db="dst_pipe")  # free the disk

        def initial_copy(key: str, row: Row, rep: int) -> bool:
            name, slot, dest, db, toml = pipelines[key]
            pg.psql("CHECKPOINT")
            log_path = logs / f"{name}_copy.log"
            argv = sluice_argv(toml)
            log(f"[{rep}/{args.repeat}] initial copy, sluice -> {db or dest}: {' '.join(argv)}")
            bg = Background(argv, log_path, env)
            deadline = time.monotonic() + args.timeout
            streaming = None
            while time.monotonic() < deadline and not bg.exited():
                streaming = find_line(log_path, STREAMING_RE)
                if streaming:
                    break
                time.sleep(0.05)
            res = bg.stop()
            copied = find_line(log_path, COPY_DONE_RE)
            if streaming is None or copied is None:
                row.fail("timeout" if time.monotonic() >= deadline else
                         f"exited with {res.exit_code} before streaming", log_path)
                return False
            if res.exit_code != 0:
                row.fail(f"exit code {res.exit_code} after SIGTERM", log_path)
                return False
            if db is not None and (problem := compare(pg, db, source_fp)) is not None:
                row.fail(problem)
                return False
            note = ""
            if n := count_warnings(log_path):
                note = f"{n} warning(s)/error(s) in its log {log_path.name}"
            wall = copied[0] - bg.started_wall
            row.add(wall, res, note=note)
            log(f"sluice -> {db or dest} initial copy: {wall:.2f} s from process start (its log: "
                f"done in {copied[1].group(1)} s), peak RSS {res.peak_rss_kb / 1024:.1f} MB")
            return True

        ready: set[str] = set()
        for rep in range(1, args.repeat + 1):
            if pipe.status == "ok":
                copy_pipe(rep)
            # pg_recvlogical's slot, also before the workload.
            subprocess.run(["pg_recvlogical", "--create-slot", "-S", f"bench_recv_{rep}", "--plugin",
                            "pgoutput", "-d", db_url(pg, "src")], env=env, check=True,
                           capture_output=True, text=True)
            if not have_sluice:
                continue
            if sluice_copy.status == "ok" and initial_copy(f"pg_{rep}", sluice_copy, rep):
                ready.add(f"pg_{rep}")
                db = pipelines[f"pg_{rep}"][3]
                # As for the source: no autovacuum in the timed apply, and
                # statistics for the planner of sluice's UPDATE ... FROM.
                pg.psql("ALTER TABLE public.bench SET (autovacuum_enabled = off)", db=db)
                pg.psql("VACUUM ANALYZE public.bench", db=db)
            if null_copy.status == "ok" and initial_copy(f"null_{rep}", null_copy, rep):
                ready.add(f"null_{rep}")
        failures += sum(r.status.startswith("FAILED") for r in copy_rows)

        # ---- the workload (untimed for the tools) -------------------------
        pg.psql(WORKLOAD_PROCEDURE, db="src")
        wal_before = lsn_int(pg.psql("SELECT pg_current_wal_lsn()", db="src"))
        log(f"workload: {n_ins:,} inserts + {n_upd:,} updates in {n_txns:,} transactions of "
            f"{args.txn_rows:,} rows")
        t0 = time.monotonic()
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            f"CALL bench_workload({n_rows}, {n_ins}, {n_upd}, {args.txn_rows})"],
                           env=dict(env, PGDATABASE="src"), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"workload failed: {r.stderr.strip()}")
        workload_s = time.monotonic() - t0
        m = re.search(r"bench_last xid=(\d+) from=(\S+)", r.stderr)
        if not m:
            raise RuntimeError(f"workload did not report its last transaction: {r.stderr.strip()}")
        target = last_commit_end(pg, int(m.group(1)), m.group(2))
        wal_mb = (target - wal_before) / 1e6
        log(f"workload done in {workload_s:.1f} s; {wal_mb:.0f} MB of WAL; last commit ends at "
            f"{lsn_str(target)}")
        pg.psql("VACUUM ANALYZE public.bench", db="src")  # untimed, as before the copies
        expected_fp = fingerprint(pg, "src")

        # ---- streaming: one tool after the other, R rounds ----------------
        recv = Row("pg_recvlogical, pgoutput -> /dev/null (floor)")
        s_null = Row("sluice -> null (discard)")
        s_pg = Row("sluice -> PostgreSQL (exactly once)")
        stream_rows = [recv, s_null, s_pg]
        watch = SlotWatch(pg)

        def stream_recv(rep: int) -> None:
            slot = f"bench_recv_{rep}"
            pg.psql("CHECKPOINT")
            argv = ["pg_recvlogical", "--start", "-S", slot, "-d", db_url(pg, "src"),
                    "-o", "proto_version=2", "-o", f"publication_names={PUBLICATION}",
                    # what sluice asks for too: the same work for the walsender
                    "-o", "streaming=on", "-o", "messages=true",
                    "-f", "/dev/null", f"--endpos={lsn_str(target)}", "--no-loop"]
            log(f"[{rep}/{args.repeat}] streaming, pg_recvlogical: {' '.join(argv)}")
            log_path = logs / f"pg_recvlogical_{rep}.log"
            with WalsenderCpu(pg, slot) as ws:
                res = run_measured(argv, log_path=log_path, env=env, stdin=subprocess.DEVNULL,
                                   timeout_s=args.timeout)
            if res.timed_out or res.exit_code != 0:
                recv.fail("timeout" if res.timed_out else f"exit code {res.exit_code}", log_path)
                return
            recv.add(res.wall_s, res, ws.cpu_s)
            log(f"pg_recvlogical: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")

        def stream(key: str, row: Row, rep: int) -> None:
            name, slot, dest, db, toml = pipelines[key]
            pg.psql("CHECKPOINT")
            log_path = logs / f"{name}_stream.log"
            argv = sluice_argv(toml)
            log(f"[{rep}/{args.repeat}] streaming, sluice -> {db or dest}: {' '.join(argv)} "
                f"(until {slot} confirms {lsn_str(target)})")
            with WalsenderCpu(pg, slot) as ws:
                bg = Background(argv, log_path, env)
                deadline = bg.t0 + args.timeout
                done_at = None
                while not bg.exited() and time.monotonic() < deadline:
                    lsn = watch.confirmed(slot)
                    if lsn is not None and lsn >= target:
                        done_at = time.monotonic()
                        break
                    time.sleep(0.02)
                done_wall = time.time()
                walsender_cpu = ws.cpu_s
            res = bg.stop()
            if done_at is None:
                row.fail("timeout" if time.monotonic() >= deadline else
                         f"exited with {res.exit_code} before confirming the workload", log_path)
                return
            if res.exit_code != 0:
                row.fail(f"exit code {res.exit_code} after SIGTERM", log_path)
                return
            stopped = find_line(log_path, STOPPED_RE)
            if stopped is None:
                row.fail("no \"stopped\" line in its log", log_path)
                return
            changes, txns, batches = (int(stopped[1].group(k)) for k in (2, 3, 4))
            if changes != n_events or txns != n_txns:
                row.fail(f"saw {changes:,} changes in {txns:,} transactions, expected "
                         f"{n_events:,} in {n_txns:,}", log_path)
                return
            if db is not None and (problem := compare(pg, db, expected_fp)) is not None:
                row.fail(problem)
                return
            wall = done_at - bg.t0
            streaming = find_line(log_path, STREAMING_RE)
            phases = (f"start-up {streaming[0] - bg.started_wall:.2f} s + streaming "
                      f"{done_wall - streaming[0]:.2f} s" if streaming else "")
            note = ""
            if n := count_warnings(log_path):
                note = f"{n} warning(s)/error(s) in its log {log_path.name}"
            row.add(wall, res, walsender_cpu, note)
            row.batches.append(batches)
            log(f"sluice -> {db or dest}: {wall:.2f} s ({phases}; {batches:,} batches), "
                f"peak RSS {res.peak_rss_kb / 1024:.1f} MB")

        for rep in range(1, args.repeat + 1):
            if recv.status == "ok":
                stream_recv(rep)
            for dest, row in (("null", s_null), ("pg", s_pg)):
                key = f"{dest}_{rep}"
                if not have_sluice:
                    row.status = f"SKIPPED: {sluice} not found"
                elif key not in ready:
                    row.status = "FAILED: its initial copy failed (see above)"
                elif row.status == "ok":
                    stream(key, row, rep)
        failures += sum(r.status.startswith("FAILED") for r in stream_rows)

        # ---- report -------------------------------------------------------
        report.append(f"## Initial copy: {n_rows:,} rows ({table_mb:.0f} MB table)")
        report.append("")
        report.extend(copy_table(copy_rows, n_rows, pipe))
        report.append("")
        report.append(
            "Notes: the COPY pipe's wall time is from the start of the two psql processes to the "
            "end of both; its peak RSS is the larger of the two. sluice's is from process start "
            "(config, state store, publication check, slot creation with its exported snapshot) "
            "to the log line that says the copy is done (millisecond timestamps); its peak RSS "
            "and CPU are for the whole run, which went on to start streaming before it was "
            "stopped. sluice copies with max_table_sync_workers = 2 (ctid ranges, binary COPY). "
            "Both targets are empty tables with the same columns and primary key, and both copies "
            "are verified against the source (count, min/max/sum(id), sum(amount), a hash over "
            "every row). The null row reads the snapshot and discards it: the source side alone. "
            f"{median_note(args.repeat)}")
        report.append("")
        report.append(f"## Streaming: {n_ins:,} inserts + {n_upd:,} updates = {n_events:,} changes "
                      f"in {n_txns:,} transactions ({wal_mb:.0f} MB of WAL)")
        report.append("")
        report.extend(stream_table(stream_rows, n_events, recv))
        report.append("")
        report.append(
            "Notes: the tools ran one after the other on the same WAL, each with its own slot "
            "created before the workload (sluice's by its initial copy above), after an untimed "
            "CHECKPOINT. pg_recvlogical is timed from start to exit at --endpos (the end of the "
            "workload's last commit record, from pg_walinspect), asking pgoutput for the same "
            "options as sluice (proto_version 2, streaming on, messages true). sluice is timed "
            "from process start until its slot's confirmed_flush_lsn reaches that LSN (polled "
            "every 20 ms over one psql session); it confirms after each destination batch "
            "([batch] max_rows = 10000, max_bytes = 8MB, max_fill_ms = 200), so the time "
            "includes start-up and the last batch's commit, and then it is stopped with "
            "SIGTERM. events/s = changes / wall s. sluice's count of changes and transactions "
            "(its \"stopped\" log line) must equal the workload's, and after the PostgreSQL run "
            "dst_i.bench must equal src.bench (count, sums, row hash). walsender CPU is the "
            "server process decoding for that client (from /proc, every 0.1 s); client CPU "
            "and peak RSS are the client's (wait4). The PostgreSQL server's memory is not "
            f"counted. {median_note(args.repeat)}")
        report.append("")
        for row in (s_null, s_pg):
            if row.batches:
                report.append(f"{row.tool} wrote {', '.join(f'{b:,}' for b in row.batches)} "
                              f"destination batch(es) for the {n_txns:,} transactions "
                              "(sluice's \"stopped\" log line).")
        report.append("")
        report.extend(target_lines(pipe, sluice_copy, null_copy, recv, s_null, s_pg, n_rows,
                                   n_events))
        report.append("")
        report.append("## Environment")
        report.append("")
        report.append(f"- host: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, "
                      f"{mem_total_gb():.1f} GB RAM, Linux {platform.release()}")
        report.append(f"- load average (1/5/15 min) at start: {load_at_start}; at the end: "
                      f"{load_average()} (other work on the machine distorts the numbers)")
        report.append(f"- PostgreSQL {pg_version} (local, 127.0.0.1 TCP, fsync=on, "
                      "shared_buffers=256MB, max_wal_size=4GB, wal_level=logical, "
                      "autovacuum off for the benchmark's tables, otherwise defaults)")
        report.append(f"- sluice: {tool_version([str(sluice), 'version']) if have_sluice else 'not built'}"
                      f" ({sluice}); commit {git_commit()}")
        report.append(f"- pg_recvlogical: {tool_version(['pg_recvlogical', '--version'])}; "
                      f"psql: {tool_version(['psql', '--version'])}")
        report.append(f"- workload: bench(id bigint primary key, category text, amount "
                      f"numeric(12,2), ts timestamptz, note text), {n_rows:,} rows "
                      f"(~{table_mb * 1e6 / n_rows:.0f} bytes/row on disk); "
                      f"workload generated in {workload_s:.1f} s")

    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        detail = getattr(e, "stderr", None)
        log(f"error: {e}" + (f"\n{detail.strip()}" if isinstance(detail, str) and detail else ""))
        return 2
    finally:
        if watch is not None:
            watch.close()
        kill_live_children()
        log("stopping and deleting PostgreSQL")
        pg.stop_and_delete()
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif own_workdir:
            log(f"kept {workdir}")

    write_report(args.results_dir, "cdc", "sluice CDC benchmark", report)
    return 1 if failures else 0


def median_note(repeat: int) -> str:
    if repeat == 1:
        return "One run per tool."
    return (f"Median of {repeat} runs per tool, tools interleaved round by round (peak RSS: the "
            "largest run).")


def sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def last_commit_end(pg: Postgres, xid: int, since: str) -> int:
    """End LSN of the commit record of transaction `xid`, from pg_walinspect.

    That is the LSN pgoutput's Commit message carries and sluice confirms
    (and the one pg_recvlogical's --endpos stops at exactly). Without the
    extension, pg_current_wal_lsn() is an upper bound that sluice may only
    confirm at its next status message (up to 10 s later), so it is refused.
    """
    pg.psql("CREATE EXTENSION IF NOT EXISTS pg_walinspect", db="src")
    out = pg.psql(
        "SELECT end_lsn FROM pg_get_wal_records_info("
        f"{sql_quote(since)}, pg_current_wal_flush_lsn()) "
        f"WHERE xid::text = {sql_quote(str(xid % (1 << 32)))} AND record_type = 'COMMIT' "
        "ORDER BY end_lsn DESC LIMIT 1", db="src")
    if not out:
        raise RuntimeError(f"no commit record of transaction {xid} after {since} in the WAL")
    return lsn_int(out)


def copy_table(rows: list[Row], n_rows: int, pipe: Row) -> list[str]:
    lines = ["| tool | wall s | rows/s | peak RSS MB | CPU s | ratio to COPY pipe | target | result |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ok = r.status == "ok" and r.wall_s
        ratio = r.wall_s / pipe.wall_s if ok and pipe.wall_s and r is not pipe else None
        if r.tool.startswith("sluice -> PostgreSQL"):
            target = f"<= {TARGET_COPY_RATIO}x" + (
                "" if ratio is None else (": met" if ratio <= TARGET_COPY_RATIO else ": MISSED"))
        else:
            target = "-"
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r.tool, fmt(r.wall_s if ok else None, ".2f"),
            fmt(n_rows / r.wall_s if ok else None, ",.0f"),
            fmt(r.peak_rss_mb if ok else None, ".1f"), fmt(r.cpu_s if ok else None, ".2f"),
            ("1.00x" if r is pipe and ok else fmt(ratio, ".2f") + ("x" if ratio is not None else "")),
            target, r.result()))
    return lines


def stream_table(rows: list[Row], n_events: int, recv: Row) -> list[str]:
    recv_eps = n_events / recv.wall_s if recv.status == "ok" and recv.wall_s else None
    lines = ["| tool | wall s | events/s | x pg_recvlogical's events/s | peak RSS MB | client CPU s "
             "| walsender CPU s | target | result |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ok = r.status == "ok" and r.wall_s
        eps = n_events / r.wall_s if ok else None
        ratio = eps / recv_eps if eps and recv_eps else None
        if r.tool.startswith("sluice -> null"):
            target = f">= {TARGET_NULL_VS_RECV}x" + (
                "" if ratio is None else (": met" if ratio >= TARGET_NULL_VS_RECV else ": MISSED"))
        elif r.tool.startswith("sluice -> PostgreSQL"):
            target = f">= {TARGET_PG_ROWS_S:,} rows/s" + (
                "" if eps is None else (": met" if eps >= TARGET_PG_ROWS_S else ": MISSED"))
        else:
            target = "-"
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r.tool, fmt(r.wall_s if ok else None, ".2f"), fmt(eps, ",.0f"),
            fmt(ratio, ".2f") + ("x" if ratio is not None else ""),
            fmt(r.peak_rss_mb if ok else None, ".1f"), fmt(r.cpu_s if ok else None, ".2f"),
            fmt(r.walsender_cpu_s if ok else None, ".2f"),
            target, r.result()))
    return lines


def target_lines(pipe: Row, sluice_copy: Row, null_copy: Row, recv: Row, s_null: Row, s_pg: Row,
                 n_rows: int, n_events: int) -> list[str]:
    out = ["## Targets", "", "| target | measured | result |", "|---|---|---|"]

    def ok(*rows: Row) -> bool:
        return all(r.status == "ok" and r.wall_s for r in rows)

    def line(what: str, measured: str | None, met: bool | None) -> None:
        out.append(f"| {what} | {measured or '-'} | "
                   f"{'met' if met else ('MISSED' if met is not None else 'not measured')} |")

    if ok(recv, s_null):
        ratio = recv.wall_s / s_null.wall_s
        line(f"sluice -> null >= {TARGET_NULL_VS_RECV}x pg_recvlogical's events/s",
             f"{ratio:.2f}x ({n_events / s_null.wall_s:,.0f} vs {n_events / recv.wall_s:,.0f})",
             ratio >= TARGET_NULL_VS_RECV)
    else:
        line(f"sluice -> null >= {TARGET_NULL_VS_RECV}x pg_recvlogical's events/s", None, None)
    if ok(s_pg):
        eps = n_events / s_pg.wall_s
        line(f"sluice -> PostgreSQL (exactly once) >= {TARGET_PG_ROWS_S:,} rows/s", f"{eps:,.0f}",
             eps >= TARGET_PG_ROWS_S)
    else:
        line(f"sluice -> PostgreSQL (exactly once) >= {TARGET_PG_ROWS_S:,} rows/s", None, None)
    if ok(pipe, sluice_copy):
        ratio = sluice_copy.wall_s / pipe.wall_s
        line(f"initial copy <= {TARGET_COPY_RATIO}x the COPY pipe",
             f"{ratio:.2f}x ({sluice_copy.wall_s:.2f} s vs {pipe.wall_s:.2f} s)",
             ratio <= TARGET_COPY_RATIO)
    else:
        line(f"initial copy <= {TARGET_COPY_RATIO}x the COPY pipe", None, None)
    measured = [r for r in (sluice_copy, null_copy, s_null, s_pg) if ok(r) and r.peak_rss_mb]
    if measured:
        peak = max(r.peak_rss_mb for r in measured)
        runs = sum(len(r.walls) for r in measured)
        line(f"sluice peak RSS < {TARGET_PEAK_RSS_MB:.0f} MB (every sluice run)",
             f"{peak:.1f} MB (largest of {runs} run(s))", peak < TARGET_PEAK_RSS_MB)
    else:
        line(f"sluice peak RSS < {TARGET_PEAK_RSS_MB:.0f} MB", None, None)
    return out


if __name__ == "__main__":
    sys.exit(main())
