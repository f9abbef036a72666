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
    common::repo_root()
        .join("tests/fixtures/approvals")
        .join(name)
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
    assert!(
        artifact.starts_with("decision: APPROVED\ndecided-by: alice\n"),
        "{artifact}"
    );
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
    assert!(r.transitions().contains(&(
        "approve-deploy".into(),
        "exhausted".into(),
        "failed".into()
    )));
    assert_eq!(
        lines(&sb, "alerts"),
        vec!["ops t approve-deploy".to_string()]
    );
    assert_eq!(lines(&sb, "builds").len(), 2);
}

/// Directories nested 70 deep at `rel` in the task directory: deeper than
/// orch removes, as a hostile producer may leave them.
fn plant_deep(sb: &Sandbox, task: &str, rel: &str) {
    let mut d = sb.task_dir(task).join(rel);
    for _ in 0..70 {
        d.push("x");
    }
    std::fs::create_dir_all(&d).unwrap();
}

fn reason_of(r: &Run, kind: &str) -> String {
    r.of("transition")
        .into_iter()
        .find(|t| t["kind"] == kind)
        .map(|t| s(&t["reason"]).to_string())
        .unwrap_or_default()
}

#[test]
fn a_decision_artifact_orch_cannot_write_fails_the_gate_unread() {
    let sb = Sandbox::new("unwritable-decision");
    run(&sb, "release.kdl", "t").run().expect_code(4);
    // An approving decision file at the artifact's path, and orch's
    // temporary file made a directory too deep to remove.
    let artifact = sb.task_dir("t").join("release-decision.md");
    std::fs::write(&artifact, "decision: APPROVED\n").unwrap();
    plant_deep(&sb, "t", "release-decision.orch-tmp");
    decide(&sb, "reject", "t", "bob", Some("no")).expect_code(0);

    // The rejection stands: the gate fails closed without reading the
    // file orch did not write, and the stage rolls back to build.
    let r = resume(&sb, "release.kdl", "t").run();
    r.expect_code(4);
    let gate = r.of_stage("gate", "approve-deploy");
    assert_eq!(gate.len(), 1, "{r}");
    assert_eq!(gate[0]["pass"], false, "{r}");
    assert_eq!(
        s(&gate[0]["reason"]),
        format!(
            "orch could not write the artifact (cannot write artifact {}: it holds directories nested more than 64 deep); whatever was at its path is removed, never gated",
            artifact.display()
        ),
        "{r}"
    );
    assert!(r
        .transitions()
        .contains(&("approve-deploy".into(), "fail".into(), "build".into())));
    assert!(
        std::fs::symlink_metadata(&artifact).is_err(),
        "the file orch did not write is removed"
    );
    assert_eq!(lines(&sb, "builds").len(), 2);
}

#[test]
fn a_decision_artifact_orch_cannot_clear_fails_the_stage_closed_before_anyone_is_asked() {
    let sb = Sandbox::new("unclearable-decision");
    // Left at the decision artifact's path before the run: a directory too
    // deep to remove. The approval attempt cannot run (a tool-error, as for
    // a runner): no request, the stage fails closed with its alert.
    let artifact = sb.task_dir("t").join("release-decision.md");
    plant_deep(&sb, "t", "release-decision.md");
    let r = run(&sb, "release.kdl", "t").run();
    r.expect_code(1);
    assert_eq!(r.finished(), ("failure".into(), "failed".into()));
    assert_eq!(
        reason_of(&r, "exhausted"),
        format!(
            "tool-error on 1 attempt(s): the retry budget is spent (cannot clear the stale artifact {}: it holds directories nested more than 64 deep)",
            artifact.display()
        ),
        "{r}"
    );
    assert!(pending(&sb).is_empty(), "nobody is asked to decide");
    assert_eq!(
        lines(&sb, "alerts"),
        vec!["ops t approve-deploy".to_string()]
    );
}

