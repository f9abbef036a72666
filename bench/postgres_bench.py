#!/usr/bin/env python3
"""The measurements of bench/postgres.sh (read its header). Needs psql."""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ORCH = os.environ["ORCH_BIN"]
PG = os.environ["PG"]
RUNS = int(os.environ["RUNS"])
TASKS = int(os.environ["TASKS"])
LEASE = os.environ["LEASE"]
ROOT = os.environ["ROOT"]
TOKEN = "bench-token"


def psql(sql):
    out = subprocess.run(["psql", PG, "-Atqc", sql], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql: {out.stderr}")
    return out.stdout.strip()


def url(schema):
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}schema={schema}"


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    e["ORCH_TOKEN"] = TOKEN
    e["ORCH_LEASE"] = LEASE
    return e


def store_cost():
    work = tempfile.mkdtemp(prefix="orch-pgbench-")
    chain = os.path.join(work, "chain.kdl")
    with open(chain, "w") as f:
        subprocess.run([sys.executable, f"{ROOT}/bench/gen_chain.py", "100"], stdout=f, check=True)
    rows = {}
    for kind in ("sqlite", "postgres"):
        per_stage, totals = [], []
        for i in range(RUNS):
            cmd = [ORCH, "run", f"t{i}", "-p", chain, "--worktree", work,
                   "--state-dir", os.path.join(work, f"state-{kind}-{i}")]
            schema = f"orch_bench_cost_{os.getpid()}_{i}"
            if kind == "postgres":
                cmd += ["--store", url(schema)]
            e = env()
            e["ORCH_PROFILE"] = "1"
            t0 = time.monotonic()
            p = subprocess.run(cmd, capture_output=True, text=True, env=e)
            totals.append(time.monotonic() - t0)
            if kind == "postgres":
                psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            m = re.search(r"store_us=(\d+)", p.stderr)
            if p.returncode != 0 or not m:
                sys.exit(f"orch run failed: {p.stdout}{p.stderr}")
            per_stage.append(int(m.group(1)) / 100)
        rows[kind] = (statistics.median(per_stage), statistics.median(totals))
    shutil.rmtree(work, ignore_errors=True)
    print("| store | store time per stage (median) | wall time of the 100-stage run (median) |")
    print("| --- | --- | --- |")
    for kind, (us, wall) in rows.items():
        print(f"| {kind} | {us:.0f} µs | {wall * 1000:.0f} ms |")
    print()


PIPE = """
pipeline "one" start="s" {
}
artifact "r" path="r.md" {
    field "result" "PASS" "FAIL"
}
gate "ok" artifact="r" {
    expect "result" "PASS"
}
runner "t" {
    command "true"
    timeout "30s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "r" field="result"
}
call-site "c" axis="C" verdict="machine" mode="runner" {
    runner "t"
}
stage "s" call-site="c" gate="ok" {
    pass "done"
    exhausted "failed"
}
end "done" outcome="success"
end "failed" outcome="failure"
"""

HELD = """
pipeline "held" start="s" {
    var "out" "."
}
artifact "r" path="r.md" {
    field "result" "PASS" "FAIL"
}
gate "ok" artifact="r" {
    expect "result" "PASS"
}
runner "t" {
    command "sh" "-c" "while [ -e {var.out}/hold ]; do sleep 0.02; done"
    timeout "120s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "r" field="result"
}
call-site "c" axis="C" verdict="machine" mode="runner" {
    runner "t"
}
stage "s" call-site="c" gate="ok" {
    pass "done"
    exhausted "failed"
}
end "done" outcome="success"
end "failed" outcome="failure"
"""


