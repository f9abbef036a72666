//! Durability of `orch run`: a killed `orch` resumes where it stopped and
//! finished work never runs again; a live task is never run twice at once;
//! a damaged, locked, foreign or newer store is refused with exit 2 (never a
//! panic, never a silently wrong resume); a changed pipeline is refused on
//! resume; recorded artifact digests are checked; a finished task says so.
//!
//! The pipeline is `tests/fixtures/durability/pipeline.kdl`: runner stages
//! `a` and `b`, then agent stage `c`, each a shell script that appends
//! `attempt=N pid=PID` to a counter file named after its stage, so a test
//! knows exactly how often each producer ran. Files in the counter directory
//! steer the K-th run of a producer (see `count.sh` and `agent.sh`):
//! `hold-STAGE-K` keeps it running, `exit-STAGE-K` picks its exit code,
//! `verdict-STAGE-K` the review's verdict, `nowrite-STAGE-K` has the agent
//! write no review.
//!
//! Step boundaries are hit with `ORCH_FAILPOINT=POINT@STAGE` (the engine
//! kills itself with SIGKILL there). A named pipe no longer blocks orch (only
//! a regular file is an artifact), so there is no hook-free way to stop it
//! at a boundary.

use orch_store::{RunStore, SqliteStore};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/durability");
/// How long any one `orch` may take before the test gives up on it. Never a
/// speed assertion: only a guard against a hang.
const PATIENCE: Duration = Duration::from_secs(120);
const SUCCESS_PATH: [&str; 3] = ["a -pass-> b", "b -pass-> c", "c -pass-> done"];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A scratch directory with a copy of the fixture (`work/`, also the
/// worktree), the counters (`counters/`) and the state (`state/`).
struct Env {
    root: PathBuf,
    work: PathBuf,
    counters: PathBuf,
    state: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let root =
            std::env::temp_dir().join(format!("orch-durability-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let env = Env {
            work: root.join("work"),
            counters: root.join("counters"),
            state: root.join("state"),
            root,
        };
        for d in [&env.work, &env.counters] {
            std::fs::create_dir_all(d).unwrap();
        }
        for entry in std::fs::read_dir(FIXTURE).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), env.work.join(entry.file_name())).unwrap();
        }
        env
    }

    fn pipeline(&self) -> PathBuf {
        self.work.join("pipeline.kdl")
    }

    fn db_path(&self) -> PathBuf {
        self.state.join("orch.db")
    }

    fn task_dir(&self, task: &str) -> PathBuf {
        self.state.join("tasks").join(task)
    }

    fn command(&self, task: &str, extra: &[&str]) -> Command {
        self.command_counting_in(task, &self.counters, extra)
    }

    /// As `command`, with the producers counting their runs in `counters`.
    fn command_counting_in(&self, task: &str, counters: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(ORCH);
        c.arg("run")
            .arg(task)
            .arg("-p")
            .arg(self.pipeline())
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--worktree")
            .arg(&self.work)
            .arg("--var")
            .arg(format!("counters={}", counters.display()))
            .args(extra)
            .current_dir(&self.work)
            .env_remove("ORCH_FAILPOINT")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn spawn(&self, task: &str, extra: &[&str]) -> Orch {
        Orch::start(self.command(task, extra))
    }

    fn spawn_failpoint(&self, task: &str, extra: &[&str], failpoint: &str) -> Orch {
        let mut c = self.command(task, extra);
        c.env("ORCH_FAILPOINT", failpoint);
        Orch::start(c)
    }

    fn run(&self, task: &str, extra: &[&str]) -> Out {
        self.spawn(task, extra).wait()
    }

    /// Writes a steering file into the counter directory.
    fn steer(&self, file: &str, content: &str) {
        std::fs::write(self.counters.join(file), content).unwrap();
    }

    fn unsteer(&self, file: &str) {
        std::fs::remove_file(self.counters.join(file)).unwrap();
    }

    /// The runs of a producer, from its counter file: (attempt, pid).
    fn runs_of(&self, stage: &str) -> Vec<(i64, i32)> {
        let text = std::fs::read_to_string(self.counters.join(stage)).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut attempt = None;
                let mut pid = None;
                for word in l.split_whitespace() {
                    if let Some(v) = word.strip_prefix("attempt=") {
                        attempt = v.parse().ok();
                    } else if let Some(v) = word.strip_prefix("pid=") {
                        pid = v.parse().ok();
                    }
                }
                (
                    attempt.unwrap_or_else(|| panic!("bad counter line {l:?}")),
                    pid.unwrap_or_else(|| panic!("bad counter line {l:?}")),
                )
            })
            .collect()
    }

    /// The pids in a counter file (producers' or alerts').
    fn pids_in(&self, file: &str) -> Vec<i32> {
        std::fs::read_to_string(self.counters.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("pid=")?.parse().ok())
            .collect()
    }

    /// The attempt numbers a producer ran as, in order.
    fn attempts_run(&self, stage: &str) -> Vec<i64> {
        self.runs_of(stage).into_iter().map(|(a, _)| a).collect()
    }

    fn alerts(&self) -> Vec<String> {
        std::fs::read_to_string(self.counters.join("alerts"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A connection to the store, for reading (never creates the file).
    fn db(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(self.db_path(), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        c.busy_timeout(Duration::from_secs(10))?;
        Ok(c)
    }

    /// Reads the store through its interface, as any part of orch does.
    fn read<T>(
        &self,
        f: impl AsyncFnOnce(&SqliteStore) -> orch_store::Result<T>,
    ) -> orch_store::Result<T> {
        let store = SqliteStore::open_existing(&self.state)?.ok_or_else(|| {
            orch_store::StoreError::Foreign {
                path: self.db_path(),
                detail: "no store yet".into(),
            }
        })?;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f(&store))
    }

    fn try_attempts(&self, task: &str) -> orch_store::Result<Vec<Attempt>> {
        self.read(async |store| {
            let Some(run) = store.latest_run(task).await? else {
                return Ok(Vec::new());
            };
            Ok(store
                .attempts(run.id)
                .await?
                .into_iter()
                .map(|a| Attempt {
                    stage: a.stage,
                    attempt: a.attempt,
                    step: a.step.as_str().to_string(),
                    pgid: a.group.map(|g| g.pgid),
                    verdict: a.verdict,
                    defers: a.defers,
                    artifact_sha256: a.artifact_sha256,
                    gate_pass: a.gate_pass,
                })
                .collect())
        })
    }

    /// The attempts of the task's latest run, in order.
    fn attempts(&self, task: &str) -> Vec<Attempt> {
        self.try_attempts(task).expect("read attempts")
    }

    /// The attempts of one stage in the task's latest run, as `(attempt, step)`.
    fn steps(&self, task: &str, stage: &str) -> Vec<(i64, String)> {
        self.attempts(task)
            .into_iter()
            .filter(|a| a.stage == stage)
            .map(|a| (a.attempt, a.step))
            .collect()
    }

    /// The transitions of the task's latest run, as `from -kind-> to`.
    fn transitions(&self, task: &str) -> Vec<String> {
        self.read(async |store| {
            let Some(run) = store.latest_run(task).await? else {
                return Ok(Vec::new());
            };
            Ok(store
                .transitions(run.id)
                .await?
                .into_iter()
                .map(|t| format!("{} -{}-> {}", t.from_stage, t.kind, t.to_stage))
                .collect())
        })
        .expect("read transitions")
    }

    /// Every run of the task: (status, outcome).
    fn runs(&self, task: &str) -> Vec<(String, Option<String>)> {
        self.read(async |store| {
            Ok(store
                .runs(Some(task))
                .await?
                .into_iter()
                .map(|r| (r.status.to_string(), r.outcome.map(|o| o.to_string())))
                .collect())
        })
        .expect("read runs")
    }

    /// Waits until the K-th run of `stage`'s producer has started and its
    /// process group is recorded in the store; returns its pid (= pgid).
    fn wait_in_flight(&self, orch: &mut Orch, task: &str, stage: &str, k: usize) -> i32 {
        wait_for(orch, &format!("run {k} of {stage} to start"), || {
            self.runs_of(stage).len() >= k
        });
        let pid = self.runs_of(stage)[k - 1].1;
        wait_for(orch, &format!("the store to record pgid {pid}"), || {
            self.try_attempts(task)
                .map(|a| a.iter().any(|a| a.pgid == Some(pid as i64)))
                .unwrap_or(false)
        });
        pid
    }

    /// The run ended in `outcome` after taking exactly `path`.
    fn assert_finished(&self, task: &str, outcome: &str, path: &[&str]) {
        assert_eq!(self.transitions(task), path, "transitions of {task}");
        let runs = self.runs(task);
        let last = runs.last().expect("a run");
        assert_eq!(
            (last.0.as_str(), last.1.as_deref()),
            ("finished", Some(outcome)),
            "the run of {task}"
        );
    }

    /// The producers ran as these attempts, in order.
    fn assert_counts(&self, a: &[i64], b: &[i64], c: &[i64]) {
        assert_eq!(self.attempts_run("a"), a, "runs of a's producer");
        assert_eq!(self.attempts_run("b"), b, "runs of b's producer");
        assert_eq!(self.attempts_run("c"), c, "runs of c's producer");
    }

    fn file_bytes(&self, path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Producers left running (a failed test, or an engine that did not
        // terminate them) are group leaders: end their groups.
        for file in ["a", "b", "c", "alerts"] {
            for pid in self.pids_in(file) {
                if alive(pid)
                    && nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))).ok()
                        == Some(nix::unistd::Pid::from_raw(pid))
                {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    stage: String,
    attempt: i64,
    step: String,
    pgid: Option<i64>,
    verdict: Option<String>,
    defers: i64,
    artifact_sha256: Option<String>,
    gate_pass: Option<bool>,
}

/// A running `orch`, its output collected by threads.
struct Orch {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Orch {
    fn start(mut cmd: Command) -> Orch {
        let mut child = cmd.spawn().expect("start orch");
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        Orch {
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status.is_some()
    }

    /// SIGKILL, as a crash would.
    fn kill9(mut self) -> Out {
        assert!(
            !self.exited(),
            "orch ended before it could be killed:\n{}",
            self.wait()
        );
        self.child.kill().expect("kill orch");
        let out = self.wait();
        assert_eq!(out.signal(), Some(9), "orch was not killed:\n{out}");
        out
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    fn wait(mut self) -> Out {
        let deadline = Instant::now() + PATIENCE;
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.status = self.child.try_wait().ok().flatten();
                let so_far = self.status.map(|_| self.output().to_string());
                panic!(
                    "orch did not end within {PATIENCE:?}:\n{}",
                    so_far.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.output()
    }

    /// The output of an orch that has ended.
    fn output(&mut self) -> Out {
        let text = |h: Option<JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        Out {
            status: self.status.expect("orch has ended"),
            stdout: text(self.stdout.take()),
            stderr: text(self.stderr.take()),
        }
    }
}

impl Drop for Orch {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What an `orch` printed and how it ended.
struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Out {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "exit status of orch:\n{self}");
        assert!(!self.stderr.contains("panicked"), "orch panicked:\n{self}");
        self
    }

    /// Exit 2 with an error naming the store, and no panic.
    #[track_caller]
    fn expect_store_error(&self, db: &Path, words: &[&str]) -> &Self {
        self.expect_code(2);
        assert!(
            self.stderr.contains(&db.display().to_string()),
            "the error should name the store {}:\n{self}",
            db.display()
        );
        assert!(
            words.iter().any(|w| self.stderr.contains(w)),
            "the error should say one of {words:?}:\n{self}"
        );
        self
    }

    fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
            .collect()
    }

    fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        self.events_of("note")
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Polls `f` until it holds; fails (with orch's output) if orch ends first
/// or nothing happens for a minute.
fn wait_for(orch: &mut Orch, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if f() {
            return;
        }
        if orch.exited() {
            // One last look: the condition may have come true as it ended.
            if f() {
                return;
            }
            panic!("orch ended while waiting for {what}:\n{}", orch.output());
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, None | Some("Z") | Some("X"))
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A store left by a run killed while stage b's producer ran (its group,
/// still running, is returned): the usual starting point of a resume.
fn crashed_in_b(env: &Env, task: &str) -> i32 {
    env.steer("hold-b-1", "");
    let mut orch = env.spawn(task, &["--json"]);
    let pid = env.wait_in_flight(&mut orch, task, "b", 1);
    orch.kill9();
    pid
}

// ---------------------------------------------------------------------------
// SIGKILL in the middle of a stage
// ---------------------------------------------------------------------------

#[test]
fn sigkill_mid_stage_then_resume_reruns_only_the_interrupted_stage() {
    let env = Env::new("mid-stage");
    env.steer("hold-b-1", "");
    let mut orch = env.spawn("t", &["--json"]);
    let stale = env.wait_in_flight(&mut orch, "t", "b", 1);
    let crashed = orch.kill9();
    assert!(
        crashed.events_of("run-finished").is_empty(),
        "the run cannot have finished:\n{crashed}"
    );

    // What the crash left: the run unfinished, b's attempt started, and its
    // producer group still running without its orch.
    assert_eq!(env.runs("t"), [("running".to_string(), None)]);
    assert_eq!(env.steps("t", "a"), [(1, "done".into())]);
    assert_eq!(env.steps("t", "b"), [(1, "started".into())]);
    assert_eq!(env.transitions("t"), ["a -pass-> b"]);
    assert!(alive(stale), "the producer outlived orch's crash");

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(0);
    let started = &out.events_of("run-started")[0];
    assert_eq!(started["resumed"], true, "{out}");
    assert_eq!(started["run_id"], 1, "the same run continues: {out}");
    assert!(
        out.notes()
            .iter()
            .any(|n| n.contains("terminated the producer group") && n.contains(&stale.to_string())),
        "the stale group {stale} is reported as terminated:\n{out}"
    );
    assert!(
        !alive(stale),
        "the crashed attempt's producer was terminated"
    );
    assert!(
        !out.notes()
            .iter()
            .any(|n| n.contains("changed since") || n.contains("is gone")),
        "no artifact was touched:\n{out}"
    );

    // a ran once; b's interrupted attempt is run again as attempt 2; c once.
    env.assert_counts(&[1], &[1, 2], &[1]);
    assert_eq!(
        env.steps("t", "b"),
        [(1, "interrupted".into()), (2, "done".into())]
    );
    assert_eq!(env.runs("t").len(), 1);
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

#[test]
fn sigkill_during_a_resumed_run_resumes_again() {
    let env = Env::new("twice");
    env.steer("hold-b-1", "");
    env.steer("hold-b-2", "");
    let mut orch = env.spawn("t", &["--json"]);
    let first = env.wait_in_flight(&mut orch, "t", "b", 1);
    orch.kill9();

    let mut orch = env.spawn("t", &["--resume", "--json"]);
    let second = env.wait_in_flight(&mut orch, "t", "b", 2);
    assert!(!alive(first), "the first crash's producer was terminated");
    orch.kill9();

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(0);
    assert!(!alive(second), "the second crash's producer was terminated");
    env.assert_counts(&[1], &[1, 2, 3], &[1]);
    assert_eq!(
        env.steps("t", "b"),
        [
            (1, "interrupted".into()),
            (2, "interrupted".into()),
            (3, "done".into())
        ]
    );
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

#[test]
fn sigterm_mid_stage_interrupts_cleanly_and_resumes() {
    let env = Env::new("sigterm");
    env.steer("hold-b-1", "");
    let mut orch = env.spawn("t", &[]);
    let producer = env.wait_in_flight(&mut orch, "t", "b", 1);
    orch.signal(nix::sys::signal::Signal::SIGTERM);
    let out = orch.wait();
    out.expect_code(3);
    assert!(
        out.stdout.contains("--resume"),
        "says how to resume:\n{out}"
    );
    assert!(!alive(producer), "the producer's group was terminated");
    assert_eq!(env.runs("t"), [("interrupted".to_string(), None)]);
    assert_eq!(env.steps("t", "b"), [(1, "interrupted".into())]);

    env.run("t", &["--resume"]).expect_code(0);
    env.assert_counts(&[1], &[1, 2], &[1]);
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

#[test]
fn sigkill_during_a_retry_delay_resumes_with_the_next_attempt() {
    let env = Env::new("defer");
    // b's first run is a tool-error (an unmapped exit code): DEFERred, and
    // retried after one minute. orch is killed while it waits.
    env.steer("exit-b-1", "7");
    let mut orch = env.spawn("t", &["--json"]);
    wait_for(&mut orch, "b's attempt to be deferred", || {
        env.try_attempts("t")
            .map(|a| {
                a.iter().any(|a| {
                    a.stage == "b" && a.step == "done" && a.verdict.as_deref() == Some("tool-error")
                })
            })
            .unwrap_or(false)
    });
    orch.kill9();
    assert_eq!(env.transitions("t"), ["a -pass-> b"], "no transition yet");

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(0);
    env.assert_counts(&[1], &[1, 2], &[1]);
    let b: Vec<(i64, String, Option<String>, i64)> = env
        .attempts("t")
        .into_iter()
        .filter(|a| a.stage == "b")
        .map(|a| (a.attempt, a.step, a.verdict, a.defers))
        .collect();
    assert_eq!(
        b,
        [
            (1, "done".into(), Some("tool-error".into()), 0),
            (2, "done".into(), Some("PASS".into()), 1)
        ],
        "the retry keeps its place in the retry budget"
    );
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

// ---------------------------------------------------------------------------
// Each step boundary, through ORCH_FAILPOINT
// ---------------------------------------------------------------------------

/// Kills orch at `point` in `stage` (b: a runner, orch writes the artifact;
/// c: an agent, which writes its own), checks what the store recorded, then
/// resumes and checks that every producer ran exactly once (the stage killed
/// before its spawn runs once, on resume) and the task ended right.
fn boundary(point: &str, stage: &str) {
    let env = Env::new(&format!("{point}-{stage}"));
    let crashed = env
        .spawn_failpoint("t", &["--json"], &format!("{point}@{stage}"))
        .wait();
    assert_eq!(
        crashed.signal(),
        Some(9),
        "ORCH_FAILPOINT={point}@{stage} should kill orch:\n{crashed}"
    );
    let attempts = env.attempts("t");
    let last = attempts.last().expect("an attempt").clone();
    assert_eq!(last.stage, stage, "{attempts:?}");
    let expected_step = match point {
        "before-spawn" => "started",
        "after-exit" => "exited",
        "after-artifact" => "artifact",
        "after-gate" => "gated",
        _ => unreachable!(),
    };
    assert_eq!(last.step, expected_step, "{attempts:?}");
    match point {
        "before-spawn" => {
            assert_eq!(last.pgid, None, "nothing was spawned");
            assert!(env.runs_of(stage).is_empty(), "nothing was spawned");
        }
        _ => assert_eq!(env.runs_of(stage).len(), 1),
    }
    if point == "after-artifact" || point == "after-gate" {
        let path = env.task_dir("t").join(if stage == "b" {
            "b-report.md"
        } else {
            "review.md"
        });
        assert_eq!(
            last.artifact_sha256,
            Some(sha256_hex(&env.file_bytes(&path))),
            "the recorded digest is the artifact's"
        );
    }
    if point == "after-gate" {
        assert_eq!(last.gate_pass, Some(true));
    }
    assert!(
        !env.transitions("t")
            .iter()
            .any(|t| t.starts_with(&format!("{stage} "))),
        "no transition from {stage} yet: {:?}",
        env.transitions("t")
    );

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(0);
    assert!(
        out.notes().iter().all(|n| !n.contains("artifact")),
        "the artifacts are as recorded:\n{out}"
    );
    env.assert_counts(
        &[1],
        if stage == "b" && point == "before-spawn" {
            &[2]
        } else {
            &[1]
        },
        if stage == "c" && point == "before-spawn" {
            &[2]
        } else {
            &[1]
        },
    );
    let steps = env.steps("t", stage);
    if point == "before-spawn" {
        assert_eq!(steps, [(1, "interrupted".into()), (2, "done".into())]);
    } else {
        assert_eq!(
            steps,
            [(1, "done".into())],
            "the attempt was finished, not rerun"
        );
    }
    env.assert_finished("t", "success", &SUCCESS_PATH);
    if stage == "b" && point == "after-exit" {
        // The artifact was written on resume from the recorded exit and output.
        let report = std::fs::read_to_string(env.task_dir("t").join("b-report.md")).unwrap();
        assert!(report.starts_with("result: PASS\n"), "{report}");
        assert!(report.contains("b: run 1 (attempt 1) exits 0"), "{report}");
    }
}

#[test]
fn failpoint_before_spawn_of_a_runner() {
    boundary("before-spawn", "b");
}

#[test]
fn failpoint_after_exit_of_a_runner() {
    boundary("after-exit", "b");
}

#[test]
fn failpoint_after_artifact_of_a_runner() {
    boundary("after-artifact", "b");
}

#[test]
fn failpoint_after_gate_of_a_runner() {
    boundary("after-gate", "b");
}

#[test]
fn failpoint_before_spawn_of_an_agent() {
    boundary("before-spawn", "c");
}

#[test]
fn failpoint_after_exit_of_an_agent() {
    boundary("after-exit", "c");
}

#[test]
fn failpoint_after_artifact_of_an_agent() {
    boundary("after-artifact", "c");
}

#[test]
fn failpoint_after_gate_of_an_agent() {
    boundary("after-gate", "c");
}

#[test]
fn failed_gate_killed_before_its_rollback_takes_it_once() {
    let env = Env::new("gate-fail");
    env.steer("verdict-c-1", "CHANGES_REQUESTED");
    let crashed = env.spawn_failpoint("t", &["--json"], "after-gate@c").wait();
    assert_eq!(crashed.signal(), Some(9), "{crashed}");
    let c = env.attempts("t").pop().unwrap();
    assert_eq!((c.step.as_str(), c.gate_pass), ("gated", Some(false)));

    env.run("t", &["--resume", "--json"]).expect_code(0);
    // The rollback (budget 1) was taken once: b and c ran again, then done.
    env.assert_counts(&[1], &[1, 2], &[1, 2]);
    env.assert_finished(
        "t",
        "success",
        &[
            "a -pass-> b",
            "b -pass-> c",
            "c -fail-> b",
            "b -pass-> c",
            "c -pass-> done",
        ],
    );
}

#[test]
fn fail_closed_killed_before_its_transition_alerts_once() {
    let env = Env::new("exhausted");
    env.steer("exit-a-1", "1"); // a FAILs; a has no `fail`: exhausted, alert
    let crashed = env.spawn_failpoint("t", &["--json"], "after-gate@a").wait();
    assert_eq!(crashed.signal(), Some(9), "{crashed}");
    assert!(env.alerts().is_empty(), "no alert before the transition");

    env.run("t", &["--resume", "--json"]).expect_code(1);
    assert_eq!(env.alerts().len(), 1, "{:?}", env.alerts());
    env.assert_counts(&[1], &[], &[]);
    env.assert_finished("t", "failure", &["a -exhausted-> failed"]);

    // Run again without flags: the recorded outcome, nothing runs.
    let again = env.run("t", &[]);
    again.expect_code(1);
    assert!(again.stdout.contains("already finished"), "{again}");
    assert_eq!(env.alerts().len(), 1);
    env.assert_counts(&[1], &[], &[]);
}

#[test]
fn sigkill_during_an_alert_delivers_it_on_resume() {
    let env = Env::new("alert");
    env.steer("exit-a-1", "1"); // a FAILs; a has no `fail`: exhausted, alert
    env.steer("hold-alert-1", "");
    let mut orch = env.spawn("t", &["--json"]);
    wait_for(&mut orch, "the alert to start", || !env.alerts().is_empty());
    orch.kill9();
    let alert_statuses = || -> Vec<String> {
        env.read(async |store| {
            let run = store.latest_run("t").await?.expect("a run");
            Ok(store
                .alerts(run.id)
                .await?
                .into_iter()
                .map(|a| a.status.to_string())
                .collect())
        })
        .expect("read alerts")
    };
    assert_eq!(
        alert_statuses(),
        ["pending"],
        "the alert's delivery is unknown"
    );

    // Whether the interrupted delivery got through is unknown: it is made
    // again, once, to completion. The transition is not taken again.
    env.run("t", &["--resume", "--json"]).expect_code(1);
    assert_eq!(env.alerts().len(), 2, "{:?}", env.alerts());
    assert_eq!(alert_statuses(), ["ok"]);
    env.assert_counts(&[1], &[], &[]);
    env.assert_finished("t", "failure", &["a -exhausted-> failed"]);
}

// ---------------------------------------------------------------------------
// Each step boundary without a hook
// ---------------------------------------------------------------------------
//
// These tests used to stop orch at each boundary by having a producer leave a
// named pipe where orch would next open a file, so that orch blocked there.
// That block was a bug (issue 11, item 3): only a regular file is an
// artifact now, opened without blocking, and a pipe is a gate FAIL
// (tests/hardening/taskdir.rs). The same boundaries are crossed by a crash
// in the failpoint_* tests above.

// ---------------------------------------------------------------------------
// Concurrent runs of one task
// ---------------------------------------------------------------------------

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[track_caller]
fn expect_busy(out: &Out, holder_pid: u32) {
    out.expect_code(3);
    for word in [
        "already running".to_string(),
        format!("pid {holder_pid} "),
        hostname(),
        "since".to_string(),
    ] {
        assert!(
            out.stderr.contains(&word),
            "the refusal names the holder ({word:?}):\n{out}"
        );
    }
}

#[test]
fn a_second_run_of_a_live_task_exits_3_naming_the_holder() {
    let env = Env::new("live");
    env.steer("hold-b-1", "");
    env.steer("hold-b-2", "");
    let mut first = env.spawn("t", &["--json"]);
    env.wait_in_flight(&mut first, "t", "b", 1);

    for flags in [&[][..], &["--resume"], &["--restart"]] {
        let out = env.run("t", flags);
        expect_busy(&out, first.pid());
    }
    // The refusals changed nothing.
    assert!(!first.exited(), "the live run goes on");
    assert_eq!(env.runs("t"), [("running".to_string(), None)]);
    assert_eq!(env.steps("t", "b"), [(1, "started".into())]);
    env.assert_counts(&[1], &[1], &[]);

    // The holder dies: its lock is taken over by the next run.
    first.kill9();
    let mut second = env.spawn("t", &["--resume", "--json"]);
    env.wait_in_flight(&mut second, "t", "b", 2);
    let out = env.run("t", &["--resume"]);
    expect_busy(&out, second.pid());

    env.unsteer("hold-b-2");
    second.wait().expect_code(0);
    env.assert_counts(&[1], &[1, 2], &[1]);
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

/// Starts the commands each from its own thread, released together, so
/// that they start as close together as can be.
fn start_together(cmds: Vec<Command>) -> Vec<Orch> {
    let gate = std::sync::Barrier::new(cmds.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = cmds
            .into_iter()
            .map(|cmd| {
                let gate = &gate;
                s.spawn(move || {
                    gate.wait();
                    Orch::start(cmd)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Starts `n` runs of one task at once (b held open); returns the winner,
/// still running, and the refused.
fn start_at_once(env: &Env, n: usize) -> (Orch, Vec<Out>) {
    env.steer("hold-b-1", "");
    let mut all = start_together((0..n).map(|_| env.command("t", &["--json"])).collect());
    let deadline = Instant::now() + PATIENCE;
    while all.iter_mut().map(|o| o.exited()).filter(|e| *e).count() < n - 1 {
        assert!(
            Instant::now() < deadline,
            "all runs but one should have been refused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let winner_at = all.iter_mut().position(|o| !o.exited()).unwrap();
    let winner = all.remove(winner_at);
    (winner, all.into_iter().map(Orch::wait).collect())
}

#[test]
fn simultaneous_starts_of_one_task_make_one_run() {
    let env = Env::new("simultaneous");
    let (mut winner, refused) = start_at_once(&env, 4);
    for out in refused {
        out.expect_code(3);
        assert!(out.stderr.contains("already running"), "{out}");
    }
    env.wait_in_flight(&mut winner, "t", "b", 1);
    env.unsteer("hold-b-1");
    winner.wait().expect_code(0);
    assert_eq!(env.runs("t").len(), 1);
    env.assert_counts(&[1], &[1], &[1]);
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

#[test]
fn simultaneous_refusals_name_the_holder() {
    // The lock is taken, then the holder is written into it: a contender
    // that reads it in between has no holder to name.
    for round in 0..50 {
        let env = Env::new(&format!("simultaneous-holder-{round}"));
        let (mut winner, refused) = start_at_once(&env, 8);
        for out in refused {
            expect_busy(&out, winner.pid());
        }
        env.wait_in_flight(&mut winner, "t", "b", 1);
        env.unsteer("hold-b-1");
        winner.wait().expect_code(0);
    }
}

/// Runs tasks `x0..x3` at once, each with its own counters, and checks they
/// all succeed.
fn run_four_at_once(env: &Env) {
    let counters: Vec<PathBuf> = (0..4)
        .map(|i| env.root.join(format!("counters-x{i}")))
        .collect();
    let cmds = counters
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            std::fs::create_dir_all(dir).unwrap();
            env.command_counting_in(&format!("x{i}"), dir, &["--json"])
        })
        .collect();
    let running = start_together(cmds)
        .into_iter()
        .zip(counters)
        .enumerate()
        .map(|(i, (orch, dir))| (i, dir, orch));
    for (i, counters, orch) in running {
        let out = orch.wait();
        out.expect_code(0);
        for stage in ["a", "b", "c"] {
            let runs = std::fs::read_to_string(counters.join(stage)).unwrap_or_default();
            assert_eq!(runs.lines().count(), 1, "x{i}: runs of {stage}");
        }
        env.assert_finished(&format!("x{i}"), "success", &SUCCESS_PATH);
    }
}

#[test]
fn concurrent_runs_of_different_tasks_share_the_store() {
    let env = Env::new("share");
    env.run("first", &[]).expect_code(0);
    run_four_at_once(&env);
}

#[test]
fn concurrent_runs_of_different_tasks_on_a_fresh_state_dir() {
    for round in 0..10 {
        let env = Env::new(&format!("fresh-{round}"));
        run_four_at_once(&env);
    }
}

// ---------------------------------------------------------------------------
// Finished tasks, unfinished runs, restarts
// ---------------------------------------------------------------------------

#[test]
fn a_finished_task_run_again_reports_its_outcome() {
    let env = Env::new("finished");
    env.run("t", &[]).expect_code(0);
    for flags in [&[][..], &["--resume"]] {
        let out = env.run("t", flags);
        out.expect_code(0);
        assert!(
            out.stdout.contains("already finished") && out.stdout.contains("success"),
            "{out}"
        );
    }
    env.assert_counts(&[1], &[1], &[1]);
    assert_eq!(env.runs("t").len(), 1);
}

#[test]
fn restart_starts_a_new_run_and_archives_the_old_one() {
    let env = Env::new("restart");
    env.run("t", &[]).expect_code(0);
    let out = env.run("t", &["--restart", "--json"]);
    out.expect_code(0);
    assert_eq!(out.events_of("run-started")[0]["resumed"], false, "{out}");
    assert_eq!(
        env.runs("t"),
        [
            ("finished".to_string(), Some("success".to_string())),
            ("finished".to_string(), Some("success".to_string()))
        ]
    );
    env.assert_counts(&[1, 1], &[1, 1], &[1, 1]);
    let archived = env.state.join("archive/t/run-1/a-report.md");
    assert!(archived.is_file(), "{} is archived", archived.display());
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

#[test]
fn an_unfinished_run_needs_resume_or_restart() {
    let env = Env::new("unfinished");
    crashed_in_b(&env, "t");
    let out = env.run("t", &[]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("--resume") && out.stderr.contains("--restart"),
        "{out}"
    );
    env.assert_counts(&[1], &[1], &[]);
    assert_eq!(env.runs("t"), [("running".to_string(), None)]);

    env.run("t", &["--resume"]).expect_code(0);
    env.assert_counts(&[1], &[1, 2], &[1]);
}

#[test]
fn restart_of_a_crashed_run_terminates_its_producer_group() {
    let env = Env::new("restart-crashed");
    let stale = crashed_in_b(&env, "t");
    assert!(alive(stale));
    let out = env.run("t", &["--restart", "--json"]);
    out.expect_code(0);
    assert!(
        !alive(stale),
        "the crashed attempt's producer (pid {stale}) must not outlive the restart: it would \
         write into the new run's task directory\n{out}"
    );
    assert_eq!(
        env.runs("t"),
        [
            ("abandoned".to_string(), None),
            ("finished".to_string(), Some("success".to_string()))
        ]
    );
    env.assert_counts(&[1, 1], &[1, 1], &[1]);
}

// ---------------------------------------------------------------------------
// A pipeline changed since the run began
// ---------------------------------------------------------------------------

fn edit_pipeline(env: &Env, from: &str, to: &str) {
    let text = std::fs::read_to_string(env.pipeline()).unwrap();
    assert!(text.contains(from), "{from:?} is in the fixture");
    std::fs::write(env.pipeline(), text.replacen(from, to, 1)).unwrap();
}

#[test]
fn resume_refuses_a_changed_pipeline_and_names_what_changed() {
    let env = Env::new("changed");
    crashed_in_b(&env, "t");
    let count_b = "    command \"sh\" \"count.sh\" \"b\"\n    env COUNTERS=\"{var.counters}\"\n    timeout \"2m\"";
    edit_pipeline(&env, count_b, &count_b.replace("\"2m\"", "\"3m\""));
    edit_pipeline(&env, "fail \"b\" budget=1", "fail \"b\" budget=2");

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(2);
    for word in [
        "changed",
        "runner \"count-b\"",
        "stage \"c\"",
        "--allow-changed-pipeline",
    ] {
        assert!(out.stderr.contains(word), "names {word:?}:\n{out}");
    }
    assert!(
        !out.stderr.contains("stage \"a\""),
        "names only what changed:\n{out}"
    );
    // Nothing ran, nothing was recorded.
    env.assert_counts(&[1], &[1], &[]);
    assert_eq!(env.runs("t"), [("running".to_string(), None)]);
    assert_eq!(env.steps("t", "b"), [(1, "started".into())]);

    let out = env.run("t", &["--resume", "--allow-changed-pipeline", "--json"]);
    out.expect_code(0);
    assert!(
        out.notes().iter().any(|n| n.contains("changed pipeline")
            && n.contains("runner \"count-b\"")
            && n.contains("stage \"c\"")),
        "the resume says what changed:\n{out}"
    );
    env.assert_counts(&[1], &[1, 2], &[1]);
    env.assert_finished("t", "success", &SUCCESS_PATH);
}

#[test]
fn resume_refuses_a_pipeline_changed_only_in_comments() {
    let env = Env::new("changed-comment");
    crashed_in_b(&env, "t");
    let mut text = std::fs::read_to_string(env.pipeline()).unwrap();
    text.push_str("// an afterthought\n");
    std::fs::write(env.pipeline(), text).unwrap();
    let out = env.run("t", &["--resume"]);
    out.expect_code(2);
    assert!(out.stderr.contains("comments"), "{out}");
    env.assert_counts(&[1], &[1], &[]);
}

// ---------------------------------------------------------------------------
// Recorded artifact digests
// ---------------------------------------------------------------------------

#[test]
fn resume_reports_artifacts_that_changed_or_vanished() {
    let env = Env::new("digests");
    env.steer("hold-c-1", "");
    let mut orch = env.spawn("t", &["--json"]);
    env.wait_in_flight(&mut orch, "t", "c", 1);
    orch.kill9();
    let a = env.task_dir("t").join("a-report.md");
    let b = env.task_dir("t").join("b-report.md");
    let mut text = std::fs::read_to_string(&a).unwrap();
    text.push_str("edited after the fact\n");
    std::fs::write(&a, text).unwrap();
    std::fs::remove_file(&b).unwrap();

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(0);
    let notes = out.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("a-report.md") && n.contains("changed since attempt 1 of a")),
        "the changed artifact is reported:\n{out}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("b-report.md") && n.contains("is gone")),
        "the vanished artifact is reported:\n{out}"
    );
    env.assert_counts(&[1], &[1], &[1, 2]);

    // The same report reaches a person (plain output).
    let env = Env::new("digests-plain");
    crashed_in_b(&env, "t");
    std::fs::write(env.task_dir("t").join("a-report.md"), "result: PASS\n").unwrap();
    let out = env.run("t", &["--resume"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("a-report.md") && out.stdout.contains("changed since"),
        "{out}"
    );
}

/// The gates of a run's output, as `(stage, pass, reason)`.
fn gates(out: &Out) -> Vec<(String, bool, String)> {
    out.events_of("gate")
        .iter()
        .map(|g| {
            (
                g["stage"].as_str().unwrap_or_default().to_string(),
                g["pass"] == true,
                g["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Kills orch once it recorded the artifact of stage `stage`'s first
/// attempt, before its gate: the usual start of a resume that gates it.
fn crashed_before_the_gate_of(env: &Env, task: &str, stage: &str) {
    let crashed = env
        .spawn_failpoint(task, &["--json"], &format!("after-artifact@{stage}"))
        .wait();
    assert_eq!(crashed.signal(), Some(9), "{crashed}");
    assert_eq!(env.steps(task, stage), [(1, "artifact".into())]);
}

#[test]
fn resume_fails_the_gate_of_an_artifact_changed_or_gone_before_it_was_gated() {
    // a's runner fails (exit 1: FAIL, which orch writes into a-report.md);
    // orch is killed after recording the artifact, before the gate; then
    // the report is rewritten to pass, or removed. The gate never reads
    // what orch did not record: it fails closed, saying why.
    for (task, tamper, said) in [
        (
            "changed",
            Some("result: PASS\n"),
            "changed since attempt 1 of a recorded it",
        ),
        ("gone", None, "recorded by attempt 1 of a is gone"),
    ] {
        let env = Env::new(&format!("ungated-{task}"));
        env.steer("exit-a-1", "1");
        crashed_before_the_gate_of(&env, task, "a");
        let report = env.task_dir(task).join("a-report.md");
        match tamper {
            Some(text) => std::fs::write(&report, text).unwrap(),
            None => std::fs::remove_file(&report).unwrap(),
        }

        let out = env.run(task, &["--resume", "--json"]);
        out.expect_code(1);
        let reason = format!("artifact {} {said}", report.display());
        assert!(out.notes().contains(&reason), "reported:\n{out}");
        assert_eq!(gates(&out), [("a".to_string(), false, reason)], "{out}");
        env.assert_finished(task, "failure", &["a -exhausted-> failed"]);
        env.assert_counts(&[1], &[], &[]);
    }
}

#[test]
fn resume_fails_the_gate_of_an_artifact_that_appeared_after_none_was_found() {
    // c's agent writes no review; orch records that (no digest) and is
    // killed before the gate; then an approving review appears.
    let env = Env::new("ungated-appeared");
    env.steer("nowrite-c-1", "");
    crashed_before_the_gate_of(&env, "t", "c");
    let review = env.task_dir("t").join("review.md");
    std::fs::write(&review, "verdict: APPROVED\n").unwrap();

    let out = env.run("t", &["--resume", "--json"]);
    out.expect_code(0);
    let reason = format!(
        "artifact {} appeared after attempt 1 of c found none",
        review.display()
    );
    let gates = gates(&out);
    assert_eq!(gates[0], ("c".to_string(), false, reason), "{out}");
    // The failed gate rolls back to b; the second review (written by the
    // agent) passes.
    env.assert_counts(&[1], &[1, 2], &[1, 2]);
    env.assert_finished(
        "t",
        "success",
        &[
            "a -pass-> b",
            "b -pass-> c",
            "c -fail-> b",
            "b -pass-> c",
            "c -pass-> done",
        ],
    );
}

// ---------------------------------------------------------------------------
// Bad stores: truncated, emptied, foreign, newer, locked
// ---------------------------------------------------------------------------

/// A crashed run's store folded into its main file (no WAL beside it once
/// closed), and the bytes of that file.
fn crashed_store(env: &Env) -> Vec<u8> {
    crashed_in_b(env, "t");
    {
        let c = env.db().unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    for side in ["orch.db-wal", "orch.db-shm"] {
        assert!(!env.state.join(side).exists(), "{side} is folded in");
    }
    env.file_bytes(&env.db_path())
}

#[test]
fn a_truncated_store_is_a_clear_error() {
    let env = Env::new("truncated");
    let good = crashed_store(&env);
    let page: usize = env
        .db()
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert!(good.len() >= 4 * page, "a store of several pages");
    for len in [
        10,
        100,
        1000,
        page,
        2 * page,
        good.len() / 2,
        good.len() - page,
    ] {
        std::fs::write(env.db_path(), &good[..len]).unwrap();
        for flags in [&["--resume"][..], &[], &["--restart"]] {
            let out = env.run("t", flags);
            out.expect_store_error(
                &env.db_path(),
                &["damaged", "not an orch run store", "unreadable"],
            );
            for side in ["orch.db-wal", "orch.db-shm"] {
                let _ = std::fs::remove_file(env.state.join(side));
            }
        }
        env.assert_counts(&[1], &[1], &[]);
    }
    // A cut into the unused tail of the last page loses nothing (SQLite's
    // integrity check passes): the run may go on, but it must go on right.
    std::fs::write(env.db_path(), &good[..good.len() - 1]).unwrap();
    let out = env.run("t", &["--resume"]);
    if out.code() == Some(2) {
        out.expect_store_error(&env.db_path(), &["damaged", "unreadable"]);
    } else {
        out.expect_code(0);
        env.assert_counts(&[1], &[1, 2], &[1]);
        env.assert_finished("t", "success", &SUCCESS_PATH);
    }
}

#[test]
fn resume_with_an_emptied_store_does_not_start_over() {
    let env = Env::new("emptied");
    crashed_store(&env);
    // A store truncated to nothing is, to SQLite, a new empty database; and
    // a store that is gone holds no run. Either way there is nothing to
    // resume, while the task's directory says a run was under way.
    std::fs::write(env.db_path(), b"").unwrap();
    let out = env.run("t", &["--resume"]);
    out.expect_code(2);
    env.assert_counts(&[1], &[1], &[]);
    std::fs::remove_file(env.db_path()).unwrap();
    let out = env.run("t", &["--resume"]);
    out.expect_code(2);
    env.assert_counts(&[1], &[1], &[]);
}

#[test]
fn a_foreign_file_is_a_clear_error_and_left_alone() {
    let env = Env::new("foreign-file");
    std::fs::create_dir_all(&env.state).unwrap();
    let junk = "this is not a database\n".repeat(400);
    std::fs::write(env.db_path(), &junk).unwrap();
    for flags in [&[][..], &["--resume"]] {
        env.run("t", flags)
            .expect_store_error(&env.db_path(), &["not an orch run store"]);
    }
    assert_eq!(env.file_bytes(&env.db_path()), junk.as_bytes());
    env.assert_counts(&[], &[], &[]);
}

/// An SQLite database of some other program, in the default rollback mode.
fn foreign_sqlite(env: &Env, user_version: i64, table: &str) -> Vec<u8> {
    std::fs::create_dir_all(&env.state).unwrap();
    {
        let c = Connection::open(env.db_path()).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO {table} (body) VALUES ('not orch''s');
             PRAGMA user_version = {user_version};"
        ))
        .unwrap();
    }
    env.file_bytes(&env.db_path())
}

#[test]
fn a_foreign_sqlite_database_is_a_clear_error() {
    let env = Env::new("foreign-sqlite");
    foreign_sqlite(&env, 0, "notes");
    for flags in [&[][..], &["--resume"]] {
        env.run("t", flags)
            .expect_store_error(&env.db_path(), &["not an orch run store"]);
    }
    env.assert_counts(&[], &[], &[]);
    let c = env.db().unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(tables, ["notes"], "no orch table was added");

    // One that happens to carry orch's schema version but not its tables.
    let env = Env::new("foreign-sqlite-v1");
    foreign_sqlite(&env, 1, "notes");
    for flags in [&[][..], &["--resume"]] {
        env.run("t", flags).expect_store_error(
            &env.db_path(),
            &["not an orch run store", "damaged", "unreadable"],
        );
    }
    env.assert_counts(&[], &[], &[]);
}

#[test]
fn a_foreign_sqlite_database_is_left_untouched() {
    let env = Env::new("foreign-untouched");
    let before = foreign_sqlite(&env, 0, "notes");
    env.run("t", &[])
        .expect_store_error(&env.db_path(), &["not an orch run store"]);
    assert!(
        env.file_bytes(&env.db_path()) == before,
        "orch changed a database that is not its own"
    );
}

#[test]
fn a_newer_schema_is_a_clear_error() {
    let env = Env::new("newer");
    crashed_store(&env);
    env.db()
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let before = env.file_bytes(&env.db_path());
    for flags in [&["--resume"][..], &[], &["--restart"]] {
        let out = env.run("t", flags);
        out.expect_store_error(&env.db_path(), &["schema version 99"]);
        assert!(out.stderr.contains("upgrade orch"), "{out}");
    }
    assert!(
        env.file_bytes(&env.db_path()) == before,
        "a newer store is left as it was"
    );
    env.assert_counts(&[1], &[1], &[]);
}

/// Holds the store's write lock from this process; `exclusive` also keeps
/// readers out (SQLite's exclusive locking mode).
fn lock_store(env: &Env, exclusive: bool) -> Connection {
    let c = env.db().unwrap();
    if exclusive {
        c.pragma_update(None, "locking_mode", "EXCLUSIVE").unwrap();
    }
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    if exclusive {
        // In WAL mode the exclusive lock is taken by the first write.
        c.execute_batch("CREATE TABLE held (x)").unwrap();
    }
    c
}

#[test]
fn a_locked_store_is_a_clear_error_and_resumable_after() {
    for exclusive in [false, true] {
        let env = Env::new(&format!("locked-{exclusive}"));
        let stale = crashed_in_b(&env, "t");
        let holder = lock_store(&env, exclusive);
        let out = env.run("t", &["--resume"]);
        out.expect_store_error(&env.db_path(), &["locked"]);
        assert!(alive(stale), "nothing was done");
        holder.execute_batch("ROLLBACK").unwrap();
        drop(holder);

        assert_eq!(env.runs("t"), [("running".to_string(), None)]);
        assert_eq!(env.steps("t", "b"), [(1, "started".into())]);
        env.run("t", &["--resume"]).expect_code(0);
        env.assert_counts(&[1], &[1, 2], &[1]);
        env.assert_finished("t", "success", &SUCCESS_PATH);
    }
}

#[test]
fn a_store_locked_mid_attempt_stops_orch_and_resumes_right() {
    let env = Env::new("locked-mid");
    env.steer("hold-b-1", "");
    let mut orch = env.spawn("t", &["--json"]);
    env.wait_in_flight(&mut orch, "t", "b", 1);
    // b ends while the store is locked: its exit cannot be recorded.
    let holder = lock_store(&env, false);
    env.unsteer("hold-b-1");
    let out = orch.wait();
    out.expect_store_error(&env.db_path(), &["locked"]);
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    // The exit was never recorded, so b runs again; a does not.
    env.run("t", &["--resume"]).expect_code(0);
    env.assert_counts(&[1], &[1, 2], &[1]);
    env.assert_finished("t", "success", &SUCCESS_PATH);
}
