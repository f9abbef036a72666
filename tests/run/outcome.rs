//! The two-level outcome: a producer that did not execute (tool-error) is
//! deferred and retried within its `retry` budget, then fails closed; it never
//! passes a gate and never spends the stage's `fail` budget.

use crate::common::*;
use serde_json::json;

/// retry.kdl: work → check (runner, retry attempts=3 delay=100ms; fail
/// "work" budget=1) → review (LLM, retry attempts=4 delay=100ms backoff=2.0
/// max-delay=250ms; fail "work" budget=1) → done.
fn retry(sb: &Sandbox, task: &str) -> Orch {
    sb.orch("retry.kdl", task)
        .env("T_ARTIFACT_TEXT", "verdict: APPROVED")
}

/// One key of each event, as a JSON array.
fn field(events: &[serde_json::Value], key: &str) -> serde_json::Value {
    events.iter().map(|e| e[key].clone()).collect()
}

#[test]
fn tool_errors_are_retried_and_do_not_spend_the_fail_budget() {
    let sb = Sandbox::new("outcome-retry");
    // check: tool-error, tool-error, FAIL (rollback), tool-error, PASS.
    let run = retry(&sb, "r").env("T_PLAN_check", "9 9 1 9 0").run();
    run.expect_code(0);
    assert_eq!(run.finished(), ("success".into(), "done".into()));
    let checks = run.of_stage("attempt-finished", "check");
    assert_eq!(field(&checks, "attempt"), json!([1, 2, 3, 4, 5]));
    assert_eq!(
        field(&checks, "verdict"),
        json!(["tool-error", "tool-error", "FAIL", "tool-error", "PASS"])
    );
    assert_eq!(field(&checks, "exit_code"), json!([9, 9, 1, 9, 0]));
    // Defers count within one visit of the stage.
    assert_eq!(field(&checks, "defers"), json!([0, 1, 2, 0, 1]));
    let deferred = run.of("deferred");
    assert_eq!(
        field(&deferred, "stage"),
        json!(["check", "check", "check"])
    );
    assert_eq!(field(&deferred, "attempt"), json!([1, 2, 4]));
    assert_eq!(field(&deferred, "attempts_left"), json!([2, 1, 2]));
    assert_eq!(field(&deferred, "delay_ms"), json!([100, 100, 100]));
    for d in &deferred {
        assert_eq!(d["reason"], "tool-error (exit code 9)");
    }
    // Only the FAIL was gated, and it is the only rollback: budget=1 holds
    // although three tool-errors happened in the stage.
    assert_eq!(run.of_stage("gate", "check").len(), 2);
    assert_eq!(
        run.transitions(),
        triples(&[
            ("work", "pass", "check"),
            ("check", "fail", "work"),
            ("work", "pass", "check"),
            ("check", "pass", "review"),
            ("review", "pass", "done"),
        ])
    );
    assert_eq!(
        s(&run.of("transition")[1]["reason"]),
        "`result` is FAIL, expected PASS (rollback 1 of 1)"
    );
    assert!(run.of("alert").is_empty());
    assert_eq!(sb.out_lines("alerts"), Vec::<String>::new());
    assert_eq!(
        sb.out_lines("calls"),
        vec![
            "r work 1",
            "r check 1",
            "r check 2",
            "r check 3",
            "r work 2",
            "r check 4",
            "r check 5",
            "r review 1 llm",
        ]
    );
}

#[test]
fn a_spent_retry_budget_fails_closed_to_exhausted_and_alerts() {
    let sb = Sandbox::new("outcome-exhausted");
    let run = retry(&sb, "ex").env("T_PLAN_check", "9").run();
    run.expect_code(1);
    assert_eq!(run.finished(), ("failure".into(), "failed".into()));
    let checks = run.of_stage("attempt-finished", "check");
    assert_eq!(checks.len(), 3);
    for c in &checks {
        assert_eq!(c["verdict"], "tool-error");
    }
    let deferred = run.of("deferred");
    assert_eq!(field(&deferred, "attempts_left"), json!([2, 1]));
    // No gate for a producer that did not execute, and no artifact.
    assert!(run.of_stage("gate", "check").is_empty());
    assert!(!sb.task_dir("ex").join("check.md").exists());
    assert_eq!(
        run.transitions(),
        triples(&[("work", "pass", "check"), ("check", "exhausted", "failed")])
    );
    assert_eq!(
        s(&run.of("transition")[1]["reason"]),
        "tool-error on 3 attempt(s): the retry budget is spent (exit code 9)"
    );
    assert_eq!(sb.out_lines("alerts"), vec!["ops ex check"]);
    let alert = run.one("alert");
    assert_eq!(alert["stage"], "check");
    assert_eq!(alert["ok"], true);
    assert_eq!(
        sb.out_lines("calls"),
        vec!["ex work 1", "ex check 1", "ex check 2", "ex check 3"]
    );
}

