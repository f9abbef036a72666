//! Which attempt a process belongs to, and reaping each attempt's escapees
//! while other attempts of the same `orch` run.
//!
//! Every attempt is registered, from before its spawn to after its last
//! sweep, with a token that its producer (and every descendant that keeps
//! its environment) carries in `ORCH_SUPERVISION_TOKEN`. `orch` is a child
//! subreaper, so an escapee is eventually one of `orch`'s children; the
//! token says whose. The registry also holds the pid of each attempt's
//! leader until tokio has reaped it, so that no sweep `waitpid`s a leader
//! and steals the exit status its `Child::wait` is waiting for.
//!
//! Sweeps, spawns and the signals sent on pids read from `/proc` all happen
//! under the registry lock (never across an `.await`): a child seen by a
//! sweep cannot be reaped, and its pid reused, by another sweep before the
//! signal meant for it is sent.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::unix::{self, Tag};
use super::Leak;

/// How long an attempt keeps looking for escapees that are still on their
/// way to becoming `orch`'s children (an escapee's parent outside the
/// group, itself just killed, or a group that would not die).
const ESCAPEE_WINDOW: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

struct Entry {
    token: String,
    /// The leader's pid while tokio has not reaped it.
    leader: Option<i32>,
    /// The attempt's process group, once spawned.
    pgid: Option<i32>,
}

type Registry = BTreeMap<u64, Entry>;

static REGISTRY: Mutex<Registry> = Mutex::new(BTreeMap::new());
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn registry() -> MutexGuard<'static, Registry> {
    // The registry stays consistent whatever panicked while holding it:
    // every update is a single insert, remove or field write.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_live_leader(reg: &Registry, pid: i32) -> bool {
    reg.values().any(|e| e.leader == Some(pid))
}

/// Whether `token` is the token of an attempt of this process that is
/// still registered.
pub(crate) fn is_live_token(token: &str) -> bool {
    registry().values().any(|e| e.token == token)
}

/// One attempt, registered for as long as this value lives.
pub(crate) struct Attempt {
    id: u64,
    token: String,
}

impl Attempt {
    pub(crate) fn register() -> Attempt {
        let id = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Unique within this process (the counter), and across processes
        // and reboots (the pid with the start time).
        let token = format!("{}-{id}-{nanos}", std::process::id());
        registry().insert(
            id,
            Entry {
                token: token.clone(),
                leader: None,
                pgid: None,
            },
        );
        Attempt { id, token }
    }

    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// Spawns the leader under the registry lock, so that no sweep sees it
    /// before it is registered as a leader.
    pub(super) fn spawn(
        &self,
        cmd: &mut tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        let mut reg = registry();
        let child = cmd.spawn()?;
        if let Some(e) = reg.get_mut(&self.id) {
            let pid = child.id().and_then(|p| i32::try_from(p).ok());
            e.leader = pid;
            e.pgid = pid;
        }
        Ok(child)
    }

    /// The leader has been reaped by its `Child::wait`.
    pub(crate) fn leader_reaped(&self) {
        if let Some(e) = registry().get_mut(&self.id) {
            e.leader = None;
        }
    }

    /// Signals the attempt's own group, unless its number is now the group
    /// of another attempt's unreaped leader: once our leader is reaped and
    /// its group empty, the number is free for the next spawn.
    pub(crate) fn signal_group(&self, pgid: i32, sig: Signal) {
        let reg = registry();
        if !self.taken(&reg, pgid) {
            unix::signal_group(pgid, sig);
        }
    }

    /// Whether `pgid` is the group of another attempt's unreaped leader.
    fn taken(&self, reg: &Registry, pgid: i32) -> bool {
        reg.iter()
            .any(|(id, e)| *id != self.id && e.leader == Some(pgid))
    }

    /// Whether the attempt's own group still has members.
    fn group_left(&self, pgid: i32) -> bool {
        unix::group_exists(pgid) && !self.taken(&registry(), pgid)
    }

    /// SIGTERM to the attempt's group, SIGKILL after `grace` if anything
    /// is left.
    pub(crate) async fn terminate_group(&self, pgid: i32, grace: Duration) {
        terminate(pgid, grace, |sig| self.signal_group(pgid, sig)).await
    }

