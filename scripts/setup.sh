#!/usr/bin/env bash
# Installs what sluice needs on Debian 12 (only what is missing), fetches
# DuckDB, and builds everything into build/. Safe to run again.
#   scripts/setup.sh            build dependencies + build
#   scripts/setup.sh --tests    also what the test suite needs (PostgreSQL 15, clang for fuzzing)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

want_tests=0
[[ "${1:-}" == "--tests" ]] && want_tests=1

# Tools that may come from elsewhere than Debian (a Node.js install brings
# its own npm): installed from Debian only when the command is missing.
declare -A commands=([npm]=npm [cmake]=cmake [git]=git [python3]=python3 [pkg-config]=pkg-config)
packages=(build-essential ca-certificates openssl
  libpq-dev libcurl4-openssl-dev libssl-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  libcli11-dev nlohmann-json3-dev libsqlite3-dev libzstd-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev)  # the last four: tests and benchmarks
if (( want_tests )); then
  # clang and its runtimes (libFuzzer, ASan, UBSan): the fuzz targets (fuzz/, bench/fuzz.sh).
  packages+=(postgresql-15 postgresql-client-15 util-linux procps gzip zstd clang libclang-rt-14-dev)
fi

missing=()
for c in "${!commands[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("${commands[$c]}")
done
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# s3rver, the S3 server the test harness starts (tests/harness/s3_server.cc),
# pinned by tests/s3rver/package-lock.json; reinstalled when the lock changes.
if (( want_tests )); then
  if [[ ! -d tests/s3rver/node_modules || tests/s3rver/package-lock.json -nt tests/s3rver/node_modules ]]; then
    echo "setup: installing s3rver (tests/s3rver)"
    npm ci --prefix tests/s3rver --no-audit --no-fund
    touch tests/s3rver/node_modules
  fi
fi

scripts/fetch_duckdb.sh

jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S . -B build -DCMAKE_BUILD_TYPE="${SLUICE_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build build -j"$jobs"
echo "setup: built build/sluice"
