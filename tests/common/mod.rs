//! Helpers for the integration tests that run the real `orch` binary: a
//! sandbox directory per test, a builder for `orch` invocations, JSON-lines
//! events, and process liveness checks.

#![allow(dead_code)]

use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any single `orch` invocation may take before the test gives up
/// (a hang is a failure, never a stuck test suite).
pub const HANG: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/run")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

pub fn scripts() -> PathBuf {
    fixtures().join("scripts")
}

/// A fresh directory under the system temp dir, removed when the test passes
/// (kept, and its path printed, when it fails, or with ORCH_TEST_KEEP set).
///
/// Layout: `out/` (T_OUT: what the fixture scripts record), `wt/` (the
/// default worktree), `state/` (the state dir; created by orch, not here).
pub struct Sandbox {
    pub root: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("orch-run-tests.{}", std::process::id()));
        let root = base.join(format!("{name}-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::create_dir_all(root.join("wt")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        Sandbox { root }
    }

    pub fn out(&self) -> PathBuf {
        self.root.join("out")
    }

    pub fn wt(&self) -> PathBuf {
        self.root.join("wt")
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// A directory under the sandbox root, created.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn task_dir(&self, task: &str) -> PathBuf {
        self.state().join("tasks").join(task)
    }

    /// A file the fixture scripts wrote in `out/`.
    pub fn out_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.out().join(name)).ok()
    }

    /// The lines of a file in `out/` (none when it does not exist).
    pub fn out_lines(&self, name: &str) -> Vec<String> {
        self.out_file(name)
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// A pid recorded by a fixture script in `out/`.
    pub fn pid(&self, name: &str) -> i32 {
        let s = self
            .out_file(name)
            .unwrap_or_else(|| panic!("no pid file {name} in {}", self.out().display()));
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("pid file {name} holds {s:?}"))
    }

    /// Waits until `out/NAME` exists.
    pub fn wait_for_out(&self, name: &str, within: Duration) {
        let path = self.out().join(name);
        let until = Instant::now() + within;
        while !path.exists() {
            assert!(
                Instant::now() < until,
                "{} did not appear within {within:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `orch run TASK -p FIXTURE --state-dir state --worktree wt --var
    /// scripts=… --json`, with T_OUT set, run from the sandbox root.
    pub fn orch(&self, fixture_name: &str, task: &str) -> Orch {
        self.orch_in(fixture_name, task, &self.wt())
    }

    /// Like `orch`, with another worktree.
    pub fn orch_in(&self, fixture_name: &str, task: &str, worktree: &Path) -> Orch {
        Orch::new(&self.root)
            .arg("run")
            .arg(task)
            .arg("-p")
            .arg(fixture(fixture_name))
            .arg("--state-dir")
            .arg(self.state())
            .arg("--worktree")
            .arg(worktree)
            .arg("--var")
            .arg(format!("scripts={}", scripts().display()))
            .arg("--json")
            .env("T_OUT", self.out())
    }

    /// `orch run TASK -p PIPELINE --state-dir state --worktree wt`, with
    /// T_OUT set, run from the sandbox root: add the rest.
    pub fn run(&self, task: &str, pipeline: impl AsRef<OsStr>) -> Orch {
        Orch::new(&self.root)
            .arg("run")
            .arg(task)
            .arg("-p")
            .arg(pipeline)
            .arg("--state-dir")
            .arg(self.state())
            .arg("--worktree")
            .arg(self.wt())
            .env("T_OUT", self.out())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("ORCH_TEST_KEEP").is_some() {
            eprintln!("sandbox kept: {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
            // The per-process parent goes with its last sandbox.
            if let Some(parent) = self.root.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// One `orch` invocation, built up.
#[derive(Clone)]
pub struct Orch {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
}

impl Orch {
    /// `orch` with no arguments, run in `cwd`.
    pub fn new(cwd: &Path) -> Orch {
        Orch {
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.to_path_buf(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Orch {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// Drops every occurrence of an argument (`.without("--json")`).
    pub fn without(mut self, a: &str) -> Orch {
        self.args.retain(|x| x != a);
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Orch {
        self.env
            .push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// The command. Inherited `T_*`, `ORCH_*` and `RUST_LOG` variables are
    /// removed, so that only what a test sets reaches orch and its scripts.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orch"));
        for (k, _) in std::env::vars_os() {
            let key = k.to_string_lossy();
            if key.starts_with("T_") || key.starts_with("ORCH_") || key == "RUST_LOG" {
                c.env_remove(&k);
            }
        }
        c.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        c
    }

    /// Runs to the end and collects the output.
    pub fn run(&self) -> Run {
        let child = self.spawn();
        finish(child, HANG)
    }

    /// Starts orch with stdout and stderr piped.
    pub fn spawn(&self) -> Child {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start orch")
    }
}

/// Waits for a spawned orch (killing it after `within`) and collects its output.
pub fn finish(mut child: Child, within: Duration) -> Run {
    let out = child.stdout.take().map(read_all);
    finish_with(child, out, within)
}

/// Like `finish`, for a child whose stdout is read elsewhere (`Lines`).
pub fn finish_with(
    mut child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    within: Duration,
) -> Run {
    let err = child.stderr.take().map(read_all);
    let until = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for orch") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = stdout.map(|h| h.join().unwrap()).unwrap_or_default();
            let stderr = err.map(|h| h.join().unwrap()).unwrap_or_default();
            panic!("orch did not finish within {within:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: stdout.map(|h| h.join().unwrap()).unwrap_or_default(),
        stderr: err.map(|h| h.join().unwrap()).unwrap_or_default(),
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Reads an orch's JSON-lines stdout as it comes, so a test can wait for an
/// event while orch runs; `finish` returns everything read.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
    handle: Option<std::thread::JoinHandle<String>>,
}

impl Lines {
    pub fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let all = seen.clone();
        let handle = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
            all.lock().unwrap().clone()
        });
        Lines {
            rx,
            seen,
            handle: Some(handle),
        }
    }

    /// Waits for the first event satisfying `pred`; panics after `within`.
    pub fn wait_for(&self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON event: {line:?}: {e}"));
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no such event within {within:?}; seen:\n{}",
                    self.seen.lock().unwrap()
                ),
            }
        }
    }

    pub fn into_handle(mut self) -> std::thread::JoinHandle<String> {
        self.handle.take().unwrap()
    }
}

/// What an orch invocation did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// The exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit status {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Every line of stdout, parsed as a JSON event.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "stdout line is not a JSON event: {l:?}: {e}\n{}",
                        self.stdout
                    )
                })
            })
            .collect()
    }

    /// The events of one kind (`"event": KIND`).
    pub fn of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// The events of one kind for one stage.
    pub fn of_stage(&self, kind: &str, stage: &str) -> Vec<Value> {
        self.of(kind)
            .into_iter()
            .filter(|e| e["stage"] == stage)
            .collect()
    }

    /// The only event of a kind (panics when there are none or several).
    pub fn one(&self, kind: &str) -> Value {
        let all = self.of(kind);
        assert_eq!(
            all.len(),
            1,
            "expected exactly one `{kind}` event\n{}",
            self.stdout
        );
        all.into_iter().next().unwrap()
    }

    /// The kinds of all events, in order.
    pub fn kinds(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| s(&e["event"]).to_string())
            .collect()
    }

    /// The transitions as (from, kind, to).
    pub fn transitions(&self) -> Vec<(String, String, String)> {
        self.of("transition")
            .iter()
            .map(|t| {
                (
                    s(&t["from"]).to_string(),
                    s(&t["kind"]).to_string(),
                    s(&t["to"]).to_string(),
                )
            })
            .collect()
    }

    /// The producer kind of each attempt, as (stage, producer, name).
    pub fn producers(&self) -> Vec<(String, String, String)> {
        self.of("attempt-started")
            .iter()
            .map(|a| {
                (
                    s(&a["stage"]).to_string(),
                    s(&a["producer"]).to_string(),
                    s(&a["name"]).to_string(),
                )
            })
            .collect()
    }

    /// The run-finished event's (outcome, end).
    pub fn finished(&self) -> (String, String) {
        let f = self.one("run-finished");
        (s(&f["outcome"]).to_string(), s(&f["end"]).to_string())
    }
}

