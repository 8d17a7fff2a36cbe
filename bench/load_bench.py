#!/usr/bin/env python3
"""Load benchmark: sluice against the tools a user would otherwise reach for.

Workload 1 (file load): one generated CSV (default 5,000,000 rows, ~330 MB)
is loaded into identical, freshly created tables by

  sluice      build/sluice run <generated pipeline TOML>
  psql \\copy  psql -c "\\copy t FROM 'data.csv' (format csv, header true)"
  binary COPY psql -c "\\copy t FROM 'data.bin' (format binary)": the data
              already encoded as PostgreSQL binary COPY, i.e. the floor that
              any client which parses CSV and sends binary COPY can approach
  pgloader    the Debian pgloader package with a LOAD CSV command file

Each run is timed (wall clock, including process start-up) and its peak RSS
is taken from wait4()'s rusage, which is what /usr/bin/time's %M reports.
Every load is verified (row count, and a fingerprint of the whole table
compared with a reference load); a wrong result is reported as FAILED.

Workload 2 (streaming): `sluice_gen_csv --bytes N` piped into sluice reading
stdin with a discarding ("null") destination, to show throughput and that
memory stays flat over an input far larger than any buffer.

The script starts its own throwaway PostgreSQL 15 on a free loopback port,
and stops and deletes it at the end, also on error or Ctrl-C. It builds
nothing: it expects build/sluice and build/bench/sluice_gen_csv.

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")

# One DDL for every tool, so that differences are the tool's, not the table's.
TABLE_COLUMNS = (
    "id bigint, category text, status text, amount numeric(12,2), "
    "ts timestamp, note text"
)
# The same columns as sluice's source schema (DuckDB type names).
SLUICE_COLUMNS = (
    '{ id = "BIGINT", category = "VARCHAR", status = "VARCHAR", '
    'amount = "DECIMAL(12,2)", ts = "TIMESTAMP", note = "VARCHAR" }'
)

# Targets from bench/README.md; printed next to the results.
TARGET_RATIO_PSQL = 1.0
TARGET_RATIO_BINARY = 1.2
TARGET_PEAK_RSS_MB = 300.0

BUILD_HINT = (
    "Build first, from the repository root:\n"
    "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"
)


# --------------------------------------------------------------------------
# Small helpers


def log(msg: str) -> None:
    print(f"[load_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sql_quote(s: str) -> str:
    """Single-quoted SQL / psql / pgloader literal."""
    return "'" + s.replace("'", "''") + "'"


def toml_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_port() -> int:
    # Bind to port 0 and let the kernel choose; the tiny race before
    # PostgreSQL binds it is acceptable for a benchmark.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in lines[-n:])


class Interrupted(Exception):
    pass


def on_sigterm(signum, frame):  # noqa: ARG001
    # Turn SIGTERM into an exception so the same cleanup (kill children,
    # stop and delete PostgreSQL) runs as for Ctrl-C.
    raise Interrupted(f"signal {signum}")


# Children currently running, so cleanup can kill them on Ctrl-C/errors.
_live_children: set[subprocess.Popen] = set()


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly, because a shell may start us with SIGINT ignored (e.g. a
    # background job), and Ctrl-C must still clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def make_workdir(arg: Path | None, prefix: str) -> tuple[Path, bool]:
    """The --workdir, created if needed, or a new temp dir; and whether it is ours to delete."""
    if arg is None:
        # /tmp so that the postgres user can traverse it when we run as root.
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(workdir, 0o755)
        return workdir, True
    workdir = arg.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir, False


def write_report(results_dir: Path, kind: str, title: str, report: list[str]) -> None:
    """Prints the report and writes it to results_dir/<kind>_<stamp>.md under `title`."""
    text = "\n".join(report)
    print()
    print(text)
    results_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now()
    out = results_dir / f"{kind}_{now.strftime('%Y%m%d_%H%M%S')}.md"
    out.write_text(f"# {title}, {now.isoformat(timespec='seconds')}\n\n"
                   f"Command: `{' '.join(sys.argv)}`\n\n{text}\n")
    print(f"\nresults written to {out}")


def kill_live_children() -> None:
    for p in list(_live_children):
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass


# --------------------------------------------------------------------------
# Measured process runs


@dataclass
class RunResult:
    exit_code: int
    wall_s: float
    peak_rss_kb: int  # ru_maxrss of the process (and descendants it waited for)
    cpu_s: float  # user + system CPU of the client process
    rss_samples_kb: list[int] = field(default_factory=list)
    timed_out: bool = False


def run_measured(
    argv: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    stdin=None,
    timeout_s: float | None = None,
    sample_rss: bool = False,
) -> RunResult:
    """Runs argv, waiting with wait4() to get its exact rusage.

    Why wait4 rather than parsing `/usr/bin/time -f %M`: it is the same
    number (GNU time calls wait4 too), but we keep the PID for /proc
    sampling and do not have to pick time's line out of the tool's stderr.
    ru_maxrss is the peak RSS of the process itself, or of the largest
    descendant it waited for (a max, not a sum). psql, pgloader and sluice
    are single (multi-threaded) processes, so this is their whole footprint.
    """
    with open(log_path, "ab") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=env)
        _live_children.add(proc)
        samples: list[int] = []
        done = threading.Event()
        timed_out = threading.Event()

        def sampler() -> None:
            # VmRSS every 0.5 s gives the curve; VmHWM (kernel-kept peak)
            # is also read so a spike between samples is not missed.
            status = Path(f"/proc/{proc.pid}/status")
            while not done.wait(0.5):
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            samples.append(int(line.split()[1]))
                            break
                except (OSError, ValueError):
                    pass

        def watchdog() -> None:
            if timeout_s is not None and not done.wait(timeout_s):
                timed_out.set()
                proc.kill()

        threads = [threading.Thread(target=watchdog, daemon=True)]
        if sample_rss:
            threads.append(threading.Thread(target=sampler, daemon=True))
        for t in threads:
            t.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            # Ctrl-C / SIGTERM while waiting: do not leave the tool running.
            proc.kill()
            proc.wait()
            raise
        finally:
            done.set()
            _live_children.discard(proc)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen consistent
        for t in threads:
            t.join()
    return RunResult(
        exit_code=proc.returncode,
        wall_s=wall,
        peak_rss_kb=ru.ru_maxrss,  # kilobytes on Linux
        cpu_s=ru.ru_utime + ru.ru_stime,
        rss_samples_kb=samples,
        timed_out=timed_out.is_set(),
    )


# --------------------------------------------------------------------------
# Throwaway PostgreSQL


class Postgres:
    """A private PostgreSQL 15 cluster on 127.0.0.1:<free port>.

    Settings are the defaults except: shared_buffers=256MB (the Debian
    default of 128MB is small for bulk loads), max_wal_size=4GB (so a load
    does not trigger back-to-back checkpoints), and fsync stays on: every
    tool pays for durability, so the comparison is honest.

    extra_conf: more postgresql.conf lines, appended after these (e.g.
    cdc_bench.py's "wal_level = logical"); empty by default.
    """

    def __init__(self, base: Path, extra_conf: str = ""):
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.extra_conf = extra_conf
        self.port = 0
        self.as_postgres = os.geteuid() == 0
        self.started = False

    def _cmd(self, argv: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: run its binaries as the
        # `postgres` OS user, which then owns the data directory.
        return (["runuser", "-u", "postgres", "--"] + argv) if self.as_postgres else argv

    def _run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._cmd(argv), cwd=self.dir, check=True, capture_output=True, text=True, **kw
        )

    def start(self) -> None:
        if not (PG_BIN / "postgres").exists():
            sys.exit(f"PostgreSQL 15 not found in {PG_BIN} (apt-get install postgresql-15)")
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
            # The postgres user must be able to reach the directory.
            r = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.dir)])
            if r.returncode != 0:
                sys.exit(
                    f"user 'postgres' cannot write {self.dir}; choose a --workdir whose "
                    "parent directories are world-traversable (e.g. under /tmp)"
                )
        self.port = free_port()
        log(f"initdb in {self.data}")
        self._run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--locale=C", "--no-sync"]
        )
        conf = f"""
# --- sluice load benchmark ---
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.dir}'
shared_buffers = 256MB
max_wal_size = 4GB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
"""
        if self.extra_conf:
            conf += self.extra_conf.rstrip("\n") + "\n"
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf)
        log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        # New session: a Ctrl-C in the terminal must not stop the server
        # under us before we drop our tables and stop it in order.
        subprocess.run(
            self._cmd([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                       str(self.dir / "server.log"), "-w", "-t", "60", "start"]),
            cwd=self.dir, check=True, capture_output=True, start_new_session=True,
        )
        self.started = True
        self.psql("CREATE DATABASE bench", db="postgres")

    def stop_and_delete(self) -> None:
        if self.started:
            subprocess.run(
                self._cmd([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                           "-w", "-t", "60", "stop"]),
                cwd=self.dir, capture_output=True,
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        # TCP on loopback for every tool (sluice connects by URL over TCP;
        # psql must not get the cheaper Unix socket).
        e = dict(os.environ)
        e.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER="postgres",
                 PGDATABASE="bench", PGCONNECT_TIMEOUT="10")
        e.pop("PGPASSWORD", None)
        return e

    def url(self, scheme: str = "postgresql") -> str:
        return f"{scheme}://postgres@127.0.0.1:{self.port}/bench"

    def psql(self, sql: str, db: str = "bench") -> str:
        env = self.env
        env["PGDATABASE"] = db
        r = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env=env, capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{r.stderr.strip()}")
        return r.stdout.strip()

    def version(self) -> str:
        return self.psql("SHOW server_version")

    def fresh_table(self, name: str) -> None:
        """Drops and recreates `name`, then checkpoints.

        The CHECKPOINT (untimed) flushes the previous run's dirty pages and
        WAL so that work is not billed to the next tool.
        """
        self.psql(f"DROP TABLE IF EXISTS public.{name}")
        self.psql(f"CREATE TABLE public.{name} ({TABLE_COLUMNS})")
        self.psql("CHECKPOINT")

    def fingerprint(self, name: str) -> tuple[str, ...]:
        """Values that must be identical for every correct load of the data.

        The hash of every row's text form catches wrong values in any column
        (e.g. a note whose "" was not unescaped, a shifted timestamp).
        """
        out = self.psql(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(amount), "
            "min(ts), max(ts), sum(hashtext(t::text)::bigint) "
            f"FROM public.{name} t"
        )
        return tuple(out.split("|"))


FINGERPRINT_NAMES = ("count", "count(distinct id)", "min(id)", "max(id)",
                     "sum(amount)", "min(ts)", "max(ts)", "row hash")


# --------------------------------------------------------------------------
# The tools


@dataclass
class ToolRow:
    tool: str
    status: str = "ok"  # "ok", "FAILED: ...", "SKIPPED: ..."
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def write_sluice_file_pipeline(path: Path, csv: Path, pg: Postgres, table: str) -> None:
    path.write_text(
        f"""# Generated by bench/load_bench.py
