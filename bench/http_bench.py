#!/usr/bin/env python3
"""HTTP benchmark: sluice's HTTP source and destination against curl.

Workload 1 (poll): N endpoints (default 10,000) on 127.0.0.1, served by
tests/http_server/server.js (node, one process, keep-alive), each answering
GET /e/<i>?size=1000 with ~1 KB of JSON. One tick fetches them all:

  sluice      build/sluice run poll_N.toml --once --progress never: the http
              source (urls_file, concurrency = 256) into a DuckDB file
              (mode = "replace"), run log in a SQLite state store
  curl        curl --parallel --parallel-max 256 -K urls.cfg: the same URLs
  (floor)     to /dev/null; no parsing, no database: the client floor

Then the same with 100,000 endpoints (--poll-large), where the point is
sluice's memory: flat, whatever the number of endpoints.

Workload 2 (deliver): 1,000,000 CSV rows (sluice_gen_csv, seed 42) posted
to POST /ingest on a second server started with --discard (bodies counted
and thrown away):

  sluice      files source -> http destination, format = "json",
              max_rows = 500, concurrency = 8
  curl        curl --parallel --parallel-max 8 -K posts.cfg posting the same
  (floor)     rows pre-built (untimed, in Python) as the same JSON arrays of
              500 row objects, one file per request

Each run is timed (wall clock, process start to exit) and its peak RSS is
taken from wait4()'s rusage (load_bench.run_measured). Every run is verified
against the server's own counts (GET /__stats, GET /__received) and, for the
poll, against the DuckDB table (through build/bench/sluice_duckdb_floor).
The node servers' CPU and memory are not counted: they are the same for
both tools.

The script starts its servers on free loopback ports and stops them at the
end, also on error or Ctrl-C. It builds nothing: it expects build/sluice
(and uses build/bench/sluice_gen_csv and sluice_duckdb_floor when present).

Python 3 standard library only; the process-measuring helpers are
load_bench.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing load_bench
from load_bench import (  # noqa: E402
    write_report,
    REPO,
    SLUICE_COLUMNS,
    Interrupted,
    cpu_model,
    fmt,
    git_commit,
    install_signal_handlers,
    kill_live_children,
    make_workdir,
    mem_total_gb,
    rss_curve,
    run_measured,
    sql_quote,
    tail,
    toml_quote,
    tool_version,
)
from s3_bench import ToolRow, load_average, median_or_none  # noqa: E402

SERVER_JS = REPO / "tests" / "http_server" / "server.js"

# Targets from issue 11 and bench/README.md; printed next to the results.
TARGET_TICK_S = 5.0          # one tick of 10,000 endpoints
TARGET_POLL_RATIO = 1.3      # sluice / curl, 10,000 endpoints
TARGET_POLL_RSS_MB = 200.0   # 10,000 endpoints
TARGET_LARGE_RSS_MB = 250.0  # 100,000 endpoints
TARGET_DELIVER_RATIO = 1.5   # sluice / curl posting pre-built bodies

BUILD_HINT = (
    "Build first, from the repository root:\n"
    "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"
)

SLUICE = "sluice"
CURL_POLL = "curl --parallel (floor)"
CURL_POST = "curl --parallel, pre-built bodies (floor)"

# Bump when the generated bodies change, so a kept --workdir rebuilds them.
BODIES_VERSION = 1


def log(msg: str) -> None:
    print(f"[http_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The test server


class HttpServer:
    """tests/http_server/server.js on 127.0.0.1:<port chosen by the server>.

    It prints `listening <port>` on stdout when ready and exits when that
    pipe closes (or, with --exit-with-parent, when we die), so the pipe is
    kept open for its whole life.
    """

    def __init__(self, name: str, logs: Path, discard: bool = False):
        self.name = name
        self.discard = discard
        self.log_path = logs / f"server_{name}.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node not found: the benchmark's HTTP server runs under Node.js 18+")
        argv = [node, str(SERVER_JS), "--port", "0", "--exit-with-parent"]
        if self.discard:
            argv.append("--discard")
        with open(self.log_path, "ab") as err:
            # New session: Ctrl-C in the terminal must not stop it under us.
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not ready:
                raise RuntimeError(f"{self.name} server did not start within 30 s:\n{tail(self.log_path)}")
            chunk = os.read(self.proc.stdout.fileno(), 256)
            if not chunk:
                raise RuntimeError(f"{self.name} server exited with {self.proc.wait()}:\n"
                                   f"{tail(self.log_path)}")
            line += chunk
        m = re.match(rb"listening (\d+)", line)
        if not m:
            raise RuntimeError(f"{self.name} server said {line!r}, expected 'listening <port>'")
        self.port = int(m.group(1))
        log(f"{self.name} server: node {SERVER_JS.relative_to(REPO)} on 127.0.0.1:{self.port}"
            + (" (--discard)" if self.discard else ""))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def request(self, method: str, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    def json(self, method: str, path: str) -> dict:
        return json.loads(self.request(method, path, b"" if method == "POST" else None))

    def reset(self) -> None:
        """Forgets counts (and versions, rows): each measured run starts at zero."""
        self.json("POST", "/__reset")

    def stats(self) -> dict:
        return self.json("GET", "/__stats")

    def received(self) -> dict:
        return self.json("GET", "/__received")


class RequestWatcher:
    """Notes when the server saw a run's first and its n-th request.

    Polls GET /__stats every 20 ms (control requests are not counted in its
    statistics, and 50 a second are nothing next to the workload), which
    splits a run's wall time into start-up (until the first request),
    fetching (first to last request) and what follows (for sluice: the
    DuckDB load, commit and run log). Times are relative to `t0`, taken
    just before the process starts.
    """

    def __init__(self, server: HttpServer, prefix: str, n: int):
        self.server, self.prefix, self.n = server, prefix, n
        self.t0 = 0.0
        self.first_s: float | None = None
        self.last_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestWatcher:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.last_s is None:
            self._poll()  # the run ended between two polls: its end bounds the last request

    def _poll(self) -> bool:
        try:
            got = self.server.stats().get("by_prefix", {}).get(self.prefix, 0)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        now = time.monotonic() - self.t0
        if got > 0 and self.first_s is None:
            self.first_s = now
        if got >= self.n:
            self.last_s = now
            return True
        return False

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            if self._poll():
                return


class Phases:
    """Per tool and timed run: (start-up, transfer, after the last request), seconds."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float | None, float | None, float | None]]] = {}

    def note(self, tool: str, watch: RequestWatcher, wall: float) -> None:
        first, last = watch.first_s, watch.last_s
        self.runs.setdefault(tool, []).append((
            first,
            last - first if first is not None and last is not None else None,
            max(0.0, wall - last) if last is not None else None))

    def table(self, sluice: str, floor: str, labels: tuple[str, str, str]) -> list[str]:
        if not self.runs:
            return []

        def med(tool: str, k: int) -> str:
            return fmt(median_or_none([p[k] for p in self.runs.get(tool, [])]), ".2f")

        out = ["", "Where the time goes, in seconds (medians; the server's request count polled "
                   "every 20 ms during each run):", "", "| phase | sluice | curl |", "|---|---:|---:|"]
        out.extend(f"| {label} | {med(sluice, k)} | {med(floor, k)} |"
                   for k, label in enumerate(labels))
        return out


