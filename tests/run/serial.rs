//! `serial #true`: one task at a time in the stage, across every `orch run`
//! sharing a state dir; the lock dies with its holder.

use crate::common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn serial(sb: &Sandbox, task: &str) -> Orch {
    sb.orch("serial.kdl", task)
}

#[test]
fn two_concurrent_runs_never_overlap_in_a_serial_stage() {
    let sb = Sandbox::new("serial-two");
    // A enters `deploy` and stays there until the test releases it.
    let mut a = serial(&sb, "ser-a").env("T_BLOCK", "1").spawn();
    let a_pid = a.id();
    let a_lines = Lines::new(a.stdout.take().unwrap());
    sb.wait_for_out("serial.ser-a.pid", WAIT);

    // B reaches `deploy` while A holds it: it must wait, not run.
    let mut b = serial(&sb, "ser-b").spawn();
    let b_lines = Lines::new(b.stdout.take().unwrap());
    let first = b_lines.wait_for(WAIT, |e| {
        e["event"] == "waiting" || (e["event"] == "attempt-started" && e["stage"] == "deploy")
    });
    std::fs::write(sb.out().join("release"), "").unwrap();
    let a_run = finish_with(a, Some(a_lines.into_handle()), WAIT);
    let b_run = finish_with(b, Some(b_lines.into_handle()), WAIT);

    assert_eq!(
        first["event"], "waiting",
        "B entered deploy while A held it"
    );
    assert_eq!(first["stage"], "deploy");
    let reason = s(&first["reason"]);
    assert!(
        reason.starts_with(&format!("held by task ser-a (pid {a_pid} on ")),
        "{reason}"
    );
    a_run.expect_code(0);
    b_run.expect_code(0);
    assert!(a_run.of("waiting").is_empty());
    assert_eq!(b_run.of("waiting").len(), 1);
    assert_eq!(
        sb.out_lines("serial.log"),
        vec!["start ser-a", "end ser-a", "start ser-b", "end ser-b"]
    );
    assert_eq!(sb.out_file("overlaps"), None);
}

#[test]
fn many_concurrent_runs_take_the_serial_stage_one_at_a_time() {
    let sb = Sandbox::new("serial-many");
    // The store exists before the runs race for the stage (creating it
    // concurrently is a test of its own, in cli.rs).
    serial(&sb, "warm-up").run().expect_code(0);
    std::fs::remove_file(sb.out().join("serial.log")).unwrap();
    let tasks = ["m1", "m2", "m3", "m4"];
    let children: Vec<_> = tasks.iter().map(|t| serial(&sb, t).spawn()).collect();
    for c in children {
        finish(c, WAIT).expect_code(0);
    }
    let log = sb.out_lines("serial.log");
    assert_eq!(log.len(), 2 * tasks.len(), "{log:?}");
    for pair in log.chunks(2) {
        let task = pair[0].strip_prefix("start ").expect("a start line");
        assert_eq!(pair[1], format!("end {task}"), "{log:?}");
    }
    let mut started: Vec<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .collect();
    started.sort();
    assert_eq!(started, tasks);
    assert_eq!(sb.out_file("overlaps"), None);
}

#[test]
fn a_holder_killed_with_sigkill_releases_the_serial_lock() {
    let sb = Sandbox::new("serial-killed");
    let mut a = serial(&sb, "ser-a").env("T_BLOCK", "1").spawn();
    sb.wait_for_out("serial.ser-a.pid", WAIT);
    let a_runner = sb.pid("serial.ser-a.pid");
    signal(a.id(), nix::sys::signal::Signal::SIGKILL);
    let _ = a.wait();

    // orch A is gone (its runner, in its own process group, may live on):
    // B takes the lock at once, without waiting.
    let b = serial(&sb, "ser-b").run();
    // Clean up A's orphaned runner before asserting.
    kill_group(a_runner);
    b.expect_code(0);
    assert!(b.of("waiting").is_empty(), "{}", b.stdout);
    assert_eq!(
        b.transitions(),
        triples(&[("prepare", "pass", "deploy"), ("deploy", "pass", "done")])
    );
    assert!(sb
        .out_lines("serial.log")
        .contains(&"end ser-b".to_string()));
}