[source]
type = "files"
path = {toml_quote(str(csv))}
format = "csv"
header = true
columns = {SLUICE_COLUMNS}

[destination]
type = "postgres"
url = {toml_quote(pg.url())}
table = "public.{table}"
mode = "append"
"""
    )


def write_sluice_stream_pipeline(path: Path, pg: Postgres | None, table: str) -> None:
    if pg is None:
        dest = '[destination]\ntype = "null"\n'
    else:
        dest = (f'[destination]\ntype = "postgres"\nurl = {toml_quote(pg.url())}\n'
                f'table = "public.{table}"\nmode = "append"\n')
    path.write_text(
        f"""# Generated by bench/load_bench.py: CSV on stdin
[source]
type = "files"
path = "-"
format = "csv"
header = true
columns = {SLUICE_COLUMNS}

{dest}"""
    )


def write_pgloader_command(path: Path, csv: Path, pg: Postgres, table: str) -> None:
    # pgloader 3.6 accepts postgresql:// URLs (pgsql:// also works); the
    # table goes in ?tablename=. Its CSV options mirror RFC 4180 as written
    # by the generator: comma-separated, optionally quoted, "" escapes a
    # quote, one header line. Everything else is pgloader's defaults
    # (batches of 25,000 rows, its default workers/concurrency).
    path.write_text(
        f"""LOAD CSV
  FROM {sql_quote(str(csv))} (id, category, status, amount, ts, note)
  INTO {pg.url()}?tablename={table}
  TARGET COLUMNS (id, category, status, amount, ts, note)
  WITH skip header = 1,
       fields terminated by ',',
       fields optionally enclosed by '"',
       fields escaped by double-quote;