# --------------------------------------------------------------------------
# sluice


def sluice_components(sluice: Path) -> dict[str, set[str]]:
    """Types per section of `sluice components`: {"[source]": {"files", ...}, ...}."""
    out: dict[str, set[str]] = {}
    try:
        r = subprocess.run([str(sluice), "components"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return out
    section = ""
    for line in r.stdout.splitlines():
        if line.startswith("["):
            section = line.strip()
            out.setdefault(section, set())
        m = re.match(r'\s+type = "([^"]+)"', line)
        if m and section:
            out[section].add(m.group(1))
    return out


def run_sluice(sluice: Path, toml: Path, log_path: Path, args, sample_rss: bool = False):
    argv = [str(sluice), "--log-format", "json", "run", str(toml), "--once", "--progress", "never"]
    log_path.unlink(missing_ok=True)  # a kept --workdir has old logs: parse only this run's
    log(f"{' '.join(argv)}")
    return run_measured(argv, log_path=log_path, timeout_s=args.timeout, stdin=subprocess.DEVNULL,
                        sample_rss=sample_rss)


def log_messages(log_path: Path) -> list[tuple[str, str]]:
    """(level, message) of every JSON log line (other lines as ("", line))."""
    out = []
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
            out.append((str(rec.get("level", "")), str(rec.get("message", ""))))
        except (ValueError, AttributeError):
            out.append(("", line))
    return out


def count_warnings(log_path: Path) -> int:
    return sum(level in ("warning", "warn", "error", "critical") for level, _ in log_messages(log_path))


TICK_RE = re.compile(r"(\d+) endpoints \((\d+) ok, (\d+) not modified, (\d+) failed\), ([0-9,]+) rows "
                     r"in ([0-9.]+) s")


def failure(res, timeout: float) -> str | None:
    if res.timed_out:
        return f"timeout after {timeout:.0f}s"
    if res.exit_code != 0:
        return f"exit code {res.exit_code}"
    return None


# --------------------------------------------------------------------------
# Workload 1: poll


def write_poll_files(workdir: Path, server: HttpServer, n: int, size: int) -> tuple[Path, Path]:
    """urls_N.txt for sluice and urls_N.cfg for curl, the same URLs in the same order."""
    urls = [f"{server.base}/e/{i}?size={size}" for i in range(1, n + 1)]
    txt = workdir / f"urls_{n}.txt"
    txt.write_text("\n".join(urls) + "\n")
    cfg = workdir / f"urls_{n}.cfg"
    # curl pairs the k-th `output` with the k-th `url` of the same operation.
    cfg.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    return txt, cfg


def write_poll_pipeline(path: Path, workdir: Path, urls: Path, n: int, concurrency: int) -> Path:
    db = workdir / f"poll_{n}.duckdb"
    path.write_text(
        f"""# Generated by bench/http_bench.py
name = "poll"

[source]
type = "http"
urls_file = {toml_quote(str(urls))}
concurrency = {concurrency}

[destination]
type = "duckdb"
path = {toml_quote(str(db))}
table = "stations"
mode = "replace"

[state]
path = {toml_quote(str(workdir / f"state_poll_{n}.db"))}
"""
    )
    return db


def check_duckdb(floor: Path | None, db: Path, n: int) -> str | None:
    """The table must hold one row per endpoint: ids 1..n, each URL once, all 200."""
    if floor is None:
        return None  # cannot look inside; the log line and server counts were checked
    sql = (f"ATTACH {sql_quote(str(db))} AS p (READ_ONLY); "
           "SELECT count(*), count(DISTINCT id), min(id), max(id), count(DISTINCT _url), "
           "count(*) FILTER (WHERE _status = 200) FROM p.stations")
    r = subprocess.run([str(floor), "--quiet", "--print", "--sql", sql], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        return f"could not read {db.name} with DuckDB: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
    got = r.stdout.splitlines()[0].split("\t") if r.stdout.strip() else []
    want = [str(n), str(n), "1", str(n), str(n), str(n)]
    if got != want:
        names = ("rows", "distinct ids", "min(id)", "max(id)", "distinct _url", "_status = 200")
        return "DuckDB table: " + ", ".join(f"{k} {a} != {b}" for k, a, b in zip(names, got, want)
                                            if a != b)
    return None


def check_poll_server(server: HttpServer, n: int) -> tuple[str | None, dict]:
    st = server.stats()
    got = st.get("by_prefix", {}).get("e", 0)
    ok = st.get("by_status", {}).get("200", 0)
    if got != n or ok != n:
        return f"server saw {got} GETs ({ok} answered 200), expected {n}", st
    return None, st


def poll_workload(args, sluice: Path | None, floor: Path | None, server: HttpServer,
                  workdir: Path, logs: Path, n: int, *, repeat: int, warmup: bool,
                  with_curl: bool, rss_target: float, full_targets: bool) -> tuple[list[str], int]:
    """One poll size: sluice and curl interleaved; returns the report lines and failures."""
    failures = 0
    urls_txt, urls_cfg = write_poll_files(workdir, server, n, args.poll_size)
    toml = workdir / f"poll_{n}.toml"
    db = write_poll_pipeline(toml, workdir, urls_txt, n, args.poll_concurrency)
    curl_argv = ["curl", "--no-progress-meter", "--parallel", "--parallel-max",
                 str(args.poll_concurrency), "-K", str(urls_cfg)]

    sample = server.request("GET", f"/e/{n}?size={args.poll_size}")
    body_bytes = len(sample)

    s_row, c_row = ToolRow(SLUICE), ToolRow(CURL_POLL)
    rows = [s_row] + ([c_row] if with_curl else [])
    if sluice is None:
        s_row.status = "SKIPPED: build/sluice has no http source (see `sluice components`)"
        failures += 1
    ticks: list[float] = []
    curves: list[str] = []
    phases = Phases()
    note_phases = phases.note

    # Every size starts from a new DuckDB file and state store (a kept
    # --workdir has the previous run's).
    for f in [db, *workdir.glob(f"{db.name}.*"), *workdir.glob(f"state_poll_{n}.db*")]:
        f.unlink(missing_ok=True)

    # Untimed: curl warms up node (its JIT) and the loopback; one sluice run
    # creates the state store and the DuckDB file, as any tick after the first
    # finds them.
    if warmup:
        log(f"poll {n:,}: warm-up (untimed): curl, then sluice")
        server.reset()
        run_measured(curl_argv, log_path=logs / f"curl_poll_{n}_warmup.log", timeout_s=args.timeout,
                     stdin=subprocess.DEVNULL)
        if s_row.status == "ok":
            res = run_sluice(sluice, toml, logs / f"sluice_poll_{n}_warmup.log", args)
            problem = failure(res, args.timeout)
            if problem:
                s_row.status = f"FAILED (warm-up): {problem}"
                failures += 1
                log(f"sluice warm-up FAILED: {problem}:\n{tail(logs / f'sluice_poll_{n}_warmup.log')}")

    for rep in range(repeat):
        if s_row.status == "ok":
            log(f"[{rep + 1}/{repeat}] poll {n:,}: sluice")
            log_path = logs / f"sluice_poll_{n}_{rep + 1}.log"
            server.reset()
            with RequestWatcher(server, "e", n) as watch:
                res = run_sluice(sluice, toml, log_path, args, sample_rss=True)
            problem = failure(res, args.timeout)
            if problem is None:
                m = None
                for _, msg in log_messages(log_path):
                    m = TICK_RE.search(msg) or m
                if m is None:
                    problem = "no 'N endpoints (...), N rows in X s' line in its log"
                else:
                    endpoints, ok, _, failed, nrows = (int(m.group(k).replace(",", ""))
                                                       for k in range(1, 6))
                    if (endpoints, ok, failed, nrows) != (n, n, 0, n):
                        problem = (f"log: {endpoints} endpoints, {ok} ok, {failed} failed, "
                                   f"{nrows} rows; expected {n} ok and {n} rows")
                    else:
                        ticks.append(float(m.group(6)))
            if problem is None:
                problem, _ = check_poll_server(server, n)
            if problem is None:
                problem = check_duckdb(floor, db, n)
            if problem:
                s_row.status = f"FAILED: {problem}"
                failures += 1
                log(f"sluice FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
            else:
                s_row.walls.append(res.wall_s)
                s_row.cpus.append(res.cpu_s)
                s_row.peak_rss_mb = max(s_row.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
                s_row.warnings += count_warnings(log_path)
                log(f"sluice: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")
                note_phases(SLUICE, watch, res.wall_s)
                if len(res.rss_samples_kb) >= 5:  # one sample per 0.5 s
                    curves.append(rss_curve(f"sluice, run {rep + 1}",
                                            [k / 1024 for k in res.rss_samples_kb]))
        if with_curl and c_row.status == "ok":
            log(f"[{rep + 1}/{repeat}] poll {n:,}: {' '.join(curl_argv)}")
            log_path = logs / f"curl_poll_{n}_{rep + 1}.log"
            log_path.unlink(missing_ok=True)
            server.reset()
            with RequestWatcher(server, "e", n) as watch:
                res = run_measured(curl_argv, log_path=log_path, timeout_s=args.timeout,
                                   stdin=subprocess.DEVNULL)
            problem = failure(res, args.timeout) or check_poll_server(server, n)[0]
            if problem:
                c_row.status = f"FAILED: {problem}"
                failures += 1
                log(f"curl FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
            else:
                c_row.walls.append(res.wall_s)
                c_row.cpus.append(res.cpu_s)
                c_row.peak_rss_mb = max(c_row.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
                log(f"curl: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")
                note_phases(CURL_POLL, watch, res.wall_s)

    out = [f"## Poll: {n:,} endpoints, ~{body_bytes:,} bytes of JSON each, "
           f"{args.poll_concurrency} in flight -> DuckDB",
           ""]
    out.append("| tool | wall s | tick s (sluice's log) | requests/s | MB/s | peak RSS MB | CPU s "
               "| ratio to curl | result |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    floor_wall = c_row.wall_s if with_curl else None
    for r in rows:
        wall = r.wall_s
        ratio = wall / floor_wall if (wall and floor_wall) else None
        status = r.status + (f" ({r.warnings} warnings in its log)" if r.warnings else "")
        out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r.tool, fmt(wall, ".2f"),
            fmt(median_or_none(ticks) if r is s_row else None, ".2f"),
            fmt(n / wall if wall else None, ",.0f"),
            fmt(n * body_bytes / 1e6 / wall if wall else None, ".1f"),
            fmt(r.peak_rss_mb if r.status == "ok" else None, ".1f"),
            fmt(r.cpu_s, ".2f"),
            fmt(ratio, ".2f") + ("x" if ratio is not None else ""),
            status))
    out.append("")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    s_wall = s_row.wall_s
    if full_targets and s_wall:
        out.append(f"- whole tick (process start to exit) {s_wall:.2f} s: target < {TARGET_TICK_S:g} s "
                   f"{verdict(s_wall < TARGET_TICK_S)}")
        if floor_wall:
            ratio = s_wall / floor_wall
            out.append(f"- sluice / curl {ratio:.2f}x: target <= {TARGET_POLL_RATIO}x "
                       f"{verdict(ratio <= TARGET_POLL_RATIO)}")
    if s_wall and s_row.peak_rss_mb is not None:
        out.append(f"- sluice peak RSS {s_row.peak_rss_mb:.1f} MB: target < {rss_target:.0f} MB "
                   f"{verdict(s_row.peak_rss_mb < rss_target)}")
    if not full_targets and s_wall and floor_wall:
        out.append(f"- sluice / curl {s_wall / floor_wall:.2f}x (no target at this size)")
    out.extend(phases.table(SLUICE, CURL_POLL, (
        "start-up: process start -> first request at the server",
        f"fetch: first -> {n:,}th request at the server",
        "after the last request: last responses, spool, DuckDB load, commit, run log, exit")))
    if curves:
        out.append("")
        out.extend(f"{c}  " for c in curves)
    if out[-1] != "":
        out.append("")
    out.append(
        f"Notes: wall time is from process start to exit; sluice's \"tick\" is its own measure of "
        f"the run (from its log line \"N endpoints (...), N rows in X s\": requests, JSON to the "
        f"spool, DuckDB load and commit, run log). requests/s and MB/s count {n:,} responses "
        f"of ~{body_bytes:,} bytes for both tools. Verified per run: sluice's log says {n:,} ok, "
        f"0 failed, {n:,} rows; the server counted exactly {n:,} GETs answered 200 (for curl "
        f"too); the DuckDB table holds {n:,} rows, ids 1..{n:,}, each URL once"
        + ("" if floor else " (not checked: build/bench/sluice_duckdb_floor missing)") + ". "
        + ("Untimed warm-up first: curl fetches every URL once (node's JIT), one sluice run "
           "creates the state store and the DuckDB file, so timed runs are ticks after the first "
           "(mode = \"replace\" swaps the table). " if warmup else
           "No warm-up at this size: one tick into a new DuckDB file and state store. ")
        + f"Median of {repeat} run(s), tools interleaved; peak RSS is the largest ru_maxrss "
        "(wait4); the node server's CPU and memory are not counted."
    )
    return out, failures


# --------------------------------------------------------------------------
# Workload 2: deliver


CATEGORIES = ("books", "toys", "garden", "music", "games", "food", "shoes", "sports", "tools",
              "beauty")
STATUSES = ("new", "paid", "sent", "refund", "void")


def ensure_csv(gen: Path | None, path: Path, rows: int) -> None:
    """The deliver workload's CSV: sluice_gen_csv's (seed 42) or, without it, a Python one."""
    manifest = path.with_suffix(".manifest")
    want = f"rows={rows} gen={'sluice_gen_csv' if gen else 'python'}\n"
    if path.exists() and manifest.exists() and manifest.read_text() == want:
        log(f"reusing {path} ({rows:,} rows)")
        return
    t0 = time.monotonic()
    if gen is not None:
        log(f"generating {rows:,} rows with {gen} -> {path}")
        subprocess.run([str(gen), "--rows", str(rows), "--out", str(path)], check=True)
    else:
        # Same columns and shape as sluice_gen_csv (every note quoted with a
        # comma and a doubled quote), not the same values.
        log(f"generating {rows:,} rows in Python -> {path}")
        rnd = random.Random(42)
        with open(path, "w", newline="") as f:
            f.write("id,category,status,amount,ts,note\n")
            for i in range(1, rows + 1):
                amount = rnd.randrange(-500000, 2000000) / 100
                ts = dt.datetime(2018, 1, 1) + dt.timedelta(seconds=rnd.randrange(8 * 365 * 86400))
                f.write(f'{i},{rnd.choice(CATEGORIES)},{rnd.choice(STATUSES)},{amount:.2f},'
                        f'{ts:%Y-%m-%d %H:%M:%S},"{rnd.choice(("red", "blue", "odd"))}, '
                        f'""{rnd.choice(("gift", "vip", "web"))}"" {rnd.randrange(10)}"\n')
    manifest.write_text(want)
    log(f"CSV written in {time.monotonic() - t0:.1f} s, {path.stat().st_size / 1e6:.1f} MB")


def row_json(rec: list[str]) -> str:
    """One CSV record as sluice's JSON row: compact, decimals as numbers from
    their exact text, timestamps in ISO 8601 (T between date and time)."""
    i, category, status, amount, ts, note = rec
    return (f'{{"id":{i},"category":{json.dumps(category, ensure_ascii=False)},'
            f'"status":{json.dumps(status, ensure_ascii=False)},"amount":{amount},'
            f'"ts":"{ts.replace(" ", "T")}","note":{json.dumps(note, ensure_ascii=False)}}}')


def ensure_bodies(csv_path: Path, bodies: Path, max_rows: int) -> tuple[int, int, int]:
    """Writes one JSON array of max_rows row objects per file: (files, rows, bytes)."""
    import csv

    manifest = bodies / "manifest.json"
    want = {"version": BODIES_VERSION, "csv_size": csv_path.stat().st_size,
            "csv_mtime": csv_path.stat().st_mtime, "max_rows": max_rows}
    if manifest.exists():
        try:
            have = json.loads(manifest.read_text())
        except ValueError:
            have = {}
        if {k: have.get(k) for k in want} == want:
            log(f"reusing {have['files']:,} request bodies in {bodies}")
            return have["files"], have["rows"], have["bytes"]
    shutil.rmtree(bodies, ignore_errors=True)
    bodies.mkdir(parents=True)
    log(f"building request bodies of {max_rows} rows from {csv_path.name} (untimed)")
    t0 = time.monotonic()
    files = rows = total = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal files, total
        data = ("[" + ",".join(batch) + "]").encode()
        (bodies / f"{files:06d}.json").write_bytes(data)
        files += 1
        total += len(data)
        batch.clear()

    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        for rec in reader:
            batch.append(row_json(rec))
            rows += 1
            if len(batch) == max_rows:
                flush()
    if batch:
        flush()
    manifest.write_text(json.dumps({**want, "files": files, "rows": rows, "bytes": total}) + "\n")
    log(f"{files:,} bodies, {rows:,} rows, {total / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s")
    return files, rows, total


def write_posts_cfg(path: Path, bodies: Path, n_files: int, url: str) -> None:
    """One curl operation per body (`next` separates them: options do not carry over)."""
    ops = []
    for k in range(n_files):
        ops.append(f'url = "{url}"\nrequest = "POST"\ndata-binary = "@{bodies / f"{k:06d}.json"}"\n'
                   'header = "Content-Type: application/json"\n'
                   # as sluice: no Expect: 100-continue, and a key of 64 hex digits per request
                   'header = "Expect:"\n'
                   f'header = "Idempotency-Key: {hashlib.sha256(str(k).encode()).hexdigest()}"\n'
                   'output = "/dev/null"\n')
    path.write_text("next\n".join(ops))


def write_deliver_pipeline(path: Path, workdir: Path, csv_path: Path, url: str, max_rows: int,
                           concurrency: int) -> None:
    path.write_text(
        f"""# Generated by bench/http_bench.py
name = "deliver"

[source]
type = "files"
path = {toml_quote(str(csv_path))}
format = "csv"
header = true
columns = {SLUICE_COLUMNS}

[destination]
type = "http"
url = {toml_quote(url)}
format = "json"
max_rows = {max_rows}
concurrency = {concurrency}

[state]
path = {toml_quote(str(workdir / "state_deliver.db"))}
"""
    )


def deliver_workload(args, sluice: Path | None, gen: Path | None, server: HttpServer,
                     workdir: Path, logs: Path) -> tuple[list[str], int]:
    failures = 0
    n = args.deliver_rows
    csv_path = workdir / f"deliver_{n}.csv"
    ensure_csv(gen, csv_path, n)
    csv_bytes = csv_path.stat().st_size
    n_files, body_rows, body_bytes = ensure_bodies(csv_path, workdir / f"bodies_{n}",
                                                   args.deliver_max_rows)
    if body_rows != n:
        raise RuntimeError(f"the CSV holds {body_rows} rows, expected {n}")
    url = f"{server.base}/ingest"
    posts_cfg = workdir / f"posts_{n}.cfg"
    write_posts_cfg(posts_cfg, workdir / f"bodies_{n}", n_files, url)
    toml = workdir / f"deliver_{n}.toml"
    write_deliver_pipeline(toml, workdir, csv_path, url, args.deliver_max_rows,
                           args.deliver_concurrency)
    curl_argv = ["curl", "--no-progress-meter", "--parallel", "--parallel-max",
                 str(args.deliver_concurrency), "-K", str(posts_cfg)]
    expected_requests = -(-n // args.deliver_max_rows)

    s_row, c_row = ToolRow(SLUICE), ToolRow(CURL_POST)
    if sluice is None:
        s_row.status = "SKIPPED: build/sluice has no http destination (see `sluice components`)"
        failures += 1
    s_bytes: list[int] = []
    phases = Phases()
    note_phases = phases.note

    def check(expect_requests: int, expect_bytes: int | None) -> tuple[str | None, dict]:
        rec = server.received()
        if rec.get("requests") != expect_requests or rec.get("faulted") or rec.get("rejected"):
            return (f"server received {rec.get('requests')} requests, expected {expect_requests} "
                    f"({rec})"), rec
        if expect_bytes is not None and rec.get("bytes") != expect_bytes:
            return f"server received {rec.get('bytes')} bytes, expected {expect_bytes}", rec
        return None, rec

    # Untimed: curl warms node up (its JIT) and the page cache holds the
    # bodies; the CSV is there since it was written or reused.
    log(f"deliver {n:,}: warm-up (untimed): curl posting the bodies once")
    server.reset()
    run_measured(curl_argv, log_path=logs / "curl_deliver_warmup.log", timeout_s=args.timeout,
                 stdin=subprocess.DEVNULL)

    for rep in range(args.repeat):
        if s_row.status == "ok":
            log(f"[{rep + 1}/{args.repeat}] deliver {n:,}: sluice")
            log_path = logs / f"sluice_deliver_{rep + 1}.log"
            server.reset()
            with RequestWatcher(server, "ingest", expected_requests) as watch:
                res = run_sluice(sluice, toml, log_path, args)
            problem = failure(res, args.timeout)
            rec: dict = {}
            if problem is None:
                problem, rec = check(expected_requests, None)
            if problem:
                s_row.status = f"FAILED: {problem}"
                failures += 1
                log(f"sluice FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
            else:
                s_row.walls.append(res.wall_s)
                s_row.cpus.append(res.cpu_s)
                s_row.peak_rss_mb = max(s_row.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
                s_row.warnings += count_warnings(log_path)
                s_bytes.append(rec["bytes"])
                note_phases(SLUICE, watch, res.wall_s)
                log(f"sluice: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB, "
                    f"{rec['requests']} requests, {rec['bytes'] / 1e6:.1f} MB")
        if c_row.status == "ok":
            log(f"[{rep + 1}/{args.repeat}] deliver {n:,}: {' '.join(curl_argv)}")
            log_path = logs / f"curl_deliver_{rep + 1}.log"
            log_path.unlink(missing_ok=True)
            server.reset()
            with RequestWatcher(server, "ingest", n_files) as watch:
                res = run_measured(curl_argv, log_path=log_path, timeout_s=args.timeout,
                                   stdin=subprocess.DEVNULL)
            problem = failure(res, args.timeout) or check(n_files, body_bytes)[0]
            if problem:
                c_row.status = f"FAILED: {problem}"
                failures += 1
                log(f"curl FAILED: {problem}; log {log_path}:\n{tail(log_path)}")
            else:
                c_row.walls.append(res.wall_s)
                c_row.cpus.append(res.cpu_s)
                c_row.peak_rss_mb = max(c_row.peak_rss_mb or 0.0, res.peak_rss_kb / 1024)
                log(f"curl: {res.wall_s:.2f} s, peak RSS {res.peak_rss_kb / 1024:.1f} MB")
                note_phases(CURL_POST, watch, res.wall_s)

    out = [f"## Deliver: {n:,} CSV rows ({csv_bytes / 1e6:.1f} MB) -> POST /ingest, "
           f"{args.deliver_max_rows} rows per request, {args.deliver_concurrency} in flight",
           ""]
    out.append("| tool | requests | body MB | wall s | rows/s | body MB/s | peak RSS MB | CPU s "
               "| ratio to floor | result |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    floor_wall = c_row.wall_s
    for r, reqs, mb in ((s_row, expected_requests,
                         statistics.median(s_bytes) / 1e6 if s_bytes else None),
                        (c_row, n_files, body_bytes / 1e6)):
        wall = r.wall_s
        ratio = wall / floor_wall if (wall and floor_wall) else None
        status = r.status + (f" ({r.warnings} warnings in its log)" if r.warnings else "")
        out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r.tool, f"{reqs:,}", fmt(mb, ".1f"), fmt(wall, ".2f"),
            fmt(n / wall if wall else None, ",.0f"),
            fmt(mb / wall if (wall and mb) else None, ".1f"),
            fmt(r.peak_rss_mb if r.status == "ok" else None, ".1f"),
            fmt(r.cpu_s, ".2f"),
            fmt(ratio, ".2f") + ("x" if ratio is not None else ""),
            status))
    out.append("")
    if s_row.wall_s and floor_wall:
        ratio = s_row.wall_s / floor_wall
        out.append(f"- sluice / floor {ratio:.2f}x: target <= {TARGET_DELIVER_RATIO}x "
                   f"{'met' if ratio <= TARGET_DELIVER_RATIO else 'MISSED'}")
    if s_bytes:
        same = statistics.median(s_bytes) == body_bytes
        out.append(f"- sluice's request bodies: {statistics.median(s_bytes):,} bytes in all, "
                   + ("exactly the floor's" if same else
                      f"{statistics.median(s_bytes) / body_bytes - 1:+.2%} against the floor's "
                      f"{body_bytes:,}")
                   + " (same rows, same JSON shape; a large difference would make the floor unfair)")
    out.extend(phases.table(SLUICE, CURL_POST, (
        "start-up: process start -> first request at the server",
        "delivery: first -> last request at the server",
        "after the last request: last answers, run log, exit")))
    if out[-1] != "":
        out.append("")
    out.append(
        "Notes: wall time is from process start to exit. The floor's bodies are built untimed, in "
        "Python, from the same CSV: JSON arrays of row objects as sluice sends them (compact, "
        "amount as a number with its exact digits, ts in ISO 8601), one file per request; curl "
        "posts them with Content-Type: application/json, an Idempotency-Key and no "
        "Expect: 100-continue, as sluice does. sluice reads and parses the CSV, types it "
        "(DECIMAL(12,2), TIMESTAMP), encodes the JSON and records the run in its SQLite state "
        f"store. The server runs with --discard (bodies counted, not parsed). Verified per run: "
        f"the server received exactly {expected_requests:,} requests from sluice "
        f"(ceil({n:,} / {args.deliver_max_rows})) and {n_files:,} requests and exactly "
        f"{body_bytes:,} bytes from curl, none faulted or rejected. Untimed warm-up first (curl "
        f"once). Median of {args.repeat} run(s), tools interleaved; peak RSS is the largest "
        "ru_maxrss (wait4); the node server's CPU and memory are not counted."
    )
    return out, failures


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--poll-endpoints", type=int, default=10_000,
                    help="endpoints of the poll workload (default 10,000)")
    ap.add_argument("--poll-large", type=int, default=100_000,
                    help="endpoints of the large poll tick, for memory (default 100,000; 0 skips)")
    ap.add_argument("--poll-large-curl", choices=("yes", "no"), default="yes",
                    help="also run curl over the large tick (default yes)")
    ap.add_argument("--poll-size", type=int, default=1000,
                    help="bytes of JSON per response (the server's ?size=; default 1000)")
    ap.add_argument("--poll-concurrency", type=int, default=256,
                    help="requests in flight for sluice and curl (default 256)")
    ap.add_argument("--deliver-rows", type=int, default=1_000_000,
                    help="CSV rows of the deliver workload (default 1,000,000)")
    ap.add_argument("--deliver-max-rows", type=int, default=500, help="rows per request (default 500)")
    ap.add_argument("--deliver-concurrency", type=int, default=8,
                    help="requests in flight for sluice and curl (default 8)")
    ap.add_argument("--skip-poll", action="store_true", help="leave the poll workload out")
    ap.add_argument("--skip-deliver", action="store_true", help="leave the deliver workload out")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs per tool, interleaved; the median is reported (default 1; "
                         "the large poll tick always runs once)")
    ap.add_argument("--workdir", type=Path,
                    help="where data, logs and pipeline files live; the CSV and the request bodies "
                         "are kept there and reused (default: a temp dir, deleted)")
    ap.add_argument("--keep", action="store_true", help="keep the (default, temporary) workdir")
    ap.add_argument("--build-dir", type=Path, default=REPO / "build",
                    help="where sluice and bench/sluice_gen_csv, bench/sluice_duckdb_floor are "
                         "(default: build/)")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    args = ap.parse_args()
    if args.repeat < 1 or args.poll_endpoints < 1 or args.poll_large < 0 or args.deliver_rows < 1 \
            or args.deliver_max_rows < 1:
        ap.error("need --repeat >= 1, --poll-endpoints >= 1, --poll-large >= 0, "
                 "--deliver-rows >= 1 and --deliver-max-rows >= 1")
    if args.skip_poll and args.skip_deliver:
        ap.error("--skip-poll and --skip-deliver together leave nothing to measure")
    if shutil.which("curl") is None:
        print("error: curl not found (it is the floor of both workloads)", file=sys.stderr)
        return 2

    sluice = args.build_dir / "sluice"
    gen = args.build_dir / "bench" / "sluice_gen_csv"
    floor = args.build_dir / "bench" / "sluice_duckdb_floor"
    gen_or_none = gen if os.access(gen, os.X_OK) else None
    floor_or_none = floor if os.access(floor, os.X_OK) else None
    have_sluice = os.access(sluice, os.X_OK)
    components = sluice_components(sluice) if have_sluice else {}
    http_source = "http" in components.get("[source]", set())
    http_dest = "http" in components.get("[destination] of batch pipelines", set())
    if not have_sluice:
        log(f"WARNING: {sluice} not found; sluice runs will be SKIPPED. {BUILD_HINT}")
    else:
        if not args.skip_poll and not http_source:
            log(f"WARNING: {sluice} has no http source (`sluice components`); the poll's sluice "
                "rows will be SKIPPED")
        if not args.skip_deliver and not http_dest:
            log(f"WARNING: {sluice} has no http destination (`sluice components`); the deliver's "
                "sluice row will be SKIPPED")
    if floor_or_none is None and not args.skip_poll:
        log(f"note: {floor} not found; the DuckDB table is not checked (only sluice's log and "
            "the server's counts)")

    install_signal_handlers()
    workdir, own_workdir = make_workdir(args.workdir, "sluice-http-bench-")
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    log(f"workdir {workdir} (free: {shutil.disk_usage(workdir).free / 1e9:.1f} GB)")
    if have_sluice:
        # Untimed: the binary into the page cache, so no tool pays for the first load.
        subprocess.run([str(sluice), "version"], capture_output=True)

    load_at_start = load_average()
    servers: list[HttpServer] = []
    report: list[str] = []
    failures = 0
    try:
        if not args.skip_poll:
            poll_server = HttpServer("poll", logs)
            servers.append(poll_server)
            poll_server.start()
            s = sluice if (have_sluice and http_source) else None
            lines, f = poll_workload(args, s, floor_or_none, poll_server, workdir, logs,
                                     args.poll_endpoints, repeat=args.repeat, warmup=True,
                                     with_curl=True, rss_target=TARGET_POLL_RSS_MB,
                                     full_targets=True)
            report.extend(lines)
            failures += f
            if args.poll_large > 0:
                report.append("")
                lines, f = poll_workload(args, s, floor_or_none, poll_server, workdir, logs,
                                         args.poll_large, repeat=1, warmup=False,
                                         with_curl=args.poll_large_curl == "yes",
                                         rss_target=TARGET_LARGE_RSS_MB, full_targets=False)
                report.extend(lines)
                failures += f
            poll_server.stop()

        if not args.skip_deliver:
            if report:
                report.append("")
            deliver_server = HttpServer("deliver", logs, discard=True)
            servers.append(deliver_server)
            deliver_server.start()
            s = sluice if (have_sluice and http_dest) else None
            lines, f = deliver_workload(args, s, gen_or_none, deliver_server, workdir, logs)
            report.extend(lines)
            failures += f
            deliver_server.stop()

        report.append("")
        report.append("## Environment")
        report.append("")
        report.append(f"- host: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, "
                      f"{mem_total_gb():.1f} GB RAM, Linux {platform.release()}")
        report.append(f"- load average (1/5/15 min) at start: {load_at_start}; at the end: "
                      f"{load_average()} (other work on the machine distorts the numbers)")
        report.append(f"- server: tests/http_server/server.js on node {tool_version(['node', '--version'])}, "
                      "127.0.0.1, keep-alive, one process")
        report.append(f"- curl: {tool_version(['curl', '--version'])}")
        report.append(f"- sluice: {tool_version([str(sluice), 'version']) if have_sluice else 'not built'}"
                      f"; commit {git_commit()}")
        if not args.skip_deliver:
            report.append(f"- deliver CSV: {'sluice_gen_csv (seed 42)' if gen_or_none else 'Python'}"
                          f", {args.deliver_rows:,} rows")

    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, urllib.error.URLError, OSError) as e:
        detail = getattr(e, "stderr", None)
        log(f"error: {e}" + (f"\n{detail.strip()}" if isinstance(detail, str) and detail else ""))
        return 2
    finally:
        kill_live_children()
        for srv in servers:
            srv.stop()
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif own_workdir:
            log(f"kept {workdir}")

    write_report(args.results_dir, "http", "sluice HTTP benchmark", report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