/// Waits until `cond` holds (a guard against a hang, not a speed assertion).
fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < HANG,
            "{what} did not happen within {HANG:?}"
        );
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
    assert!(r.transitions().contains(&(
        "approve-deploy".into(),
        "exhausted".into(),
        "failed".into()
    )));
    let reason = r
        .of("transition")
        .into_iter()
        .find(|t| t["kind"] == "exhausted")
        .map(|t| s(&t["reason"]).to_string())
        .unwrap_or_default();
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(
        lines(&sb, "alerts"),
        vec!["ops t approve-deploy".to_string()]
    );
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
    assert!(
        none.stderr.contains("no approval request is pending"),
        "{none}"
    );
    assert!(
        !sb.state().join("orch.db").exists(),
        "deciding creates no store"
    );
    run(&sb, "release.kdl", "t").run().expect_code(4);
    // Another task with no request.
    decide(&sb, "approve", "other", "alice", None).expect_code(2);
    let before = recorded(&sb, "t");
    let wrong = decide(&sb, "approve", "t", "mallory", None);
    wrong.expect_code(2);
    assert!(
        wrong
            .stderr
            .contains("not among the approvers (alice, bob)"),
        "{wrong}"
    );
    assert_eq!(recorded(&sb, "t"), before);
    decide(&sb, "approve", "t", "alice", Some("fine")).expect_code(0);
    let after_first = recorded(&sb, "t");
    let second = decide(&sb, "reject", "t", "bob", Some("no"));
    second.expect_code(2);
    assert!(
        second.stderr.contains("already decided: APPROVED by alice"),
        "{second}"
    );
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
    assert!(
        again.stderr.contains("already decided: APPROVED by alice"),
        "{again}"
    );
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
    assert_eq!(
        cs["approval"]["approvers"],
        serde_json::json!(["alice", "bob"])
    );
}

// ---------------------------------------------------------------------------
// The service: a waiting task holds no worker; deciding through the API as
// the name of the caller's token; the service's clock; SIGKILL.
// ---------------------------------------------------------------------------

const SERVICE_TOKEN: &str = "service-token-9f2e";
const ALICE: &str = "alice-token-71c3";
const MALLORY: &str = "mallory-token-0d5a";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A running `orch serve` on a loopback port, killed when dropped.
struct Service {
    child: Option<std::process::Child>,
    addr: String,
}

impl Service {
    fn start(sb: &Sandbox, pipeline: &str, env: &[(&str, &str)]) -> Service {
        use std::io::BufRead;
        let tokens = sb.root.join("tokens");
        std::fs::write(
            &tokens,
            format!(
                "# who may decide\nalice {}\nmallory {}\n",
                sha256_hex(ALICE),
                sha256_hex(MALLORY)
            ),
        )
        .unwrap();
        let mut cmd = Orch::new(&sb.root)
            .arg("serve")
            .arg("-p")
            .arg(fixture(pipeline))
            .arg("--state-dir")
            .arg(sb.state())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--workers")
            .arg("1")
            .arg("--tokens-file")
            .arg(&tokens)
            .env("ORCH_TOKEN", SERVICE_TOKEN)
            .env("T_OUT", sb.out())
            .command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(sb.root.join("serve.log")).unwrap();
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start orch serve");
        let out = child.stdout.take().unwrap();
        let mut addr = None;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("orch serve: listening on http://") {
                addr = Some(a.to_string());
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| {
            panic!(
                "orch serve did not start: {}",
                std::fs::read_to_string(sb.root.join("serve.log")).unwrap_or_default()
            )
        });
        Service {
            child: Some(child),
            addr,
        }
    }

    fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        use std::io::{Read, Write};
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(HANG)).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let Some((head, rest)) = raw.split_once("\r\n\r\n") else {
            return (0, Value::Null);
        };
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (
            status,
            serde_json::from_str(rest).unwrap_or(Value::String(rest.into())),
        )
    }

    fn decide(&self, task: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.http(
            "POST",
            &format!("/api/v1/tasks/{task}/approval"),
            token,
            Some(body),
        )
    }

    fn waiting_approvals(&self) -> Vec<Value> {
        let (st, q) = self.http("GET", "/queue", None, None);
        assert_eq!(st, 200, "{q}");
        q["approvals"].as_array().cloned().unwrap_or_default()
    }

    fn queue_state(&self, task: &str) -> String {
        let (_, v) = self.http("GET", &format!("/api/v1/tasks/{task}"), None, None);
        s(&v["queue"]["state"]).to_string()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn submit(svc: &Service, task: &str) {
    let (st, v) = svc.http(
        "POST",
        "/api/v1/tasks",
        Some(SERVICE_TOKEN),
        Some(serde_json::json!({ "task": task, "worktree": svc_worktree() })),
    );
    assert_eq!(st, 201, "{v}");
}

fn svc_worktree() -> String {
    std::env::temp_dir().display().to_string()
}

#[test]
fn through_the_api_an_approvers_token_decides_and_others_are_refused() {
    let sb = Sandbox::new("api");
    let svc = Service::start(&sb, "release.kdl", &[]);
    submit(&svc, "t1");
    until("t1 to wait for a decision", || {
        !svc.waiting_approvals().is_empty()
    });
    // Waiting holds no worker: with one worker, another task still runs to
    // its own approval stage.
    until("t1's worker to be freed", || {
        svc.queue_state("t1") == "waiting"
    });
    submit(&svc, "t2");
    until("t2 to wait too", || svc.waiting_approvals().len() == 2);
    let q = svc.waiting_approvals();
    assert_eq!(q[0]["approvers"], serde_json::json!(["alice", "bob"]));
    assert!(q[0]["left_ms"].as_u64().is_some());
    let approve = serde_json::json!({ "decision": "approve", "comment": "ok" });
    // Mallory has a decider's token but is not an approver.
    let (st, v) = svc.decide("t1", Some(MALLORY), approve.clone());
    assert_eq!(st, 403, "{v}");
    assert!(s(&v["error"]).contains("not among the approvers"), "{v}");
    // The service's own token names nobody.
    let (st, _) = svc.decide("t1", Some(SERVICE_TOKEN), approve.clone());
    assert_eq!(st, 403);
    let (st, _) = svc.decide("t1", None, approve.clone());
    assert_eq!(st, 401);
    // The name comes from the token, never from the body.
    let (st, _) = svc.decide(
        "t1",
        Some(MALLORY),
        serde_json::json!({ "decision": "approve", "as": "alice" }),
    );
    assert_eq!(st, 400);
    let (st, _) = svc.decide(
        "t1",
        Some(ALICE),
        serde_json::json!({ "decision": "reject" }),
    );
    assert_eq!(st, 400, "a rejection needs a comment");
    assert_eq!(svc.waiting_approvals().len(), 2, "nothing was decided");
    let (st, _) = svc.decide("nosuch", Some(ALICE), approve.clone());
    assert_eq!(st, 404);
    let (st, v) = svc.decide("t1", Some(ALICE), approve.clone());
    assert_eq!(st, 201, "{v}");
    assert_eq!(s(&v["by"]), "alice");
    assert_eq!(s(&v["decision"]), "APPROVED");
    let (st, v) = svc.decide("t1", Some(ALICE), approve.clone());
    assert_eq!(st, 409, "{v}");
    until("t1 to finish", || svc.queue_state("t1") == "finished");
    let (_, task) = svc.http("GET", "/api/v1/tasks/t1", None, None);
    assert_eq!(s(&task["runs"][0]["outcome"]), "success", "{task}");
    assert_eq!(svc.queue_state("t2"), "waiting");
}

#[test]
fn the_services_clock_expires_a_request_and_fails_the_stage_closed() {
    let sb = Sandbox::new("api-expiry");
    let svc = Service::start(&sb, "expiring.kdl", &[]);
    submit(&svc, "t");
    until("t to finish", || svc.queue_state("t") == "finished");
    let (_, task) = svc.http("GET", "/api/v1/tasks/t", None, None);
    assert_eq!(s(&task["runs"][0]["outcome"]), "failure", "{task}");
    assert_eq!(s(&task["runs"][0]["end"]), "failed", "{task}");
    assert_eq!(
        lines(&sb, "alerts"),
        vec!["ops t approve-deploy".to_string()]
    );
}

#[test]
fn a_decision_survives_a_sigkill_of_the_service_and_is_applied_once() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new("api-kill");
    let mut svc = Service::start(
        &sb,
        "release.kdl",
        &[("ORCH_FAILPOINT", "after-decision@approve-deploy")],
    );
    submit(&svc, "t");
    until("t to wait", || svc.queue_state("t") == "waiting");
    // The service dies with the decision committed, before answering.
    let (st, _) = svc.decide(
        "t",
        Some(ALICE),
        serde_json::json!({ "decision": "approve" }),
    );
    assert_eq!(st, 0, "no answer from a killed service");
    let status = svc.child.as_mut().unwrap().wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    svc.kill9();
    let svc = Service::start(&sb, "release.kdl", &[]);
    until("t to finish", || svc.queue_state("t") == "finished");
    let h = history(&sb, "t");
    assert_eq!(s(&h["runs"][0]["outcome"]), "success", "{h}");
    assert_eq!(h["runs"][0]["approvals"].as_array().map(Vec::len), Some(1));
    let decided: Vec<&Value> = h["runs"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["stage"] == "approve-deploy")
        .collect();
    assert_eq!(decided.len(), 1, "{h}");
    let (st, _) = svc.decide(
        "t",
        Some(ALICE),
        serde_json::json!({ "decision": "approve" }),
    );
    assert_eq!(st, 409, "the decision was kept, not lost");
}

