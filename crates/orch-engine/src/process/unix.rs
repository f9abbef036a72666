//! The platform side of supervision: reading `/proc` (Linux) and sending
//! signals.
//!
//! Every process read here can vanish (or be replaced by another with the
//! same pid) between two reads, so every read is fallible and yields
//! `None` rather than an error: the callers decide what "unknown" means,
//! and they always decide in favour of not signalling.

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::sync::OnceLock;

/// The name of the environment variable carrying an attempt's supervision
/// token.
pub const TOKEN_VAR: &str = "ORCH_SUPERVISION_TOKEN";

/// The fields of `/proc/PID/stat` supervision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    /// Field 22: clock ticks since boot at which the process started. With
    /// the pid and the boot, it names one process for good.
    pub(crate) start: u64,
}

impl Stat {
    pub(crate) fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and `)`, so fields are counted
/// from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after) = text.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 (state); field N is `fields[N - 3]`.
    let state = fields.first()?.chars().next()?;
    Some(Stat {
        state,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

pub(crate) fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// What a process's environment says about who started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tag {
    Token(String),
    /// The environment was read and holds no token.
    Absent,
    /// The environment could not be read (gone, or not ours to read).
    Unreadable,
}

/// The supervision token in a process's initial environment
/// (`/proc/PID/environ`). A zombie's environment reads as empty.
pub(crate) fn tag(pid: i32) -> Tag {
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(bytes) => tag_of_environ(&bytes),
        Err(_) => Tag::Unreadable,
    }
}

pub(crate) fn tag_of_environ(bytes: &[u8]) -> Tag {
    let prefix = format!("{TOKEN_VAR}=");
    bytes
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|v| Tag::Token(String::from_utf8_lossy(v).into_owned()))
        .unwrap_or(Tag::Absent)
}

pub(crate) fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The pids of this process's children, from every thread's `children`
/// list (a child belongs to the thread that forked it; a reparented orphan
/// to some thread of the subreaper). Without those lists (a kernel built
/// without them), every process whose parent is this one.
pub(crate) fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let mut any_list = false;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for task in dir.flatten() {
            let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            any_list = true;
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    if !any_list {
        let me = std::process::id() as i32;
        out.extend(all_pids().filter(|p| stat(*p).is_some_and(|s| s.ppid == me)));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Every pid in `/proc`.
pub(crate) fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flat_map(|d| d.flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
}

/// The processes (zombies included) whose process group is `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<(i32, Stat)> {
    all_pids()
        .filter_map(|p| Some((p, stat(p)?)))
        .filter(|(_, s)| s.pgrp == pgid)
        .collect()
}

/// This boot's id, which tells a pid of this boot from the same number
/// recorded before a reboot.
pub(crate) fn boot_id() -> Option<String> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .clone()
}

pub(crate) fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok()?.into_string().ok()
}

/// Whether any process (zombies included) is in group `pgid`.
pub(crate) fn group_exists(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None) != Err(Errno::ESRCH)
}

pub(crate) fn signal_group(pgid: i32, sig: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

pub(crate) fn signal(pid: i32, sig: Signal) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (a) b) (c) S 1 4240 4240 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 123456 2277376 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                ppid: 1,
                pgrp: 4240,
                start: 123456
            })
        );
    }

    #[test]
    fn a_truncated_stat_is_unknown() {
        assert_eq!(parse_stat("4242 (sh) S 1 4240"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn the_token_is_found_among_environ_entries() {
        let env = b"A=1\0ORCH_SUPERVISION_TOKEN=1-2-3\0B=ORCH_SUPERVISION_TOKEN=x\0";
        assert_eq!(tag_of_environ(env), Tag::Token("1-2-3".into()));
        assert_eq!(tag_of_environ(b"A=1\0B=2\0"), Tag::Absent);
        assert_eq!(tag_of_environ(b""), Tag::Absent);
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("our own stat");
        assert_eq!(s.pgrp, nix::unistd::getpgrp().as_raw());
        assert!(s.start > 0);
        assert!(boot_id().is_some());
    }
}
