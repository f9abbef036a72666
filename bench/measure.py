#!/usr/bin/env python3
"""Measures the cases bench/validate.sh gives on stdin (LABEL|STAGES|FILE per
line) and prints the Markdown table. Reads BENCH_ORCH, BENCH_PARSE,
BENCH_TMP, BENCH_HYPERFINE and BENCH_GNU_TIME from the environment."""

import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time

orch, parse, tmp = os.environ["BENCH_ORCH"], os.environ["BENCH_PARSE"], os.environ["BENCH_TMP"]
use_hyperfine = os.environ["BENCH_HYPERFINE"] == "1"
use_gnu_time = os.environ["BENCH_GNU_TIME"] == "1"


def runs_for(label, n):
    if label == "reference":
        return int(os.environ.get("RUNS_REF", 30))
    default = {"100": 20, "1000": 5, "10000": 3}.get(n, 3)
    return int(os.environ.get(f"RUNS_{n}", default))


def peak_rss_kb(argv):
    """Peak resident set size of one run, in KiB."""
    if use_gnu_time:
        r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return int(r.stderr.strip().splitlines()[-1])
    # ru_maxrss of the children of a fresh interpreter is this one child's,
    # but never less than the interpreter's own RSS, which the child
    # inherits as its high-water mark when it is spawned: see RSS_FLOOR.
    code = ("import resource, subprocess, sys;"
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    return int(subprocess.run([sys.executable, "-c", code] + argv,
                              capture_output=True, text=True).stdout)


# Without GNU time, what the python3 fallback reports for `true`: a value
# at or under it means "no more than this".
RSS_FLOOR = 0 if use_gnu_time else peak_rss_kb(["true"])


def timing(argv, runs, warmup):
    """Mean and standard deviation of wall time, mean user+sys CPU time, in ms."""
    if use_hyperfine:
        out = os.path.join(tmp, "hyperfine.json")
        subprocess.run(["hyperfine", "-N", "--style", "none", "--runs", str(runs),
                        "--warmup", str(warmup), "--export-json", out,
                        shlex.join(argv)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = json.load(open(out))["results"][0]
        return (r["mean"] * 1e3, (r["stddev"] or 0.0) * 1e3,
                (r["user"] + r["system"]) * 1e3)
    for _ in range(warmup):
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    sd = statistics.stdev(walls) if len(walls) > 1 else 0.0
    return statistics.mean(walls) * 1e3, sd * 1e3, statistics.mean(cpus) * 1e3


def ms(x):
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def mib(kb):
    if kb <= RSS_FLOOR * 1.05:
        return f"≤ {RSS_FLOOR / 1024:,.1f}"
    return f"{kb / 1024:,.1f}"


rows = []
load_before = os.getloadavg()
started = time.perf_counter()
for line in sys.stdin.read().split():
    label, n, path = line.split("|", 2)
    data = open(path, "rb").read()
    runs = runs_for(label, n)
    warmup = 2 if runs >= 5 else 0
    row = {"label": label, "n": int(n), "bytes": len(data), "lines": data.count(b"\n"), "runs": runs}
    for key, argv in (("v", [orch, "validate", path]), ("p", [parse, path])):
        row[key + "_rss"] = peak_rss_kb(argv)  # also warms the page cache
        row[key + "_mean"], row[key + "_sd"], row[key + "_cpu"] = timing(argv, runs, warmup)
    print(f"measured {label} {n}: validate {ms(row['v_mean'])} ms, parse {ms(row['p_mean'])} ms",
          file=sys.stderr)
    rows.append(row)
elapsed = time.perf_counter() - started
load_after = os.getloadavg()

print("| pipeline | stages | bytes | lines | runs | `orch validate` wall, ms (mean ± σ) | CPU, ms | peak RSS, MiB"
      " | `parse_kdl` wall, ms (mean ± σ) | CPU, ms | peak RSS, MiB | parse share (wall / CPU) |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in rows:
    name = "reference (`pipelines/orchestrator.kdl`)" if r["label"] == "reference" else "generated"
    print(f"| {name} | {r['n']:,} | {r['bytes']:,} | {r['lines']:,} | {r['runs']}"
          f" | {ms(r['v_mean'])} ± {ms(r['v_sd'])} | {ms(r['v_cpu'])} | {mib(r['v_rss'])}"
          f" | {ms(r['p_mean'])} ± {ms(r['p_sd'])} | {ms(r['p_cpu'])} | {mib(r['p_rss'])}"
          f" | {r['p_mean'] / r['v_mean']:.0%} / {r['p_cpu'] / r['v_cpu']:.0%} |")
print()
by_n = {r["n"]: r for r in rows if r["label"] == "generated"}
ref = rows[0]
verdict = "met" if ref["v_mean"] < 10 else "MISSED"
print(f"- Reference pipeline: {ms(ref['v_mean'])} ms wall, {ms(ref['v_cpu'])} ms CPU"
      f" (goal: under 10 ms wall: {verdict}).")
if 1000 in by_n and 10000 in by_n:
    a, b = by_n[1000], by_n[10000]
    g, gc = b["v_mean"] / a["v_mean"], b["v_cpu"] / a["v_cpu"]
    verdict = "met" if g <= 15 else "MISSED"
    print(f"- Growth 10,000 / 1,000 stages, `orch validate`: {g:.1f}x wall, {gc:.1f}x CPU"
          f" (goal: at most 15x: {verdict}); `parse_kdl` alone: {b['p_mean'] / a['p_mean']:.1f}x wall,"
          f" {b['p_cpu'] / a['p_cpu']:.1f}x CPU.")
    print(f"- Per stage at 10,000 stages: {b['v_mean'] / 10000 * 1e3:.0f} µs for `orch validate`,"
          f" {b['p_mean'] / 10000 * 1e3:.0f} µs of it the KDL parse;"
          f" {b['v_rss'] / 10000:.0f} KiB peak RSS per stage.")
timer = "hyperfine -N" if use_hyperfine else "python3 loop"
rss = ("/usr/bin/time -f %M" if use_gnu_time else
       f"python3 getrusage (which cannot see under the interpreter's own {RSS_FLOOR / 1024:.1f} MiB)")
print(f"- Timed with {timer}; peak RSS with {rss}; {elapsed:.0f} s of measuring;"
      f" load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} CPUs.")
