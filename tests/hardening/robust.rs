//! Robustness: signals, alerts cut off, a store deleted or read-only, files
//! written safely, messages that name what is wrong.

use crate::common::*;
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

fn hardening() -> PathBuf {
    repo_root().join("tests/fixtures/hardening")
}

/// `orch run TASK -p robust.kdl --state-dir state --worktree wt --json`,
/// from the sandbox root.
fn robust(sb: &Sandbox, task: &str) -> Orch {
    Orch::new(&sb.root)
        .arg("run")
        .arg(task)
        .arg("-p")
        .arg(hardening().join("robust.kdl"))
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--worktree")
        .arg(sb.wt())
        .arg("--var")
        .arg(format!("dir={}", hardening().display()))
        .arg("--json")
        .env("T_OUT", sb.out())
}

/// `orch history TASK --state-dir state --json`, parsed.
fn history(sb: &Sandbox, task: &str) -> serde_json::Value {
    let run = Orch::new(&sb.root)
        .arg("history")
        .arg(task)
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
        .run();
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{run}"))
}

/// Waits until a process is gone (not running, or a zombie).
fn wait_gone(pid: i32, within: Duration) -> bool {
    let until = std::time::Instant::now() + within;
    while running(pid) {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

// 16. SIGHUP (a closed terminal) is an interruption like SIGTERM.
#[test]
fn sighup_terminates_the_producer_and_leaves_the_run_resumable() {
    let sb = Sandbox::new("sighup");
    let child = robust(&sb, "t").env("T_ONCE_WAIT", "1").spawn();
    sb.wait_for_out("once.pid", Duration::from_secs(20));
    let producer = sb.pid("once.pid");
    signal(child.id(), Signal::SIGHUP);
    let run = finish(child, HANG);
    run.expect_code(3);
    assert!(
        wait_gone(producer, Duration::from_secs(5)),
        "the producer {producer} outlived orch's SIGHUP\n{run}"
    );
    assert_eq!(
        history(&sb, "t")["runs"][0]["status"],
        "interrupted",
        "{run}"
    );

    let resumed = robust(&sb, "t").arg("--resume").run();
    resumed.expect_code(0);
    assert_eq!(sb.out_lines("once.log"), ["call 1", "call 2"]);
}

// 17. An alert cut off by SIGINT stays pending and the resume sends it.
#[test]
fn an_alert_cut_off_by_sigint_is_sent_again_on_resume() {
    let sb = Sandbox::new("alert-sigint");
    let child = robust(&sb, "t").env("T_ONCE_CODE", "1").spawn();
    sb.wait_for_out("alert.pid", Duration::from_secs(20));
    let alert = sb.pid("alert.pid");
    signal(child.id(), Signal::SIGINT);
    let run = finish(child, HANG);
    run.expect_code(3);
    assert!(
        wait_gone(alert, Duration::from_secs(5)),
        "the alert {alert} outlived orch's SIGINT\n{run}"
    );
    assert!(run.of("alert").is_empty(), "no alert was delivered: {run}");
    assert_eq!(sb.out_lines("alert.log"), ["start 1"]);

    let resumed = robust(&sb, "t").arg("--resume").run();
    resumed.expect_code(1);
    assert_eq!(
        sb.out_lines("alert.log"),
        ["start 1", "start 2", "done 2"],
        "the resume re-ran the alert once, to its end\n{resumed}"
    );
    let sent = resumed.one("alert");
    assert_eq!(sent["ok"], true, "{resumed}");
    assert_eq!(
        sb.out_lines("once.log"),
        ["call 1"],
        "the stage did not run again"
    );
}
