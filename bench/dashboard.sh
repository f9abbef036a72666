#!/usr/bin/env bash
# Benchmark the dashboard's queue page (bench/dashboard_load.py measures):
#
#   bench/dashboard.sh                       # builds release, 1,000 tasks
#   ORCH_BIN=target/debug/orch bench/dashboard.sh
#   BENCH_TASKS=1000 BENCH_GETS=50 bench/dashboard.sh
#
# Fills a service with BENCH_TASKS ended tasks (a chain of 2 `true` stages,
# --workers 16), plus 16 held running and 100 queued, then times GET / (the
# whole page, rendered on the server) and reports its size. The scratch
# directory is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORCH_BIN:-}" ]; then
    cargo build --release --bin orch
    ORCH_BIN="${CARGO_TARGET_DIR:-target}/release/orch"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/orch-dashboard-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 bench/dashboard_load.py "$(realpath "$ORCH_BIN")" "$work"
