#!/usr/bin/env bash
# Benchmark `orch run` against bash running the same commands.
#
#   bench/run.sh                    # builds release, runs N = 10, 100, 1000
#   BENCH_NS="100" bench/run.sh     # only the 100-stage chain
#
# For each N: a chain of N runner stages whose runner is `true`
# (bench/gen_chain.py), and a bash script of N `/bin/true` lines. Measured side
# by side and interleaved (round-robin: every round runs each command once):
#
#   bash       bash FILE                         (N fork+exec+wait of /bin/true)
#   validate   orch validate CHAIN               (fixed start-up + validation)
#   run/disk   orch run with a fresh --state-dir on disk (BENCH_DIR)
#   run/shm    orch run with a fresh --state-dir on /dev/shm (no disk sync)
#
# Timing uses hyperfine (-N, one hyperfine call per round, so the commands
# interleave) when it is installed, else a python3 loop. A second pass runs
# each orch command with ORCH_PROFILE=1 to read the engine's time split, and
# takes peak RSS from wait4(2) for every command. Prints Markdown tables.
#
# Environment:
#   BENCH_NS       stage counts (default "10 100 1000")
#   BENCH_RUNS     timed repetitions of each command for N <= 100 (default 10)
#   BENCH_RUNS_BIG repetitions for N > 100 (default 3)
#   BENCH_PROF     profiled runs of each orch variant (default 3; 1 for N > 100)
#   BENCH_DIR      scratch directory on disk (default $CARGO_TARGET_DIR/runbench,
#                  or target/runbench in the repository)
#   BENCH_NO_HYPERFINE=1  force the python3 timing loop
#   ORCH_BIN       use this orch binary instead of building one
#   CARGO_TARGET_DIR      honoured for the build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NS="${BENCH_NS:-10 100 1000}"
RUNS="${BENCH_RUNS:-10}"
RUNS_BIG="${BENCH_RUNS_BIG:-3}"
PROF="${BENCH_PROF:-3}"
WORK="${BENCH_DIR:-$TARGET/runbench}"
SHM="/dev/shm/orch-runbench.$$"

if [[ -z "${ORCH_BIN:-}" ]]; then
    echo "building: cargo build --release (target dir $TARGET)" >&2
    (cd "$ROOT" && cargo build --release --quiet)
    ORCH_BIN="$TARGET/release/orch"
fi
[[ -x "$ORCH_BIN" ]] || { echo "no orch binary at $ORCH_BIN" >&2; exit 2; }

rm -rf "$WORK" "$SHM"
mkdir -p "$WORK" "$SHM"
trap 'rm -rf "$SHM"' EXIT

for n in $NS; do
    python3 "$ROOT/bench/gen_chain.py" "$n" >"$WORK/chain$n.kdl"
    {
        echo "#!/bin/bash"
        for ((i = 0; i < n; i++)); do echo "/bin/true"; done
    } >"$WORK/bash$n.sh"
    if ! "$ORCH_BIN" validate "$WORK/chain$n.kdl" >"$WORK/validate$n.txt" 2>&1; then
        echo "orch validate rejected the $n-stage chain:" >&2
        cat "$WORK/validate$n.txt" >&2
        exit 1
    fi
done

HYPERFINE=""
if [[ -z "${BENCH_NO_HYPERFINE:-}" ]] && command -v hyperfine >/dev/null 2>&1; then
    HYPERFINE="$(command -v hyperfine)"
fi

export ORCH_BIN WORK SHM NS RUNS RUNS_BIG PROF HYPERFINE
python3 - <<'PY'
import json, os, re, resource, statistics, subprocess, sys, time, platform

ORCH, WORK, SHM = os.environ["ORCH_BIN"], os.environ["WORK"], os.environ["SHM"]
NS = [int(x) for x in os.environ["NS"].split()]
RUNS, RUNS_BIG, PROF = (int(os.environ[k]) for k in ("RUNS", "RUNS_BIG", "PROF"))
HYPERFINE = os.environ.get("HYPERFINE") or None


