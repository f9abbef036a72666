//! What runners, transports and alerts get: ORCH_TASK, ORCH_STAGE,
//! ORCH_ATTEMPT, ORCH_TASK_DIR and ORCH_WORKTREE (absolute), ORCH_PIPELINE;
//! and placeholders rendered in their argv and env; ORCH_SUPERVISION_TOKEN,
//! distinct for every process started.

use crate::common::*;
use std::collections::BTreeMap;

fn expected(sb: &Sandbox, stage: &str, attempt: &str) -> BTreeMap<String, String> {
    [
        ("ORCH_ATTEMPT", attempt.to_string()),
        (
            "ORCH_PIPELINE",
            sb.root.join("pipe/env.kdl").display().to_string(),
        ),
        ("ORCH_STAGE", stage.to_string()),
        ("ORCH_TASK", "envtask".to_string()),
        (
            "ORCH_TASK_DIR",
            sb.task_dir("envtask").display().to_string(),
        ),
        ("ORCH_WORKTREE", sb.wt().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The recorded environment, less its supervision token, which must be
/// there and differ from every token seen before.
fn env_less_token(text: &str, seen: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut env = env_map(text);
    let token = env.remove("ORCH_SUPERVISION_TOKEN");
    assert!(
        token
            .as_ref()
            .is_some_and(|t| !t.is_empty() && !seen.contains(t)),
        "ORCH_SUPERVISION_TOKEN={token:?}, seen {seen:?}"
    );
    seen.extend(token);
    env
}

#[test]
fn runners_transports_and_alerts_get_the_orch_environment_with_absolute_paths() {
    let sb = Sandbox::new("env");
    // The pipeline, state dir and worktree are all given as relative paths.
    let pipe = sb.dir("pipe");
    std::fs::copy(fixture("env.kdl"), pipe.join("env.kdl")).unwrap();
    std::fs::create_dir_all(pipe.join("prompts")).unwrap();
    std::fs::copy(fixture("prompts/task.md"), pipe.join("prompts/task.md")).unwrap();
    let run = Orch::new(&sb.root)
        .arg("run")
        .arg("envtask")
        .arg("-p")
        .arg("pipe/env.kdl")
        .arg("--state-dir")
        .arg("state")
        .arg("--worktree")
        .arg("wt")
        .arg("--var")
        .arg(format!("scripts={}", scripts().display()))
        .arg("--json")
        .env("T_OUT", sb.out())
        .env("T_PLAN_closing", "1")
        .run();
    run.expect_code(1);
    assert_eq!(
        run.transitions(),
        triples(&[
            ("viarunner", "pass", "viallm"),
            ("viallm", "pass", "closing"),
            ("closing", "exhausted", "failed"),
        ])
    );

    // The runner: its environment, its own `env` and argv rendered, its cwd.
    let mut want = expected(&sb, "viarunner", "1");
    want.insert("RUNNER_LABEL".into(), "envtask/viarunner#1".into());
    let mut tokens = Vec::new();
    assert_eq!(
        env_less_token(&sb.out_file("env.runner.viarunner").unwrap(), &mut tokens),
        want
    );
    assert_eq!(
        sb.out_lines("args.runner.viarunner"),
        vec![
            "envtask".to_string(),
            "viarunner".to_string(),
            "1".to_string(),
            sb.task_dir("envtask").display().to_string(),
            sb.wt().display().to_string(),
        ]
    );
    assert_eq!(
        sb.out_lines("cwd.runner.viarunner"),
        vec![sb.wt().display().to_string()]
    );

    // The transport: the same, plus the transport's `env`.
    let mut want = expected(&sb, "viallm", "1");
    want.insert(
        "ARTIFACT".into(),
        sb.task_dir("envtask")
            .join("agent.md")
            .display()
            .to_string(),
    );
    assert_eq!(
        env_less_token(&sb.out_file("agent.viallm.1.env").unwrap(), &mut tokens),
        want
    );

    // The alert, for the stage that failed closed.
    let got = env_less_token(&sb.out_file("env.alert.closing").unwrap(), &mut tokens);
    let attempt = got.get("ORCH_ATTEMPT").cloned();
    assert!(
        attempt.as_deref().is_some_and(|a| a.parse::<u32>().is_ok()),
        "ORCH_ATTEMPT={attempt:?}"
    );
    let mut want = expected(&sb, "closing", attempt.as_deref().unwrap_or(""));
    want.insert("ORCH_ALERT".into(), "envdump".into());
    assert_eq!(got, want);

    // The paths are absolute and real.
    assert!(sb.task_dir("envtask").join("runner.md").is_file());
    assert!(sb.task_dir("envtask").join("agent.md").is_file());
}

#[test]
fn orch_attempt_counts_every_attempt_of_a_stage() {
    let sb = Sandbox::new("env-attempts");
    // check: tool-error, FAIL (rollback to work), PASS → attempts 1, 2, 3.
    let run = sb
        .orch("retry.kdl", "att")
        .env("T_PLAN_check", "9 1 0")
        .env("T_ARTIFACT_TEXT", "verdict: APPROVED")
        .run();
    run.expect_code(0);
    assert_eq!(
        sb.out_lines("calls"),
        vec![
            "att work 1",
            "att check 1",
            "att check 2",
            "att work 2",
            "att check 3",
            "att review 1 llm",
        ]
    );
    // One log per stage attempt.
    for log in [
        "work.1", "work.2", "check.1", "check.2", "check.3", "review.1",
    ] {
        assert!(
            sb.task_dir("att").join(format!("logs/{log}.log")).is_file(),
            "{log}"
        );
    }
}
