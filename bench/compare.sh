#!/usr/bin/env bash
# Compare two orch binaries (OLD vs NEW), interleaved in one session.
#
#   bench/compare.sh OLD_BIN NEW_BIN > results.md
#
# Builds nothing. Generates, into a temporary directory, the pipelines of
# bench/validate.sh (bench/gen_pipeline.py: SIZES) and the chains of
# bench/run.sh (bench/gen_chain.py: CHAINS, plus N `/bin/true` lines for
# bash), checks both binaries accept every file, then measures:
#
#   validate  `BIN validate FILE` on pipelines/orchestrator.kdl and each size;
#   run       `BIN run bench -p CHAIN --state-dir D`, D emptied before every
#             run, on disk (BENCH_DIR) and on /dev/shm; `bash bashN.sh` too.
#
# Timing: hyperfine -N. Each round is ONE hyperfine call holding every command
# of a case (OLD and NEW side by side, for run also bash), and the order is
# reversed every other round, so load changes hit both binaries alike.
# ratio = NEW / OLD of the means (wall, CPU = user + sys); "per-round ratio"
# is the range of the ratios of single rounds, i.e. how much noise there is.
# Peak RSS: max of /usr/bin/time -f %M over 3 runs. For run, a pass with
# ORCH_PROFILE=1 gives the engine's split. CALLGRIND=1 also counts the
# instructions (valgrind callgrind, the orch process only; load-independent)
# of validate for SIZES <= 1000 and of run/shm for CHAINS <= 100.
# The 1-minute load average is sampled every round and reported.
#
# Environment: SIZES="100 1000 10000"  CHAINS="10 100 1000"  ROUNDS=10
#   (rounds for validate ref/100, run N <= 100; fewer for the big cases:
#   validate 1000: 5, 10000: 3, run N > 100: 3)  CALLGRIND=1
#   BENCH_DIR=dir (on-disk state dirs; emptied, then removed at the end;
#   default target/comparebench)
set -euo pipefail
[[ $# == 2 ]] || { sed -n '2,30p' "$0" >&2; exit 2; }
OLD="$(realpath "$1")" NEW="$(realpath "$2")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 2; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/orch-compare.XXXXXX")"
SHM="$(mktemp -d /dev/shm/orch-compare.XXXXXX)"
DISK="${BENCH_DIR:-$ROOT/target/comparebench}"
rm -rf "$DISK" && mkdir -p "$DISK"
trap 'rm -rf "$TMP" "$SHM" "$DISK"' EXIT

for n in ${SIZES-100 1000 10000}; do
    python3 "$ROOT/bench/gen_pipeline.py" "$n" --prompts-dir "$TMP/prompts" >"$TMP/gen$n.kdl"
done
for n in ${CHAINS-10 100 1000}; do
    python3 "$ROOT/bench/gen_chain.py" "$n" >"$TMP/chain$n.kdl"
    { echo '#!/bin/bash'; for ((i = 0; i < n; i++)); do echo /bin/true; done; } >"$TMP/bash$n.sh"
done
cp "$ROOT/pipelines/orchestrator.kdl" "$TMP/ref.kdl"
for f in "$TMP"/*.kdl; do
    for b in "$OLD" "$NEW"; do
        "$b" validate "$f" >/dev/null 2>&1 || { echo "$b rejects $f" >&2; exit 1; }
    done
done

export OLD NEW TMP SHM DISK SIZES="${SIZES-100 1000 10000}" CHAINS="${CHAINS-10 100 1000}"
export ROUNDS="${ROUNDS:-10}" CALLGRIND="${CALLGRIND:-}"
python3 - <<'PY'
import json, os, re, statistics as st, subprocess as sp

E = os.environ
OLD, NEW, TMP, SHM, DISK = E["OLD"], E["NEW"], E["TMP"], E["SHM"], E["DISK"]
R = int(E["ROUNDS"])
loads = []


def hyper(cmds, rounds, runs, warmup):
    """cmds: name -> (command line, state dir or None). Per name: walls, cpu means, round means."""
    out = {k: {"wall": [], "cpu": [], "round": []} for k in cmds}
    names = list(cmds)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        argv = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
                "--export-json", f"{TMP}/hf.json"]
        for k in order:
            argv += ["--prepare", f"rm -rf {cmds[k][1]}" if cmds[k][1] else "true"]
        argv += [cmds[k][0] for k in order]
        sp.run(argv, check=True, stdout=sp.DEVNULL, cwd=TMP)
        loads.append(os.getloadavg()[0])
        for k, res in zip(order, json.load(open(f"{TMP}/hf.json"))["results"]):
            if any(res.get("exit_codes", [0])):
                raise SystemExit(f"{k} failed: {cmds[k][0]}")
            out[k]["wall"] += res["times"]
            out[k]["cpu"] += [res["user"] + res["system"]] * runs
            out[k]["round"].append(res["mean"])
    return out


def rss(cmd, d=None):
    best = 0
    for _ in range(3):
        if d:
            sp.run(["rm", "-rf", d], check=True)
        p = sp.run(["/usr/bin/time", "-f", "%M"] + cmd.split(), stdout=sp.DEVNULL, stderr=sp.PIPE,
                   text=True, cwd=TMP)
        best = max(best, int(p.stderr.strip().splitlines()[-1]))
    return best / 1024


def irs(cmd, d=None):
    if d:
        sp.run(["rm", "-rf", d], check=True)
    p = sp.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + cmd.split(),
               stdout=sp.DEVNULL, stderr=sp.PIPE, text=True, cwd=TMP)
    return int(re.search(r"Collected : (\d+)", p.stderr).group(1))


ms = lambda s: f"{s * 1e3:,.1f}" if s < 0.1 else f"{s * 1e3:,.0f}"
mean, sd = st.mean, lambda v: st.stdev(v) if len(v) > 1 else 0.0


def pair_cells(o, n):
    """OLD, NEW (wall mean ± σ), ratio wall, per-round ratio range, CPU OLD, NEW, ratio."""
    rr = [b / a for a, b in zip(o["round"], n["round"])]
    return [f"{ms(mean(o['wall']))} ± {ms(sd(o['wall']))}", f"{ms(mean(n['wall']))} ± {ms(sd(n['wall']))}",
            f"**{mean(n['wall']) / mean(o['wall']):.3f}**", f"{min(rr):.2f}–{max(rr):.2f}",
            ms(mean(o["cpu"])), ms(mean(n["cpu"])), f"{mean(n['cpu']) / mean(o['cpu']):.3f}"]


row = lambda cells: print("| " + " | ".join(str(c) for c in cells) + " |")
load0 = os.getloadavg()
print(f"load average (1/5/15 min) at the start: {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, "
      f"{os.cpu_count()} CPUs\n")

# ---- validate
print("### `orch validate`: wall ms (mean ± σ), CPU ms (user + sys), peak RSS MiB\n")
hdr = ["pipeline", "runs", "OLD wall", "NEW wall", "NEW/OLD wall", "per-round ratio", "OLD CPU",
       "NEW CPU", "NEW/OLD CPU", "OLD RSS", "NEW RSS"]
row(hdr), row(["---"] + ["--:"] * (len(hdr) - 1))
plan = [("reference", "ref", R, 3, 3)] + [
    (f"generated {n}", f"gen{n}", {"100": R, "1000": 5, "10000": 3}.get(n, 3), 2 if n == "100" else 1,
     1 if int(n) <= 1000 else 0) for n in E["SIZES"].split()]
ir = []
for label, f, rounds, runs, warm in plan:
    cmds = {b: (f"{bin_} validate {TMP}/{f}.kdl", None) for b, bin_ in (("OLD", OLD), ("NEW", NEW))}
    t = hyper(cmds, rounds, runs, warm)
    row([label, rounds * runs] + pair_cells(t["OLD"], t["NEW"]) +
        [f"{rss(cmds['OLD'][0]):.1f}", f"{rss(cmds['NEW'][0]):.1f}"])
    if E["CALLGRIND"] and (f == "ref" or int(f[3:]) <= 1000):
        ir.append((f"validate {label}", irs(cmds["OLD"][0]), irs(cmds["NEW"][0])))

# ---- run
print("\n### `orch run` of a chain of N `true` stages, fresh state dir: wall ms (mean ± σ), CPU ms\n")
hdr = ["N", "state dir", "runs", "OLD wall", "NEW wall", "NEW/OLD wall", "per-round ratio", "OLD CPU",
       "NEW CPU", "NEW/OLD CPU", "bash wall", "OLD/bash", "NEW/bash", "OLD RSS", "NEW RSS"]
row(hdr), row(["--:", "---"] + ["--:"] * (len(hdr) - 2))
profs = []
for n in E["CHAINS"].split():
    run = lambda b, d: (f"{b} run bench -p {TMP}/chain{n}.kdl --state-dir {d}", d)
    cmds = {"bash": (f"bash {TMP}/bash{n}.sh", None),
            "OLD shm": run(OLD, f"{SHM}/old{n}"), "NEW shm": run(NEW, f"{SHM}/new{n}"),
            "OLD disk": run(OLD, f"{DISK}/old{n}"), "NEW disk": run(NEW, f"{DISK}/new{n}")}
    big = int(n) > 100
    t = hyper(cmds, 3 if big else R, 1, 0 if big else 1)
    b = mean(t["bash"]["wall"])
    for where in ("shm", "disk"):
        o, w = t[f"OLD {where}"], t[f"NEW {where}"]
        row([n, where, len(o["wall"])] + pair_cells(o, w) +
            [ms(b), f"{mean(o['wall']) / b:.2f}", f"{mean(w['wall']) / b:.2f}",
             f"{rss(*cmds[f'OLD {where}']):.1f}", f"{rss(*cmds[f'NEW {where}']):.1f}"])
        for v in ("OLD", "NEW"):
            reps = []
            for _ in range(1 if big else 3):
                sp.run(["rm", "-rf", cmds[f"{v} {where}"][1]], check=True)
                p = sp.run(cmds[f"{v} {where}"][0].split(), stdout=sp.DEVNULL, stderr=sp.PIPE, text=True,
                           env=dict(E, ORCH_PROFILE="1"), cwd=TMP)
                reps.append([int(x) for x in re.findall(r"_us=(\d+)", p.stderr)])
            profs.append((n, where, v, [mean(c) / int(n) for c in zip(*reps)]))
        if E["CALLGRIND"] and where == "shm" and not big:
            ir.append((f"run N={n} shm", irs(*cmds["OLD shm"]), irs(*cmds["NEW shm"])))

print("\n### `ORCH_PROFILE=1` split, µs per stage (mean of 3 runs, 1 for N > 100)\n")
hdr = ["N", "state dir", "binary", "engine total", "producers", "artifacts", "gates", "store", "other"]
row(hdr), row(["--:", "---", "---"] + ["--:"] * 6)
for n, where, v, p in profs:
    row([n, where, v] + [f"{x:.0f}" for x in p])
if ir:
    print("\n### Instructions (callgrind, orch process only; millions)\n")
    row(["case", "OLD", "NEW", "NEW/OLD"]), row(["---", "--:", "--:", "--:"])
    for label, a, c in ir:
        row([label, f"{a / 1e6:,.1f}", f"{c / 1e6:,.1f}", f"**{c / a:.3f}**"])
load1 = os.getloadavg()
print(f"\n1-minute load average: {load0[0]:.2f} at the start, {min(loads):.2f}–{max(loads):.2f} "
      f"(mean {mean(loads):.2f}) over the rounds, {load1[0]:.2f} at the end.")
PY
