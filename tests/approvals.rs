//! Approval stages end to end, with the real `orch` binary, its SQLite
//! store and the fixture pipelines of `tests/fixtures/approvals/` (each
//! lists its expected outcomes at the top): approve → pass; reject → the
//! `fail` transition with its budget; reject over budget and expiry →
//! `exhausted` with the alert; the refusals change nothing; `--wait`; a
//! decision survives SIGKILL around it; the map and graph with a human stage.

mod common;

use common::{s, Orch, Run, Sandbox, HANG};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    common::repo_root().join("tests/fixtures/approvals").join(name)
}

/// `orch run TASK -p FIXTURE --state-dir state --worktree wt --json`.
fn run(sb: &Sandbox, pipeline: &str, task: &str) -> Orch {
    Orch::new(&sb.root)
        .arg("run")
        .arg(task)
        .arg("-p")
        .arg(fixture(pipeline))
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--worktree")
        .arg(sb.wt())
        .arg("--json")
        .env("T_OUT", sb.out())
}

fn resume(sb: &Sandbox, pipeline: &str, task: &str) -> Orch {
    run(sb, pipeline, task).arg("--resume")
}

/// `orch approve|reject TASK --as WHO [--comment TEXT]`.
fn decide(sb: &Sandbox, verb: &str, task: &str, who: &str, comment: Option<&str>) -> Run {
    let mut o = Orch::new(&sb.root)
        .arg(verb)
        .arg(task)
        .arg("--as")
        .arg(who)
        .arg("--state-dir")
        .arg(sb.state());
    if let Some(c) = comment {
        o = o.arg("--comment").arg(c);
    }
    o.run()
}

