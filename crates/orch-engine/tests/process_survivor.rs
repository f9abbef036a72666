//! A recorded group that is signalled but not ended: the clean-up says so
//! instead of reporting it terminated. Alone in its test binary: no other
//! attempt of this process may sweep the member left behind.

mod common;

use common::*;
use orch_engine::process::{self, GroupIdentity, StaleGroup};
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// The leader carries the token and dies of SIGTERM; its member scrubbed
/// the token from its environment and ignores SIGTERM.
const LEADER: &str = r#"
env -u ORCH_SUPERVISION_TOKEN sh -c 'trap "" TERM; echo $$ > "$D/member.pid"; exec sleep 60' &
wait
"#;

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks.
fn start_ticks(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[19].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_left_running_after_sigterm_is_reported_not_terminated() {
    let dir = Dir::new("survivor");
    // This host's and boot's identity, as an attempt records it.
    let (probe, slot) = start(spec(&dir.0, "exit 0"));
    probe.await.unwrap();
    let here = slot.lock().unwrap().clone().expect("the probe was spawned");

    // A group left by an earlier `orch` (its token is no attempt's here).
    let token = "1-left-by-an-earlier-orch".to_string();
    let mut leader = std::process::Command::new("sh")
        .args(["-c", LEADER])
        .env("D", &dir.0)
        .env(process::TOKEN_VAR, &token)
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = leader.id() as i32;
    let member = pid_in(dir.0.join("member.pid")).await;
    let id = GroupIdentity {
        pgid: pgid as u32,
        leader_start: start_ticks(pgid),
        token,
        ..here
    };
    // The leader is reaped as soon as it dies, as its real parent would.
    let reaper = std::thread::spawn(move || leader.wait());

    let r = process::terminate_recorded_group(&id, Duration::from_millis(300)).await;
    let _ = reaper.join();
    let still_running = alive(member);
    // Clean up before asserting.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(member),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(still_running, "the member ignores SIGTERM");
    match r {
        StaleGroup::Survived(why) => {
            assert!(why.contains(&member.to_string()), "{why}");
            assert!(why.contains("were not sent SIGKILL"), "{why}");
        }
        other => panic!("reported {other:?} while member {member} still runs"),
    }
}
