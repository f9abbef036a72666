//! Spawning and supervising one producer process, and making sure nothing it
//! started outlives it, while many attempts run at once in one `orch`.
//!
//! Each producer runs in its own process group. On timeout (or idle timeout,
//! or interruption) the group gets SIGTERM, then SIGKILL after the grace.
//! `orch` makes itself a child subreaper, so a descendant that escaped the
//! group with `setsid` is reparented to `orch` when its parent dies. Every
//! attempt's producer carries a supervision token in its environment
//! (inherited by its descendants); after an attempt, the children of `orch`
//! that carry its token are its escapees: they are killed and reported as a
//! leak, and the escapees of other attempts are left to them (see `reap`).

mod identity;
mod reap;
mod unix;

use nix::sys::signal::Signal;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

pub use identity::{terminate_recorded_group, terminate_stale_group, GroupIdentity, StaleGroup};
pub use unix::TOKEN_VAR;

use orch_lang::invocation::Invocation;

/// What to run, and where its output goes.
#[derive(Debug, Clone)]
pub struct Spec {
    pub invocation: Invocation,
    /// Where stdout and stderr go, as written but for the secrets this
    /// redacts (from the log and the tail alike).
    pub log: PathBuf,
    pub redactor: crate::redact::Redactor,
}

/// How the process ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
    IdleTimedOut,
    SpawnFailed(String),
    /// `orch` itself was asked to stop.
    Interrupted,
}

impl Exit {
    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::TimedOut => "timed out".to_string(),
            Exit::IdleTimedOut => "idle timeout (no output)".to_string(),
            Exit::SpawnFailed(e) => format!("could not start: {e}"),
            Exit::Interrupted => "interrupted".to_string(),
        }
    }

    pub(crate) fn code(&self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(*c),
            _ => None,
        }
    }
}

/// A process found alive after the attempt's group was killed.
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    pub pid: i32,
    pub command: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub(crate) duration: Duration,
    /// The last lines of output.
    pub tail: Vec<String>,
    pub leaks: Vec<Leak>,
}

/// Lines of output kept for the artifact body.
pub(crate) const TAIL_LINES: usize = 50;

/// Makes this process a child subreaper (Linux), so escaped descendants of
/// producers are reparented to it and can be found.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become a child subreaper: {e}; escaped processes may go unnoticed");
    }
}

/// Runs `spec` to its end. `on_spawn` gets the identity of the process group
/// as soon as the process exists (so that it can be recorded before anything
/// else happens, and the group told from a later one with the same id);
/// `cancel` turning true interrupts the attempt.
///
/// The log is created at `spec.log` (truncated), never through a symbolic
/// link in its last component and never blocking on a named pipe; a log in
/// a task directory is created by the engine beneath it instead (see
/// [`run_with_log`]).
pub async fn run(
    spec: &Spec,
    on_spawn: impl FnOnce(&GroupIdentity),
    cancel: watch::Receiver<bool>,
) -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&spec.log)
        .map_err(|e| format!("cannot create log {}: {e}", spec.log.display()));
    run_with_log(spec, log, on_spawn, cancel).await
}

/// [`run`], with its log already opened (`spec.log` names it in messages);
/// `Err(reason)`: the log could not be created, and nothing is spawned.
pub(crate) async fn run_with_log(
    spec: &Spec,
    log: Result<std::fs::File, String>,
    on_spawn: impl FnOnce(&GroupIdentity),
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let started = Instant::now();
    let finish = |exit: Exit, tail: Vec<String>, leaks: Vec<Leak>| Outcome {
        exit,
        duration: started.elapsed(),
        tail,
        leaks,
    };
    let mut log = match log {
        Ok(f) => f,
        Err(reason) => return finish(Exit::SpawnFailed(reason), Vec::new(), Vec::new()),
    };
    let attempt = reap::Attempt::register();
    let mut child = match spawn(spec, &attempt) {
        Ok(c) => c,
        Err(msg) => {
            let _ = writeln!(log, "orch: could not start {msg}");
            return finish(Exit::SpawnFailed(msg), Vec::new(), Vec::new());
        }
    };
    let pgid = child.id().unwrap_or(0);
    let pg = i32::try_from(pgid).unwrap_or(0);
    on_spawn(&identity::capture(pgid, attempt.token()));

    let inv = &spec.invocation;
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), inv.stdin.clone()) {
        tokio::spawn(async move {
            // A producer that does not read its prompt is its own business.
            let _ = stdin.write_all(&data).await;
        });
    }
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, tx.clone(), spec.redactor.stream()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, tx.clone(), spec.redactor.stream()));
    }
    drop(tx);

    let mut output = Output {
        rx,
        open: true,
        log,
        tail: Tail::default(),
    };
    let exit = supervise(inv, &attempt, &mut child, pg, &mut output, &mut cancel).await;
    attempt.leader_reaped();
    // The leader is gone; whatever is left of its group goes too.
    attempt.terminate_group(pg, inv.grace).await;
    // Output still buffered in the pipes belongs to the log.
    output.drain(Duration::from_millis(200)).await;
    let leaks = attempt.reap_escapees(pg).await;
    drop(attempt);
    finish(exit, output.tail.lines(), leaks)
}

