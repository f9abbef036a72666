//! Process groups as the store records them, and the clean-up of groups an
//! earlier `orch` left running (`--resume`, `--restart`): a recorded group
//! is signalled only while it is still the one that `orch` started.

use std::time::Duration;

use orch_store::GroupRecord;

use crate::process::{self, GroupIdentity, StaleGroup};

/// The record of a group identity, for the store.
pub(crate) fn record_of(id: &GroupIdentity) -> GroupRecord {
    GroupRecord {
        pgid: i64::from(id.pgid),
        leader_start: i64::try_from(id.leader_start).ok(),
        boot_id: Some(id.boot_id.clone()),
        host: Some(id.host.clone()),
        token: Some(id.token.clone()),
    }
}

fn identity_of(g: &GroupRecord) -> Option<GroupIdentity> {
    Some(GroupIdentity {
        pgid: u32::try_from(g.pgid).ok()?,
        leader_start: u64::try_from(g.leader_start?).ok()?,
        boot_id: g.boot_id.clone()?,
        host: g.host.clone()?,
        token: g.token.clone()?,
    })
}

/// What became of a recorded group.
pub(crate) enum Cleanup {
    Terminated,
    /// Nothing of it was left.
    Gone,
    /// Left alone: the id may name someone else's processes now.
    LeftAlone(String),
    /// Signalled, but some of it is still running: why.
    Survived(String),
}

/// Terminates a group recorded by an earlier `orch`, if it is still ours.
pub(crate) async fn terminate_recorded(g: &GroupRecord, grace: Duration) -> Cleanup {
    match identity_of(g) {
        Some(id) => match process::terminate_recorded_group(&id, grace).await {
            StaleGroup::Terminated => Cleanup::Terminated,
            StaleGroup::Gone => Cleanup::Gone,
            StaleGroup::NotOurs(reason) => Cleanup::LeftAlone(reason),
            StaleGroup::Survived(reason) => Cleanup::Survived(reason),
        },
        // Recorded by an orch that kept only the number (store version 1).
        None => match u32::try_from(g.pgid) {
            Ok(pgid) if process::terminate_stale_group(pgid, grace).await => Cleanup::Terminated,
            _ => Cleanup::Gone,
        },
    }
}