fn json_of(sb: &Sandbox, args: &[&str]) -> Value {
    let mut o = Orch::new(&sb.root);
    for a in args {
        o = o.arg(a);
    }
    let r = o.arg("--state-dir").arg(sb.state()).arg("--json").run();
    r.expect_code(0);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn pending(sb: &Sandbox) -> Vec<Value> {
    json_of(sb, &["status"])["pending_approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn history(sb: &Sandbox, task: &str) -> Value {
    json_of(sb, &["history", task])
}

/// What the store holds of a task: its history without the time left of
/// its requests (which the clock changes, not a write).
fn recorded(sb: &Sandbox, task: &str) -> Value {
    let mut h = history(sb, task);
    for run in h["runs"].as_array_mut().into_iter().flatten() {
        for a in run["approvals"].as_array_mut().into_iter().flatten() {
            a["left_ms"] = Value::Null;
        }
    }
    h
}

fn lines(sb: &Sandbox, name: &str) -> Vec<String> {
    sb.out_lines(name)
}

#[test]
fn an_approval_passes_the_gate_and_the_task_succeeds() {
    let sb = Sandbox::new("approve");
    let r = run(&sb, "release.kdl", "t").run();
    r.expect_code(4);
    let p = pending(&sb);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(s(&p[0]["stage"]), "approve-deploy");
    assert_eq!(p[0]["approvers"], serde_json::json!(["alice", "bob"]));
    assert!(p[0]["left_ms"].as_u64().is_some_and(|l| l > 0), "{p:?}");
    // Human status shows the approvers and the time left.
    let status = Orch::new(&sb.root)
        .arg("status")
        .arg("--state-dir")
        .arg(sb.state())
        .run();
    assert!(
        status.stdout.contains("alice or bob may decide"),
        "{status}"
    );
    decide(&sb, "approve", "t", "alice", Some("ship it")).expect_code(0);
    let r = resume(&sb, "release.kdl", "t").run();
    r.expect_code(0);
    assert_eq!(r.finished(), ("success".into(), "done".into()));
    let artifact = std::fs::read_to_string(sb.task_dir("t").join("release-decision.md")).unwrap();
    assert!(artifact.starts_with("decision: APPROVED\ndecided-by: alice\n"), "{artifact}");
    assert!(artifact.contains("comment: ship it"), "{artifact}");
    let h = history(&sb, "t");
    let approvals = &h["runs"][0]["approvals"];
    assert_eq!(s(&approvals[0]["decision"]["decision"]), "APPROVED");
    assert_eq!(s(&approvals[0]["decision"]["by"]), "alice");
    assert!(pending(&sb).is_empty());
    assert_eq!(lines(&sb, "builds").len(), 1);
}

#[test]
fn a_rejection_takes_the_fail_transition_then_exhausts_its_budget_with_the_alert() {
    let sb = Sandbox::new("reject");
    run(&sb, "release.kdl", "t").run().expect_code(4);
    decide(&sb, "reject", "t", "bob", Some("staging log shows errors")).expect_code(0);
    // Rejected once: back to build (rollback 1 of 1), then waiting again.
    let r = resume(&sb, "release.kdl", "t").run();
    r.expect_code(4);
    assert!(r
        .transitions()
        .contains(&("approve-deploy".into(), "fail".into(), "build".into())));
    assert_eq!(lines(&sb, "builds").len(), 2);
    assert_eq!(pending(&sb).len(), 1, "a new request for the new visit");
    decide(&sb, "reject", "t", "alice", Some("still broken")).expect_code(0);
    // Rejected again: the budget is spent, the stage fails closed.
    let r = resume(&sb, "release.kdl", "t").run();
    r.expect_code(1);
    assert_eq!(r.finished(), ("failure".into(), "failed".into()));
    assert!(r
        .transitions()
        .contains(&("approve-deploy".into(), "exhausted".into(), "failed".into())));
    assert_eq!(lines(&sb, "alerts"), vec!["ops t approve-deploy".to_string()]);
    assert_eq!(lines(&sb, "builds").len(), 2);
}

/// Waits until `cond` holds (a guard against a hang, not a speed assertion).
fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "{what} did not happen within {HANG:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_expired_request_fails_closed_with_the_alert_and_a_late_decision_is_refused() {
    let sb = Sandbox::new("expiry");
    run(&sb, "expiring.kdl", "t").run().expect_code(4);
    let expires = pending(&sb)[0]["expires_ms"].as_i64().unwrap();
    until("the expiry", || orch_store::now_ms() > expires);
    let before = recorded(&sb, "t");
    let late = decide(&sb, "approve", "t", "alice", None);
    late.expect_code(2);
    assert!(late.stderr.contains("expired"), "{late}");
    assert_eq!(recorded(&sb, "t"), before, "a refusal changes nothing");
    let r = resume(&sb, "expiring.kdl", "t").run();
    r.expect_code(1);
    assert!(r
        .transitions()
        .contains(&("approve-deploy".into(), "exhausted".into(), "failed".into())));
    let reason = r
        .of("transition")
        .into_iter()
        .find(|t| t["kind"] == "exhausted")
        .map(|t| s(&t["reason"]).to_string())
        .unwrap_or_default();
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(lines(&sb, "alerts"), vec!["ops t approve-deploy".to_string()]);
}

#[test]
fn wait_blocks_until_the_expiry_then_fails_closed() {
    let sb = Sandbox::new("wait-expiry");
    let r = run(&sb, "expiring.kdl", "t").arg("--wait").run();
    r.expect_code(1);
    assert_eq!(r.finished(), ("failure".into(), "failed".into()));
    assert_eq!(lines(&sb, "alerts").len(), 1);
}

#[test]
fn wait_blocks_until_a_decision_from_another_process() {
    let sb = Sandbox::new("wait-decision");
    let child = run(&sb, "release.kdl", "t").arg("--wait").spawn();
    until("the pending request", || !pending(&sb).is_empty());
    decide(&sb, "approve", "t", "bob", None).expect_code(0);
    let r = common::finish(child, HANG);
    r.expect_code(0);
    assert_eq!(r.finished(), ("success".into(), "done".into()));
}

#[test]
fn refusals_exit_2_and_change_nothing() {
    let sb = Sandbox::new("refusals");
    // No store, no request.
    let none = decide(&sb, "approve", "t", "alice", None);
    none.expect_code(2);
    assert!(none.stderr.contains("no approval request is pending"), "{none}");
    assert!(!sb.state().join("orch.db").exists(), "deciding creates no store");
    run(&sb, "release.kdl", "t").run().expect_code(4);
    // Another task with no request.
    decide(&sb, "approve", "other", "alice", None).expect_code(2);
    let before = recorded(&sb, "t");
    let wrong = decide(&sb, "approve", "t", "mallory", None);
    wrong.expect_code(2);
    assert!(wrong.stderr.contains("not among the approvers (alice, bob)"), "{wrong}");
    assert_eq!(recorded(&sb, "t"), before);
    decide(&sb, "approve", "t", "alice", Some("fine")).expect_code(0);
    let after_first = recorded(&sb, "t");
    let second = decide(&sb, "reject", "t", "bob", Some("no"));
    second.expect_code(2);
    assert!(second.stderr.contains("already decided: APPROVED by alice"), "{second}");
    assert_eq!(recorded(&sb, "t"), after_first);
    // A rejection must say why.
    let bare = Orch::new(&sb.root)
        .arg("reject")
        .arg("t")
        .arg("--as")
        .arg("bob")
        .arg("--state-dir")
        .arg(sb.state())
        .run();
    bare.expect_code(2);
    // A finished run has no pending request.
    resume(&sb, "release.kdl", "t").run().expect_code(0);
    let done = decide(&sb, "approve", "t", "bob", None);
    done.expect_code(2);
    assert!(done.stderr.contains("already decided"), "{done}");
}

#[test]
fn a_decision_killed_before_its_commit_is_not_recorded_and_after_it_is_kept_once() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new("kill-approve");
    run(&sb, "release.kdl", "t").run().expect_code(4);
    let kill = |point: &str| {
        Orch::new(&sb.root)
            .arg("approve")
            .arg("t")
            .arg("--as")
            .arg("alice")
            .arg("--state-dir")
            .arg(sb.state())
            .env("ORCH_FAILPOINT", format!("{point}@approve-deploy"))
            .run()
    };
    let r = kill("before-decision");
    assert_eq!(r.status.signal(), Some(9), "{r}");
    assert_eq!(pending(&sb).len(), 1, "nothing was committed");
    let r = kill("after-decision");
    assert_eq!(r.status.signal(), Some(9), "{r}");
    assert!(pending(&sb).is_empty(), "the decision was committed");
    let again = decide(&sb, "approve", "t", "alice", None);
    again.expect_code(2);
    assert!(again.stderr.contains("already decided: APPROVED by alice"), "{again}");
    // The run dies right after applying the decision, then resumes: the
    // decision is applied once.
    let r = resume(&sb, "release.kdl", "t")
        .env("ORCH_FAILPOINT", "after-exit@approve-deploy")
        .run();
    assert_eq!(r.status.signal(), Some(9), "{r}");
    let r = resume(&sb, "release.kdl", "t").run();
    r.expect_code(0);
    let h = history(&sb, "t");
    let attempts: Vec<&Value> = h["runs"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["stage"] == "approve-deploy")
        .collect();
    assert_eq!(attempts.len(), 1, "{h}");
    assert_eq!(s(&attempts[0]["verdict"]), "APPROVED");
    assert_eq!(h["runs"][0]["approvals"].as_array().map(Vec::len), Some(1));
}

#[test]
fn map_graph_and_explain_show_a_human_stage() {
    let sb = Sandbox::new("views");
    let view = |args: &[&str]| {
        let mut o = Orch::new(&sb.root);
        for a in args {
            o = o.arg(a);
        }
        let r = o.run();
        r.expect_code(0);
        r.stdout
    };
    let p = fixture("release.kdl");
    let p = p.to_str().unwrap();
    insta::assert_snapshot!("approvals_map", view(&["map", "-p", p]));
    insta::assert_snapshot!("approvals_graph_mermaid", view(&["graph", "-p", p]));
    insta::assert_snapshot!(
        "approvals_graph_dot",
        view(&["graph", "-p", p, "--format", "dot"])
    );
    insta::assert_snapshot!(
        "approvals_explain",
        view(&["explain", "approve-deploy", "-p", p])
    );
    let map: Value = serde_json::from_str(&view(&["map", "-p", p, "--format", "json"])).unwrap();
    let cs = map["call_sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "release-manager")
        .cloned()
        .unwrap();
    assert_eq!(s(&cs["decided_by"]), "person");
    assert_eq!(cs["approval"]["approvers"], serde_json::json!(["alice", "bob"]));
}