/// A JSON string's value ("" when it is not a string).
pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Owned (String, String, String) triples from string slices, for comparisons.
pub fn triples(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    v.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// Whether `pid` is a running process: it exists and is not a zombie (a
/// zombie has terminated; it only waits for its new parent to reap it).
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
    }
}

/// Ends a process group a test started indirectly (cleanup only).
pub fn kill_group(pgid: i32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Sends a signal to one process.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("kill");
}

/// The first line of a file.
pub fn first_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `KEY=VALUE` lines (as `env | sort` writes them) into pairs.
pub fn env_map(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A duration as orch prints it (`crate::duration::human`): 850ms, 1.2s, 2m05s.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Every regular file below `dir` (links not followed) with its bytes.
pub fn files_below(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => todo.push(p),
                Ok(m) if m.is_file() => {
                    let bytes = std::fs::read(&p).unwrap_or_default();
                    out.push((p, bytes));
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A fixture of the hardening tests (`tests/fixtures/hardening/NAME`).
pub fn hardening_fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/hardening").join(name)
}

/// `orch history TASK --state-dir STATE --json`, run from the sandbox root,
/// parsed.
pub fn history_json(sb: &Sandbox, task: &str) -> serde_json::Value {
    let run = Orch::new(&sb.root)
        .arg("history")
        .arg(task)
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
        .run();
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{run}"))
}
