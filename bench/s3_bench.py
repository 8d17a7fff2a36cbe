#!/usr/bin/env python3
"""S3 batch benchmark: sluice's scheduled batch ETL from S3 against its floor.

Workload: 50 Parquet files, 5,000,000 rows in all (--large: 50,000,000 rows,
~600 MB), in a local S3 server (s3rver). One run of a sluice pipeline lists
the bucket, finds the 50 new files, downloads them, aggregates them with
DuckDB (group by region and product: sum(amount), count(*)) and writes the
result into PostgreSQL, recording the files in its ledger in the same
transaction. It is compared with

  sluice      build/sluice run <generated pipeline TOML> --once --progress never
              (batch = "all", read_while_downloading = true, the default:
              DuckDB's scan reads each object as it arrives while the others
              download)
  sluice,     the same with [source] read_while_downloading = false: DuckDB
  download    reads the objects once all are there (the difference says what
  first       reading while downloading pays)
  sluice,     the same pipeline with batch = "per_file": one load (one
  per_file    aggregate, appended) per object
  sluice,     the same pipeline over the same files on local disk (still
  local files incremental, ledger in PostgreSQL): the difference to the
              first row is what S3 costs, to the floor what the rest costs
  DuckDB      build/bench/sluice_duckdb_floor: DuckDB alone running the same
  (floor)     SELECT ... FROM read_parquet('data/*.parquet') GROUP BY ALL
              over the same files on local disk, with the same DuckDB thread
              count. No listing, download, state store or COPY: the engine's
              floor, which sluice cannot beat.
  curl        curl --parallel --parallel-max 4: every object downloaded from
              s3rver into files, nothing else (the download's floor)
  two-step    curl --parallel, then DuckDB over the downloaded files: what a
              user would script

Each run is timed (wall clock, including process start-up) and its peak RSS
is taken from wait4()'s rusage. Every sluice run is verified: the table in
PostgreSQL must equal DuckDB's result (groups, sum of counts, sum of
amounts, and a hash over every row).

The script starts its own throwaway PostgreSQL 15 and s3rver on free
loopback ports, and stops and deletes them at the end, also on error or
Ctrl-C. It builds nothing: it expects build/sluice and
build/bench/sluice_duckdb_floor, and s3rver installed by
`npm ci --prefix tests/s3rver` (scripts/setup.sh --tests does that).

Python 3 standard library only; the PostgreSQL and process-measuring helpers
are load_bench.py's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing load_bench
from load_bench import (  # noqa: E402
    write_report,
    REPO,
    Interrupted,
    Postgres,
    cpu_model,
    fmt,
    free_port,
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

S3RVER_JS = REPO / "tests" / "s3rver" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
BUCKET = "bench"
PREFIX = "parquet/"

# Targets from bench/README.md; printed next to the results.
TARGET_RATIO_FLOOR = 1.3
# sluice <= this x max(download alone, DuckDB alone) + sluice's start-up.
TARGET_RATIO_BOUND = 1.2
# Downloads in flight for curl, as sluice's default [source] concurrency.
CURL_PARALLEL = 4

BUILD_HINT = (
    "Build first, from the repository root:\n"
    "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"
)

# The transform: the same aggregate for sluice (over its input) and the floor
# (over the files). GROUP BY ALL groups by region and product.
AGG_SELECT = "SELECT region, product, sum(amount) AS amount, count(*) AS n FROM {src} GROUP BY ALL"

# 20 regions; ~200 products come from a number.
REGIONS = ("us-east", "us-west", "us-central", "ca-east", "ca-west", "mx-north", "br-south",
           "uk-london", "de-berlin", "fr-paris", "es-madrid", "it-milan", "nl-amsterdam",
           "se-stockholm", "pl-warsaw", "in-mumbai", "jp-tokyo", "kr-seoul", "sg-central",
           "au-sydney")

# Bump when the generated data changes, so a kept --workdir is regenerated.
DATA_VERSION = 1


def log(msg: str) -> None:
    print(f"[s3_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The workload


def generate_sql(data_dir: Path, rows: int, files: int) -> str:
    """COPY statements writing `files` Parquet files with `rows` rows in all.

    Deterministic: every value is a function of the row number i, through
    h = i * 2654435761 mod 4294967291 (a multiplicative hash modulo a prime,
    exact in BIGINT for any i below 3e9), so the files hold the same data on
    every machine with the same DuckDB. region = h mod 20, product = h / 20
    mod 200 (so the 4,000 region x product groups are evenly filled),
    quantity 1..20, amount = quantity x the product's unit price.
    """
    regions = "[" + ", ".join(sql_quote(r) for r in REGIONS) + "]"
    width = max(2, len(str(files - 1)))
    out = []
    for k in range(files):
        start = rows * k // files
        end = rows * (k + 1) // files
        path = data_dir / f"part-{k:0{width}d}.parquet"
        out.append(f"""COPY (
  SELECT i AS id,
         TIMESTAMP '2025-01-01 00:00:00' + to_seconds(i * 6) AS ts,
         {regions}[1 + (h % 20)::INTEGER] AS region,
         'sku-' || lpad(((h // 20) % 200)::VARCHAR, 4, '0') AS product,
         (1 + (h // 4000) % 20)::INTEGER AS quantity,
         ((1 + (h // 4000) % 20) * (199 + ((h // 20) % 200) * 7919 % 49800) / 100)::DECIMAL(12,2) AS amount
  FROM (SELECT i, (i * 2654435761) % 4294967291 AS h FROM range({start}, {end}) t(i))
) TO {sql_quote(str(path))} (FORMAT parquet);""")
    return "\n".join(out) + "\n"


def floor_query(data_dir: Path) -> str:
    return AGG_SELECT.format(src=f"read_parquet({sql_quote(str(data_dir / '*.parquet'))})")


# The same fingerprint of the aggregate, computed by DuckDB over the floor's
# result and by PostgreSQL over sluice's table: groups, sum of n, sum of
# amount, and an md5 over every row in order. Both servers sort strings
# bytewise here (DuckDB's default; the benchmark's PostgreSQL is initdb'd
# with --locale=C).
def duckdb_fingerprint_sql(data_dir: Path) -> str:
    return (
        "SELECT count(*)::VARCHAR, sum(n)::VARCHAR, sum(amount)::VARCHAR, "
        "md5(string_agg(region || '|' || product || '|' || amount::VARCHAR || '|' || n::VARCHAR, "
        "',' ORDER BY region, product)) "
        f"FROM ({floor_query(data_dir)})"
    )


def pg_fingerprint_sql(table: str, reaggregate: bool = False) -> str:
    """reaggregate: the table holds one aggregate per file (per_file), summed here."""
    src = (f"(SELECT region, product, sum(amount) AS amount, sum(n) AS n FROM public.{table} "
           "GROUP BY region, product) AS per_file" if reaggregate else f"public.{table}")
    return (
        "SELECT count(*), sum(n), sum(amount), "
        "md5(string_agg(region || '|' || product || '|' || amount::text || '|' || n::text, "
        f"',' ORDER BY region, product)) FROM {src}"
    )


FINGERPRINT_NAMES = ("groups", "sum(n)", "sum(amount)", "row hash")


def ensure_data(floor: Path, data_dir: Path, rows: int, files: int) -> None:
    """Generates the files unless data_dir already holds this exact workload."""
    manifest = data_dir / "manifest.json"
    want = {"version": DATA_VERSION, "rows": rows, "files": files}
    if manifest.exists():
        try:
            have = json.loads(manifest.read_text())
        except ValueError:
            have = None
        if have == want and len(list(data_dir.glob("*.parquet"))) == files:
            log(f"reusing {files} Parquet files in {data_dir}")
            return
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    script = data_dir.parent / "generate.sql"
    script.write_text(generate_sql(data_dir, rows, files))
    log(f"generating {rows:,} rows in {files} Parquet files -> {data_dir}")
    t0 = time.monotonic()
    subprocess.run([str(floor), "--quiet", "--file", str(script)], check=True,
                   capture_output=True, text=True)
    log(f"generated in {time.monotonic() - t0:.1f} s")
    manifest.write_text(json.dumps(want) + "\n")


# --------------------------------------------------------------------------
# s3rver


class S3rver:
    """s3rver (Node) on 127.0.0.1:<free port>, storing under base/s3.

    It does not check signatures, so plain unsigned urllib requests can
    create the bucket and upload; sluice signs its requests as it would for
    AWS (SigV4 with the dummy S3RVER keys).
    """

    def __init__(self, base: Path, logs: Path):
        self.dir = base / "s3"
        self.log_path = logs / "s3rver.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        node = shutil.which("node")
        if node is None or not S3RVER_JS.exists():
            sys.exit(f"s3rver not found ({S3RVER_JS}); install it with\n"
                     "  npm ci --prefix tests/s3rver      (scripts/setup.sh --tests does this)")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        log(f"starting s3rver on 127.0.0.1:{self.port}")
        with open(self.log_path, "ab") as out:
            # New session: Ctrl-C in the terminal must not stop it under us.
            self.proc = subprocess.Popen(
                [node, str(S3RVER_JS), "--address", "127.0.0.1", "--port", str(self.port),
                 "--directory", str(self.dir), "--silent"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"s3rver exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2) as r:
                    r.read()
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"s3rver did not answer within 30 s:\n{tail(self.log_path)}")
                time.sleep(0.1)

    def stop_and_delete(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method: str, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.endpoint + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read()

    def upload(self, files: list[Path]) -> None:
        self.request("PUT", f"/{BUCKET}")
        for f in files:
            self.request("PUT", f"/{BUCKET}/{PREFIX}{f.name}", f.read_bytes())
        listing = self.request("GET", f"/{BUCKET}?list-type=2&prefix={PREFIX}&max-keys=1000")
        n = listing.count(b"<Key>")
        if n != len(files):
            raise RuntimeError(f"uploaded {len(files)} files but the bucket lists {n}")

    def download_all(self, names: list[str], concurrency: int) -> float:
        """Seconds to GET every object, `concurrency` at a time, into memory.

        What s3rver and the loopback cost to serve the bytes, with the same
        number of transfers in flight as sluice's default [source]
        concurrency: a rough lower bound for sluice's download phase.
        """
        def get(name: str) -> int:
            return len(self.request("GET", f"/{BUCKET}/{PREFIX}{name}"))

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            total = sum(pool.map(get, names))
        if total <= 0:
            raise RuntimeError("download returned nothing")
        return time.monotonic() - t0


# --------------------------------------------------------------------------
# sluice


def write_pipeline(path: Path, name: str, pg: Postgres, threads: int, *,
                   s3: S3rver | None, local_dir: Path | None = None, table: str = "agg",
                   per_file: bool = False, read_while_downloading: bool = True) -> None:
    """The benchmark's pipeline: from S3, or (local_dir) the same pipeline
    over the local files, still incremental with the ledger in PostgreSQL,
    so that the difference between the two is what S3 costs. per_file: one
    load per object, each appending its aggregate."""
    if s3 is not None:
        batch = ('batch = "per_file"  # one load (one aggregate, appended) per object\n' if per_file else
                 '# batch = "all" is the default: every new file of a run in one load\n')
        if not per_file:
            batch += f"read_while_downloading = {'true' if read_while_downloading else 'false'}\n"
        source = (f'path = "s3://{BUCKET}/{PREFIX}*.parquet"\n{batch}\n'
                  f'[s3]\nendpoint = {toml_quote(s3.endpoint)}\nregion = "us-east-1"\n'
                  'access_key_id = "S3RVER"\nsecret_access_key = "S3RVER"\n')
    else:
        source = (f"path = {toml_quote(str(local_dir / '*.parquet'))}\n"
                  "incremental = true  # as for s3:// paths: the ledger decides what is new\n")
    engine = f"\n[engine]\nthreads = {threads}\n" if threads > 0 else ""
    path.write_text(
        f"""# Generated by bench/s3_bench.py
name = {toml_quote(name)}

[source]
{source}
[state]
# The ledger in the destination database: files and rows commit together.
url = {toml_quote(pg.url())}

[transform]
sql = {toml_quote(AGG_SELECT.format(src="input"))}

[destination]
type = "postgres"
url = {toml_quote(pg.url())}
table = "public.{table}"
mode = {'"append"' if per_file else '"replace"'}
{engine}"""
    )


@dataclass
class Phases:
    """Where one sluice run's time went, in seconds.

    From its JSON log (millisecond timestamps) and, for the probe run, from
    watching its download spool. The log marks: "starting" (config read,
    state store opened), "N new or changed of M files" (run recorded, bucket
    listed, ledger consulted), "loaded ... in X s" (all files downloaded,
    then read, aggregated and COPYed by one transaction with the ledger).
    """
    startup_s: float | None = None   # process start -> "starting"
    listing_s: float | None = None   # "starting" -> "N new or changed"
    load_s: float | None = None      # "N new or changed" -> "loaded": download + DuckDB + COPY + commit
    finish_s: float | None = None    # "loaded" -> process exit (run log, shutdown)
    download_s: float | None = None  # probe only: "N new or changed" -> last spool file complete
    duckdb_copy_s: float | None = None  # probe only: last spool file complete -> "loaded"
    overlap_s: float | None = None   # sluice's own probe: reading began this long before the last download ended


LOADED_RE = re.compile(r": loaded [0-9,]+ rows .* in ([0-9.]+) s\b")
OVERLAP_RE = re.compile(r"reading began ([0-9.]+) s before the last of")


def log_times(log_path: Path) -> dict[str, float]:
    """Wall-clock time of the first log line of each kind."""
    marks: dict[str, float] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return marks
    for line in lines:
        try:
            rec = json.loads(line)
            msg = rec["message"]
            t = dt.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        if msg.endswith(": starting"):
            marks.setdefault("starting", t)
        elif " new or changed of " in msg:
            marks.setdefault("listed", t)
        elif LOADED_RE.search(msg):
            marks.setdefault("loaded", t)
        elif OVERLAP_RE.search(msg):
            marks.setdefault("overlap_s", float(OVERLAP_RE.search(msg).group(1)))
    return marks


def parse_phases(log_path: Path, started_at: float, wall_s: float,
                 downloaded_at: float | None = None) -> Phases:
    m = log_times(log_path)
    ended_at = started_at + wall_s

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else max(0.0, b - a)

    p = Phases(
        startup_s=span(started_at, m.get("starting")),
        listing_s=span(m.get("starting"), m.get("listed")),
        load_s=span(m.get("listed"), m.get("loaded")),
        finish_s=span(m.get("loaded"), ended_at),
        overlap_s=m.get("overlap_s"),
    )
    if downloaded_at is not None:
        p.download_s = span(m.get("listed"), downloaded_at)
        p.duckdb_copy_s = span(downloaded_at, m.get("loaded"))
    return p


class SpoolWatcher:
    """Notes when every object has been downloaded into sluice's spool.

    sluice downloads into TMPDIR/sluice-spool/<pipeline>/run-<pid>/<i>-<name>
    and deletes the files when the load is done. Polling that directory
    every few ms (only in the untimed probe run: it costs some CPU) gives the
    moment the last byte arrived: all files present with their full sizes.
    """

    def __init__(self, spool_dir: Path, sizes: dict[str, int]):
        self.dir = spool_dir
        self.sizes = sizes
        self.done_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SpoolWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            complete = 0
            try:
                for f in self.dir.glob("run-*/*"):
                    base = f.name.split("-", 1)[1] if "-" in f.name else f.name
                    if self.sizes.get(base) == f.stat().st_size:
                        complete += 1
            except OSError:
                continue
            if complete >= len(self.sizes):
                self.done_at = time.time()
                return


# --------------------------------------------------------------------------
# Reporting


SLUICE_S3 = "sluice: S3 -> PostgreSQL (batch = all, reads objects as they arrive)"
SLUICE_S3_OVERLAP = "sluice: same, read_while_downloading = false (download all, then scan)"
SLUICE_PER_FILE = "sluice: same, batch = per_file (one load per object)"
SLUICE_LOCAL = "sluice: same pipeline, local files (no S3)"
FLOOR = "DuckDB alone, local files (floor)"
CURL = f"curl --parallel (max {CURL_PARALLEL}): download alone"
TWO_STEP = "curl --parallel, then DuckDB (two-step)"


@dataclass
class ToolRow:
    tool: str
    status: str = "ok"
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    warnings: int = 0  # warning/error lines in the tool's logs of successful runs

    @property
    def wall_s(self) -> float | None:
        return statistics.median(self.walls) if self.status == "ok" and self.walls else None

    @property
    def cpu_s(self) -> float | None:
        return statistics.median(self.cpus) if self.status == "ok" and self.cpus else None


def result_table(rows: list[ToolRow], n_rows: int, n_bytes: int, bound_s: float | None) -> str:
    """bound_s: max(download alone, DuckDB alone) + sluice's start-up."""
    floor = next((r for r in rows if r.tool == FLOOR and r.wall_s), None)
    lines = ["| tool | wall s | rows/s | MB/s | peak RSS MB | CPU s | ratio to floor | ratio to bound "
             "| target | result |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        wall = r.wall_s
        ratio = wall / floor.wall_s if (wall and floor) else None
        to_bound = wall / bound_s if (wall and bound_s) else None
        if r.tool != SLUICE_S3:
            target = "-"
        elif ratio is None:
            target = f"<= {TARGET_RATIO_FLOOR}x"
        else:
            target = f"<= {TARGET_RATIO_FLOOR}x: " + ("met" if ratio <= TARGET_RATIO_FLOOR else "MISSED")
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r.tool, fmt(wall, ".2f"),
            fmt(n_rows / wall if wall else None, ",.0f"),
            fmt(n_bytes / 1e6 / wall if wall else None, ".1f"),
            fmt(r.peak_rss_mb if r.status == "ok" else None, ".1f"),
            fmt(r.cpu_s, ".2f"),
            fmt(ratio, ".2f") + ("x" if ratio is not None else ""),
            fmt(to_bound, ".2f") + ("x" if to_bound is not None else ""),
            target, r.status + (f" ({r.warnings} warnings in its log)" if r.warnings else "")))
    return "\n".join(lines)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def median_or_none(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows in all files together")
    ap.add_argument("--files", type=int, default=50, help="number of Parquet files")
    ap.add_argument("--large", action="store_true",
                    help="the large workload: 50,000,000 rows in 50 files (~600 MB); "
                         "overrides --rows and --files")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs per tool, interleaved; the median is reported")
    ap.add_argument("--threads", type=int, default=0,
                    help="DuckDB threads for sluice ([engine] threads) and the floor "
                         "(default 0: DuckDB's default, one per core)")
    ap.add_argument("--workdir", type=Path,
                    help="where data, logs and the servers live; the Parquet files are "
                         "kept there and reused (default: a temp dir, deleted)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the (default, temporary) workdir with data and logs")
    ap.add_argument("--build-dir", type=Path, default=REPO / "build",
                    help="where sluice and bench/sluice_duckdb_floor are (default: build/)")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    ap.add_argument("--throttle", metavar="RATE",
                    help="limit the loopback interface to RATE (tc's syntax, e.g. 1600mbit = 200 MB/s) "
                         "after the upload, so that the network, not the CPU, limits the downloads, as "
                         "with a remote S3; needs root and tc (iproute2). PostgreSQL's traffic is small")
    args = ap.parse_args()
    if args.large:
        args.rows, args.files = 50_000_000, 50
    if args.rows < args.files or args.files < 1 or args.repeat < 1:
        ap.error("need --files >= 1, --rows >= --files and --repeat >= 1")

    sluice = args.build_dir / "sluice"
    floor = args.build_dir / "bench" / "sluice_duckdb_floor"
    if not os.access(floor, os.X_OK):
        print(f"error: {floor} not found.\n{BUILD_HINT}", file=sys.stderr)
        return 2
    curl = shutil.which("curl")
    if curl is None:
        log("WARNING: curl not found; the curl and two-step rows will be SKIPPED")
    have_sluice = os.access(sluice, os.X_OK)
    if not have_sluice:
        log(f"WARNING: {sluice} not found; sluice runs will be SKIPPED. {BUILD_HINT}")

    install_signal_handlers()
    workdir, own_workdir = make_workdir(args.workdir, "sluice-s3-bench-")
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    spool = workdir / "tmp"  # TMPDIR of sluice: its download spool goes here
    spool.mkdir(exist_ok=True)
    data_dir = workdir / "data"
    log(f"workdir {workdir} (free: {shutil.disk_usage(workdir).free / 1e9:.1f} GB)")

    load_at_start = load_average()
    throttled = False
    pg = Postgres(workdir)
    s3 = S3rver(workdir, logs)
    report: list[str] = []
    failures = 0
    threads_arg = ["--threads", str(args.threads)] if args.threads > 0 else []
    try:
        # ---- data and servers --------------------------------------------
        ensure_data(floor, data_dir, args.rows, args.files)
        files = sorted(data_dir.glob("*.parquet"))
        n_bytes = sum(f.stat().st_size for f in files)
        log(f"{len(files)} files, {n_bytes / 1e6:.1f} MB")

        r = subprocess.run([str(floor), "--quiet", "--print", *threads_arg,
                            "--sql", duckdb_fingerprint_sql(data_dir)],
                           capture_output=True, text=True, check=True)
        expected = tuple(r.stdout.splitlines()[0].split("\t"))
        log(f"expected result: {dict(zip(FINGERPRINT_NAMES, expected))}")
        if expected[1] != str(args.rows):
            raise RuntimeError(f"the files hold {expected[1]} rows, expected {args.rows}")

        pg.start()
        pg_version = pg.version()
        s3.start()
        log(f"uploading {len(files)} files to s3://{BUCKET}/{PREFIX}")
        t0 = time.monotonic()
        s3.upload(files)
        log(f"uploaded in {time.monotonic() - t0:.1f} s")
        if args.throttle:
            subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", args.throttle,
                            "burst", "2mb", "latency", "50ms"], check=True, capture_output=True, text=True)
            throttled = True
            log(f"loopback limited to {args.throttle} (tc tbf)")

        env = pg.env
        env["TMPDIR"] = str(spool)

        sizes = {f.name: f.stat().st_size for f in files}

        def run_sluice(name: str, log_path: Path, watch: bool = False, local: bool = False,
                       variant: str = "all") -> tuple[object, Phases, str | None, int]:
            """variant: "all" (batch = all), "overlap" (the same with
            read_while_downloading = false: no overlap), "per_file"."""
            toml = workdir / f"{name}.toml"
            per_file = variant == "per_file"
            table = ("agg_local" if local else
                     {"all": "agg", "overlap": "agg_overlap", "per_file": "agg_per_file"}[variant])
            write_pipeline(toml, name, pg, args.threads, s3=None if local else s3,
                           local_dir=data_dir if local else None, table=table, per_file=per_file,
                           read_while_downloading=variant != "overlap")
            if per_file:  # untimed: each run appends one aggregate per object
                pg.psql(f"DROP TABLE IF EXISTS public.{table}")
            pg.psql("CHECKPOINT")  # untimed: the previous run's dirty pages are not billed here
            run_env = dict(env)
            argv = [str(sluice), "--log-format", "json", "run", str(toml), "--once",
                    "--progress", "never"]
            log(f"sluice: {' '.join(argv)}")
            log_path.unlink(missing_ok=True)  # a kept --workdir has old logs: parse only this run's
            started_at = time.time()
            if watch:
                with SpoolWatcher(spool / "sluice-spool" / name, sizes) as watcher:
                    res = run_measured(argv, log_path=log_path, env=run_env, timeout_s=args.timeout,
                                       stdin=subprocess.DEVNULL)
                phases = parse_phases(log_path, started_at, res.wall_s, watcher.done_at)
            else:
                res = run_measured(argv, log_path=log_path, env=run_env, timeout_s=args.timeout,
                                   stdin=subprocess.DEVNULL)
                phases = parse_phases(log_path, started_at, res.wall_s)
            problem = None
            if res.timed_out:
                problem = f"timeout after {args.timeout:.0f}s"
            elif res.exit_code != 0:
                problem = f"exit code {res.exit_code}"
            else:
                try:
                    got = tuple(pg.psql(pg_fingerprint_sql(table, reaggregate=per_file)).split("|"))
                except RuntimeError as e:
                    got = None
                    problem = f"no result table: {str(e).splitlines()[-1]}"
                if got is not None and got != expected:
                    problem = "result differs from DuckDB's: " + ", ".join(
                        f"{n} {a} != {b}" for n, a, b in zip(FINGERPRINT_NAMES, got, expected)
                        if a != b)
            # A run can succeed while logging trouble (e.g. its run log could
            # not be written): count it, so that the table shows it.
            n_warn = sum('"level":"warning"' in line or '"level":"error"' in line
                         for line in log_path.read_text(errors="replace").splitlines())
            if n_warn and problem is None:
                log(f"sluice logged {n_warn} warning(s)/error(s); see {log_path}")
            return res, phases, problem, n_warn

        # ---- untimed warm-up ---------------------------------------------
        # Creates the ledger schema and the tables (a first run's one-off
        # work), and puts the objects in the page cache as the floor's files are.
        sluice_row = ToolRow(SLUICE_S3)
        overlap_row = ToolRow(SLUICE_S3_OVERLAP)
        per_file_row = ToolRow(SLUICE_PER_FILE)
        local_row = ToolRow(SLUICE_LOCAL)
        floor_row = ToolRow(FLOOR)
        curl_row = ToolRow(CURL)
        two_step_row = ToolRow(TWO_STEP)
        if curl is None:
            curl_row.status = two_step_row.status = "SKIPPED: curl not found"
        # (row, tag, local, variant)
        sluice_rows = ((sluice_row, "s3", False, "all"), (overlap_row, "s3overlap", False, "overlap"),
                       (per_file_row, "s3perfile", False, "per_file"), (local_row, "local", True, "all"))
        for row, tag, local, variant in sluice_rows:
            if not have_sluice:
                row.status = f"SKIPPED: {sluice} not found"
                failures += row is sluice_row  # the benchmark did not measure what it is for
                continue
            log(f"warm-up run: {row.tool} (untimed)")
            log_path = logs / f"sluice_{tag}_warmup.log"
            _, _, problem, _ = run_sluice(f"bench_{tag}_warmup", log_path, local=local, variant=variant)
            if problem:
                row.status = f"FAILED: {problem}"
                failures += 1
                log(f"{row.tool} FAILED: {problem}; log {log_path}:\n{tail(log_path)}")

        def record(row: ToolRow, res, problem: str | None, log_path: Path) -> bool:
            nonlocal failures
            if problem:
                row.status = f"FAILED: {problem}"
                failures += 1
                log(f"{row.tool} FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
                return False
            log(f"{row.tool}: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")
            row.walls.append(res.wall_s)
            row.cpus.append(res.cpu_s)
            row.peak_rss_mb = max(row.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
            return True

        # ---- timed runs, interleaved --------------------------------------
        phases: dict[str, list[Phases]] = {tag: [] for _, tag, _, _ in sluice_rows}
        floor_query_s: list[float] = []
        floor_argv = [str(floor), "--quiet", *threads_arg, "--sql", floor_query(data_dir)]
        download_dir = workdir / "curl"
        # curl: every object into download_dir, CURL_PARALLEL at a time.
        curl_argv = [curl or "curl", "--silent", "--show-error", "--fail", "--parallel",
                     "--parallel-max", str(CURL_PARALLEL)]
        for f in files:
            curl_argv += ["-o", str(download_dir / f.name), f"{s3.endpoint}/{BUCKET}/{PREFIX}{f.name}"]
        two_step_floor = [str(floor), "--quiet", *threads_arg, "--sql", floor_query(download_dir)]

        def run_download(row: ToolRow, then_duckdb: bool, log_path: Path) -> None:
            shutil.rmtree(download_dir, ignore_errors=True)  # untimed
            download_dir.mkdir()
            log_path.unlink(missing_ok=True)
            # One shell runs both steps: its wait4() covers both (wall, CPU,
            # the larger of their peak RSS).
            script = " ".join(shlex.quote(a) for a in curl_argv)
            if then_duckdb:
                script += " && exec " + " ".join(shlex.quote(a) for a in two_step_floor)
            res = run_measured(["sh", "-c", script], log_path=log_path, timeout_s=args.timeout,
                               stdin=subprocess.DEVNULL)
            problem = None
            got = sum(p.stat().st_size for p in download_dir.glob("*.parquet"))
            if res.timed_out:
                problem = f"timeout after {args.timeout:.0f}s"
            elif res.exit_code != 0:
                problem = f"exit code {res.exit_code}"
            elif got != n_bytes:
                problem = f"downloaded {got} bytes, expected {n_bytes}"
            elif then_duckdb:
                out = log_path.read_text(errors="replace").split()
                summary = dict(kv.split("=", 1) for kv in out if "=" in kv)
                if summary.get("rows") != expected[0]:
                    problem = f"{summary.get('rows')} groups, expected {expected[0]}"
            record(row, res, problem, log_path)
            shutil.rmtree(download_dir, ignore_errors=True)  # untimed

        for rep in range(args.repeat):
            for row, tag, local, variant in sluice_rows:
                if row.status != "ok":
                    continue
                # A fresh pipeline name: its ledger is empty, so all files are
                # new, while the schema already exists as on any later run.
                log(f"[{rep + 1}/{args.repeat}] {row.tool}")
                log_path = logs / f"sluice_{tag}_{rep + 1}.log"
                res, ph, problem, n_warn = run_sluice(f"bench_{tag}_{rep + 1}", log_path,
                                                      local=local, variant=variant)
                if record(row, res, problem, log_path):
                    row.warnings += n_warn
                    phases[tag].append(ph)
            for row, then_duckdb in ((curl_row, False), (two_step_row, True)):
                if row.status != "ok":
                    continue
                log(f"[{rep + 1}/{args.repeat}] {row.tool}")
                run_download(row, then_duckdb, logs / f"{'two_step' if then_duckdb else 'curl'}_{rep + 1}.log")
            if floor_row.status == "ok":
                log_path = logs / f"floor_{rep + 1}.log"
                log(f"[{rep + 1}/{args.repeat}] floor: {' '.join(floor_argv[:-1])} '<query>'")
                log_path.unlink(missing_ok=True)
                res = run_measured(floor_argv, log_path=log_path, timeout_s=args.timeout,
                                   stdin=subprocess.DEVNULL)
                out = log_path.read_text(errors="replace").split()
                summary = dict(kv.split("=", 1) for kv in out if "=" in kv)
                problem = None
                if res.timed_out:
                    problem = f"timeout after {args.timeout:.0f}s"
                elif res.exit_code != 0:
                    problem = f"exit code {res.exit_code}"
                elif summary.get("rows") != expected[0]:
                    problem = f"{summary.get('rows')} groups, expected {expected[0]}"
                if record(floor_row, res, problem, log_path):
                    floor_query_s.append(float(summary["seconds"]))

        # ---- untimed probes: where sluice's time goes ------------------------
        # One more sluice run with its spool watched, to split its load into
        # download and DuckDB + COPY + commit (the log has no line between).
        probe: Phases | None = None
        if sluice_row.status == "ok":
            log("probe: sluice run with its download spool watched (untimed)")
            _, probe, problem, _ = run_sluice("bench_s3_probe", logs / "sluice_s3_probe.log",
                                           watch=True)
            if problem:
                log(f"probe run failed ({problem}); log {logs / 'sluice_s3_probe.log'}")
                probe = None
        # s3rver serving all objects to 4 parallel urllib clients (sluice's
        # default [source] concurrency): what the server and loopback cost.
        download_s = None
        try:
            download_s = statistics.median(
                s3.download_all([f.name for f in files], 4) for _ in range(args.repeat))
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            log(f"download probe failed: {e}")

        # ---- report -------------------------------------------------------
        startup_s = median_or_none([p.startup_s for p in phases["s3"]])
        bound_s = None
        if curl_row.wall_s and floor_row.wall_s and startup_s is not None:
            bound_s = max(curl_row.wall_s, floor_row.wall_s) + startup_s
        report.append(f"## S3 batch: {args.rows:,} rows in {args.files} Parquet files "
                      f"({n_bytes / 1e6:.1f} MB), group by region, product -> PostgreSQL")
        report.append("")
        report.append(result_table([sluice_row, overlap_row, per_file_row, local_row, floor_row, curl_row,
                                    two_step_row], args.rows, n_bytes, bound_s))
        report.append("")
        if bound_s is not None:
            report.append(f"Bound: max(download alone {curl_row.wall_s:.2f} s, DuckDB alone "
                          f"{floor_row.wall_s:.2f} s) + sluice's start-up {startup_s:.2f} s = "
                          f"{bound_s:.2f} s.")
        if sluice_row.wall_s and floor_row.wall_s:
            ratio = sluice_row.wall_s / floor_row.wall_s
            report.append(f"sluice / DuckDB floor: {ratio:.2f}x (target <= {TARGET_RATIO_FLOOR}x: "
                          f"{'met' if ratio <= TARGET_RATIO_FLOOR else 'MISSED'}).")
        if sluice_row.wall_s and two_step_row.wall_s:
            faster = sluice_row.wall_s < two_step_row.wall_s
            report.append(f"sluice {sluice_row.wall_s:.2f} s vs the two-step {two_step_row.wall_s:.2f} s "
                          f"(target: faster: {'met' if faster else 'MISSED'}).")
        if sluice_row.wall_s and bound_s:
            ratio = sluice_row.wall_s / bound_s
            report.append(f"sluice / bound: {ratio:.2f}x (target <= {TARGET_RATIO_BOUND}x: "
                          f"{'met' if ratio <= TARGET_RATIO_BOUND else 'MISSED'}).")
        if sluice_row.wall_s and overlap_row.wall_s:
            report.append(f"read_while_downloading = false (all objects downloaded, then one scan) vs "
                          f"the default (reading while downloading): {overlap_row.wall_s:.2f} s vs "
                          f"{sluice_row.wall_s:.2f} s ({overlap_row.wall_s / sluice_row.wall_s:.2f}x).")
        report.append("")
        if any(phases.values()):
            def med(ps: list[Phases], attr: str) -> str:
                return fmt(median_or_none([getattr(p, attr) for p in ps]), ".2f")

            def pr(attr: str) -> str:
                return fmt(getattr(probe, attr) if probe else None, ".2f")

            report.append("Where sluice's time goes, in seconds: medians of the timed runs, from "
                          "sluice's JSON log timestamps (ms); \"probe\" is one more, untimed S3 "
                          "run (batch = all) whose download spool was watched every 2 ms, which "
                          "tells when the last object was complete (the log has no line for it).")
            report.append("")
            report.append("| phase | S3 | S3 probe | S3, read_while_downloading = false | local files |")
            report.append("|---|---:|---:|---:|---:|")
            for label, attr in (
                ("start-up: process start -> \"starting\" (config, state store)", "startup_s"),
                ("listing: run recorded, files listed, ledger consulted", "listing_s"),
                ("load: download + DuckDB + COPY + commit with the ledger", "load_s"),
                ("- of which download (listed -> all files complete in the spool)", "download_s"),
                ("- then DuckDB + COPY + commit (spool complete -> \"loaded\")", "duckdb_copy_s"),
                ("- reading began this long before the last download ended (sluice's log)", "overlap_s"),
                ("finish: run log, shutdown", "finish_s"),
            ):
                report.append(f"| {label} | {med(phases['s3'], attr)} | {pr(attr)} | "
                              f"{med(phases['s3overlap'], attr)} | {med(phases['local'], attr)} |")
            report.append("")
        if download_s is not None or floor_query_s:
            report.append("For comparison: GET of all objects from s3rver with 4 in flight "
                          f"(Python urllib, into memory): {fmt(download_s, '.2f')} s; the floor's "
                          "query alone (DuckDB, without process start-up and exit): "
                          f"{fmt(median_or_none(floor_query_s), '.2f')} s.")
            report.append("")
        report.append(
            "Notes: wall time is from process start to exit. rows/s and MB/s use the input "
            "(rows and Parquet bytes of all files) for every row. The per_file row appends one "
            "aggregate per object and is verified after summing them per group. The curl rows "
            "download into files (curl --parallel, as many in flight as sluice's default "
            "concurrency); the two-step row runs curl, then the floor's program over the "
            "downloaded files, in one shell (its wait4() covers both). The local-files sluice row "
            "runs the same pipeline (incremental, ledger in PostgreSQL) over the files on "
            "local disk: its distance to the S3 row is what S3 costs (listing, download into "
            "the spool), its distance to the floor what the rest of sluice costs (start-up, "
            "state store, COPY, commit). Peak RSS is the process's "
            "ru_maxrss (wait4, as /usr/bin/time %M); the PostgreSQL server and s3rver are not "
            "counted. CPU is user+system of the process. Each sluice run uses a new pipeline "
            "name (an empty ledger, so all files are new; the ledger schema exists, as on any "
            "run after the first), after an untimed warm-up run and an untimed CHECKPOINT, and "
            "is verified against DuckDB's result (groups, sum(n), sum(amount), row hash). "
            f"DuckDB threads: {args.threads or 'default (one per core)'} for sluice and the floor. "
            f"Median of {args.repeat} run(s), tools interleaved."
        )

        report.append("")
        report.append("## Environment")
        report.append("")
        report.append(f"- host: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, "
                      f"{mem_total_gb():.1f} GB RAM, Linux {platform.release()}")
        report.append(f"- load average (1/5/15 min) at start: {load_at_start}; at the end: "
                      f"{load_average()} (other work on the machine distorts the numbers)")
        report.append(f"- PostgreSQL {pg_version} (local, 127.0.0.1 TCP, fsync=on, "
                      "shared_buffers=256MB, max_wal_size=4GB, otherwise defaults)")
        report.append(f"- s3rver {tool_version(['node', str(S3RVER_JS), '--version'])} "
                      f"on node {tool_version(['node', '--version'])}, 127.0.0.1"
                      + (f"; loopback limited to {args.throttle} (tc tbf) during the timed runs"
                         if args.throttle else ""))
        report.append(f"- sluice: {tool_version([str(sluice), 'version']) if have_sluice else 'not built'}"
                      f"; commit {git_commit()}")
        report.append(f"- floor: sluice_duckdb_floor, {tool_version([str(floor), '--version'])}")
        report.append(f"- data: {args.files} files, {args.rows:,} rows, {n_bytes / args.rows:.1f} "
                      "Parquet bytes/row (id, ts, region, product, quantity, amount; "
                      "DuckDB's default Parquet writer)")

    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, urllib.error.URLError, OSError) as e:
        detail = getattr(e, "stderr", None)
        log(f"error: {e}" + (f"\n{detail.strip()}" if isinstance(detail, str) and detail else ""))
        return 2
    finally:
        if throttled:
            subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
        kill_live_children()
        log("stopping s3rver and PostgreSQL")
        s3.stop_and_delete()
        pg.stop_and_delete()
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif own_workdir:
            log(f"kept {workdir}")

    write_report(args.results_dir, "s3", "sluice S3 batch benchmark", report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
