#!/usr/bin/env bash
# Speed of `orch lsp`: time from a didChange to its publishDiagnostics, on
# the reference pipeline (goal < 5 ms) and on a generated 1,000-stage
# pipeline (goal < 100 ms). Release build.
#
#   bench/lsp.sh            (RUNS=50 by default; SIZE=1000)
#
# bench/lsp.py does the measuring (a python3 LSP client over stdio).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-50}
size=${SIZE:-1000}
cargo build --release --quiet --bin orch
orch="${CARGO_TARGET_DIR:-target}/release/orch"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/prompts"
python3 bench/gen_pipeline.py "$size" --prompts-dir "$tmp/prompts" > "$tmp/pipeline-$size.kdl"
python3 bench/lsp.py "$orch" pipelines/orchestrator.kdl "$runs"
python3 bench/lsp.py "$orch" "$tmp/pipeline-$size.kdl" "$runs"