#[test]
fn an_llm_tool_error_never_becomes_a_pass_and_backs_off() {
    let sb = Sandbox::new("outcome-llm");
    // The agent writes `verdict: APPROVED` and then exits 3, every time.
    let run = retry(&sb, "llm").env("T_AGENT_review", "fail").run();
    run.expect_code(1);
    assert_eq!(run.finished(), ("failure".into(), "failed".into()));
    let reviews = run.of_stage("attempt-finished", "review");
    assert_eq!(
        field(&reviews, "verdict"),
        json!(["tool-error", "tool-error", "tool-error", "tool-error"])
    );
    let deferred = run.of_stage("deferred", "review");
    // delay=100ms backoff=2.0 max-delay=250ms.
    assert_eq!(field(&deferred, "delay_ms"), json!([100, 200, 250]));
    assert_eq!(field(&deferred, "attempts_left"), json!([3, 2, 1]));
    assert!(run.of_stage("gate", "review").is_empty(), "{}", run.stdout);
    assert_eq!(
        run.transitions(),
        triples(&[
            ("work", "pass", "check"),
            ("check", "pass", "review"),
            ("review", "exhausted", "failed"),
        ])
    );
    assert_eq!(
        s(&run.of("transition")[2]["reason"]),
        "tool-error on 4 attempt(s): the retry budget is spent (exit code 3)"
    );
    // The approving artifact is on disk all along; it decided nothing.
    assert_eq!(
        read(&sb.task_dir("llm").join("review.md")),
        "verdict: APPROVED\n"
    );
    assert_eq!(sb.out_lines("alerts"), vec!["ops llm review"]);
}

#[test]
fn a_passing_artifact_left_by_a_tool_error_is_not_read_by_the_next_attempt() {
    let sb = Sandbox::new("outcome-stale");
    // review: writes APPROVED and exits 3 (tool-error), then exits 0 without
    // writing anything, every time after that.
    let run = retry(&sb, "stale").env("T_AGENT_review", "fail none").run();
    run.expect_code(1);
    let reviews = run.of_stage("attempt-finished", "review");
    assert_eq!(
        field(&reviews, "verdict"),
        json!(["tool-error", "executed", "executed"])
    );
    let gates = run.of_stage("gate", "review");
    assert_eq!(gates.len(), 2);
    for g in &gates {
        assert_eq!(g["pass"], false);
        assert_eq!(g["reason"], "artifact review.md is missing");
    }
    assert_eq!(
        run.transitions(),
        triples(&[
            ("work", "pass", "check"),
            ("check", "pass", "review"),
            ("review", "fail", "work"),
            ("work", "pass", "check"),
            ("check", "pass", "review"),
            ("review", "exhausted", "failed"),
        ])
    );
    assert_eq!(
        s(&run.of("transition")[5]["reason"]),
        "artifact review.md is missing; the fail budget (1) is spent"
    );
    assert_eq!(sb.out_lines("alerts"), vec!["ops stale review"]);
}

#[test]
fn a_hybrid_runners_tool_error_does_not_fall_back_to_the_llm() {
    let sb = Sandbox::new("outcome-hybrid");
    let wt = sb.dir("in-scope");
    let run = sb
        .orch_in("choice.kdl", "hy", &wt)
        .env("T_PLAN_byhybrid", "9")
        .run();
    run.expect_code(1);
    assert_eq!(
        run.producers(),
        triples(&[
            ("byrunner", "runner", "plain"),
            ("byllm", "llm", "agent"),
            ("byhybrid", "runner", "switched"),
        ])
    );
    assert_eq!(
        sb.out_lines("calls"),
        vec!["hy byrunner 1", "hy byllm 1 llm", "hy byhybrid 1"]
    );
    assert_eq!(
        run.transitions().last().unwrap(),
        &(
            "byhybrid".to_string(),
            "exhausted".to_string(),
            "failed".to_string()
        )
    );
}

#[test]
fn a_stale_artifact_that_cannot_be_removed_does_not_abort_the_run() {
    let sb = Sandbox::new("outcome-stale-dir");
    // review attempt 1 leaves a directory where review.md goes and exits 3
    // (tool-error, deferred); attempt 2 would write `verdict: APPROVED`.
    let run = retry(&sb, "sd")
        .env("T_AGENT_review", "dirfail write")
        .run();
    // Whatever the engine does with the stale path, it fails closed or
    // clears it: the run reaches an end, and never aborts half-way.
    assert_ne!(run.code(), Some(2), "orch aborted:\n{}", run.stderr);
    let (outcome, _) = run.finished();
    let want = if outcome == "success" { 0 } else { 1 };
    run.expect_code(want);
    // A directory never passes the gate.
    for g in run.of_stage("gate", "review") {
        if g["pass"] == true {
            assert!(sb.task_dir("sd").join("review.md").is_file());
        }
    }
}
