#!/usr/bin/env bash
# Benchmark `orch serve` (bench/serve_load.py does the measuring):
#
#   bench/serve.sh                      # builds release, 1,000 (+16) submissions
#   ORCH_BIN=target/debug/orch bench/serve.sh
#   BENCH_SUBMITS=1000 BENCH_CHAIN=20 bench/serve.sh
#
# Prints submissions/s accepted, p50/p99 latency of POST /api/v1/tasks and
# GET /queue, the service's RSS with 1,000 queued and 16 running, and the
# per-stage time of a `true` chain through `orch run` and through the
# service. The scratch directory is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORCH_BIN:-}" ]; then
    cargo build --release --bin orch
    ORCH_BIN="${CARGO_TARGET_DIR:-target}/release/orch"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/orch-serve-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 bench/serve_load.py "$(realpath "$ORCH_BIN")" "$work"
