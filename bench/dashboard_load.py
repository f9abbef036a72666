#!/usr/bin/env python3
"""Times the dashboard's queue page (bench/dashboard.sh runs it). Standard
library only.

    python3 bench/dashboard_load.py ORCH_BIN WORKDIR

Starts `orch serve --workers 16`, submits BENCH_TASKS (default 1000) tasks of
a 2-stage `true` chain and waits for them to end; then holds 16 more running
and 100 queued (the page shows every state), and times BENCH_GETS (default
50) GET / over one keep-alive connection: the whole answer, rendered on the
server per request. Reports p50/p99/max and the page's size in bytes.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_load import Service, chain, pct, request  # noqa: E402


def main():
    orch, work = sys.argv[1], sys.argv[2]
    n = int(os.environ.get("BENCH_TASKS", "1000"))
    gets = int(os.environ.get("BENCH_GETS", "50"))
    hold = os.path.join(work, "hold")
    s = Service(orch, os.path.join(work, "dash"), chain(2, hold=True), {"HOLD": hold})
    try:
        def submit(tasks):
            c = s.conn()
            for t in tasks:
                st, body, _ = request(c, "POST", "/api/v1/tasks", {"task": t})
                if st != 201:
                    sys.exit(f"submit {t}: {st} {body!r}")

        tasks = [f"t{i:05d}" for i in range(n)]
        threads = [threading.Thread(target=submit, args=(tasks[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c = s.conn()
        deadline = time.time() + 600
        while True:
            _, body, _ = request(c, "GET", "/queue")
            if b'"queued":[]' in body and b'"running":[]' in body:
                break
            if time.time() > deadline:
                sys.exit("the tasks did not end within 600s")
            time.sleep(0.5)
        open(hold, "w").close()
        submit([f"h{i:04d}" for i in range(116)])
        time.sleep(2)
        times, size = [], 0
        for _ in range(gets):
            st, body, dt = request(c, "GET", "/")
            if st != 200:
                sys.exit(f"GET /: {st}")
            times.append(dt * 1000)
            size = len(body)
        rows = body.count(b"<tr id=")
        api = []
        for _ in range(gets):
            st, _, dt = request(c, "GET", "/api/v1/tasks")
            api.append(dt * 1000)
        print(f"GET / with {rows} rows ({n} ended, 16 running, 100 queued), {gets} requests:")
        print(f"  p50 {pct(times, 50):.1f} ms, p99 {pct(times, 99):.1f} ms, max {max(times):.1f} ms")
        print(f"  size {size} bytes ({size / 1024:.0f} KiB)")
        print(f"for comparison, GET /api/v1/tasks (the same tasks as JSON, no attempts): "
              f"p50 {pct(api, 50):.1f} ms, p99 {pct(api, 99):.1f} ms")
    finally:
        if os.path.exists(hold):
            os.remove(hold)
        s.stop()


if __name__ == "__main__":
    main()