def commands(n):
    """name -> (argv, state dir to empty before each run or None)."""
    chain = f"{WORK}/chain{n}.kdl"
    disk, shm = f"{WORK}/state{n}", f"{SHM}/state{n}"
    run = lambda d: [ORCH, "run", "bench", "-p", chain, "--state-dir", d]
    return {
        "bash": (["bash", f"{WORK}/bash{n}.sh"], None),
        "validate": ([ORCH, "validate", chain], None),
        "run/disk": (run(disk), disk),
        "run/shm": (run(shm), shm),
    }


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def spawn(argv, env=None, rss=False):
    """Runs argv; returns (wall s, exit status, cpu s (user+sys, children included),
    peak RSS KiB, stderr). With rss and GNU time, argv runs under `/usr/bin/time -f`
    (a small parent); else the peak comes from wait4(2), whose ru_maxrss can't be
    below this python's own RSS (the child starts as a copy of it)."""
    if rss and GNU_TIME:
        argv = [GNU_TIME, "-f", "orch-bench-maxrss=%M"] + argv
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env, cwd=WORK)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    maxrss = ru.ru_maxrss
    m = re.search(r"orch-bench-maxrss=(\d+)", err)
    if m:
        maxrss = int(m.group(1))
    return wall, os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, maxrss, err


def fresh(d):
    if d:
        subprocess.run(["rm", "-rf", d], check=True)


def time_hyperfine(n, cmds, rounds):
    times = {k: [] for k in cmds}
    cpu = {k: [] for k in cmds}
    out = f"{WORK}/hf{n}.json"
    for _ in range(rounds):
        argv = [HYPERFINE, "-N", "--runs", "1", "--style", "none", "--export-json", out]
        for name, (_, d) in cmds.items():
            argv += ["--prepare", f"rm -rf {d}" if d else "true"]
        argv += [" ".join(a) for a, _ in cmds.values()]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=WORK)
        for name, r in zip(cmds, json.load(open(out))["results"]):
            if any(c != 0 for c in r.get("exit_codes", [0])):
                sys.exit(f"{name} (N={n}) failed under hyperfine")
            times[name] += r["times"]
            cpu[name].append(r["user"] + r["system"])
    return times, cpu


def time_python(n, cmds, rounds):
    times = {k: [] for k in cmds}
    cpu = {k: [] for k in cmds}
    for _ in range(rounds):
        for name, (argv, d) in cmds.items():
            fresh(d)
            wall, rc, c, _, err = spawn(argv)
            if rc != 0:
                sys.exit(f"{name} (N={n}) exited {rc}: {err}")
            times[name].append(wall)
            cpu[name].append(c)
    return times, cpu


PROFILE = re.compile(r"profile: attempts=(\d+) total_us=(\d+) producers_us=(\d+) artifacts_us=(\d+) "
                     r"gates_us=(\d+) store_us=(\d+) other_us=(\d+)")
KEYS = ["attempts", "total", "producers", "artifacts", "gates", "store", "other"]


def profile(n, cmds, reps):
    """Profiled runs of each command: mean profile fields, wall and peak RSS."""
    env = dict(os.environ, ORCH_PROFILE="1")
    res = {}
    for name, (argv, d) in cmds.items():
        rows, walls, rss = [], [], []
        for _ in range(reps if name.startswith("run/") else 1):
            fresh(d)
            wall, rc, _, maxrss, err = spawn(argv, env, rss=True)
            if rc != 0:
                sys.exit(f"{name} (N={n}) exited {rc}: {err}")
            walls.append(wall)
            rss.append(maxrss)
            m = PROFILE.search(err)
            if m:
                rows.append([int(x) for x in m.groups()])
            elif name.startswith("run/"):
                sys.exit(f"no profile line from {name} (N={n}): {err[-500:]}")
        prof = {k: statistics.mean(r[i] for r in rows) for i, k in enumerate(KEYS)} if rows else None
        if prof and prof["attempts"] != n:
            sys.exit(f"{name} (N={n}) ran {prof['attempts']} attempts, expected {n}")
        res[name] = {"wall": statistics.mean(walls), "rss": max(rss), "prof": prof}
    return res


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


