#!/usr/bin/env bash
# `orch serve` under wrk (Debian's `wrk`): durable submissions per second and
# POST /api/v1/tasks latency, every request a new task (bench/serve_post.lua),
# on a service with --workers 16 whose tasks are all held in their first
# stage (16 run, the rest stay queued); then the service's peak RSS.
#
#   bench/serve_wrk.sh                 # builds release; 16 connections, 3 s
#   ORCH_BIN=… WRK_CONNECTIONS=16 WRK_SECONDS=3 bench/serve_wrk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 2; }
if [ -z "${ORCH_BIN:-}" ]; then
    cargo build --release --quiet --bin orch
    ORCH_BIN="${CARGO_TARGET_DIR:-target}/release/orch"
fi
ORCH_BIN="$(realpath "$ORCH_BIN")"
work="$(mktemp -d "${TMPDIR:-/tmp}/orch-serve-wrk.XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
python3 bench/gen_chain.py 3 >"$work/chain.kdl"
# The first stage waits while $HOLD exists.
sed -i '0,/command "true"/s//command "sh" "-c" "while [ -e \\"$HOLD\\" ]; do sleep 0.1; done"/' "$work/chain.kdl"
touch "$work/hold"
(cd "$work" && HOLD="$work/hold" ORCH_TOKEN=bench-token exec "$ORCH_BIN" serve -p chain.kdl \
    --state-dir state --listen 127.0.0.1:0 --workers 16 >serve.out 2>serve.err) &
pid=$!
for _ in $(seq 100); do
    addr=$(sed -n 's|^orch serve: listening on http://||p' "$work/serve.out")
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "orch serve did not start: $(cat "$work/serve.err")" >&2; exit 1; }
echo "loadavg before: $(cat /proc/loadavg)"
wrk -t2 -c"${WRK_CONNECTIONS:-16}" -d"${WRK_SECONDS:-3}s" --latency -s bench/serve_post.lua "http://$addr"
echo "queue_length: $(curl -s "http://$addr/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queue_length"])')"
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
