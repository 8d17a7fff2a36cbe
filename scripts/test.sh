#!/usr/bin/env bash
# The whole test suite: installs what is missing (including PostgreSQL 15,
# which the tests start themselves on 127.0.0.1), builds, and runs every
# unit and system test with CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --tests
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" --timeout 1200
