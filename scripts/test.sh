#!/usr/bin/env bash
# The whole test suite: installs what is missing (including PostgreSQL 15,
# which the tests start themselves on 127.0.0.1), builds, runs every unit
# and system test with CTest, then runs each fuzz target for 20 s.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --tests
(cd build && ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" --timeout 1200)
# Each fuzz target of fuzz/ for a short time with ASan and UBSan, then the
# inputs that once crashed it; a finding fails the suite (see bench/README.md).
bench/fuzz.sh "${SLUICE_FUZZ_SECONDS:-20}"
