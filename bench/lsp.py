#!/usr/bin/env python3
"""Time from `didChange` to `publishDiagnostics` of `orch lsp`.

    python3 bench/lsp.py ORCH_BINARY FILE [RUNS]

Starts `ORCH_BINARY lsp`, opens FILE, then RUNS times sends a full-text
didChange (the file with a comment line appended, alternating so each text
differs) and waits for the diagnostics of that version; prints the median,
mean, minimum and maximum in milliseconds, and the number of diagnostics.
The time includes the pipe round trip and JSON (de)serialisation on both
sides: what an editor waits.
"""

import json
import statistics
import subprocess
import sys
import time


def send(proc, msg):
    body = json.dumps(msg).encode()
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()


def read(proc):
    length = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("orch lsp closed its output")
        line = line.strip()
        if not line:
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(proc.stdout.read(length))


def wait_for(proc, pred):
    while True:
        m = read(proc)
        if pred(m):
            return m


def main():
    orch, path = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    text = open(path, encoding="utf-8").read()
    uri = "file://" + __import__("os").path.abspath(path)
    proc = subprocess.Popen([orch, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}}})
    wait_for(proc, lambda m: m.get("id") == 1)
    send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
    send(proc, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "kdl", "version": 1, "text": text}}})
    wait_for(proc, lambda m: m.get("method") == "textDocument/publishDiagnostics")
    times = []
    count = 0
    for v in range(2, runs + 2):
        changed = text + ("\n// edit %d\n" % v)
        start = time.perf_counter()
        send(proc, {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": v}, "contentChanges": [{"text": changed}]}})
        m = wait_for(proc, lambda m: m.get("method") == "textDocument/publishDiagnostics"
                     and m["params"].get("version") == v)
        times.append((time.perf_counter() - start) * 1000)
        count = len(m["params"]["diagnostics"])
    send(proc, {"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": None})
    wait_for(proc, lambda m: m.get("id") == 2)
    send(proc, {"jsonrpc": "2.0", "method": "exit", "params": None})
    proc.wait(timeout=30)
    print("%s: %d bytes, %d runs: median %.2f ms, mean %.2f ms, min %.2f ms, max %.2f ms (%d diagnostics)" % (
        path, len(text.encode()), runs, statistics.median(times), statistics.mean(times),
        min(times), max(times), count))


if __name__ == "__main__":
    main()
