//! Transitions: `fail "X" budget=N` counts per task and per stage; over
//! budget the stage fails closed to `exhausted`, whose alert runs exactly once
//! per fail-closed event, and whose failure does not change the outcome.

use crate::common::*;

/// budget.kdl: develop → review (fail "develop" budget=2) → qa (fail
/// "develop" budget=1, exhausted "triage") → done; triage passes to `failed`.
/// Every `exhausted` runs the alert `ops`. Runners follow T_PLAN_<stage>.
fn budget(sb: &Sandbox, task: &str) -> Orch {
    sb.orch("budget.kdl", task)
}

fn calls_of(sb: &Sandbox, task: &str, stage: &str) -> usize {
    sb.out_file(&format!("count.{task}.{stage}"))
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn over_the_fail_budget_the_stage_is_exhausted_and_alerts_once() {
    let sb = Sandbox::new("budget-spent");
    let run = budget(&sb, "b").env("T_PLAN_review", "1").run();
    run.expect_code(1);
    assert_eq!(
        run.transitions(),
        triples(&[
            ("develop", "pass", "review"),
            ("review", "fail", "develop"),
            ("develop", "pass", "review"),
            ("review", "fail", "develop"),
            ("develop", "pass", "review"),
            ("review", "exhausted", "failed"),
        ])
    );
    let reasons: Vec<String> = run
        .of("transition")
        .iter()
        .map(|t| s(&t["reason"]).to_string())
        .collect();
    assert_eq!(
        reasons[1],
        "`result` is FAIL, expected PASS (rollback 1 of 2)"
    );
    assert_eq!(
        reasons[3],
        "`result` is FAIL, expected PASS (rollback 2 of 2)"
    );
    assert_eq!(
        reasons[5],
        "`result` is FAIL, expected PASS; the fail budget (2) is spent"
    );
    assert_eq!(calls_of(&sb, "b", "develop"), 3);
    assert_eq!(calls_of(&sb, "b", "review"), 3);
    assert_eq!(sb.out_lines("alerts"), vec!["ops b review"]);
    let alert = run.one("alert");
    assert_eq!(alert["stage"], "review");
    assert_eq!(alert["alert"], "ops");
    assert_eq!(alert["ok"], true);
    assert_eq!(alert["exit"], "exit code 0");
    // The alert's log is kept with the task.
    let logs: Vec<String> = std::fs::read_dir(sb.task_dir("b").join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("alert."))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        read(&sb.task_dir("b").join("logs").join(&logs[0])),
        "alert: ops for b in review\n"
    );
    assert_eq!(run.finished(), ("failure".into(), "failed".into()));

    // Running the finished task again runs nothing, the alert included.
    let again = budget(&sb, "b").env("T_PLAN_review", "1").run();
    again.expect_code(1);
    assert_eq!(sb.out_lines("alerts"), vec!["ops b review"]);
    assert_eq!(calls_of(&sb, "b", "review"), 3);
}

#[test]
fn fail_budgets_count_per_stage() {
    let sb = Sandbox::new("budget-per-stage");
    // review fails once then passes; qa fails every time. qa's budget (1) is
    // not touched by review's rollback: qa rolls back once, then is exhausted.
    let run = budget(&sb, "s")
        .env("T_PLAN_review", "1 0")
        .env("T_PLAN_qa", "1")
        .run();
    run.expect_code(1);
    assert_eq!(
        run.transitions(),
        triples(&[
            ("develop", "pass", "review"),
            ("review", "fail", "develop"),
            ("develop", "pass", "review"),
            ("review", "pass", "qa"),
            ("qa", "fail", "develop"),
            ("develop", "pass", "review"),
            ("review", "pass", "qa"),
            ("qa", "exhausted", "triage"),
            ("triage", "pass", "failed"),
        ])
    );
    let reasons: Vec<String> = run
        .of("transition")
        .iter()
        .map(|t| s(&t["reason"]).to_string())
        .collect();
    assert_eq!(
        reasons[1],
        "`result` is FAIL, expected PASS (rollback 1 of 2)"
    );
    assert_eq!(
        reasons[4],
        "`result` is FAIL, expected PASS (rollback 1 of 1)"
    );
    assert_eq!(
        reasons[7],
        "`result` is FAIL, expected PASS; the fail budget (1) is spent"
    );
    // One fail-closed event (qa), one alert; triage passing raises none.
    assert_eq!(sb.out_lines("alerts"), vec!["ops s qa"]);
    assert_eq!(run.of("alert").len(), 1);
}

