#!/usr/bin/env bash
# Speed benchmark for `orch validate`: whole-process, release build.
#
#   bench/validate.sh
#
# Builds release (`cargo build --release --examples --bins`, into
# $CARGO_TARGET_DIR, default ./target), generates pipelines of 100, 1,000 and
# 10,000 stages with bench/gen_pipeline.py into a temporary directory, and
# measures, for those and the reference pipeline pipelines/orchestrator.kdl:
#
#   - the file's size in bytes and lines;
#   - the mean wall time (and CPU time, user + system) of `orch validate FILE`
#     and of `parse_kdl FILE` (examples/parse_kdl.rs: read the file and
#     `kdl::KdlDocument::parse_v2` it, nothing else), over several runs:
#     hyperfine when it is installed, a python3 timing loop otherwise;
#   - the peak RSS of each (GNU `/usr/bin/time -f %M` when present, python3
#     `resource.getrusage(RUSAGE_CHILDREN)` otherwise);
#   - the parse share (parse_kdl time / orch validate time) and the growth
#     ratio 10,000 stages / 1,000 stages.
#
# bench/measure.py does the measuring and prints a Markdown table.
# Environment knobs:
#   SIZES="100 1000 10000"    stage counts to generate
#   RUNS_REF=30 RUNS_100=20 RUNS_1000=5 RUNS_10000=3   timed runs per command
#   (any other size N: RUNS_N, default 3)
#   NO_HYPERFINE=1            use the python3 loop even if hyperfine exists
#   KEEP=1                    keep the temporary directory (it is printed)
#
# A cold build of the release binaries takes minutes; the measurement itself
# takes well under three minutes on two idle cores.

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TARGET_DIR="$target"
SIZES="${SIZES:-100 1000 10000}"

echo "building release binaries into $target ..." >&2
cargo build --release --examples --bins --quiet >&2

orch="$target/release/orch"
parse="$target/release/examples/parse_kdl"
for b in "$orch" "$parse"; do
    [[ -x "$b" ]] || { echo "error: $b was not built" >&2; exit 2; }
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/orch-bench.XXXXXX")"
if [[ "${KEEP:-}" == 1 ]]; then
    echo "keeping $tmp" >&2
else
    trap 'rm -rf "$tmp"' EXIT
fi

# The cases: label, stage count, file.
cases=("reference|8|$repo/pipelines/orchestrator.kdl")
for n in $SIZES; do
    f="$tmp/generated-$n.kdl"
    python3 "$repo/bench/gen_pipeline.py" "$n" --prompts-dir "$tmp/prompts" >"$f"
    cases+=("generated|$n|$f")
done

# Every case must validate: exit 0 and no error.
for c in "${cases[@]}"; do
    IFS='|' read -r _ n f <<<"$c"
    if ! out="$("$orch" validate "$f" 2>&1)"; then
        echo "error: $f does not validate:" >&2
        echo "$out" | tail -20 >&2
        exit 1
    fi
    echo "validates: $(basename "$f"): ${out##*$'\n'}" >&2
done

use_hyperfine=0
if [[ "${NO_HYPERFINE:-}" != 1 ]] && command -v hyperfine >/dev/null 2>&1; then
    use_hyperfine=1
fi
use_gnu_time=0
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M true >/dev/null 2>&1; then
    use_gnu_time=1
fi

export BENCH_ORCH="$orch" BENCH_PARSE="$parse" BENCH_TMP="$tmp"
export BENCH_HYPERFINE="$use_hyperfine" BENCH_GNU_TIME="$use_gnu_time"
printf '%s\n' "${cases[@]}" | python3 "$repo/bench/measure.py"
