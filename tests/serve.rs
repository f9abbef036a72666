//! `orch serve`, driven as a person would: the real binary on a loopback
//! port chosen at run time, real `sh` producers, the real SQLite store, and
//! plain HTTP/1.1 requests written by hand (another client than the one
//! `orch submit` uses).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const TOKEN: &str = "test-token-5b1c";

/// Three stages; `b` is serial. Each producer records its start and end in
/// `out/` and waits while a hold file for its task and stage exists.
const PIPELINE: &str = r#"
pipeline "svc" start="a" {
    var "scripts" "."
    var "flavour" "plain"
}

artifact "a-report" path="a.md" {
    field "result" "PASS" "FAIL"
}

artifact "b-report" path="b.md" {
    field "result" "PASS" "FAIL"
}

artifact "c-report" path="c.md" {
    field "result" "PASS" "FAIL"
}

gate "a-ok" artifact="a-report" {
    expect "result" "PASS"
}

gate "b-ok" artifact="b-report" {
    expect "result" "PASS"
}

gate "c-ok" artifact="c-report" {
    expect "result" "PASS"
}

runner "ra" {
    command "sh" "{var.scripts}/step.sh"
    timeout "120s"
    grace "1s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "a-report"
}

runner "rb" {
    command "sh" "{var.scripts}/step.sh"
    timeout "120s"
    grace "1s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "b-report"
}

runner "rc" {
    command "sh" "{var.scripts}/step.sh"
    timeout "120s"
    grace "1s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "c-report"
}

call-site "ca" axis="C" verdict="machine" mode="runner" {
    runner "ra"
}

call-site "cb" axis="C" verdict="machine" mode="runner" {
    runner "rb"
}

call-site "cc" axis="C" verdict="machine" mode="runner" {
    runner "rc"
}

stage "a" call-site="ca" gate="a-ok" {
    pass "b"
    exhausted "failed"
}

stage "b" call-site="cb" gate="b-ok" {
    pass "c"
    exhausted "failed"
    serial #true
}

stage "c" call-site="cc" gate="c-ok" {
    pass "done"
    exhausted "failed"
}

end "done" outcome="success"
end "failed" outcome="failure"
"#;

/// `OUT` is the sandbox's `out/`, from the service's environment.
const STEP: &str = r#"
key="$ORCH_TASK $ORCH_STAGE $ORCH_ATTEMPT"
echo "$$" > "$OUT/pid.$ORCH_TASK.$ORCH_STAGE.$ORCH_ATTEMPT"
echo "$key" >> "$OUT/starts"
if [ "$ORCH_STAGE" = b ]; then
    mkdir "$OUT/b.held" 2>/dev/null || echo "$key" >> "$OUT/overlap"
fi
echo "log line 1 of $key"
echo "log line 2 of $key"
while [ -e "$OUT/hold-$ORCH_TASK-$ORCH_STAGE" ] || [ -e "$OUT/hold-stage-$ORCH_STAGE" ] || [ -e "$OUT/hold-all" ]; do sleep 0.05; done
sleep "${STEP_SLEEP:-0.02}"
if [ "$ORCH_STAGE" = b ]; then
    rmdir "$OUT/b.held"
fi
echo "$key" >> "$OUT/ends"
echo "log line 3 of $key"
exit 0
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir()
            .join(format!("orch-serve-tests.{}", std::process::id()))
            .join(format!("{name}-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("out")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        std::fs::write(root.join("pipeline.kdl"), PIPELINE).unwrap();
        std::fs::write(root.join("step.sh"), STEP).unwrap();
        Sandbox { root }
    }

    fn out(&self) -> PathBuf {
        self.root.join("out")
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    fn hold(&self, what: &str) {
        std::fs::write(self.out().join(format!("hold-{what}")), "").unwrap();
    }

    fn release(&self, what: &str) {
        let _ = std::fs::remove_file(self.out().join(format!("hold-{what}")));
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.out().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir(self.out()).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("pid.") {
                if let Ok(p) = std::fs::read_to_string(e.path()).unwrap().trim().parse() {
                    pids.push(p);
                }
            }
        }
        pids
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.release("all");
        self.release("stage-c");
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("sandbox kept: {}", self.root.display());
        }
    }
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `orch serve`.
struct Serve {
    child: Option<Child>,
    addr: String,
    stderr: PathBuf,
}

impl Serve {
    fn start(sb: &Sandbox, workers: usize, extra: &[&str]) -> Serve {
        Serve::start_with(sb, workers, extra, Some(TOKEN))
    }