/// Starts the producer in a process group of its own, carrying the
/// attempt's supervision token; `Err`: why it could not start, redacted.
fn spawn(spec: &Spec, attempt: &reap::Attempt) -> Result<tokio::process::Child, String> {
    let inv = &spec.invocation;
    let Some((program, args)) = inv.argv.split_first() else {
        return Err("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&inv.cwd)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .env(TOKEN_VAR, attempt.token())
        .process_group(0)
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    attempt.spawn(&mut cmd).map_err(|e| {
        // A missing working directory fails the spawn as ENOENT too: say
        // which of the two is missing.
        let msg = match std::fs::metadata(&inv.cwd) {
            Err(cwd_err) => format!(
                "the working directory {} cannot be used: {cwd_err}",
                inv.cwd.display()
            ),
            Ok(m) if !m.is_dir() => format!(
                "the working directory {} is not a directory",
                inv.cwd.display()
            ),
            Ok(_) => format!("`{program}`: {e}"),
        };
        spec.redactor.redact(&msg)
    })
}

/// The producer's output as it arrives: into the log and the tail.
struct Output {
    rx: mpsc::Receiver<Vec<u8>>,
    /// Whether a pipe may still send.
    open: bool,
    log: std::fs::File,
    tail: Tail,
}

impl Output {
    /// Takes one chunk (or notes that the pipes closed); true if it was output.
    fn take(&mut self, chunk: Option<Vec<u8>>) -> bool {
        match chunk {
            Some(bytes) => {
                let _ = self.log.write_all(&bytes);
                self.tail.push(&bytes);
                true
            }
            None => {
                self.open = false;
                false
            }
        }
    }

    /// Reads what is left in the pipes, for at most `limit`.
    async fn drain(&mut self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.open {
            tokio::select! {
                chunk = self.rx.recv() => { self.take(chunk); }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
}

/// Waits for the leader's exit while logging its output; stops it at the
/// timeout, the idle timeout or a cancel.
async fn supervise(
    inv: &Invocation,
    attempt: &reap::Attempt,
    child: &mut tokio::process::Child,
    pg: i32,
    output: &mut Output,
    cancel: &mut watch::Receiver<bool>,
) -> Exit {
    let deadline = tokio::time::Instant::now() + inv.timeout;
    let mut last_output = tokio::time::Instant::now();
    loop {
        let idle_deadline = inv
            .idle_timeout
            .map(|d| last_output + d)
            .unwrap_or(deadline);
        let stopped = tokio::select! {
            chunk = output.rx.recv(), if output.open => {
                if output.take(chunk) {
                    last_output = tokio::time::Instant::now();
                }
                continue;
            }
            status = child.wait() => {
                return match status {
                    Ok(s) => exit_of(s),
                    Err(e) => Exit::SpawnFailed(format!("waiting for the process: {e}")),
                };
            }
            _ = tokio::time::sleep_until(deadline) => Exit::TimedOut,
            _ = tokio::time::sleep_until(idle_deadline), if inv.idle_timeout.is_some() => {
                Exit::IdleTimedOut
            }
            _ = cancelled(cancel) => Exit::Interrupted,
        };
        stop_leader(attempt, child, pg, inv.grace).await;
        return stopped;
    }
}

/// SIGTERM to the group, and the leader reaped by its `Child::wait`
/// (SIGKILL to the group if it has not exited after `grace`). The rest of
/// the group is left to `Attempt::terminate_group`.
async fn stop_leader(
    attempt: &reap::Attempt,
    child: &mut tokio::process::Child,
    pgid: i32,
    grace: Duration,
) {
    attempt.signal_group(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        attempt.signal_group(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if *rx.borrow() {
        return;
    }
    while rx.changed().await.is_ok() {
        if *rx.borrow() {
            return;
        }
    }
    // The sender is gone: nobody can cancel any more.
    std::future::pending::<()>().await
}

/// Reads one of the producer's pipes, its secrets redacted: bytes that may
/// begin a secret split across two reads wait for the next read (or the
/// end of the pipe).
async fn pump(
    mut r: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Vec<u8>>,
    mut redact: crate::redact::Stream,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let rest = redact.finish();
                if !rest.is_empty() {
                    let _ = tx.send(rest).await;
                }
                return;
            }
            Ok(n) => {
                // Sent even when all of it is held back: it is output, for
                // the idle timeout.
                if tx.send(redact.push(&buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn exit_of(s: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Signal(0),
    }
}

/// The last lines of a byte stream, kept in bounded memory.
#[derive(Default)]
struct Tail {
    buf: VecDeque<u8>,
}

impl Tail {
    const MAX: usize = 64 * 1024;

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
        let excess = self.buf.len().saturating_sub(Self::MAX);
        self.buf.drain(..excess);
    }

    fn lines(&self) -> Vec<String> {
        let (a, b) = self.buf.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let skip = lines.len().saturating_sub(TAIL_LINES);
        lines[skip..].iter().map(|s| s.to_string()).collect()
    }
}
