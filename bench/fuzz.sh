#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ into build-fuzz/ (clang, ASan and
# UBSan, only the parser sources), runs each for SECONDS on its seed corpus,
# then replays the inputs that once crashed it (fuzz/regressions/<target>/).
# Exits non-zero if any target crashes, leaks, times out or violates a
# property. scripts/test.sh runs it for 20 s per target.
#
#   bench/fuzz.sh [SECONDS] [TARGET...]     default: 60 s, every target
#   bench/fuzz.sh 300 config cron           targets by short or full name
#   bench/fuzz.sh 0                         only replay seeds and regressions
#   FUZZ_JOBS=1 bench/fuzz.sh               targets at once (default: cores)
#
# Nothing in the repository is written: inputs that add coverage go to
# build-fuzz/work/<target>/corpus (libFuzzer only reads the seed directory,
# which is passed second), crashing inputs to build-fuzz/artifacts/<target>/,
# logs to build-fuzz/logs/<target>.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds=60
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  shift
fi
all=(pgoutput replication_frame s3_xml redact config cron tzif)
targets=()
for t in "${@:-${all[@]}}"; do
  t="${t%_fuzz}"
  if [[ ! -f "fuzz/${t}_fuzz.cc" ]]; then
    echo "fuzz: unknown target '$t' (known: ${all[*]})" >&2
    exit 2
  fi
  targets+=("$t")
done
jobs="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"

if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ not found; install clang and libclang-rt-14-dev (scripts/setup.sh --tests does)" >&2
  exit 2
fi
build=build-fuzz
cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >"$build/build.log" 2>&1 || {
  cat "$build/build.log" >&2
  exit 1
}

# Leak checks stay on; a report must fail the run and show where.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# One target: fuzz for $seconds, then replay its regressions. Writes
# "ok ..." or "FAILED ..." to build-fuzz/work/<target>/result.
run_target() {
  local t="$1"
  local bin="$build/${t}_fuzz" work="$build/work/$t" log="$build/logs/$t.log"
  local artifacts="$build/artifacts/$t/"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$artifacts" "$build/logs"
  local dict=()
  [[ -f "fuzz/dict/$t.dict" ]] && dict=(-dict="fuzz/dict/$t.dict")
  # Redaction runs over whole error messages: long inputs once overflowed
  # the stack of a recursive regex (fuzz/regressions/redact).
  [[ "$t" == redact ]] && dict+=(-max_len=65536)
  # 0 s: only run the seeds and regressions once (libFuzzer reads
  # -max_total_time=0 as "no limit").
  local limit=(-max_total_time="$seconds")
  ((seconds > 0)) || limit=(-runs=0)
  if ! "$bin" "${limit[@]}" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts" "${dict[@]}" "$work/corpus" "fuzz/corpus/$t" >"$log" 2>&1; then
    local crash
    crash="$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //')"
    echo "FAILED: ${crash:-see $log} (log: $log)" >"$work/result"
    return
  fi
  local runs
  runs="$(grep -o '^stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  local regressions=(fuzz/regressions/"$t"/*)
  if [[ -e "${regressions[0]}" ]]; then
    if ! "$bin" -timeout=30 "${regressions[@]}" >>"$log" 2>&1; then
      echo "FAILED: a regression input crashes again (log: $log)" >"$work/result"
      return
    fi
    echo "ok: $runs inputs in ${seconds}s, ${#regressions[@]} regression inputs pass" >"$work/result"
  else
    echo "ok: $runs inputs in ${seconds}s" >"$work/result"
  fi
}

echo "fuzz: ${targets[*]} for ${seconds}s each, $jobs at a time"
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  run_target "$t" &
done
wait

status=0
for t in "${targets[@]}"; do
  result="$(cat "$build/work/$t/result" 2>/dev/null || echo "FAILED: no result (log: $build/logs/$t.log)")"
  printf 'fuzz: %-18s %s\n' "$t" "$result"
  [[ "$result" == ok* ]] || status=1
done
if ((status)); then
  echo "fuzz: a target failed. Reproduce with $build/<target>_fuzz <input>; once fixed, keep the input" \
    "in fuzz/regressions/<target>/ and add a unit test beside the parser." >&2
fi
exit "$status"