ms = lambda s: s * 1000.0
fmt = lambda x, d=1: f"{x:.{d}f}"
started = time.perf_counter()
timing, cputime, profs = {}, {}, {}
for n in NS:
    cmds = commands(n)
    rounds = RUNS if n <= 100 else RUNS_BIG
    # A warm-up of every command (page cache, binary), untimed.
    for argv, d in cmds.values():
        fresh(d)
        spawn(argv)
    t, c = (time_hyperfine if HYPERFINE else time_python)(n, cmds, rounds)
    stats = lambda v: {"med": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v)}
    timing[n] = {k: stats(v) for k, v in t.items()}
    cputime[n] = {k: stats(v) for k, v in c.items()}
    profs[n] = profile(n, cmds, PROF if n <= 100 else 1)
    print(f"  N={n}: done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)

try:
    load = " ".join(open("/proc/loadavg").read().split()[:3])
except OSError:
    load = "?"
print(f"\nmachine: {os.cpu_count()} CPUs, {cpu_model()}; {platform.system()} {platform.release()}; "
      f"load average at the end: {load}")
print(f"timer: {'hyperfine -N, one call per round (interleaved)' if HYPERFINE else 'python3 loop (interleaved)'}; "
      f"state dir on disk: {WORK} ; on tmpfs: {SHM}\n")

COLS = ("bash", "validate", "run/disk", "run/shm")


def table(title, data, note):
    print(f"### {title}\n")
    print(note + "\n")
    print("| N | runs | bash | orch validate | orch run (disk) | orch run (/dev/shm) | "
          "added/stage, disk | added/stage, shm | added/stage, shm, without validate |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in NS:
        t = data[n]
        b, v, d, s = (ms(t[k]["med"]) for k in COLS)
        cell = lambda k: f"{fmt(ms(t[k]['med']))} ({fmt(ms(t[k]['min']))}–{fmt(ms(t[k]['max']))})"
        print(f"| {n} | {t['bash']['runs']} | " + " | ".join(cell(k) for k in COLS) +
              f" | {fmt((d - b) / n, 2)} | {fmt((s - b) / n, 2)} | {fmt((s - v - b) / n, 2)} |")
    print()


table("Wall time, ms: median (min–max); added cost per stage = (orch run − bash) / N, ms", timing,
      "`without validate` also subtracts `orch validate` (process start-up + parse + validation, "
      "which `orch run` does too): what each stage adds once the fixed cost is set aside.")
table("CPU time (user + sys, children included), ms: median (min–max); added per stage, ms", cputime,
      "Less sensitive than wall time to other load on the machine; `true` itself is counted on both sides.")

print("### Peak RSS, MiB (max over the profiled runs" + (", /usr/bin/time %M)" if GNU_TIME else
      ", wait4 ru_maxrss: floored at this python's RSS)") + "\n")
print("| N | bash | orch validate | orch run (disk) | orch run (/dev/shm) |")
print("|---:|---:|---:|---:|---:|")
for n in NS:
    p = profs[n]
    print(f"| {n} | " + " | ".join(fmt(p[k]["rss"] / 1024) for k in COLS) + " |")

print("\n### ORCH_PROFILE split, µs per stage (mean of the profiled runs)\n")
print("`producers` includes the fork/exec/wait of `true` itself, which bash pays too (bash/N: the median "
      "bash wall time per line). `outside engine` = wall − total_us: process start-up, parse + validation, "
      "store open/create, exit (ms, fixed per run).\n")
print("| N | state dir | producers | artifacts | gates | store | other | engine total | bash/N | outside engine (ms) |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in NS:
    for k in ("run/disk", "run/shm"):
        p = profs[n][k]
        pr = p["prof"]
        per = lambda f: fmt(pr[f] / n, 0)
        outside = ms(p["wall"]) - pr["total"] / 1000
        print(f"| {n} | {k.split('/')[1]} | {per('producers')} | {per('artifacts')} | {per('gates')} | "
              f"{per('store')} | {per('other')} | {per('total')} | "
              f"{fmt(ms(timing[n]['bash']['med']) * 1000 / n, 0)} | {fmt(outside)} |")
print(f"\n(total bench time {time.perf_counter() - started:.0f}s)")
PY