#[test]
fn each_fail_closed_event_runs_its_alert_exactly_once() {
    let sb = Sandbox::new("budget-two-events");
    // qa is exhausted into triage (alert 1); triage fails and has no `fail`,
    // so it fails closed too (alert 2).
    let run = budget(&sb, "two")
        .env("T_PLAN_qa", "1")
        .env("T_PLAN_triage", "1")
        .run();
    run.expect_code(1);
    assert_eq!(
        run.transitions(),
        triples(&[
            ("develop", "pass", "review"),
            ("review", "pass", "qa"),
            ("qa", "fail", "develop"),
            ("develop", "pass", "review"),
            ("review", "pass", "qa"),
            ("qa", "exhausted", "triage"),
            ("triage", "exhausted", "failed"),
        ])
    );
    assert_eq!(
        s(&run.of("transition")[6]["reason"]),
        "`result` is FAIL, expected PASS; the stage has no `fail` transition"
    );
    assert_eq!(sb.out_lines("alerts"), vec!["ops two qa", "ops two triage"]);
    let alerts = run.of("alert");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["stage"], "qa");
    assert_eq!(alerts[1]["stage"], "triage");
    // Each alert follows its own exhausted transition.
    let kinds = run.kinds();
    let pos = |k: &str, n: usize| {
        kinds
            .iter()
            .enumerate()
            .filter(|(_, x)| *x == k)
            .nth(n)
            .unwrap()
            .0
    };
    let exhausted: Vec<usize> = run
        .events()
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "transition" && e["kind"] == "exhausted")
        .map(|(i, _)| i)
        .collect();
    assert!(exhausted[0] < pos("alert", 0) && pos("alert", 0) < exhausted[1]);
    assert!(exhausted[1] < pos("alert", 1));
}

#[test]
fn fail_budgets_count_per_task() {
    let sb = Sandbox::new("budget-per-task");
    // Two rollbacks of review fit a budget of 2, for each task on its own,
    // in the same state dir.
    for task in ["first", "second"] {
        let run = budget(&sb, task).env("T_PLAN_review", "1 1 0").run();
        run.expect_code(0);
        assert_eq!(run.finished(), ("success".into(), "done".into()));
        let fails = run.transitions().iter().filter(|t| t.1 == "fail").count();
        assert_eq!(fails, 2, "{task}");
        assert_eq!(
            s(&run.of("transition")[3]["reason"]),
            "`result` is FAIL, expected PASS (rollback 2 of 2)"
        );
        assert_eq!(calls_of(&sb, task, "review"), 3);
    }
    assert_eq!(sb.out_lines("alerts"), Vec::<String>::new());
}

#[test]
fn a_failing_alert_does_not_change_the_outcome() {
    let sb = Sandbox::new("budget-alert-fails");
    let run = budget(&sb, "af")
        .env("T_PLAN_review", "1")
        .env("T_ALERT_CODE", "7")
        .run();
    run.expect_code(1);
    let alert = run.one("alert");
    assert_eq!(alert["ok"], false);
    assert_eq!(alert["exit"], "exit code 7");
    assert_eq!(sb.out_lines("alerts"), vec!["ops af review"]);
    assert_eq!(
        run.transitions().last().unwrap(),
        &(
            "review".to_string(),
            "exhausted".to_string(),
            "failed".to_string()
        )
    );
    assert_eq!(run.finished(), ("failure".into(), "failed".into()));

    // The human view says so.
    let sb = Sandbox::new("budget-alert-fails-human");
    let run = budget(&sb, "af")
        .without("--json")
        .env("T_PLAN_review", "1")
        .env("T_ALERT_CODE", "7")
        .run();
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "  alert ops for review: failed (exit code 7); the task's outcome is unchanged\n"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(sb.out_lines("alerts"), vec!["ops af review"]);
}

#[test]
fn a_failing_alert_on_a_passing_route_does_not_stop_the_task() {
    let sb = Sandbox::new("budget-alert-fails-then-success");
    // qa is exhausted into triage with a failing alert; triage passes to the
    // `failed` end. The alert's failure changes neither the route nor the end.
    let run = budget(&sb, "route")
        .env("T_PLAN_qa", "1")
        .env("T_ALERT_CODE", "1")
        .run();
    run.expect_code(1);
    assert_eq!(
        run.transitions()[5..].to_vec(),
        triples(&[("qa", "exhausted", "triage"), ("triage", "pass", "failed")])
    );
    assert_eq!(run.one("alert")["ok"], false);
    assert_eq!(calls_of(&sb, "route", "triage"), 1);
}