#[test]
fn a_task_waiting_for_a_decision_is_cancelled_and_its_request_can_no_longer_be_decided() {
    let sb = Sandbox::new("api-cancel-waiting");
    let svc = Service::start(&sb, "release.kdl", &[]);
    submit(&svc, "t");
    until("t to wait", || svc.queue_state("t") == "waiting");
    assert_eq!(svc.waiting_approvals().len(), 1);
    let (st, v) = svc.http(
        "POST",
        "/api/v1/tasks/t/cancel",
        Some(SERVICE_TOKEN),
        Some(serde_json::json!({})),
    );
    assert_eq!((st, s(&v["state"])), (200, "cancelled"), "{v}");
    assert_eq!(svc.queue_state("t"), "cancelled");
    assert!(svc.waiting_approvals().is_empty(), "no longer pending");
    let (st, v) = svc.decide(
        "t",
        Some(ALICE),
        serde_json::json!({ "decision": "approve" }),
    );
    assert_eq!(st, 404, "a cancelled run's request is over: {v}");
    assert!(
        s(&v["error"]).contains("no approval request is pending"),
        "{v}"
    );
    let (_, task) = svc.http("GET", "/api/v1/tasks/t", None, None);
    assert_eq!(s(&task["runs"][0]["status"]), "cancelled", "{task}");
    // The clock does not queue a cancelled task again.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(svc.queue_state("t"), "cancelled");
    let (st, _) = svc.http(
        "POST",
        "/api/v1/tasks/t/cancel",
        Some(SERVICE_TOKEN),
        Some(serde_json::json!({})),
    );
    assert_eq!(st, 409, "cancelled already");
}

#[test]
fn a_recorded_decision_is_answered_201_even_if_queueing_the_task_again_fails_at_once() {
    let sb = Sandbox::new("api-requeue-error");
    let svc = Service::start(&sb, "release.kdl", &[]);
    submit(&svc, "t");
    until("t to wait", || svc.queue_state("t") == "waiting");
    // The store refuses to move the task out of `waiting` for now (as a
    // full disk would), after the decision is committed.
    let db = rusqlite::Connection::open(sb.state().join("orch.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_requeue BEFORE UPDATE OF state ON queue \
         WHEN OLD.state = 'waiting' AND NEW.state = 'queued' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let approve = serde_json::json!({ "decision": "approve" });
    let (st, v) = svc.decide("t", Some(ALICE), approve.clone());
    assert_eq!(st, 201, "the decision was recorded: {v}");
    let (st, v) = svc.decide("t", Some(ALICE), approve);
    assert_eq!(st, 409, "and only once: {v}");
    // Once the store takes writes again, the clock queues the decided task.
    db.execute_batch("DROP TRIGGER no_requeue;").unwrap();
    until("t to finish", || svc.queue_state("t") == "finished");
    let (_, task) = svc.http("GET", "/api/v1/tasks/t", None, None);
    assert_eq!(s(&task["runs"][0]["outcome"]), "success", "{task}");
}
