//! Supervision of real producer processes (small `sh` scripts): escapees
//! reaped by their own attempt only, with many attempts at once in one
//! process, and recorded groups signalled only while they are still ours.
//!
//! Every test runs in this one process, concurrently, as the engine's
//! attempts do; each first makes the process a child subreaper.

mod common;

use common::*;
use orch_engine::process::{self, GroupIdentity, StaleGroup};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_escapee_is_reported_as_a_leak_and_killed() {
    process::become_subreaper();
    let dir = Dir::new("leak");
    let o = start(spec(&dir.0, &format!("{ESCAPE}\nexit 0")))
        .0
        .await
        .unwrap();
    let esc = read_pid(&dir.0.join("esc.pid")).expect("the escapee recorded its pid");
    assert_eq!(o.exit, process::Exit::Code(0));
    assert_eq!(leak_pids(&o), vec![esc], "{:?}", o.leaks);
    assert!(o.leaks[0].command.contains("sleep"), "{:?}", o.leaks);
    assert!(!alive(esc), "the escapee {esc} survived its attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_carries_the_token_of_its_identity() {
    process::become_subreaper();
    let dir = Dir::new("token");
    let script = format!("echo \"token=${}\"", process::TOKEN_VAR);
    let (handle, slot) = start(spec(&dir.0, &script));
    let o = handle.await.unwrap();
    let id = slot.lock().unwrap().clone().expect("on_spawn was called");
    assert_eq!(o.tail, vec![format!("token={}", id.token)]);
    assert!(id.token.starts_with(&format!("{}-", std::process::id())));
    assert!(id.leader_start > 0 && !id.boot_id.is_empty() && !id.host.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_reaps_its_own_escapee_and_not_that_of_a_running_one() {
    process::become_subreaper();
    let dir = Dir::new("two");
    let (da, db) = (dir.sub("a"), dir.sub("b"));
    // B escapes and stays until told to go; A ends once B's escapee exists.
    let (b, b_id) = start(spec(&db, &format!("{DAEMONIZE}\n{WAIT_GO}\nexit 0")));
    let b_esc = pid_in(db.join("esc.pid")).await;
    let a_script = format!("{DAEMONIZE}\nexit 0");
    let a = start(spec(&da, &a_script)).0.await.unwrap();
    let a_esc = read_pid(&da.join("esc.pid")).expect("A's escapee recorded its pid");

    assert_eq!(leak_pids(&a), vec![a_esc], "{:?}", a.leaks);
    assert!(!alive(a_esc), "A's escapee {a_esc} survived A");
    let b_leader = b_id.lock().unwrap().clone().expect("B was spawned").pgid as i32;
    assert!(alive(b_leader), "B's leader {b_leader} did not survive A");
    assert!(alive(b_esc), "B's escapee {b_esc} did not survive A");
    // B's escapee was one of our children when A swept them.
    assert_eq!(stat(b_esc).map(|s| s.1), Some(std::process::id() as i32));

    std::fs::write(db.join("go"), "").unwrap();
    let b = b.await.unwrap();
    assert_eq!(b.exit, process::Exit::Code(0));
    assert_eq!(leak_pids(&b), vec![b_esc], "{:?}", b.leaks);
    assert!(!alive(b_esc), "B's escapee {b_esc} survived B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_attempts_each_report_exactly_their_own_leak() {
    process::become_subreaper();
    let dir = Dir::new("fifty");
    let mut runs = Vec::new();
    for i in 0..50 {
        let d = dir.sub(&i.to_string());
        // Half escape from the leader, half from a subshell gone at once.
        let escape = if i % 2 == 0 { ESCAPE } else { DAEMONIZE };
        runs.push((d.clone(), start(spec(&d, &format!("{escape}\nexit 0"))).0));
    }
    let mut escapees = Vec::new();
    for (d, handle) in runs {
        let o = handle.await.unwrap();
        let esc = read_pid(&d.join("esc.pid")).expect("the escapee recorded its pid");
        assert_eq!(o.exit, process::Exit::Code(0), "{}", d.display());
        assert_eq!(leak_pids(&o), vec![esc], "{}: {:?}", d.display(), o.leaks);
        escapees.push(esc);
    }
    let survivors: Vec<i32> = escapees.into_iter().filter(|p| alive(*p)).collect();
    assert!(survivors.is_empty(), "escapees survived: {survivors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_group_is_signalled_only_while_it_is_still_ours() {
    process::become_subreaper();
    let dir = Dir::new("recorded");
    let (handle, slot) = start(spec(&dir.0, "exec sleep 60"));
    eventually("the attempt to be spawned", || {
        slot.lock().unwrap().is_some()
    })
    .await;
    let id = slot.lock().unwrap().clone().unwrap();
    let leader = id.pgid as i32;
    let grace = Duration::from_millis(200);

    let refused = [
        GroupIdentity {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..id.clone()
        },
        GroupIdentity {
            host: format!("not-{}", id.host),
            ..id.clone()
        },
        GroupIdentity {
            leader_start: id.leader_start + 1,
            ..id.clone()
        },
    ];
    for other in &refused {
        let r = process::terminate_recorded_group(other, grace).await;
        assert!(matches!(r, StaleGroup::NotOurs(_)), "{other:?}: {r:?}");
        assert!(alive(leader), "{other:?} killed the live group");
    }
    // The group of an attempt of this very process is not a stale group.
    let r = process::terminate_recorded_group(&id, grace).await;
    assert!(matches!(r, StaleGroup::NotOurs(_)), "{r:?}");
    assert!(alive(leader));

    // Once no attempt of this process owns the group (its run dropped, as
    // when an `orch` crashes), the matching identity terminates it.
    handle.abort();
    let _ = handle.await;
    assert!(alive(leader), "dropping the run killed its leader");
    assert_eq!(
        process::terminate_recorded_group(&id, grace).await,
        StaleGroup::Terminated
    );
    eventually("the leader to die", || !alive(leader)).await;
}
