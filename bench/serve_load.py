#!/usr/bin/env python3
"""Load client for `orch serve` (bench/serve.sh runs it). Standard library only.

    python3 bench/serve_load.py ORCH_BIN WORKDIR

Measures, on a service started here with --workers 16 (state dir in WORKDIR):
  1. submissions/s accepted (each 201 is committed to the store before it is
     answered) for BENCH_SUBMITS (default 1000) tasks from 16 client threads,
     with p50/p99 latency of POST /api/v1/tasks, and of GET /queue polled by
     another thread meanwhile; the tasks are held in their first stage so
     that 16 run and the rest stay queued;
  2. the service's RSS (VmRSS, VmHWM) with those queued and 16 running;
     With BENCH_RATE=R the submissions are paced at R per second in all
     (the issue's goal is p99 < 20 ms at 1,000/s), each thread sending on
     its own schedule; `behind_p99_ms` says how late the client itself sent
     (when it is large the client, not the service, set the pace);
  3. per-stage overhead: a chain of BENCH_CHAIN (default 20) `true` stages,
     `orch run` vs one task through the service (the run's recorded
     started_ms..finished_ms, and submit-to-finished wall time).
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

TOKEN = "bench-token"
HERE = os.path.dirname(os.path.abspath(__file__))


def chain(n, hold):
    text = subprocess.run(
        [sys.executable, os.path.join(HERE, "gen_chain.py"), str(n)],
        check=True, capture_output=True, text=True).stdout
    if hold:
        # The first stage waits while $HOLD exists.
        text = text.replace(
            'command "true"',
            'command "sh" "-c" "while [ -e \\"$HOLD\\" ]; do sleep 0.1; done"', 1)
    return text


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


class Service:
    def __init__(self, orch, work, pipeline, env):
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "pipeline.kdl"), "w") as f:
            f.write(pipeline)
        e = dict(os.environ, ORCH_TOKEN=TOKEN, **env)
        e.pop("RUST_LOG", None)
        self.p = subprocess.Popen(
            [orch, "serve", "-p", "pipeline.kdl", "--state-dir", "state",
             "--listen", "127.0.0.1:0", "--workers", "16"],
            cwd=work, env=e, stdout=subprocess.PIPE, stderr=open(os.path.join(work, "serve.log"), "w"),
            text=True)
        for line in self.p.stdout:
            if line.startswith("orch serve: listening on http://"):
                self.host, port = line.strip().rsplit("/", 1)[1].split(":")
                self.port = int(port)
                break
        else:
            sys.exit("orch serve did not start; see " + work + "/serve.log")

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def rss(self):
        out = {}
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = v.strip()
        return out

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()


def request(c, method, path, body=None):
    headers = {"Authorization": "Bearer " + TOKEN}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    t = time.perf_counter()
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    payload = r.read()
    return r.status, payload, time.perf_counter() - t


def load(orch, work, n):
    hold = os.path.join(work, "hold")
    open(hold, "w").close()
    s = Service(orch, os.path.join(work, "load"), chain(3, hold=True), {"HOLD": hold})
    posts, queues, errors, behind = [], [], [], []
    done = threading.Event()
    rate = float(os.environ.get("BENCH_RATE", "0"))
    start = time.perf_counter() + 0.2

    def submitter(i, tasks):
        c = s.conn()
        for k, t in enumerate(tasks):
            if rate > 0:
                # Thread i sends its k-th at the (16k + i)-th slot of the rate.
                due = start + (16 * k + i) / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                behind.append(max(0.0, time.perf_counter() - due))
            st, body, dt = request(c, "POST", "/api/v1/tasks", {"task": t})
            if st != 201:
                errors.append((t, st, body))
            posts.append(dt)

    def poller():
        c = s.conn()
        while not done.is_set():
            st, _, dt = request(c, "GET", "/queue")
            if st == 200:
                queues.append(dt)

    tasks = [f"t{i:05d}" for i in range(n)]
    threads = [threading.Thread(target=submitter, args=(i, tasks[i::16])) for i in range(16)]
    q = threading.Thread(target=poller)
    q.start()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Paced, the clock starts at the first slot, not at the threads' start.
    wall = time.perf_counter() - (start if rate > 0 else t0)
    time.sleep(1)
    done.set()
    q.join()
    _, body, _ = request(s.conn(), "GET", "/status")
    status = json.loads(body)
    rss = s.rss()
    os.remove(hold)
    s.stop()
    return {
        "submitted": n, "refused": len(errors), "wall_s": round(wall, 2),
        "paced_rate": rate or None,
        "behind_p99_ms": round(pct(behind, 99) * 1000, 2) if behind else None,
        "submissions_per_s": round(n / wall, 1),
        "post_p50_ms": round(pct(posts, 50) * 1000, 2), "post_p99_ms": round(pct(posts, 99) * 1000, 2),
        "queue_gets": len(queues),
        "queue_p50_ms": round(pct(queues, 50) * 1000, 2), "queue_p99_ms": round(pct(queues, 99) * 1000, 2),
        "busy_workers": status["workers"]["busy"], "queue_length": status["queue_length"],
        "rss": rss,
    }


def overhead(orch, work, n, runs=3):
    pipeline = chain(n, hold=False)
    d = os.path.join(work, "run")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "chain.kdl"), "w") as f:
        f.write(pipeline)
    direct = []
    for i in range(runs):
        t = time.perf_counter()
        subprocess.run([orch, "run", "r%d" % i, "-p", "chain.kdl", "--state-dir", "state"],
                       cwd=d, check=True, capture_output=True)
        direct.append(time.perf_counter() - t)
    s = Service(orch, os.path.join(work, "svc"), pipeline, {})
    c = s.conn()
    served, recorded = [], []
    for i in range(runs):
        t = time.perf_counter()
        st, body, _ = request(c, "POST", "/api/v1/tasks", {"task": "c%d" % i})
        assert st == 201, body
        while True:
            st, body, _ = request(c, "GET", "/api/v1/tasks/c%d" % i)
            v = json.loads(body)
            if v["queue"]["state"] in ("finished", "failed", "cancelled"):
                break
            time.sleep(0.005)
        served.append(time.perf_counter() - t)
        run = v["runs"][-1]
        recorded.append((run["finished_ms"] - run["started_ms"]) / 1000)
    s.stop()
    per = lambda xs: round(statistics.median(xs) / n * 1000, 2)
    return {"stages": n, "orch_run_ms_per_stage": per(direct),
            "serve_submit_to_finished_ms_per_stage": per(served),
            "serve_recorded_run_ms_per_stage": per(recorded)}


def main():
    orch, work = sys.argv[1], sys.argv[2]
    n = int(os.environ.get("BENCH_SUBMITS", "1000"))
    m = int(os.environ.get("BENCH_CHAIN", "20"))
    with open("/proc/loadavg") as f:
        print("loadavg before:", f.read().strip())
    print(json.dumps({"load": load(orch, work, n + 16)}, indent=1))
    print(json.dumps({"overhead": overhead(orch, work, m)}, indent=1))
    with open("/proc/loadavg") as f:
        print("loadavg after:", f.read().strip())


if __name__ == "__main__":
    main()