"""
    )


def tool_version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


# --------------------------------------------------------------------------
# Reporting


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def load_table(rows: list[ToolRow], n_rows: int, csv_bytes: int) -> str:
    psql_row = next((r for r in rows if r.tool == "psql \\copy" and r.status == "ok"), None)
    header = ("| tool | wall s | rows/s | MB/s | peak RSS MB | client CPU s | "
              "ratio to psql \\copy | result |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ok = r.status == "ok"
        wall = r.wall_s if ok else None
        ratio = (wall / psql_row.wall_s) if (ok and psql_row) else None
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                r.tool.replace("|", "\\|"),
                fmt(wall, ".2f"),
                fmt(n_rows / wall if wall else None, ",.0f"),
                fmt(csv_bytes / 1e6 / wall if wall else None, ".1f"),
                fmt(r.peak_rss_mb, ".1f"),
                fmt(r.cpu_s, ".2f"),
                fmt(ratio, ".2f") + ("x" if ratio is not None else ""),
                r.status,
            )
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows in the file workload")
    ap.add_argument("--stream-gb", type=float, default=10.0,
                    help="GB (1e9 bytes) piped through sluice from stdin; 0 skips")
    ap.add_argument("--stream-to-postgres", action="store_true",
                    help="also stream into PostgreSQL (default: null destination only)")
    ap.add_argument("--skip-pgloader", action="store_true")
    ap.add_argument("--skip-compressed", action="store_true",
                    help="do not measure .gz/.zst inputs (with and without the integrity check)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs per tool; the median wall time is reported")
    ap.add_argument("--workdir", type=Path,
                    help="where data, logs and the server live (default: a temp dir, deleted)")
    ap.add_argument("--build-dir", type=Path, default=REPO / "build",
                    help="where sluice and bench/sluice_gen_csv are (default: build/)")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per run, seconds")
    args = ap.parse_args()

    sluice = args.build_dir / "sluice"
    gen = args.build_dir / "bench" / "sluice_gen_csv"
    if not os.access(gen, os.X_OK):
        print(f"error: {gen} not found.\n{BUILD_HINT}", file=sys.stderr)
        return 2
    have_sluice = os.access(sluice, os.X_OK)
    if not have_sluice:
        log(f"WARNING: {sluice} not found; sluice runs will be SKIPPED. {BUILD_HINT}")
    have_pgloader = shutil.which("pgloader") is not None

    install_signal_handlers()
    workdir, own_workdir = make_workdir(args.workdir, "sluice-load-bench-")
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    log(f"workdir {workdir} (free: {shutil.disk_usage(workdir).free / 1e9:.1f} GB)")

    pg = Postgres(workdir)
    report: list[str] = []
    failures = 0
    try:
        pg.start()
        pg_version = pg.version()

        # ---- data --------------------------------------------------------
        csv = workdir / "data.csv"
        log(f"generating {args.rows:,} rows -> {csv}")
        r = subprocess.run([str(gen), "--rows", str(args.rows), "--out", str(csv), "--summary"],
                           capture_output=True, text=True, check=True)
        gen_summary = dict(kv.split("=") for kv in r.stderr.split())
        csv_bytes = csv.stat().st_size
        expected_sum = f"{int(gen_summary['amount_cents_sum']) / 100:.2f}"
        log(f"CSV: {csv_bytes / 1e6:.1f} MB, {csv_bytes / args.rows:.1f} bytes/row")

        # Reference load (untimed): it gives the fingerprint every tool must
        # reproduce and the binary COPY file. It also warms up the server
        # (WAL segments exist and get recycled), so the first timed tool is
        # not penalised for creating them.
        log("reference load with psql \\copy (untimed)")
        pg.fresh_table("sales_ref")
        pg.psql(f"\\copy public.sales_ref FROM {sql_quote(str(csv))} (format csv, header true)")
        reference = pg.fingerprint("sales_ref")
        if int(reference[0]) != args.rows or reference[4] != expected_sum:
            raise RuntimeError(f"reference load is wrong: {reference}, expected "
                               f"{args.rows} rows and sum(amount)={expected_sum}")
        binfile = workdir / "data.bin"
        pg.psql(f"\\copy public.sales_ref TO {sql_quote(str(binfile))} (format binary)")
        pg.psql("DROP TABLE public.sales_ref")
        log(f"binary COPY file: {binfile.stat().st_size / 1e6:.1f} MB")

        # ---- timed loads ---------------------------------------------------
        tools: list[tuple[str, str, callable]] = []
        skip_check: dict[str, bool] = {}

        def sluice_argv(table: str) -> list[str]:
            toml = workdir / "file_load.toml"
            write_sluice_file_pipeline(toml, csv, pg, table)
            return [str(sluice), "run", str(toml)]

        def psql_argv(table: str, path: Path, fmt_opts: str) -> list[str]:
            return ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
                    f"\\copy public.{table} FROM {sql_quote(str(path))} ({fmt_opts})"]

        def pgloader_argv(table: str) -> list[str]:
            cmd = workdir / "pgloader.load"
            write_pgloader_command(cmd, csv, pg, table)
            # --root-dir: pgloader's log and reject files go to our workdir
            # instead of a shared /tmp/pgloader. The trailing slash matters:
            # pgloader reads it as a Lisp pathname, where "x/" is a directory
            # and "x" a file name. No other flag is needed, also as root
            # (no SSL on our loopback server, so no cert verification).
            return ["pgloader", "--root-dir", f"{workdir / 'pgloader'}/", str(cmd)]

        # Compressed copies of the same CSV: sluice checks the integrity of
        # .gz and .zst inputs (CRC and length trailer, frame ends and
        # checksums) on a thread beside DuckDB's scan. Loading each with the
        # check on and off measures what the check costs.
        compressed: dict[str, Path] = {}
        if have_sluice and not args.skip_compressed:
            for ext, cmd in ((".gz", ["gzip", "-c", "-6"]), (".zst", ["zstd", "-q", "-c", "-3", "--check"])):
                path = workdir / f"data.csv{ext}"
                log(f"compressing the CSV to {path.name} (untimed)")
                with open(path, "wb") as out:
                    subprocess.run(cmd + [str(csv)], stdout=out, check=True)
                compressed[ext] = path

        def sluice_compressed_argv(ext: str, table: str) -> list[str]:
            toml = workdir / f"file_load{ext}.toml"
            write_sluice_file_pipeline(toml, compressed[ext], pg, table)
            return [str(sluice), "run", str(toml)]

        tools.append(("sluice", "sales_sluice", sluice_argv if have_sluice else None))
        for ext, path in compressed.items():
            for check in (True, False):
                name = f"sluice {ext} input" + ("" if check else ", integrity check off")
                table = f"sales_sluice{ext.replace('.', '_')}{'' if check else '_nocheck'}"
                tools.append((name, table, (lambda e: lambda t: sluice_compressed_argv(e, t))(ext)))
                skip_check[name] = not check
        tools.append(("psql \\copy", "sales_psql",
                      lambda t: psql_argv(t, csv, "format csv, header true")))
        tools.append(("binary COPY (floor)", "sales_binary",
                      lambda t: psql_argv(t, binfile, "format binary")))
        if not args.skip_pgloader:
            tools.append(("pgloader", "sales_pgloader", pgloader_argv if have_pgloader else None))

        rows: dict[str, ToolRow] = {name: ToolRow(name) for name, _, _ in tools}
        for name, _, make in tools:
            if make is None:
                what = str(sluice) if name == "sluice" else name
                rows[name].status = f"SKIPPED: {what} not found"
                if name == "sluice":
                    failures += 1  # the benchmark did not measure what it is for

        # Tools interleave round by round, so drift (page cache, WAL files,
        # thermal) spreads over all of them instead of hitting the last one.
        for rep in range(args.repeat):
            for name, table, make in tools:
                row = rows[name]
                if make is None or row.status != "ok":
                    continue
                pg.fresh_table(table)
                argv = make(table)
                log_path = logs / f"{table}.log"
                log(f"[{rep + 1}/{args.repeat}] {name}: {' '.join(argv)}")
                env = dict(pg.env)
                if skip_check.get(name):
                    env["SLUICE_BENCH_SKIP_INTEGRITY_CHECK"] = "1"
                res = run_measured(argv, log_path=log_path, env=env, timeout_s=args.timeout,
                                   stdin=subprocess.DEVNULL)
                problem = None
                if res.timed_out:
                    problem = f"timeout after {args.timeout:.0f}s"
                elif res.exit_code != 0:
                    problem = f"exit code {res.exit_code}"
                else:
                    fp = pg.fingerprint(table)
                    if fp[0] != str(args.rows):
                        problem = f"{fp[0]} rows, expected {args.rows}"
                    else:
                        bad = [n for n, a, b in zip(FINGERPRINT_NAMES, fp, reference) if a != b]
                        if bad:
                            problem = "table differs from reference: " + ", ".join(
                                f"{n} {a} != {b}" for n, a, b in
                                zip(FINGERPRINT_NAMES, fp, reference) if n in bad)
                # Free the disk and keep autovacuum of this table from running
                # during the next tool's timed load.
                pg.psql(f"DROP TABLE IF EXISTS public.{table}")
                if problem:
                    row.status = f"FAILED: {problem}"
                    failures += 1
                    log(f"{name} FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
                    continue
                log(f"{name}: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")
                row.walls.append(res.wall_s)
                row.peak_rss_mb = max(row.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
                row.cpus.append(res.cpu_s)
        for row in rows.values():
            if row.status == "ok" and row.walls:
                row.wall_s = statistics.median(row.walls)
                row.cpu_s = statistics.median(row.cpus)

        # ---- report: file load -------------------------------------------
        report.append(f"## File load: {args.rows:,} rows, {csv_bytes / 1e6:.1f} MB CSV")
        report.append("")
        report.append(load_table(list(rows.values()), args.rows, csv_bytes))
        report.append("")
        s, p, b = rows["sluice"], rows["psql \\copy"], rows["binary COPY (floor)"]
        if s.status == "ok" and b.status == "ok":
            rb = s.wall_s / b.wall_s
            report.append(f"sluice / binary COPY floor: {rb:.2f}x "
                          f"(target <= {TARGET_RATIO_BINARY}x: "
                          f"{'met' if rb <= TARGET_RATIO_BINARY else 'MISSED'})")
        for ext in compressed:
            on, off = rows.get(f"sluice {ext} input"), rows.get(f"sluice {ext} input, integrity check off")
            if on and off and on.status == "ok" and off.status == "ok":
                report.append(f"integrity check of {ext} input: {on.wall_s - off.wall_s:+.2f} s wall "
                              f"({on.wall_s / off.wall_s:.2f}x), {on.cpu_s - off.cpu_s:+.2f} s client CPU")
        if s.status == "ok" and p.status == "ok":
            rp = s.wall_s / p.wall_s
            report.append(f"sluice / psql \\copy: {rp:.2f}x "
                          f"(target < {TARGET_RATIO_PSQL}x: "
                          f"{'met' if rp < TARGET_RATIO_PSQL else 'MISSED'})")
        if s.status == "ok":
            report.append(f"sluice peak RSS: {s.peak_rss_mb:.1f} MB "
                          f"(target < {TARGET_PEAK_RSS_MB:.0f} MB: "
                          f"{'met' if s.peak_rss_mb < TARGET_PEAK_RSS_MB else 'MISSED'})")
            report.append("")
        report.append(
            "Notes: wall time includes process start-up and the final commit. "
            "rows/s and MB/s use the CSV's row count and size for every tool "
            "(the binary file is a different size but holds the same data). "
            "Peak RSS is the client process's ru_maxrss (wait4, as /usr/bin/time %M); "
            "the PostgreSQL server's memory is NOT counted (same server, "
            "shared_buffers=256MB, for every tool). Client CPU is user+system of "
            "the client process. Each load goes into a freshly created table after "
            "an untimed CHECKPOINT, and is verified against a reference load "
            f"(count, count(distinct id), sum(amount) = {expected_sum}, min/max, "
            f"row hash). Median of {args.repeat} run(s)."
        )

        # ---- streaming workload -------------------------------------------
        if args.stream_gb > 0:
            report.append("")
            report.extend(stream_workload(args, gen, sluice if have_sluice else None, pg,
                                          workdir, logs))
            if report[-1].startswith("FAILED"):
                failures += 1

        # ---- environment --------------------------------------------------
        report.append("")
        report.append("## Environment")
        report.append("")
        report.append(f"- host: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, "
                      f"{mem_total_gb():.1f} GB RAM, Linux {platform.release()}")
        report.append(f"- PostgreSQL {pg_version} (local, 127.0.0.1 TCP, fsync=on, "
                      "shared_buffers=256MB, max_wal_size=4GB, otherwise defaults)")
        report.append(f"- sluice: {tool_version([str(sluice), 'version']) if have_sluice else 'not built'}"
                      f"; commit {git_commit()}")
        report.append(f"- psql: {tool_version(['psql', '--version'])}")
        if not args.skip_pgloader:
            report.append(f"- pgloader: {tool_version(['pgloader', '--version']) if have_pgloader else 'not installed'}")
        report.append(f"- generator: sluice_gen_csv --rows {args.rows} (seed 42), "
                      f"{csv_bytes / args.rows:.1f} bytes/row")

    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        return 130
    except (RuntimeError, subprocess.CalledProcessError) as e:
        # Setup failures (server start, data generation, reference load):
        # nothing can be measured; say why and still clean up.
        detail = getattr(e, "stderr", None)
        log(f"error: {e}" + (f"\n{detail.strip()}" if isinstance(detail, str) and detail else ""))
        return 2
    finally:
        kill_live_children()
        log("stopping and deleting PostgreSQL")
        pg.stop_and_delete()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    write_report(args.results_dir, "load", "sluice load benchmark", report)
    return 1 if failures else 0


def stream_workload(args, gen: Path, sluice: Path | None, pg: Postgres, workdir: Path,
                    logs: Path) -> list[str]:
    """gen --bytes N | sluice run (stdin -> null, optionally -> PostgreSQL)."""
    n_bytes = int(args.stream_gb * 1e9)
    out = [f"## Streaming: {args.stream_gb:g} GB of CSV on stdin"]
    out.append("")

    # Generator alone, briefly, to show it is not the bottleneck.
    probe = min(n_bytes, 2_000_000_000)
    t0 = time.monotonic()
    subprocess.run([str(gen), "--bytes", str(probe)], stdout=subprocess.DEVNULL, check=True)
    gen_mbps = probe / 1e6 / (time.monotonic() - t0)
    out.append(f"Generator alone (to /dev/null): {gen_mbps:.0f} MB/s.")
    out.append("")

    if sluice is None:
        out.append("SKIPPED: sluice not found (build it first).")
        return out

    targets: list[tuple[str, Postgres | None]] = [("null", None)]
    if args.stream_to_postgres:
        targets.append(("postgres", pg))
    out.append("| destination | bytes | rows | wall s | MB/s | rows/s | peak RSS MB "
               "| RSS over time min / median / max MB | result |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
    failed = False
    curves: list[str] = []
    for dest_name, dest_pg in targets:
        table = "sales_stream"
        toml = workdir / f"stream_{dest_name}.toml"
        write_sluice_stream_pipeline(toml, dest_pg, table)
        if dest_pg is not None:
            dest_pg.fresh_table(table)
        log_path = logs / f"stream_{dest_name}.log"
        gen_err = logs / f"stream_{dest_name}_gen.err"
        log(f"streaming {args.stream_gb:g} GB: sluice_gen_csv | sluice run {toml} ({dest_name})")
        with open(gen_err, "wb") as gerr:
            gen_proc = subprocess.Popen([str(gen), "--bytes", str(n_bytes), "--summary"],
                                        stdout=subprocess.PIPE, stderr=gerr)
        _live_children.add(gen_proc)
        try:
            res = run_measured([str(sluice), "run", str(toml)], log_path=log_path, env=pg.env,
                               stdin=gen_proc.stdout, timeout_s=args.timeout, sample_rss=True)
        finally:
            gen_proc.stdout.close()  # if sluice died early, gen gets EPIPE and exits
            gen_proc.wait()
            _live_children.discard(gen_proc)
        summary = dict(kv.split("=") for kv in gen_err.read_text().split() if "=" in kv)
        sent_bytes = int(summary.get("bytes", 0))
        sent_rows = int(summary.get("rows", 0))
        problem = None
        if res.timed_out:
            problem = "timeout"
        elif res.exit_code != 0:
            problem = f"sluice exit code {res.exit_code}"
        elif gen_proc.returncode != 0 or not sent_rows:
            problem = f"generator exit code {gen_proc.returncode} (sluice stopped reading?)"
        elif dest_pg is not None:
            n = int(dest_pg.psql(f"SELECT count(*) FROM public.{table}"))
            if n != sent_rows:
                problem = f"{n} rows in table, expected {sent_rows}"
        if dest_pg is not None:
            dest_pg.psql(f"DROP TABLE IF EXISTS public.{table}")
        samples_mb = [k / 1024 for k in res.rss_samples_kb] or [0.0]
        status = "ok" if problem is None else f"FAILED: {problem}"
        if problem:
            failed = True
            log(f"stream to {dest_name} FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
        out.append(
            f"| {dest_name} | {sent_bytes / 1e9:.2f} GB | {sent_rows:,} | {res.wall_s:.1f} | "
            f"{sent_bytes / 1e6 / res.wall_s:.1f} | {sent_rows / res.wall_s:,.0f} | "
            f"{res.peak_rss_kb / 1024:.1f} | {min(samples_mb):.0f} / "
            f"{statistics.median(samples_mb):.0f} / {max(samples_mb):.0f} | {status} |"
        )
        curves.append(rss_curve(dest_name, samples_mb))
    out.append("")
    out.extend(curves)
    out.append("")
    out.append("RSS is sampled from /proc/PID/status (VmRSS) every 0.5 s; peak RSS is "
               "ru_maxrss at exit (= VmHWM). Flat memory means the later deciles stay "
               "near the early ones however large the input.")
    if failed:
        out.append("FAILED: see above")
    return out


def rss_curve(name: str, samples_mb: list[float]) -> str:
    """RSS at each tenth of the run, so a reader sees flat vs. growing."""
    if len(samples_mb) < 2:
        return f"RSS curve ({name}): too few samples"
    points = [samples_mb[min(len(samples_mb) - 1, round(i * (len(samples_mb) - 1) / 10))]
              for i in range(11)]
    return (f"RSS curve ({name}), MB at 0%,10%,...,100% of the run "
            f"({len(samples_mb)} samples): " + " ".join(f"{p:.0f}" for p in points))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def mem_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def git_commit() -> str:
    # Read-only query; the benchmark never changes the repository.
    try:
        r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
