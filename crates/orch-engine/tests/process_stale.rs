//! Recorded groups whose leader is gone: identified by the token their
//! members carry. Alone in its test binary: no other attempt of this
//! process may sweep the members left behind by a dropped run.

mod common;

use common::*;
use orch_engine::process::{self, GroupIdentity, StaleGroup};
use std::os::unix::process::CommandExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_leader_is_gone_is_named_by_its_members_token() {
    process::become_subreaper();
    let dir = Dir::new("stale-members");
    // The leader exits, leaving a member that ignores SIGTERM; the long
    // grace keeps the run busy terminating its group.
    let script = r#"
sh -c 'trap "" TERM; echo $$ >"$D/member.tmp"; mv "$D/member.tmp" "$D/member.pid"; exec sleep 60' &
i=0
while [ ! -f "$D/member.pid" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
exit 0
"#;
    let mut spec = spec(&dir.0, script);
    spec.invocation.grace = Duration::from_secs(60);
    let (handle, slot) = start(spec);
    let member = pid_in(dir.0.join("member.pid")).await;
    eventually("the attempt to be spawned", || {
        slot.lock().unwrap().is_some()
    })
    .await;
    let id = slot.lock().unwrap().clone().unwrap();
    let leader = id.pgid as i32;
    eventually("the leader to be reaped", || stat(leader).is_none()).await;
    let grace = Duration::from_millis(200);

    let r = process::terminate_recorded_group(&id, grace).await;
    assert!(
        matches!(r, StaleGroup::NotOurs(_)),
        "a live attempt's group: {r:?}"
    );
    handle.abort();
    let _ = handle.await;
    let other = GroupIdentity {
        token: format!("{}-other", id.token),
        ..id.clone()
    };
    let r = process::terminate_recorded_group(&other, grace).await;
    assert!(matches!(r, StaleGroup::NotOurs(_)), "another token: {r:?}");
    assert!(alive(member), "a refused identity killed the member");

    assert_eq!(
        process::terminate_recorded_group(&id, grace).await,
        StaleGroup::Terminated
    );
    eventually("the member to die", || !alive(member)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_pgid_without_a_token_is_left_alone() {
    process::become_subreaper();
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .env_remove(process::TOKEN_VAR)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(!process::terminate_stale_group(pid, Duration::from_millis(100)).await);
    assert!(alive(pid as i32));
    let _ = child.kill();
    let _ = child.wait();
}
