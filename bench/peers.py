#!/usr/bin/env python3
"""The measuring half of bench/peers.sh (which prepares the files and the
peers and sets the environment this reads). Prints Markdown."""

import json
import os
import re
import statistics as st
import subprocess as sp

E = os.environ
ORCH, READ_KDL, ACTIONLINT, JUST = E["ORCH_BIN"], E["READ_KDL"], E["ACTIONLINT"], E["JUST"]
TMP, SHM, R = E["TMP"], E["SHM"], int(E["ROUNDS"])
loads = []


def hyper(cmds, rounds, runs, warmup=2):
    """cmds: name -> (command line, dir to remove before each run or None).
    Returns name -> {"wall": [per-run s], "cpu": [round means], "round": [round means]}."""
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
            out[k]["wall"] += res["times"]
            out[k]["cpu"].append(res["user"] + res["system"])
            out[k]["round"].append(res["mean"])
    return out


def rss_kib(cmd, clean=None):
    best = 0
    for _ in range(3):
        if clean:
            sp.run(["rm", "-rf", clean], check=True)
        p = sp.run(["/usr/bin/time", "-f", "maxrss=%M"] + cmd.split(), cwd=TMP,
                   stdout=sp.DEVNULL, stderr=sp.PIPE, text=True)
        m = re.search(r"maxrss=(\d+)", p.stderr)
        best = max(best, int(m.group(1)) if m else 0)
    return best


def ms(xs):
    return st.mean(xs) * 1e3


def row(name, d):
    w = d["wall"]
    return f"| {name} | {ms(w):.1f} ± {st.pstdev(w) * 1e3:.1f} | {st.median(w) * 1e3:.1f} | {ms(d['cpu']):.1f} |"


def ratio(a, b):
    per = [x / y for x, y in zip(a["round"], b["round"])]
    return st.mean(a["wall"]) / st.mean(b["wall"]), min(per), max(per)


def size(path):
    return os.path.getsize(os.path.join(TMP, path))


print(f"Load average at start: {os.getloadavg()[0]:.2f}\n")
head = "| command | wall, ms (mean ± σ) | median, ms | CPU, ms |\n|---|--:|--:|--:|"

# 1. Small files.
small = hyper({
    "orch validate ref.kdl (237 lines)": (f"{ORCH} validate ref.kdl", None),
    "actionlint workflow.yml (56 lines)": (f"{ACTIONLINT} workflow.yml", None),
}, R, 10)
print("## Small file\n\n" + head)
for k, d in small.items():
    print(row(k, d))
r, lo, hi = ratio(*small.values())
print(f"\norch / actionlint: **{r:.2f}** (per-round {lo:.2f}–{hi:.2f}); actionlint / orch = {1 / r:.2f}\n")

# 2. 1,000 units, and 10,000 stages.
big = hyper({
    "orch validate gen1000.kdl": (f"{ORCH} validate gen1000.kdl", None),
    "actionlint wf1000.yml": (f"{ACTIONLINT} wf1000.yml", None),
}, max(R // 2, 2), 5, 1)
huge = hyper({"orch validate gen10000.kdl": (f"{ORCH} validate gen10000.kdl", None)}, 3, 3, 1)
print("## 1,000 and 10,000 units\n\n| command | bytes | wall, ms (mean ± σ) | median, ms | CPU, ms | ms per MB |\n|---|--:|--:|--:|--:|--:|")
files = {"orch validate gen1000.kdl": "gen1000.kdl", "actionlint wf1000.yml": "wf1000.yml",
         "orch validate gen10000.kdl": "gen10000.kdl"}
per_mb = {}
for k, d in list(big.items()) + list(huge.items()):
    b = size(files[k])
    per_mb[k] = ms(d["wall"]) / (b / 1e6)
    w = d["wall"]
    print(f"| {k} | {b:,} | {ms(w):.1f} ± {st.pstdev(w) * 1e3:.1f} | {st.median(w) * 1e3:.1f} | {ms(d['cpu']):.1f} | {per_mb[k]:.1f} |")
r, lo, hi = ratio(*big.values())
g = ms(huge["orch validate gen10000.kdl"]["wall"]) / ms(big["orch validate gen1000.kdl"]["wall"])
pm = per_mb["actionlint wf1000.yml"] / per_mb["orch validate gen1000.kdl"]
print(f"\norch / actionlint per file at 1,000: **{r:.2f}** (per-round {lo:.2f}–{hi:.2f}); "
      f"per MB, actionlint / orch = **{pm:.2f}** (orch {'faster' if pm > 1 else 'slower'}); "
      f"growth 1,000 → 10,000 stages: {g:.1f}×\n")

# 3. orch run vs bash vs just.
run = hyper({
    "orch run chain100.kdl": (f"{ORCH} run bench -p chain100.kdl --state-dir {SHM}/state", f"{SHM}/state"),
    "bash bash100.sh": ("bash bash100.sh", None),
    "just (100 chained recipes)": (f"{JUST} -f justfile", None),
}, R, 5)
print("## orch run, 100 trivial stages\n\n" + head)
for k, d in run.items():
    print(row(k, d))
o, b, j = run.values()
r, lo, hi = ratio(o, b)
rj, _, _ = ratio(j, b)
print(f"\norch run / bash: **{r:.2f}** (per-round {lo:.2f}–{hi:.2f}); just / bash: **{rj:.2f}**\n")

# 4. Peak memory.
print("## Peak RSS (max of 3 runs)\n\n| command | MiB |\n|---|--:|")
for name, cmd, clean in [
    ("orch validate ref.kdl", f"{ORCH} validate ref.kdl", None),
    ("actionlint workflow.yml", f"{ACTIONLINT} workflow.yml", None),
    ("orch validate gen1000.kdl", f"{ORCH} validate gen1000.kdl", None),
    ("actionlint wf1000.yml", f"{ACTIONLINT} wf1000.yml", None),
    ("orch validate gen10000.kdl", f"{ORCH} validate gen10000.kdl", None),
    ("orch run chain100.kdl", f"{ORCH} run bench -p chain100.kdl --state-dir {SHM}/state", f"{SHM}/state"),
    ("bash bash100.sh", "bash bash100.sh", None),
    ("just (100 chained recipes)", f"{JUST} -f justfile", None),
]:
    print(f"| {name} | {rss_kib(cmd, clean) / 1024:.1f} |")

# 5. The reader alone.
print("\n## The reader alone (inside one process)\n")
for args in [["gen10000.kdl", "20"], ["gen1000.kdl", "20"], ["ref.kdl", "200"], ["gen1000.kdl", "3", "--kdl"]]:
    out = sp.run([READ_KDL] + args, cwd=TMP, check=True, capture_output=True, text=True).stdout.strip()
    print(f"- `{out}`")

print(f"\nLoad average during the rounds: {min(loads):.2f}–{max(loads):.2f} (mean {st.mean(loads):.2f}); at the end {os.getloadavg()[0]:.2f}")