    fn start_with(sb: &Sandbox, workers: usize, extra: &[&str], token: Option<&str>) -> Serve {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let stderr = sb.root.join(format!("serve-{n}.log"));
        let mut cmd = Command::new(ORCH);
        cmd.current_dir(&sb.root)
            .args(["serve", "-p", "pipeline.kdl", "--state-dir", "state"])
            .args(["--workers", &workers.to_string()])
            .args(extra)
            .env("OUT", sb.out())
            .env_remove("ORCH_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if let Some(t) = token {
            cmd.env("ORCH_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("spawn orch serve");
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("orch serve: listening on http://") {
                        break a.to_string();
                    }
                }
                Err(_) => panic!(
                    "orch serve did not say where it listens: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                ),
            }
        };
        Serve {
            child: Some(child),
            addr,
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (s, body) = http(&self.addr, "GET", path, None, None);
        (
            s,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let (s, body) = http(&self.addr, "POST", path, Some(TOKEN), Some(&bytes));
        (
            s,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn submit(&self, task: &str) {
        let (s, v) = self.post("/api/v1/tasks", &json!({ "task": task }));
        assert_eq!(s, 201, "submit {task}: {v}");
    }

    fn task(&self, task: &str) -> Value {
        let (s, v) = self.get(&format!("/api/v1/tasks/{task}"));
        assert_eq!(s, 200, "GET task {task}: {v}");
        v
    }

    fn queue_state(&self, task: &str) -> String {
        self.task(task)["queue"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the service to exit; its exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("orch serve did not exit in {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request; the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    http_raw(
        addr,
        method,
        path,
        token.map(|t| format!("Bearer {t}")),
        body,
    )
}

fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    authorization: Option<String>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let body = body.unwrap_or(b"");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let (status, _, body) = exchange(addr, &req, body);
    (status, body)
}

/// Sends a request (its head, then `body`) and reads the whole answer: the
/// status, the head in lower case, and the body (unchunked).
fn exchange(addr: &str, head: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the service");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    (status, head, body)
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn finished_ok(s: &Serve, task: &str) -> bool {
    let v = s.task(task);
    v["queue"]["state"] == "finished"
        && v["runs"]
            .as_array()
            .and_then(|r| r.last())
            .is_some_and(|r| r["outcome"] == "success")
}

/// A task's attempts, as the API reports them (every run).
fn attempts(s: &Serve, task: &str) -> Vec<Value> {
    s.task(task)["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["attempts"].as_array().unwrap().clone())
        .collect()
}

/// Every (task, stage, attempt) the producers started, each at most once;
/// for each (task, stage), one attempt ended `done` (passed), the last,
/// and every earlier one was interrupted: no finished attempt ran again.
fn assert_no_attempt_twice(sb: &Sandbox, s: &Serve, tasks: &[String]) {
    let starts = sb.lines("starts");
    let mut seen = BTreeSet::new();
    for l in &starts {
        assert!(seen.insert(l.clone()), "attempt started twice: {l}");
    }
    for task in tasks {
        let mut by_stage: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for a in attempts(s, task) {
            by_stage
                .entry(a["stage"].as_str().unwrap().to_string())
                .or_default()
                .push(a);
        }
        assert_eq!(
            by_stage.keys().cloned().collect::<Vec<_>>(),
            ["a", "b", "c"],
            "{task}"
        );
        for (stage, list) in by_stage {
            let (last, earlier) = list.split_last().unwrap();
            assert_eq!(last["step"], "done", "{task} {stage}: {last}");
            assert_eq!(last["gate_pass"], true, "{task} {stage}");
            for a in earlier {
                assert_eq!(a["step"], "interrupted", "{task} {stage}: {a}");
            }
            let ends = sb
                .lines("ends")
                .iter()
                .filter(|l| l.starts_with(&format!("{task} {stage} ")))
                .count();
            assert!(ends >= 1, "{task} {stage} ended");
        }
    }
}

#[test]
fn an_invalid_pipeline_refuses_to_start_with_the_validators_report() {
    let sb = Sandbox::new("invalid");
    std::fs::write(
        sb.root.join("pipeline.kdl"),
        PIPELINE.replace("pass \"c\"", "pass \"nowhere\""),
    )
    .unwrap();
    let out = Command::new(ORCH)
        .current_dir(&sb.root)
        .args(["serve", "-p", "pipeline.kdl", "--state-dir", "state"])
        .args(["--listen", "127.0.0.1:0"])
        .env("ORCH_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nowhere"),
        "the report names the problem: {stderr}"
    );
    assert!(
        stderr.contains("the pipeline is invalid; the service was not started"),
        "{stderr}"
    );
    assert!(!sb.state().join("orch.db").exists(), "nothing was created");
}

#[test]
fn every_endpoint_and_its_error_statuses() {
    let sb = Sandbox::new("endpoints");
    let s = Serve::start(&sb, 1, &[]);

    let (st, v) = s.get("/health");
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    assert!(v["version"].is_string());

    let (st, v) = s.get("/status");
    assert_eq!(st, 200);
    assert_eq!(v["workers"]["total"], 1);
    assert_eq!(v["workers"]["idle"], 1);
    assert_eq!(v["queue_length"], 0);
    assert!(v["store"].as_str().unwrap().ends_with("state/orch.db"));
    assert!(v["uptime_s"].is_u64());

    // One worker held by `first` (its stage a waits for a hold file), so
    // `second` stays queued.
    sb.hold("first-a");
    s.submit("first");
    let (st, v) = s.post(
        "/api/v1/tasks",
        &json!({ "task": "second", "vars": { "flavour": "spicy" }, "worktree": sb.root }),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["url"], "/api/v1/tasks/second");
    wait_until("first to run stage a", Duration::from_secs(30), || {
        s.get("/queue").1["running"][0]["stage"] == "a"
    });
    let (_, q) = s.get("/queue");
    assert_eq!(q["running"][0]["task"], "first");
    assert_eq!(q["running"][0]["attempt"], 1);
    assert_eq!(q["queued"][0]["task"], "second");
    let (_, st_doc) = s.get("/status");
    assert_eq!(st_doc["workers"]["busy"], 1);
    assert_eq!(st_doc["queue_length"], 1);
    assert_eq!(s.task("second")["queue"]["vars"]["flavour"], "spicy");
    // The list: both tasks in submission order; no outcome while unfinished.
    let (st, list) = s.get("/api/v1/tasks");
    assert_eq!(st, 200, "{list}");
    let names: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(list["tasks"][0]["status"], "running");
    assert!(list["tasks"][0]["outcome"].is_null());
    assert_eq!(list["tasks"][1]["queue"], "queued");
    assert!(list["tasks"][1]["run"].is_null());

    // Refusals.
    let (st, v) = s.post("/api/v1/tasks", &json!({ "task": "first" }));
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("first"));
    let (st, body) = http(
        &s.addr,
        "POST",
        "/api/v1/tasks",
        Some(TOKEN),
        Some(b"{not json"),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("\"error\""));
    let (st, v) = s.post("/api/v1/tasks", &json!({ "task": ".hidden" }));
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.post("/api/v1/tasks", &json!({ "task": "x/../y" }));
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.post(
        "/api/v1/tasks",
        &json!({ "task": "third", "vars": { "flavor": "x" } }),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("flavor"), "{v}");
    let (st, v) = s.post(
        "/api/v1/tasks",
        &json!({ "task": "third", "worktree": "relative/dir" }),
    );
    assert_eq!(st, 400, "{v}");
    let big = json!({ "task": "big", "vars": { "flavour": "x".repeat(70 * 1024) } });
    let (st, body) = http(
        &s.addr,
        "POST",
        "/api/v1/tasks",
        Some(TOKEN),
        Some(&serde_json::to_vec(&big).unwrap()),
    );
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    for t in ["third", "big"] {
        let (st, _) = s.get(&format!("/api/v1/tasks/{t}"));
        assert_eq!(st, 404, "{t} was not queued");
    }
    let (st, _) = s.get("/api/v1/tasks/nope");
    assert_eq!(st, 404);
    let (st, _) = s.get("/api/v1/nothing-here");
    assert_eq!(st, 404);

    // Cancel a queued task, then the running one.
    let (st, v) = s.post("/api/v1/tasks/second/cancel", &json!({}));
    assert_eq!((st, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    assert_eq!(s.queue_state("second"), "cancelled");
    assert!(s.task("second")["runs"].as_array().unwrap().is_empty());
    let pid_file = sb.out().join("pid.first.a.1");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let (st, v) = s.post("/api/v1/tasks/first/cancel", &json!({}));
    assert_eq!((st, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    assert!(!alive(pid), "the producer was terminated");
    let doc = s.task("first");
    assert_eq!(doc["queue"]["state"], "cancelled");
    assert_eq!(doc["runs"][0]["status"], "cancelled");
    assert_eq!(doc["runs"][0]["attempts"][0]["step"], "interrupted");
    let (st, _) = s.post("/api/v1/tasks/first/cancel", &json!({}));
    assert_eq!(st, 409, "already cancelled");
    let (st, _) = s.post("/api/v1/tasks/ghost/cancel", &json!({}));
    assert_eq!(st, 404);

    // A task that runs through; its record and logs.
    sb.release("first-a");
    s.submit("fourth");
    wait_until("fourth to finish", Duration::from_secs(60), || {
        finished_ok(&s, "fourth")
    });
    let doc = s.task("fourth");
    let run = &doc["runs"][0];
    assert_eq!(run["status"], "finished");
    assert_eq!(run["end"], "done");
    let kinds: Vec<_> = run["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}>{}",
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds, ["a>b", "b>c", "c>done"]);
    assert_eq!(run["attempts"].as_array().unwrap().len(), 3);
    let (st, log) = http(&s.addr, "GET", "/api/v1/tasks/fourth/logs/b/1", None, None);
    assert_eq!(st, 200);
    assert!(log.contains("log line 1 of fourth b 1") && log.contains("log line 3 of fourth b 1"));
    let (st, tail) = http(
        &s.addr,
        "GET",
        "/api/v1/tasks/fourth/logs/b/1?tail=1",
        None,
        None,
    );
    assert_eq!((st, tail.as_str()), (200, "log line 3 of fourth b 1\n"));
    for (path, status) in [
        ("/api/v1/tasks/fourth/logs/b/2", 404),
        ("/api/v1/tasks/fourth/logs/zz/1", 404),
        ("/api/v1/tasks/fourth/logs/..%2F..%2Forch.db/1", 404),
        ("/api/v1/tasks/fourth/logs/b/0", 400),
        ("/api/v1/tasks/fourth/logs/b/x", 400),
        ("/api/v1/tasks/fourth/logs/b/1?tail=x", 400),
        ("/api/v1/tasks/..%2Fstate/logs/b/1", 400),
    ] {
        let (st, body) = http(&s.addr, "GET", path, None, None);
        assert_eq!(st, status, "{path}: {body}");
    }
}

#[test]
fn auth_no_token_wrong_token_right_token() {
    let sb = Sandbox::new("auth");
    // No --token-file, no ORCH_TOKEN: one is made in STATE/token, 0600.
    let s = Serve::start_with(&sb, 2, &[], None);
    let path = sb.state().join("token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);
    let body = serde_json::to_vec(&json!({ "task": "t1" })).unwrap();
    let (st, v) = http_raw(&s.addr, "POST", "/api/v1/tasks", None, Some(&body));
    assert_eq!(st, 401, "{v}");
    assert!(v.contains("\"error\""));
    let (st, _) = http(&s.addr, "POST", "/api/v1/tasks", Some("wrong"), Some(&body));
    assert_eq!(st, 401);
    let (st, _) = http_raw(
        &s.addr,
        "POST",
        "/api/v1/tasks",
        Some(format!("Basic {token}")),
        Some(&body),
    );
    assert_eq!(st, 401);
    let (st, _) = http(&s.addr, "POST", "/api/v1/tasks/t1/cancel", None, None);
    assert_eq!(st, 401, "cancel needs the token too");
    let (st, _) = s.get("/api/v1/tasks/t1");
    assert_eq!(st, 404, "nothing was queued by the refused requests");
    let (st, v) = http(&s.addr, "POST", "/api/v1/tasks", Some(&token), Some(&body));
    assert_eq!(st, 201, "{v}");
    // Reads are open on loopback.
    let (st, _) = http(&s.addr, "GET", "/queue", None, None);
    assert_eq!(st, 200);
    wait_until("t1 to finish", Duration::from_secs(60), || {
        finished_ok(&s, "t1")
    });
    assert!(!s.log().contains(&token), "the token is never logged");
    assert!(
        s.log().contains("refused"),
        "refusals are logged: {}",
        s.log()
    );
}

#[test]
fn waiting_for_a_serial_stage_holds_no_worker() {
    let sb = Sandbox::new("waiting");
    let s = Serve::start(&sb, 2, &[]);
    sb.hold("t1-b");
    sb.hold("t3-a");
    s.submit("t1");
    wait_until("t1 in b", Duration::from_secs(30), || {
        s.get("/queue").1["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["task"] == "t1" && r["stage"] == "b")
    });
    s.submit("t2");
    wait_until("t2 to wait for b", Duration::from_secs(30), || {
        let q = s.get("/queue").1;
        q["waiting"][0]["task"] == "t2" && q["waiting"][0]["stage"] == "b"
    });
    // Two workers: t1 holds one; t2 waits and holds none, so t3 runs.
    s.submit("t3");
    wait_until("t3 to run a", Duration::from_secs(30), || {
        s.get("/queue").1["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["task"] == "t3" && r["stage"] == "a")
    });
    s.submit("t4");
    std::thread::sleep(Duration::from_millis(500));
    let (_, q) = s.get("/queue");
    assert_eq!(q["queued"][0]["task"], "t4", "both workers are busy: {q}");
    let (_, st) = s.get("/status");
    assert_eq!(
        (st["workers"]["busy"].as_u64(), st["waiting"].as_u64()),
        (Some(2), Some(1))
    );
    sb.release("t1-b");
    sb.release("t3-a");
    for t in ["t1", "t2", "t3", "t4"] {
        wait_until(t, Duration::from_secs(60), || finished_ok(&s, t));
    }
    assert!(sb.lines("overlap").is_empty());
}

#[test]
fn fifty_tasks_on_eight_workers_with_a_serial_stage() {
    let sb = Sandbox::new("fifty");
    let s = Serve::start(&sb, 8, &[]);
    let tasks: Vec<String> = (0..50).map(|i| format!("task-{i:02}")).collect();
    // Submitted at once, from many connections.
    std::thread::scope(|scope| {
        for chunk in tasks.chunks(5) {
            let s = &s;
            scope.spawn(move || {
                for t in chunk {
                    s.submit(t);
                }
            });
        }
    });
    let mut max_running = 0;
    wait_until("every task to finish", Duration::from_secs(240), || {
        let q = s.get("/queue").1;
        max_running = max_running.max(q["running"].as_array().unwrap().len());
        q["queued"].as_array().unwrap().is_empty()
            && q["running"].as_array().unwrap().is_empty()
            && q["waiting"].as_array().unwrap().is_empty()
            && s.get("/status").1["queue_length"] == 0
    });
    for t in &tasks {
        assert!(finished_ok(&s, t), "{t}: {}", s.task(t));
    }
    assert_no_attempt_twice(&sb, &s, &tasks);
    assert_eq!(
        sb.lines("starts").len(),
        150,
        "one attempt per stage per task"
    );
    assert!(
        sb.lines("overlap").is_empty(),
        "the serial stage was never shared"
    );
    // From the recorded attempt times: `b` never held by two at once, and
    // no more producers at once than workers (plus the serial stage's
    // holder, which goes on as soon as it takes the stage).
    let mut all = Vec::new();
    for t in &tasks {
        for a in attempts(&s, t) {
            all.push((
                a["stage"].as_str().unwrap().to_string(),
                a["started_ms"].as_i64().unwrap(),
                a["finished_ms"].as_i64().unwrap(),
            ));
        }
    }
    let mut b: Vec<_> = all.iter().filter(|a| a.0 == "b").collect();
    b.sort_by_key(|a| a.1);
    for w in b.windows(2) {
        assert!(w[1].1 >= w[0].2, "b overlapped: {:?} and {:?}", w[0], w[1]);
    }
    let mut max = 0;
    for a in &all {
        let at = a.1;
        let n = all.iter().filter(|o| o.1 <= at && at < o.2).count();
        max = max.max(n);
    }
    assert!(max <= 9, "{max} producers at once on 8 workers");
    assert!(max_running <= 9, "{max_running} running at once");
}

#[test]
fn sigkill_with_tasks_in_flight_then_a_restart_finishes_everything() {
    let sb = Sandbox::new("sigkill");
    let mut s = Serve::start(&sb, 8, &[]);
    // 50 tasks in flight (submitted, not finished) when the service dies.
    let tasks: Vec<String> = (0..50).map(|i| format!("k-{i:02}")).collect();
    sb.hold("stage-c");
    for t in &tasks {
        s.submit(t);
    }
    // Stage c (the last) is held for every task: no task can finish, so
    // all 50 are in flight at the kill, some with earlier attempts done, some
    // with a producer running, some queued.
    wait_until("work in flight", Duration::from_secs(60), || {
        sb.lines("ends").len() >= 12 && sb.lines("starts").iter().any(|l| l.ends_with(" c 1"))
    });
    s.kill9();
    let finished_at_kill = sb
        .lines("ends")
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some("c"))
        .count();
    assert_eq!(
        finished_at_kill, 0,
        "all 50 tasks were in flight at the kill"
    );
    let left: Vec<i32> = sb.pids().into_iter().filter(|p| alive(*p)).collect();
    assert!(!left.is_empty(), "producers were running at the kill");
    sb.release("stage-c");
    // Late submissions must not be lost either: one after the restart.
    let s = Serve::start(&sb, 8, &[]);
    s.submit("k-late");
    let mut all = tasks.clone();
    all.push("k-late".into());
    for t in &all {
        wait_until(t, Duration::from_secs(120), || finished_ok(&s, t));
    }
    assert_no_attempt_twice(&sb, &s, &all);
    // (No check of the serial stage here: a holder killed with SIGKILL frees
    // it while its orphaned producer may still run, until its task is
    // resumed; docs/run.md, Durability.)
    for p in left {
        assert!(!alive(p), "stale producer {p} was terminated or ended");
    }
}

#[test]
fn sigterm_drains_then_cancels_and_leaves_runs_resumable() {
    let sb = Sandbox::new("sigterm");
    let mut s = Serve::start(&sb, 4, &["--drain-timeout", "2s"]);
    // `slow` is held in a; `quick`'s attempt of a ends within the drain.
    sb.hold("slow-a");
    sb.hold("quick-a");
    s.submit("slow");
    s.submit("quick");
    wait_until("both in a", Duration::from_secs(30), || {
        s.get("/queue").1["running"].as_array().unwrap().len() == 2 && sb.lines("starts").len() == 2
    });
    let pids = sb.pids();
    let started = Instant::now();
    s.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    sb.release("quick-a");
    let code = s.wait(Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{}", s.log());
    // Drain timeout 2s, grace 1s, and some slack.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    for p in &pids {
        assert!(!alive(*p), "producer {p} is gone");
    }
    // `quick` finished its attempt and stopped before b; `slow`'s attempt
    // was interrupted. Both runs are interrupted, resumable.
    let ends = sb.lines("ends");
    assert_eq!(ends, ["quick a 1"], "{}", s.log());
    sb.release("slow-a");
    let s = Serve::start(&sb, 4, &[]);
    for t in ["slow", "quick"] {
        wait_until(t, Duration::from_secs(60), || finished_ok(&s, t));
    }
    let quick = attempts(&s, "quick");
    assert_eq!(quick.len(), 3, "quick's a ran once: {quick:?}");
    let slow = attempts(&s, "slow");
    assert_eq!(slow[0]["step"], "interrupted");
    assert_eq!(slow.len(), 4);
    let runs = s.task("slow")["runs"].as_array().unwrap().len();
    assert_eq!(runs, 1, "resumed, not restarted");
}

#[test]
fn submit_and_cancel_from_the_command_line() {
    let sb = Sandbox::new("cli");
    let s = Serve::start_with(&sb, 1, &[], None);
    let server = format!("http://{}", s.addr);
    let orch = |args: &[&str]| {
        Command::new(ORCH)
            .current_dir(&sb.root)
            .args(args)
            .env_remove("ORCH_TOKEN")
            .env("ORCH_SERVER", &server)
            .output()
            .unwrap()
    };
    sb.hold("c1-a");
    let out = orch(&[
        "submit",
        "c1",
        "--var",
        "flavour=mild",
        "--state-dir",
        "state",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("/api/v1/tasks/c1"));
    assert_eq!(s.task("c1")["queue"]["vars"]["flavour"], "mild");
    assert_eq!(
        s.task("c1")["queue"]["worktree"],
        sb.root.display().to_string()
    );
    // Without the token: refused, exit 1, with a hint.
    let out = orch(&["submit", "c2", "--state-dir", "elsewhere"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = orch(&["submit", "c1", "--state-dir", "state"]);
    assert_eq!(out.status.code(), Some(1), "a second c1 is refused");
    let out = orch(&["submit", "c3", "--var", "nope=1", "--state-dir", "state"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = orch(&[
        "submit",
        "c4",
        "--server",
        "http://127.0.0.1:1",
        "--state-dir",
        "state",
    ]);
    assert_eq!(out.status.code(), Some(2), "unreachable");
    wait_until("c1 to run", Duration::from_secs(30), || {
        sb.lines("starts").len() == 1
    });
    let out = orch(&["cancel", "c1", "--state-dir", "state"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(s.queue_state("c1"), "cancelled");
    let out = orch(&["cancel", "c1", "--state-dir", "state"]);
    assert_eq!(out.status.code(), Some(1), "already cancelled");
    // A cancelled run is over: `orch run --resume` does not take it up again.
    let out = orch(&[
        "run",
        "c1",
        "-p",
        "pipeline.kdl",
        "--state-dir",
        "state",
        "--resume",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("task c1 was cancelled"),
        "{out:?}"
    );
    assert_eq!(sb.lines("starts").len(), 1, "no stage ran again");
}

/// Opens `GET path` and reads the answer's head; the stream, left open, and
/// the status.
fn open_stream(addr: &str, path: &str, token: Option<&str>) -> (u16, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(addr).expect("connect to the service");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // HTTP/1.0: the body is not chunked, it runs until the server closes.
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut status = 0;
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "the head ended early");
        if status == 0 {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .expect("a status");
        }
        if line == "\r\n" {
            break;
        }
    }
    (status, r)
}

#[test]
fn the_event_stream_carries_a_tasks_events_to_run_finished() {
    let sb = Sandbox::new("events");
    let s = Serve::start(&sb, 2, &[]);
    let (st, mut r) = open_stream(&s.addr, "/api/v1/events", None);
    assert_eq!(st, 200);
    s.submit("ev1");
    let mut kinds = Vec::new();
    let mut stages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no run-finished: {kinds:?}");
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "stream closed: {kinds:?}"
        );
        let Some(data) = line.trim_end().strip_prefix("data: ") else {
            continue;
        };
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["task"], "ev1", "{v}");
        let kind = v["event"].as_str().unwrap().to_string();
        kinds.push(kind.clone());
        if kind == "attempt-started" {
            stages.push(v["stage"].as_str().unwrap().to_string());
        }
        if kind == "run-finished" {
            assert_eq!(v["outcome"], "success", "{v}");
            break;
        }
    }
    // The submission's own event (for dashboards), then the engine's.
    assert_eq!(kinds[..2], ["queued", "run-started"], "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "attempt-started").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "attempt-finished").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(stages, ["a", "b", "c"], "{kinds:?}");
    assert!(finished_ok(&s, "ev1"));
}

#[test]
fn beyond_loopback_reads_need_the_token() {
    let sb = Sandbox::new("wide");
    let s = Serve::start(&sb, 1, &["--listen", "0.0.0.0:0"]);
    assert!(s.addr.starts_with("0.0.0.0:"), "{}", s.addr);
    let port = s.addr.rsplit_once(':').unwrap().1;
    let addr = format!("127.0.0.1:{port}");
    for path in [
        "/status",
        "/queue",
        "/api/v1/openapi.json",
        "/api/v1/tasks/t1",
    ] {
        let (st, v) = http(&addr, "GET", path, None, None);
        assert_eq!(st, 401, "{path} without the token: {v}");
        let (st, _) = http(&addr, "GET", path, Some("wrong"), None);
        assert_eq!(st, 401, "{path} with a wrong token");
    }
    let (st, _) = open_stream(&addr, "/api/v1/events", None);
    assert_eq!(st, 401, "the event stream without the token");
    let (st, v) = http(&addr, "GET", "/health", None, None);
    assert_eq!(st, 200, "/health stays open: {v}");
    for path in ["/status", "/queue", "/api/v1/openapi.json"] {
        let (st, v) = http(&addr, "GET", path, Some(TOKEN), None);
        assert_eq!(st, 200, "{path} with the token: {v}");
    }
    let (st, _) = open_stream(&addr, "/api/v1/events", Some(TOKEN));
    assert_eq!(st, 200, "the event stream with the token");
}

/// Every operation of the OpenAPI document the service serves, called once
/// as a valid call: the status is one the document declares for success,
/// and `docs/openapi.json` is that document.
#[test]
fn every_operation_of_the_openapi_document_answers_as_declared() {
    let sb = Sandbox::new("openapi");
    let s = Serve::start(&sb, 2, &[]);
    let (st, doc) = s.get("/api/v1/openapi.json");
    assert_eq!(st, 200);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc, file, "the service serves docs/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    // A finished task for the reads, a held one for the cancel.
    s.submit("done1");
    wait_until("done1 to finish", Duration::from_secs(60), || {
        finished_ok(&s, "done1")
    });
    sb.hold("held1-a");
    s.submit("held1");
    wait_until("held1 to start", Duration::from_secs(60), || {
        sb.lines("starts").iter().any(|l| l.starts_with("held1 a "))
    });
    let mut called = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let declared: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let success: Vec<u16> = declared.iter().copied().filter(|c| *c < 300).collect();
            assert!(!success.is_empty(), "{method} {path} declares a success");
            let task = if path.ends_with("/cancel") {
                "held1"
            } else {
                "done1"
            };
            let url = path
                .replace("{task}", task)
                .replace("{stage}", "a")
                .replace("{attempt}", "1");
            let status = match (method.as_str(), path.as_str()) {
                ("get", "/api/v1/events") => open_stream(&s.addr, &url, None).0,
                ("get", _) => s.get(&url).0,
                ("post", "/api/v1/tasks") => s.post(&url, &json!({ "task": "new1" })).0,
                // Needs a human stage and a decider's token: answered as
                // declared in tests/approvals.rs (201, 403, 404, 409).
                ("post", p) if p.ends_with("/approval") => {
                    called += 1;
                    continue;
                }
                ("post", _) => s.post(&url, &json!({})).0,
                other => panic!("an operation the test does not know: {other:?}"),
            };
            assert!(
                success.contains(&status),
                "{method} {path}: {status}, declared {success:?}"
            );
            called += 1;
        }
    }
    assert_eq!(called, 11, "every operation was called");
    assert_eq!(s.queue_state("held1"), "cancelled");
    sb.release("held1-a");
}

#[test]
fn a_pipeline_edit_serves_new_tasks_once_valid_and_runs_in_flight_keep_theirs() {
    let sb = Sandbox::new("edit");
    let s = Serve::start(&sb, 4, &[]);
    sb.hold("p1-a");
    s.submit("p1");
    wait_until("p1 to start", Duration::from_secs(60), || {
        sb.lines("starts").iter().any(|l| l.starts_with("p1 a "))
    });
    // A valid edit: new tasks take it.
    let spicy = PIPELINE.replace("\"flavour\" \"plain\"", "\"flavour\" \"spicy\"");
    std::fs::write(sb.root.join("pipeline.kdl"), &spicy).unwrap();
    s.submit("p2");
    wait_until("p2 to finish", Duration::from_secs(60), || {
        finished_ok(&s, "p2")
    });
    // An invalid edit: logged, and the last valid pipeline keeps serving.
    std::fs::write(
        sb.root.join("pipeline.kdl"),
        spicy.replace("pass \"c\"", "pass \"nowhere\""),
    )
    .unwrap();
    s.submit("p3");
    wait_until("p3 to finish", Duration::from_secs(60), || {
        finished_ok(&s, "p3")
    });
    assert!(
        s.log().contains("the pipeline changed but is invalid"),
        "{}",
        s.log()
    );
    sb.release("p1-a");
    wait_until("p1 to finish", Duration::from_secs(60), || {
        finished_ok(&s, "p1")
    });
    let flavour = |task: &str| s.task(task)["runs"][0]["vars"]["flavour"].clone();
    assert_eq!(
        flavour("p1"),
        "plain",
        "the run in flight kept its pipeline"
    );
    assert_eq!(flavour("p2"), "spicy", "a new task took the valid edit");
    assert_eq!(flavour("p3"), "spicy", "the invalid edit was not taken");
}

/// The issue's load test: 200 tasks submitted at once (from 20
/// connections) to 16 workers, three short stages, `b` serial.
/// `ORCH_SERVE_LOAD_TASKS=N` changes how many.
#[test]
fn load_two_hundred_tasks_on_sixteen_workers() {
    let n: usize = std::env::var("ORCH_SERVE_LOAD_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sb = Sandbox::new("load");
    let s = Serve::start(&sb, 16, &[]);
    let tasks: Vec<String> = (0..n).map(|i| format!("load-{i:03}")).collect();
    std::thread::scope(|scope| {
        for chunk in tasks.chunks(n.div_ceil(20).max(1)) {
            let s = &s;
            scope.spawn(move || {
                for t in chunk {
                    s.submit(t);
                }
            });
        }
    });
    wait_until("every task to finish", Duration::from_secs(300), || {
        let q = s.get("/queue").1;
        q["queued"].as_array().unwrap().is_empty()
            && q["running"].as_array().unwrap().is_empty()
            && q["waiting"].as_array().unwrap().is_empty()
    });
    for t in &tasks {
        assert!(finished_ok(&s, t), "{t}: {}", s.task(t));
    }
    assert_no_attempt_twice(&sb, &s, &tasks);
    assert_eq!(sb.lines("starts").len(), 3 * n, "one attempt per stage");
    assert!(
        sb.lines("overlap").is_empty(),
        "the serial stage was shared"
    );
    // From the recorded attempt times: `b` never held by two at once, and
    // no attempt recorded twice.
    let mut b = Vec::new();
    let mut seen = BTreeSet::new();
    for t in &tasks {
        for a in attempts(&s, t) {
            let stage = a["stage"].as_str().unwrap().to_string();
            assert!(
                seen.insert((t.clone(), stage.clone(), a["attempt"].as_i64().unwrap())),
                "{t} {stage} recorded twice"
            );
            if stage == "b" {
                b.push((
                    a["started_ms"].as_i64().unwrap(),
                    a["finished_ms"].as_i64().unwrap(),
                ));
            }
        }
    }
    assert_eq!(b.len(), n);
    b.sort();
    for w in b.windows(2) {
        assert!(w[1].0 >= w[0].1, "b overlapped: {:?} and {:?}", w[0], w[1]);
    }
}

/// The queue is durable, so a secret variable is refused at submission
/// (nothing is written), and the store holds no trace of its value.
#[test]
fn a_secret_variable_is_refused_and_never_stored() {
    let sb = Sandbox::new("secret");
    let with_secret = PIPELINE.replace(
        "var \"flavour\" \"plain\"",
        "var \"flavour\" \"plain\"\n    secret \"var.flavour\"",
    );
    std::fs::write(sb.root.join("pipeline.kdl"), with_secret).unwrap();
    let s = Serve::start(&sb, 1, &[]);
    let (st, v) = s.post(
        "/api/v1/tasks",
        &json!({ "task": "t1", "vars": { "flavour": "s3cr3t-value" } }),
    );
    assert_eq!(st, 400, "{v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("variable flavour is secret"), "{msg}");
    assert!(!msg.contains("s3cr3t-value"), "{msg}");
    let (st, _) = s.get("/api/v1/tasks/t1");
    assert_eq!(st, 404, "nothing was queued");
    // Without the secret the task is taken and runs with the default.
    s.submit("t2");
    wait_until("t2 to finish", Duration::from_secs(60), || {
        finished_ok(&s, "t2")
    });
    let needle = b"s3cr3t-value";
    for file in ["orch.db", "orch.db-wal"] {
        let bytes = std::fs::read(sb.state().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the secret reached {file}"
        );
    }
}

/// Placement on the one service of an SQLite store (#15): with `b`'s
/// runner labelled `gpu`, a service without the label runs `a` and gives
/// the task back at `b`, where it stays queued, showing what it needs; the
/// service restarted with `--labels gpu` resumes it at `b`.
#[test]
fn a_labelled_stage_waits_in_the_queue_for_a_service_with_its_labels() {
    let sb = Sandbox::new("labels");
    let labelled = PIPELINE.replace(
        "    writes \"b-report\"\n",
        "    writes \"b-report\"\n    labels \"gpu\"\n",
    );
    assert_ne!(labelled, PIPELINE, "the runner of b is labelled");
    std::fs::write(sb.root.join("pipeline.kdl"), &labelled).unwrap();
    // An empty label is refused.
    let out = Command::new(ORCH)
        .current_dir(&sb.root)
        .args(["serve", "-p", "pipeline.kdl", "--labels", "gpu,"])
        .output()
        .expect("orch serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a label must not be empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut s = Serve::start(&sb, 2, &["--labels", "linux"]);
    s.submit("x");
    s.submit("gone");
    let needs_gpu = |s: &Serve| {
        let (_, q) = s.get("/queue");
        q["queued"].as_array().is_some_and(|l| {
            l.len() == 2 && l[0]["task"] == "x" && l.iter().all(|t| t["needs"] == json!(["gpu"]))
        })
    };
    wait_until("x and gone released at b", Duration::from_secs(60), || {
        needs_gpu(&s)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(needs_gpu(&s), "still queued");
    let mut starts = sb.lines("starts");
    starts.sort();
    assert_eq!(starts, ["gone a 1", "x a 1"], "nothing of b started");
    // Cancelling a released task cancels its run too: no service resumes it.
    let (code, v) = s.post("/api/v1/tasks/gone/cancel", &json!({}));
    assert_eq!(code, 200, "{v}");
    let v = s.task("gone");
    assert_eq!(
        (&v["queue"]["state"], &v["runs"][0]["status"]),
        (&json!("cancelled"), &json!("cancelled")),
        "{v}"
    );
    assert_eq!(s.task("x")["queue"]["needs"], json!(["gpu"]));
    let (code, page) = s.get("/");
    assert_eq!(code, 200);
    assert!(
        page.as_str()
            .is_some_and(|p| p.contains("needs labels gpu")),
        "the dashboard's queue says what x waits for: {page}"
    );
    s.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(s.wait(Duration::from_secs(20)), Some(0), "{}", s.log());
    let out = Command::new(ORCH)
        .current_dir(&sb.root)
        .args(["status", "--state-dir", "state"])
        .output()
        .expect("orch status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("queued, needs gpu"), "{text}");

    let s = Serve::start(&sb, 2, &["--labels", "linux", "--labels", "gpu"]);
    wait_until("x", Duration::from_secs(60), || finished_ok(&s, "x"));
    let mut starts = sb.lines("starts");
    starts.sort();
    assert_eq!(starts, ["gone a 1", "x a 1", "x b 1", "x c 1"]);
    assert_eq!(s.queue_state("gone"), "cancelled");
    let runs = s.task("x")["runs"].as_array().unwrap().len();
    assert_eq!(runs, 1, "resumed, not restarted");
    assert_eq!(s.task("x")["queue"]["needs"], json!([]));
}

/// A task whose first stage needs a label records it at submission: a
/// service without it never takes the task, not even to begin its run.
#[test]
fn a_task_whose_first_stage_is_labelled_is_not_taken_without_the_label() {
    let sb = Sandbox::new("labels-first");
    let labelled = PIPELINE.replace(
        "    writes \"a-report\"\n",
        "    writes \"a-report\"\n    labels \"macos\"\n",
    );
    assert_ne!(labelled, PIPELINE, "the runner of a is labelled");
    std::fs::write(sb.root.join("pipeline.kdl"), &labelled).unwrap();
    let mut s = Serve::start(&sb, 2, &[]);
    s.submit("m");
    let v = s.task("m");
    assert_eq!(v["queue"]["state"], "queued", "{v}");
    assert_eq!(v["queue"]["needs"], json!(["macos"]), "{v}");
    std::thread::sleep(Duration::from_millis(1500));
    let v = s.task("m");
    assert_eq!(v["queue"]["state"], "queued", "{v}");
    assert_eq!(v["runs"], json!([]), "no run begun: {v}");
    assert!(sb.lines("starts").is_empty());
    s.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(s.wait(Duration::from_secs(20)), Some(0), "{}", s.log());
    let s = Serve::start(&sb, 2, &["--labels", "macos"]);
    wait_until("m", Duration::from_secs(60), || finished_ok(&s, "m"));
    assert_eq!(sb.lines("starts"), ["m a 1", "m b 1", "m c 1"]);
}

/// `orch serve --worktree /…/{task}`: each task works in its own directory
/// on this host, created when missing; a submission naming a worktree is
/// refused by such a service; a template that is not absolute, or holds
/// another placeholder, stops the service before it starts.
#[test]
fn the_services_worktree_template_places_each_task() {
    let sb = Sandbox::new("worktree");
    // Every stage records where it ran; the scripts are found by absolute path.
    let root = sb.root.display().to_string();
    let pipeline = PIPELINE
        .replace("{var.scripts}", &root)
        .replace("/step.sh", "/where.sh");
    std::fs::write(sb.root.join("pipeline.kdl"), pipeline).unwrap();
    std::fs::write(
        sb.root.join("where.sh"),
        format!("pwd > \"$OUT/cwd.$ORCH_TASK.$ORCH_STAGE\"\nexec sh {root}/step.sh\n"),
    )
    .unwrap();
    let cwd = |t: &str, stage: &str| {
        std::fs::read_to_string(sb.out().join(format!("cwd.{t}.{stage}")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    for bad in ["work/{task}", "/srv/{var.x}"] {
        let out = Command::new(ORCH)
            .current_dir(&sb.root)
            .args(["serve", "-p", "pipeline.kdl", "--worktree", bad])
            .output()
            .expect("orch serve");
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    let template = format!("{root}/hosts/h1/{{task}}");
    let mut s = Serve::start(&sb, 2, &["--worktree", &template]);
    s.submit("w1");
    s.submit("w2");
    let (code, v) = s.post(
        "/api/v1/tasks",
        &json!({ "task": "w3", "worktree": sb.root.display().to_string() }),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("--worktree"), "{v}");
    for t in ["w1", "w2"] {
        wait_until(&format!("{t} finishes"), Duration::from_secs(60), || {
            s.queue_state(t) == "finished"
        });
        for stage in ["a", "b", "c"] {
            assert_eq!(cwd(t, stage), format!("{root}/hosts/h1/{t}"));
        }
        assert_eq!(
            s.task(t)["runs"][0]["worktree"],
            json!(format!("{root}/hosts/h1/{t}"))
        );
    }
    // A task in flight when its service dies is resumed by the next one in
    // that one's place (another host, here another template).
    sb.hold("w4-b");
    s.submit("w4");
    wait_until("w4 runs b", Duration::from_secs(60), || {
        sb.lines("starts").contains(&"w4 b 1".to_string())
    });
    s.kill9();
    sb.release("w4-b");
    let s = Serve::start(
        &sb,
        2,
        &["--worktree", &format!("{root}/hosts/h2/{{task}}")],
    );
    wait_until("w4 finishes", Duration::from_secs(60), || {
        s.queue_state("w4") == "finished"
    });
    assert_eq!(cwd("w4", "a"), format!("{root}/hosts/h1/w4"));
    assert_eq!(cwd("w4", "c"), format!("{root}/hosts/h2/w4"));
}

/// A runner that exits 5 (a tool-error, no retries): the stage fails closed
/// to the end `failed`, and the alert `pager` runs; it says when it starts
/// and, 2 s later, that it was sent.
const FAILING_WITH_ALERT: &str = r#"
pipeline "alerting" start="build"

artifact "rep" path="rep.md" {
    field "result" "PASS" "FAIL"
}
gate "ok" artifact="rep" {
    expect "result" "PASS"
}
runner "r" {
    command "sh" "-c" "exit 5"
    timeout "10s"
    grace "1s"
    exit-code 0 verdict="PASS"
    exit-code 1 verdict="FAIL"
    otherwise verdict="tool-error"
    writes "rep"
}
call-site "cs" axis="C" verdict="machine" mode="runner" {
    runner "r"
}
stage "build" call-site="cs" gate="ok" {
    pass "done"
    exhausted "failed" alert="pager"
}
end "done" outcome="success"
end "failed" outcome="failure"
alert "pager" {
    command "sh" "-c" "touch \"$OUT/alert.started\"; sleep 2; touch \"$OUT/alert.sent\""
    timeout "30s"
}
"#;

/// The alerts of a task's runs in the store: (alert, status, exit).
fn alert_rows(sb: &Sandbox, task: &str) -> Vec<(String, String, Option<String>)> {
    let db = rusqlite::Connection::open_with_flags(
        sb.state().join("orch.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut q = db
        .prepare(
            "SELECT a.alert, a.status, a.exit FROM alerts a JOIN runs r ON r.id = a.run_id \
             WHERE r.task = ?1 ORDER BY a.id",
        )
        .unwrap();
    q.query_map([task], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_cancel_during_the_alert_of_a_failed_run_leaves_it_failed_and_the_alert_sent() {
    let sb = Sandbox::new("cancel-alert");
    std::fs::write(sb.root.join("pipeline.kdl"), FAILING_WITH_ALERT).unwrap();
    let s = Serve::start(&sb, 1, &[]);
    s.submit("x1");
    wait_until("the alert to start", Duration::from_secs(30), || {
        sb.out().join("alert.started").exists()
    });
    // The run reached its end (`failed`) before the cancel: it is not
    // relabelled, and the answer says how it ended.
    let (st, v) = s.post("/api/v1/tasks/x1/cancel", &json!({}));
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        v["error"], "task x1 ended before it could be cancelled: failed",
        "{v}"
    );
    let t = s.task("x1");
    assert_eq!(t["queue"]["state"], "finished", "{t}");
    let run = &t["runs"][0];
    assert_eq!(
        (&run["status"], &run["outcome"], &run["end"]),
        (&json!("finished"), &json!("failure"), &json!("failed")),
        "{t}"
    );
    // The alert that had started was let finish: people learn of the failure.
    assert!(sb.out().join("alert.sent").exists());
    assert_eq!(
        alert_rows(&sb, "x1"),
        vec![("pager".into(), "ok".into(), Some("exit code 0".into()))]
    );
    let log = s.log();
    assert!(!log.contains("runs again on resume"), "{log}");
    assert!(!log.contains("--resume"), "{log}");
}

#[test]
fn status_names_the_store_the_service_opened() {
    let sb = Sandbox::new("status-store");
    let s = Serve::start(&sb, 1, &["--store", "custom.db"]);
    let (st, v) = s.get("/status");
    assert_eq!(st, 200, "{v}");
    let custom = sb.root.join("custom.db");
    assert_eq!(v["store"], custom.display().to_string(), "{v}");
    assert!(custom.exists(), "the store named is the one opened");
    assert_eq!(v["state_dir"], sb.state().display().to_string(), "{v}");
}

#[test]
fn a_cancelled_run_stays_cancelled_when_the_task_is_restarted() {
    let sb = Sandbox::new("restart-cancelled");
    let s = Serve::start(&sb, 1, &[]);
    sb.hold("r1-a");
    s.submit("r1");
    wait_until("r1 to run", Duration::from_secs(30), || {
        sb.lines("starts").len() == 1
    });
    let (st, v) = s.post("/api/v1/tasks/r1/cancel", &json!({}));
    assert_eq!((st, &v["state"]), (200, &json!("cancelled")), "{v}");
    // No note promises a resume a cancelled run never gets.
    let log = s.log();
    assert!(log.contains("cancelled; the run is over"), "{log}");
    assert!(!log.contains("resume with"), "{log}");
    sb.release("r1-a");
    let out = Command::new(ORCH)
        .current_dir(&sb.root)
        .args(["run", "r1", "-p", "pipeline.kdl", "--state-dir", "state"])
        .arg("--restart")
        .env("OUT", sb.out())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let runs = s.task("r1")["runs"].clone();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["cancelled", "finished"], "{runs}");
}

/// Runs SQL on the service's SQLite store from outside (to make one of its
/// writes fail, as a full disk would).
fn store_sql(sb: &Sandbox, sql: &str) {
    let db = rusqlite::Connection::open(sb.state().join("orch.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(sql).unwrap();
}

#[test]
fn an_error_the_run_stops_on_while_cancelled_is_kept_with_the_cancel() {
    let sb = Sandbox::new("cancel-error");
    let s = Serve::start(&sb, 1, &[]);
    sb.hold("e1-a");
    s.submit("e1");
    wait_until("e1 to run", Duration::from_secs(30), || {
        sb.lines("starts").len() == 1
    });
    // The engine cannot record its run interrupted: it stops on that error.
    store_sql(
        &sb,
        "CREATE TRIGGER no_interrupt BEFORE UPDATE OF status ON runs \
         WHEN NEW.status = 'interrupted' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    );
    let (st, v) = s.post("/api/v1/tasks/e1/cancel", &json!({}));
    assert_eq!((st, &v["state"]), (200, &json!("cancelled")), "{v}");
    let t = s.task("e1");
    assert_eq!(t["queue"]["state"], "cancelled", "{t}");
    assert_eq!(t["runs"][0]["status"], "cancelled", "{t}");
    let error = t["queue"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("injected failure"), "{t}");
    assert!(s.log().contains("injected failure"), "{}", s.log());
}

#[test]
fn a_cancelled_runs_alerts_that_never_started_are_recorded_not_sent() {
    let sb = Sandbox::new("cancel-pending-alert");
    let s = Serve::start(&sb, 1, &[]);
    sb.hold("p1-b");
    s.submit("p1");
    wait_until("p1 to run stage b", Duration::from_secs(30), || {
        sb.lines("starts").len() == 2
    });
    // An alert queued with the transition a → b and not started yet (as a
    // run killed between the two leaves it).
    store_sql(
        &sb,
        "INSERT INTO alerts (run_id, transition_id, stage, alert, status, at_ms) \
         SELECT run_id, id, 'a', 'ops', 'pending', 0 FROM transitions",
    );
    let (st, v) = s.post("/api/v1/tasks/p1/cancel", &json!({}));
    assert_eq!((st, &v["state"]), (200, &json!("cancelled")), "{v}");
    // A cancelled run is never resumed: the alert is not left pending.
    assert_eq!(
        alert_rows(&sb, "p1"),
        vec![("ops".into(), "failed".into(), Some("cancelled".into()))]
    );
}

/// The service's peak resident set so far (`VmHWM`), in kB.
fn peak_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// `tail=N`, a whole log, the dashboard's log page and an artifact on the
/// task page read only what they show: a 20 MB log and a 20 MB artifact
/// leave the service's peak memory far below their size.
#[test]
fn large_logs_and_artifacts_are_read_only_as_far_as_they_are_shown() {
    const BIG: usize = 20_000_000;
    let sb = Sandbox::new("big-log");
    let big = format!("yes 'padding line of the big log' | head -c {BIG}\necho\n");
    std::fs::write(sb.root.join("step.sh"), format!("{big}{STEP}")).unwrap();
    let s = Serve::start(&sb, 1, &[]);
    s.submit("t1");
    wait_until("t1 finished", Duration::from_secs(60), || {
        finished_ok(&s, "t1")
    });
    let task_dir = sb.state().join("tasks").join("t1");
    let mut artifact = b"result: PASS\n".to_vec();
    artifact.resize(BIG, b'x');
    std::fs::write(task_dir.join("a.md"), &artifact).unwrap();
    let before = peak_kb(s.pid());
    let path = "/api/v1/tasks/t1/logs/a/1";
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.addr.clone();
            std::thread::spawn(move || http(&addr, "GET", &format!("{path}?tail=1"), None, None))
        })
        .collect();
    for r in requests {
        let (st, body) = r.join().unwrap();
        assert_eq!(st, 200, "{body}");
        assert_eq!(body, "log line 3 of t1 a 1\n");
    }
    let (st, body) = http(&s.addr, "GET", &format!("{path}?tail=3"), None, None);
    assert_eq!(st, 200);
    assert_eq!(
        body,
        "log line 1 of t1 a 1\nlog line 2 of t1 a 1\nlog line 3 of t1 a 1\n"
    );
    let grown = peak_kb(s.pid()).saturating_sub(before);
    assert!(
        grown < 8_000,
        "the peak grew by {grown} kB reading a {BIG} byte log's last lines"
    );
    for _ in 0..3 {
        let (st, page) = http(&s.addr, "GET", "/tasks/t1", None, None);
        assert_eq!(st, 200, "{page}");
        assert!(
            page.contains("its fields are read from its first 64 KiB"),
            "{page}"
        );
        assert!(page.contains("PASS"), "{page}");
    }
    let grown = peak_kb(s.pid()).saturating_sub(before);
    assert!(
        grown < 8_000,
        "the peak grew by {grown} kB reading a {BIG} byte log's last lines and artifact"
    );
    // The whole log: at most 8 MiB of it, and said so.
    let (st, head, body) = http_head(&s.addr, path);
    assert_eq!(st, 200);
    assert!(body.len() < 8 * 1024 * 1024 + 1024, "{}", body.len());
    assert!(body.starts_with("padding line of the big log\n"));
    assert!(
        body.contains("… cut: only the first 8388608 bytes of the "),
        "{}",
        &body[body.len() - 300..]
    );
    assert!(head.contains("x-orch-log-truncated: 8388608"), "{head}");
    assert!(head.contains("x-orch-log-size: "), "{head}");
    let (st, page) = http(&s.addr, "GET", "/tasks/t1/logs/a/1", None, None);
    assert_eq!(st, 200);
    assert!(
        page.contains("more bytes not shown"),
        "{}",
        &page[page.len() - 500..]
    );
}

/// A GET and its answer's head, status line and headers (lower case).
fn http_head(addr: &str, path: &str) -> (u16, String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, &req, b"")
}

/// A GET with the given `Host` header (and token): the status and body.
fn get_as_host(addr: &str, path: &str, host: &str, token: Option<&str>) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    let (status, _, body) = exchange(addr, &req, b"");
    (status, body)
}

/// On loopback, a read without a token is answered only to a request for a
/// loopback host: a DNS-rebinding page (its own name pointed at 127.0.0.1)
/// sends its own name and is refused, with the reason.
#[test]
fn loopback_reads_without_a_token_need_a_loopback_host() {
    let sb = Sandbox::new("host");
    let s = Serve::start(&sb, 1, &[]);
    let port = s.addr.rsplit_once(':').unwrap().1;
    for path in ["/status", "/queue", "/api/v1/tasks", "/", "/pipeline"] {
        for host in [
            "evil.example",
            &format!("evil.example:{port}"),
            "localhost.evil.example",
        ] {
            let (st, body) = get_as_host(&s.addr, path, host, None);
            assert_eq!(st, 403, "{path} for Host {host}: {body}");
            assert!(
                body.contains("Host header names no loopback host"),
                "{body}"
            );
            assert!(!body.contains(&sb.root.display().to_string()), "{body}");
        }
        if path.starts_with("/api") || path == "/status" || path == "/queue" {
            let (_, body) = get_as_host(&s.addr, path, "evil.example", None);
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].as_str().unwrap().contains("Host"), "{v}");
        }
        for host in [
            "localhost".to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            "[::1]".to_string(),
        ] {
            let (st, body) = get_as_host(&s.addr, path, &host, None);
            assert_eq!(st, 200, "{path} for Host {host}: {body}");
        }
        // The token admits whatever the Host.
        let (st, body) = get_as_host(&s.addr, path, "evil.example", Some(TOKEN));
        assert_eq!(st, 200, "{path} with the token: {body}");
    }
    let (st, _) = get_as_host(&s.addr, "/health", "evil.example", None);
    assert_eq!(st, 200);
}

/// The log URL a task advertises stays readable after its stage is renamed
/// in the served pipeline: the attempt is found in the store, not in the
/// pipeline; a traversal in the stage still finds nothing.
#[test]
fn an_advertised_log_answers_after_its_stage_is_renamed() {
    let sb = Sandbox::new("renamed");
    let s = Serve::start(&sb, 1, &[]);
    s.submit("r1");
    wait_until("r1 finished", Duration::from_secs(60), || {
        finished_ok(&s, "r1")
    });
    let renamed = PIPELINE
        .replace("stage \"c\"", "stage \"c2\"")
        .replace("pass \"c\"", "pass \"c2\"");
    std::fs::write(sb.root.join("pipeline.kdl"), renamed).unwrap();
    // A submission takes the edit (the service reads the pipeline again).
    s.submit("r2");
    wait_until("r2 finished", Duration::from_secs(60), || {
        finished_ok(&s, "r2")
    });
    assert!(
        attempts(&s, "r2").iter().any(|a| a["stage"] == "c2"),
        "the rename is served"
    );
    let c = attempts(&s, "r1")
        .into_iter()
        .find(|a| a["stage"] == "c")
        .expect("r1 ran stage c");
    let url = c["log"].as_str().unwrap().to_string();
    assert_eq!(url, "/api/v1/tasks/r1/logs/c/1");
    let (st, body) = http(&s.addr, "GET", &url, None, None);
    assert_eq!(st, 200, "{url}: {body}");
    assert!(body.contains("log line 3 of r1 c 1"), "{body}");
    let (st, body) = http(&s.addr, "GET", &format!("{url}?tail=1"), None, None);
    assert_eq!((st, body.as_str()), (200, "log line 3 of r1 c 1\n"));
    for bad in [
        "/api/v1/tasks/r1/logs/c2/1",
        "/api/v1/tasks/r1/logs/..%2Fc/1",
        "/api/v1/tasks/r1/logs/..%2F..%2Forch.db/1",
        "/api/v1/tasks/r1/logs/%2E%2E/1",
    ] {
        let (st, body) = http(&s.addr, "GET", bad, None, None);
        assert_eq!(st, 404, "{bad}: {body}");
    }
}

/// The task page's notices after a form (`?cancel=…`, `?approval=…`) say
/// only what is true of the task now: a crafted link cannot make a task
/// that had neither look cancelled or approved.
#[test]
fn the_task_pages_notices_say_only_what_is_true_of_the_task() {
    let sb = Sandbox::new("notices");
    let s = Serve::start(&sb, 1, &[]);
    s.submit("n1");
    wait_until("n1 finished", Duration::from_secs(60), || {
        finished_ok(&s, "n1")
    });
    for query in [
        "?approval=approved&cancel=x",
        "?approval=rejected",
        "?cancel=done",
        "?cancel=stopping",
    ] {
        let (st, page) = http(&s.addr, "GET", &format!("/tasks/n1{query}"), None, None);
        assert_eq!(st, 200, "{page}");
        for claim in ["Cancelled.", "Approved.", "Rejected.", "Cancel requested"] {
            assert!(!page.contains(claim), "{query}: the page says {claim:?}");
        }
        assert!(!page.contains("class=\"notice\""), "{query}: {page}");
    }
    sb.hold("n2-a");
    s.submit("n2");
    wait_until("n2 to start", Duration::from_secs(60), || {
        sb.lines("starts").iter().any(|l| l.starts_with("n2 a "))
    });
    let (st, v) = s.post("/api/v1/tasks/n2/cancel", &json!({}));
    assert_eq!(st, 200, "{v}");
    let (st, page) = http(
        &s.addr,
        "GET",
        "/tasks/n2?cancel=done&approval=approved",
        None,
        None,
    );
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("Cancelled."), "{page}");
    assert!(!page.contains("Approved."), "{page}");
    sb.release("n2-a");
}
