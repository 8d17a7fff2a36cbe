#!/usr/bin/env bash
# The newcomer's first command: installs what is missing, builds, and runs
# the quickstart pipeline on the bundled CSV files into an embedded DuckDB
# file (no server needed), then prints what was loaded.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
mkdir -p quickstart/out
echo
echo "== sluice validate examples/quickstart/pipeline.toml"
build/sluice validate examples/quickstart/pipeline.toml
echo
echo "== sluice run examples/quickstart/pipeline.toml"
build/sluice run examples/quickstart/pipeline.toml
echo
echo "== the same aggregate, printed to stdout by a second pipeline (examples/quickstart/show.toml):"
build/sluice run --quiet examples/quickstart/show.toml
