//! Naming a process group for good, so that a group id read back from the
//! store is signalled only if it is still the group `orch` started.
//!
//! A pgid alone is a number the kernel hands out again once the group is
//! empty and its leader reaped; after a crash and a `--resume`, or a
//! reboot, it may name anybody's processes.

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

use super::reap;
use super::unix::{self, Tag};

/// Who a producer's process group is: recorded at spawn, checked before any
/// signal is sent on the recorded id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIdentity {
    /// The group id, which is also the leader's pid.
    pub pgid: u32,
    /// The leader's start time, in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`); 0 if it could not be read.
    pub leader_start: u64,
    /// `/proc/sys/kernel/random/boot_id` at spawn.
    pub boot_id: String,
    pub host: String,
    /// The attempt's supervision token, in the environment of every member
    /// of the group that did not scrub it.
    pub token: String,
}

/// What [`terminate_recorded_group`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleGroup {
    /// The group was ours and has been signalled.
    Terminated,
    /// Nothing is left of the group.
    Gone,
    /// The id may name someone else's processes: nothing was signalled.
    NotOurs(String),
    /// Signalled, but members of the group are still running: why.
    Survived(String),
}

/// Reads the identity of the group `pid` leads (just spawned, not reaped).
pub(crate) fn capture(pid: u32, token: &str) -> GroupIdentity {
    let leader_start = i32::try_from(pid)
        .ok()
        .and_then(unix::stat)
        .map(|s| s.start)
        .unwrap_or(0);
    GroupIdentity {
        pgid: pid,
        leader_start,
        boot_id: unix::boot_id().unwrap_or_default(),
        host: unix::hostname().unwrap_or_default(),
        token: token.to_string(),
    }
}

enum Verdict {
    Ours,
    Gone,
    NotOurs(String),
}

/// Whether `id` still names the group that was recorded. Anything that
/// cannot be established is a refusal.
fn verify(id: &GroupIdentity) -> Verdict {
    let pgid = match i32::try_from(id.pgid) {
        Ok(p) if p > 1 => p,
        _ => return Verdict::NotOurs(format!("{} is not a process group id", id.pgid)),
    };
    match unix::hostname() {
        Some(h) if h == id.host => {}
        Some(h) => {
            return Verdict::NotOurs(format!("recorded on host {:?}, this is {h:?}", id.host))
        }
        None => return Verdict::NotOurs("cannot read this host's name".into()),
    }
    match unix::boot_id() {
        Some(b) if b == id.boot_id => {}
        Some(_) => {
            return Verdict::NotOurs(format!("recorded during another boot ({:?})", id.boot_id))
        }
        None => return Verdict::NotOurs("cannot read this boot's id".into()),
    }
    if reap::is_live_token(&id.token) {
        return Verdict::NotOurs("it is the group of an attempt running in this process".into());
    }
    if let Some(leader) = unix::stat(pgid) {
        // The pid of the leader is taken while the leader exists (zombie
        // included): same pid, same start, same boot is the same process,
        // and the group number is its own.
        if leader.start != id.leader_start {
            return Verdict::NotOurs(format!(
                "process {pgid} started at tick {}, the recorded leader at tick {}",
                leader.start, id.leader_start
            ));
        }
        return if unix::group_exists(pgid) {
            Verdict::Ours
        } else {
            Verdict::Gone
        };
    }
    // The leader is gone. A group id cannot be handed out again while the
    // group has a member, so one member carrying the recorded token names
    // the group; a member carrying another token means it is not ours.
    let members = unix::group_members(pgid);
    if members.is_empty() {
        return Verdict::Gone;
    }
    let mut verified = false;
    for (pid, _) in members {
        match unix::tag(pid) {
            Tag::Token(t) if !id.token.is_empty() && t == id.token => verified = true,
            Tag::Token(_) => {
                return Verdict::NotOurs(format!(
                    "its member {pid} carries another supervision token"
                ))
            }
            Tag::Absent | Tag::Unreadable => {}
        }
    }
    if verified {
        Verdict::Ours
    } else {
        Verdict::NotOurs("its leader is gone and no member carries the recorded token".into())
    }
}

/// Terminates the group recorded as `id` (SIGTERM, SIGKILL after `grace`)
/// if, and only if, it is still that group: same host, same boot, and the
/// leader alive with the recorded start time or, the leader gone, members
/// carrying the recorded token. For groups left by an earlier `orch`
/// (`--resume`, `--restart`): never signals an unrelated group.
pub async fn terminate_recorded_group(id: &GroupIdentity, grace: Duration) -> StaleGroup {
    match verify(id) {
        Verdict::Ours => {}
        Verdict::Gone => return StaleGroup::Gone,
        Verdict::NotOurs(reason) => return StaleGroup::NotOurs(reason),
    }
    let pgid = id.pgid as i32;
    unix::signal_group(pgid, Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if !unix::group_exists(pgid) {
            return StaleGroup::Terminated;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The group may have ended during the grace, and its id been reused.
    match verify(id) {
        Verdict::Ours => {
            unix::signal_group(pgid, Signal::SIGKILL);
            for _ in 0..50 {
                if live_members(pgid).is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let left = live_members(pgid);
            if !left.is_empty() {
                return StaleGroup::Survived(format!(
                    "its members {} are still running after SIGKILL",
                    pids(&left)
                ));
            }
        }
        Verdict::Gone => {}
        // Members are left that cannot be shown to be the group's (the
        // leader gone, none carrying the token): no SIGKILL for them.
        Verdict::NotOurs(reason) => {
            let left = live_members(pgid);
            if !left.is_empty() {
                return StaleGroup::Survived(format!(
                    "its members {} are still running after SIGTERM and were not sent SIGKILL: {reason}",
                    pids(&left)
                ));
            }
        }
    }
    StaleGroup::Terminated
}

/// The members of group `pgid` that are not zombies.
fn live_members(pgid: i32) -> Vec<i32> {
    unix::group_members(pgid)
        .into_iter()
        .filter(|(_, s)| !s.is_zombie())
        .map(|(p, _)| p)
        .collect()
}

fn pids(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Transitional, for an attempt recorded with a bare pgid (before the
/// store keeps a [`GroupIdentity`]): terminates the group only if its
/// members carry one supervision token, of an `orch` process that is no
/// longer running and of no attempt of this one. A group without a token
/// (started by an older `orch`, or not by `orch` at all) is left alone.
/// True if the group was signalled.
pub async fn terminate_stale_group(pgid: u32, grace: Duration) -> bool {
    let Ok(pg) = i32::try_from(pgid) else {
        return false;
    };
    if pg <= 1 {
        return false;
    }
    let mut token: Option<String> = None;
    for (pid, _) in unix::group_members(pg) {
        if let Tag::Token(t) = unix::tag(pid) {
            match &token {
                Some(seen) if *seen != t => return false,
                _ => token = Some(t),
            }
        }
    }
    let Some(token) = token else { return false };
    let orch_pid = token.split('-').next().and_then(|p| p.parse::<i32>().ok());
    match orch_pid {
        Some(p) if p != std::process::id() as i32 && unix::stat(p).is_none() => {}
        _ => return false,
    }
    let id = GroupIdentity {
        pgid,
        leader_start: unix::stat(pg).map(|s| s.start).unwrap_or(0),
        boot_id: unix::boot_id().unwrap_or_default(),
        host: unix::hostname().unwrap_or_default(),
        token,
    };
    terminate_recorded_group(&id, grace).await == StaleGroup::Terminated
}
