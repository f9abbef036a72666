#!/usr/bin/env bash
# The PostgreSQL store against SQLite, and many services on one database.
#
#   bench/postgres.sh            # all three measurements
#   BENCH_PG=postgres://postgres@127.0.0.1:5432/test bench/postgres.sh
#
# 1. Per-stage store cost: `orch run` of the 100-stage chain (bench/gen_chain.py)
#    with ORCH_PROFILE=1, on SQLite (a fresh state dir) and on PostgreSQL (a
#    fresh schema); store_us / 100 per run, the median of BENCH_RUNS runs.
# 2. Claims per second with 1, 3 and 6 services: BENCH_TASKS tasks of a
#    one-stage pipeline (runner `true`) submitted up front, then the services
#    started at once; tasks finished per second from the first start to the
#    last finish (every claim is a task run to its end: the claim rate
#    bounded by a whole, minimal task).
# 3. Takeover time: a service holding a task at a held stage is SIGKILLed;
#    from its lease's expiry (the database's clock) to the first step the
#    taker records (the attempt it starts), for a lease of BENCH_LEASE.
#
# Environment: BENCH_PG (default ORCH_TEST_POSTGRES, else the loopback
# server), BENCH_RUNS (5), BENCH_TASKS (200), BENCH_LEASE (2s), ORCH_BIN (an
# orch binary; default: target/release/orch, built if missing). Prints
# Markdown tables. Each measurement uses a schema of its own, dropped after.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG="${BENCH_PG:-${ORCH_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}}"
RUNS="${BENCH_RUNS:-5}"
TASKS="${BENCH_TASKS:-200}"
LEASE="${BENCH_LEASE:-2s}"
if [ -z "${ORCH_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    ORCH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/orch"
fi
export ORCH_BIN PG RUNS TASKS LEASE ROOT
exec python3 "$ROOT/bench/postgres_bench.py"