def start(work, pipeline, store, name, workers=8):
    log = open(os.path.join(work, f"{name}.log"), "w")
    p = subprocess.Popen(
        [ORCH, "serve", "-p", pipeline, "--listen", "127.0.0.1:0", "--store", store,
         "--name", name, "--state-dir", os.path.join(work, f"state-{name}"),
         "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env())
    for line in p.stdout:
        if line.startswith("orch serve: listening on http://"):
            return p, line.strip().rsplit("http://", 1)[1]
    sys.exit(f"{name} did not start: see {log.name}")


def submit(addr, task, worktree, vars=None):
    body = json.dumps({"task": task, "worktree": worktree, "vars": vars or {}}).encode()
    req = urllib.request.Request(f"http://{addr}/api/v1/tasks", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


def claims(n_services):
    work = tempfile.mkdtemp(prefix="orch-pgbench-")
    pipe = os.path.join(work, "one.kdl")
    with open(pipe, "w") as f:
        f.write(PIPE)
    schema = f"orch_bench_claims_{os.getpid()}_{n_services}"
    store = url(schema)
    # The schema is made by one `orch run`; the tasks are queued straight
    # into the store, so that every service starts on a full queue.
    subprocess.run([ORCH, "run", "seed", "-p", pipe, "--worktree", work, "--store", store,
                    "--state-dir", os.path.join(work, "seed")], check=True,
                   capture_output=True, env=env())
    psql(f"INSERT INTO \"{schema}\".queue (task, vars, worktree, state, submitted_ms) "
         f"SELECT 't' || g, '{{}}', '{work}', 'queued', 0 FROM generate_series(1, {TASKS}) g")
    t0 = time.monotonic()
    procs = [start(work, pipe, store, f"s{i}") for i in range(n_services)]
    while True:
        left = int(psql(f"SELECT count(*) FROM \"{schema}\".queue WHERE state <> 'finished'"))
        if left == 0:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    per = psql(f"SELECT string_agg(c::text, '/') FROM (SELECT count(*) c FROM \"{schema}\".attempts a "
               f"JOIN \"{schema}\".runs r ON r.id = a.run_id WHERE r.task <> 'seed' GROUP BY r.pid ORDER BY 1 DESC) x")
    for p, _ in procs:
        p.terminate()
    for p, _ in procs:
        p.wait()
    psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    shutil.rmtree(work, ignore_errors=True)
    return TASKS / elapsed, per


def takeover():
    work = tempfile.mkdtemp(prefix="orch-pgbench-")
    pipe = os.path.join(work, "held.kdl")
    with open(pipe, "w") as f:
        f.write(HELD)
    open(os.path.join(work, "hold"), "w").close()
    schema = f"orch_bench_takeover_{os.getpid()}"
    store = url(schema)
    first, addr = start(work, pipe, store, "first")
    submit(addr, "t", work, {"out": work})
    while psql(f"SELECT count(*) FROM \"{schema}\".attempts") != "1":
        time.sleep(0.02)
    second, _ = start(work, pipe, store, "second")
    first.kill()
    first.wait()
    expires = float(psql(f"SELECT extract(epoch FROM expires_at) FROM \"{schema}\".services WHERE name = 'first'"))
    os.remove(os.path.join(work, "hold"))
    while psql(f"SELECT count(*) FROM \"{schema}\".attempts") != "2":
        time.sleep(0.02)
    started_ms = int(psql(f"SELECT max(started_ms) FROM \"{schema}\".attempts"))
    second.terminate()
    second.wait()
    psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    shutil.rmtree(work, ignore_errors=True)
    return started_ms / 1000 - expires


def main():
    print(f"orch: {ORCH}; PostgreSQL: {re.sub(r':[^:@/]*@', ':***@', PG)}; "
          f"{os.cpu_count()} CPUs; lease {LEASE}\n")
    store_cost()
    print(f"| services | tasks/s ({TASKS} one-stage tasks) | attempts per service |")
    print("| --- | --- | --- |")
    for n in (1, 3, 6):
        rate, per = claims(n)
        print(f"| {n} | {rate:.1f} | {per} |")
    print()
    t = takeover()
    print(f"takeover after SIGKILL: first step of the taker {t * 1000:.0f} ms after the lease expired (lease {LEASE})")


if __name__ == "__main__":
    main()