    /// After the attempt's leader is reaped and its group terminated: kills
    /// the attempt's escapees (and their groups) and reports them.
    pub(crate) async fn reap_escapees(&self, pgid: i32) -> Vec<Leak> {
        let mut leaks = Vec::new();
        let until = Instant::now() + ESCAPEE_WINDOW;
        loop {
            let busy = self.sweep(&mut leaks) || self.group_left(pgid);
            if !busy || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        leaks
    }

    /// One pass over our children: reaps the zombies that are ours to
    /// reap, kills this attempt's escapees. True while there is work left:
    /// an escapee was found alive, or one killed is not reaped yet (its own
    /// children are reparented to us when it exits, and must be seen).
    fn sweep(&self, leaks: &mut Vec<Leak>) -> bool {
        let reg = registry();
        let me = std::process::id() as i32;
        let own_group = nix::unistd::getpgrp().as_raw();
        // An escapee without a token (it scrubbed its environment) cannot
        // be attributed: with another attempt running it may be that
        // attempt's, still in use, so it is only killed by an attempt that
        // ends while no other runs (it is then the escapee of this attempt
        // or of one already finished).
        let alone = reg.len() == 1;
        let mine_prefix = format!("{me}-");
        let mut found = false;
        for pid in unix::children() {
            let Some(st) = unix::stat(pid) else { continue };
            if !reapable(&reg, pid, &st, me, own_group) {
                continue;
            }
            if st.is_zombie() {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                continue;
            }
            match unix::tag(pid) {
                Tag::Token(t) if t == self.token => {}
                Tag::Token(t) if reg.values().any(|e| e.token == t) => continue,
                Tag::Token(t) if t.starts_with(&mine_prefix) => {
                    // An escapee of an attempt of ours that has finished
                    // its sweeps: nobody else will kill it.
                    tracing::warn!(pid, token = %t, "killing a late escapee of a finished attempt");
                    kill_escapee(&reg, pid, &st, own_group);
                    continue;
                }
                _ if !alone => continue,
                _ => {}
            }
            found = true;
            let command = unix::cmdline(pid);
            kill_escapee(&reg, pid, &st, own_group);
            if !leaks.iter().any(|l| l.pid == pid) {
                leaks.push(Leak { pid, command });
            }
        }
        found
            || leaks
                .iter()
                .any(|l| unix::stat(l.pid).is_some_and(|s| s.ppid == me))
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        registry().remove(&self.id);
    }
}

/// Whether a child of ours may be killed or `waitpid`ed by a sweep: not an
/// attempt's unreaped leader (its `Child::wait` owns it), and not in
/// `orch`'s own process group (a helper `orch` started itself, whose owner
/// waits for it; escapees are never there).
fn reapable(reg: &Registry, pid: i32, st: &unix::Stat, me: i32, own_group: i32) -> bool {
    st.ppid == me && st.pgrp != own_group && !is_live_leader(reg, pid)
}

/// SIGKILL to an escapee and to its own group (where it took its
/// descendants), unless that group is `orch`'s or an attempt's.
fn kill_escapee(reg: &Registry, pid: i32, st: &unix::Stat, own_group: i32) {
    let pg = st.pgrp;
    if pg > 1 && pg != own_group && !reg.values().any(|e| e.pgid == Some(pg)) {
        unix::signal_group(pg, Signal::SIGKILL);
    }
    unix::signal(pid, Signal::SIGKILL);
}

/// Reaps the zombie children that are ours to reap (see `reapable`).
pub(crate) fn reap_zombies() {
    let reg = registry();
    let me = std::process::id() as i32;
    let own_group = nix::unistd::getpgrp().as_raw();
    for pid in unix::children() {
        if let Some(st) = unix::stat(pid) {
            if st.is_zombie() && reapable(&reg, pid, &st, me, own_group) {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
    }
}

/// SIGTERM through `signal`, SIGKILL after `grace` if the group is still
/// there; returns when it is gone, or a second after the SIGKILL.
pub(crate) async fn terminate(pgid: i32, grace: Duration, signal: impl Fn(Signal)) {
    if !unix::group_exists(pgid) {
        return;
    }
    signal(Signal::SIGTERM);
    let until = Instant::now() + grace;
    loop {
        reap_zombies();
        if !unix::group_exists(pgid) {
            return;
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    signal(Signal::SIGKILL);
    for _ in 0..100 {
        reap_zombies();
        if !unix::group_exists(pgid) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
