//! Spawning and supervising one producer process, and making sure nothing it
//! started outlives it.
//!
//! Each producer runs in its own process group. On timeout (or idle timeout,
//! or interruption) the group gets SIGTERM, then SIGKILL after the grace.
//! `orch` makes itself a child subreaper, so a descendant that escaped the
//! group with `setsid` is reparented to `orch` when its parent dies; after
//! every attempt the remaining children of `orch` are such escapees, and are
//! killed and reported as a leak.

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use orch_lang::invocation::Invocation;

/// What to run, and where its output goes.
#[derive(Debug, Clone)]
pub struct Spec {
    pub invocation: Invocation,
    /// Where stdout and stderr go, as written.
    pub log: PathBuf,
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

    pub fn code(&self) -> Option<i32> {
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
    pub duration: Duration,
    /// The last lines of output.
    pub tail: Vec<String>,
    pub leaks: Vec<Leak>,
}

/// Lines of output kept for the artifact body.
pub const TAIL_LINES: usize = 50;

/// Makes this process a child subreaper (Linux), so escaped descendants of
/// producers are reparented to it and can be found.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become a child subreaper: {e}; escaped processes may go unnoticed");
    }
}

/// Runs `spec` to its end. `on_spawn` gets the process group id as soon as
/// the process exists (so that it can be recorded before anything else
/// happens); `cancel` turning true interrupts the attempt.
pub async fn run(
    spec: &Spec,
    on_spawn: impl FnOnce(u32),
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let started = Instant::now();
    let finish = |exit: Exit, tail: Vec<String>, leaks: Vec<Leak>| Outcome {
        exit,
        duration: started.elapsed(),
        tail,
        leaks,
    };
    let mut log = match std::fs::File::create(&spec.log) {
        Ok(f) => f,
        Err(e) => {
            return finish(
                Exit::SpawnFailed(format!("cannot create log {}: {e}", spec.log.display())),
                Vec::new(),
                Vec::new(),
            )
        }
    };
    let inv = &spec.invocation;
    let Some((program, args)) = inv.argv.split_first() else {
        return finish(
            Exit::SpawnFailed("empty command".into()),
            Vec::new(),
            Vec::new(),
        );
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&inv.cwd)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("`{program}`: {e}");
            let _ = writeln!(log, "orch: could not start {msg}");
            return finish(Exit::SpawnFailed(msg), Vec::new(), Vec::new());
        }
    };
    let pgid = child.id().unwrap_or(0);
    on_spawn(pgid);

    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), inv.stdin.clone()) {
        tokio::spawn(async move {
            // A producer that does not read its prompt is its own business.
            let _ = stdin.write_all(&data).await;
        });
    }
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, tx.clone()));
    }
    drop(tx);

    let mut tail = Tail::default();
    let deadline = tokio::time::Instant::now() + inv.timeout;
    let mut last_output = tokio::time::Instant::now();
    let mut pipes_open = true;
    let exit = loop {
        let idle_deadline = inv
            .idle_timeout
            .map(|d| last_output + d)
            .unwrap_or(deadline);
        tokio::select! {
            chunk = rx.recv(), if pipes_open => match chunk {
                Some(bytes) => {
                    let _ = log.write_all(&bytes);
                    tail.push(&bytes);
                    last_output = tokio::time::Instant::now();
                }
                None => pipes_open = false,
            },
            status = child.wait() => {
                break match status {
                    Ok(s) => exit_of(s),
                    Err(e) => Exit::SpawnFailed(format!("waiting for the process: {e}")),
                };
            }
            _ = tokio::time::sleep_until(deadline) => {
                terminate_group(pgid, inv.grace).await;
                let _ = child.wait().await;
                break Exit::TimedOut;
            }
            _ = tokio::time::sleep_until(idle_deadline), if inv.idle_timeout.is_some() => {
                terminate_group(pgid, inv.grace).await;
                let _ = child.wait().await;
                break Exit::IdleTimedOut;
            }
            _ = cancelled(&mut cancel) => {
                terminate_group(pgid, inv.grace).await;
                let _ = child.wait().await;
                break Exit::Interrupted;
            }
        }
    };
    // The leader is gone; whatever is left of its group goes too.
    terminate_group(pgid, inv.grace).await;
    // Output still buffered in the pipes belongs to the log.
    let drain_until = tokio::time::Instant::now() + Duration::from_millis(200);
    while pipes_open {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(bytes) => {
                    let _ = log.write_all(&bytes);
                    tail.push(&bytes);
                }
                None => pipes_open = false,
            },
            _ = tokio::time::sleep_until(drain_until) => break,
        }
    }
    let leaks = reap_escapees().await;
    finish(exit, tail.lines(), leaks)
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

async fn pump(mut r: impl AsyncRead + Unpin, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(buf[..n].to_vec()).await.is_err() {
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

fn group_alive(pgid: u32) -> bool {
    pgid != 0 && killpg(Pid::from_raw(pgid as i32), None) != Err(Errno::ESRCH)
}

/// SIGTERM to the group, SIGKILL after `grace` if anything is left.
pub async fn terminate_group(pgid: u32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    let group = Pid::from_raw(pgid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        reap_zombies();
        if !group_alive(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
    for _ in 0..100 {
        reap_zombies();
        if !group_alive(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills a producer group recorded by an earlier `orch` (for `--resume` and
/// `--restart`); true when something was left to kill.
pub async fn terminate_recorded(group: &orch_store::GroupRecord, grace: Duration) -> bool {
    match u32::try_from(group.pgid) {
        Ok(pgid) if pgid > 1 => terminate_stale_group(pgid, grace).await,
        _ => false,
    }
}

/// Kills a group left over by a crashed `orch` (for `--resume`).
pub async fn terminate_stale_group(pgid: u32, grace: Duration) -> bool {
    let alive = group_alive(pgid);
    if alive {
        terminate_group(pgid, grace).await;
    }
    alive
}

/// Our children, from `/proc` (Linux): pid, state and command line.
fn children() -> Vec<(i32, char, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command name, which may itself hold spaces or ')'.
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let mut fields = after.split_whitespace();
            let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
            let ppid: i32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(me);
            if ppid != me {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .split('\0')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            out.push((pid, state, cmdline));
        }
    }
    out
}

/// Reaps children of ours that have exited (reparented descendants).
fn reap_zombies() {
    for (pid, state, _) in children() {
        if state == 'Z' {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// After an attempt, any live child of `orch` is a descendant that escaped
/// the attempt's process group: kill it (and its own group) and report it.
/// Runs while no other producer of this process is alive.
pub async fn reap_escapees() -> Vec<Leak> {
    let mut leaks: Vec<Leak> = Vec::new();
    for _ in 0..200 {
        let live: Vec<_> = children().into_iter().filter(|c| c.1 != 'Z').collect();
        reap_zombies();
        if live.is_empty() {
            break;
        }
        for (pid, _, command) in live {
            let p = Pid::from_raw(pid);
            if let Ok(pgid) = nix::unistd::getpgid(Some(p)) {
                if pgid != nix::unistd::getpgrp() && pgid.as_raw() > 1 {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
            }
            let _ = kill(p, Signal::SIGKILL);
            if !leaks.iter().any(|l| l.pid == pid) {
                leaks.push(Leak { pid, command });
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reap_zombies();
    leaks
}
