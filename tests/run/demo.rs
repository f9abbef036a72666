//! The demo pipeline (pipelines/demo.kdl), run from the repository root.

use crate::common::*;

fn demo(sb: &Sandbox) -> Orch {
    Orch::new(&repo_root())
        .arg("run")
        .arg("demo-1")
        .arg("-p")
        .arg("pipelines/demo.kdl")
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
}

#[test]
fn the_demo_runs_to_success_from_the_repo_root() {
    let sb = Sandbox::new("demo");
    let run = demo(&sb).run();
    run.expect_code(0);
    assert_eq!(run.finished(), ("success".into(), "done".into()));
    assert_eq!(
        run.producers(),
        triples(&[
            ("format", "runner", "format-check"),
            ("testing", "runner", "unit-tests"),
            ("review", "llm", "script-agent"),
        ])
    );
    assert_eq!(
        run.transitions(),
        triples(&[
            ("format", "pass", "testing"),
            ("testing", "pass", "review"),
            ("review", "pass", "done"),
        ])
    );
    assert_eq!(
        first_line(&sb.task_dir("demo-1").join("13-test-report.md")),
        "result: PASS"
    );
}

#[test]
fn the_demo_with_its_test_runner_off_uses_the_llm_for_testing() {
    let sb = Sandbox::new("demo-llm");
    let run = demo(&sb).env("ORCH_DEMO_TEST_RUNNER", "0").run();
    run.expect_code(0);
    assert_eq!(run.finished(), ("success".into(), "done".into()));
    assert_eq!(
        run.producers(),
        triples(&[
            ("format", "runner", "format-check"),
            ("testing", "llm", "script-agent"),
            ("review", "llm", "script-agent"),
        ])
    );
    assert_eq!(
        s(&run.of_stage("attempt-started", "testing")[0]["reason"]),
        "runner `unit-tests` is switched off (environment variable ORCH_DEMO_TEST_RUNNER=0); falling back to the LLM"
    );
    // The stand-in agent wrote the test report.
    assert_eq!(
        read(&sb.task_dir("demo-1").join("13-test-report.md")),
        "result: PASS\nstatus: the agent ran the suite (the test runner was off)\n"
    );
}

/// The demo from another directory: an absolute `-p`, a temporary directory
/// as the current directory and the worktree. Every path in the demo starts
/// at `{pipeline-dir}` (or `$ORCH_PIPELINE` in its agent script).
fn demo_from_elsewhere(sb: &Sandbox) -> Orch {
    Orch::new(&sb.wt())
        .arg("run")
        .arg("d")
        .arg("-p")
        .arg(repo_root().join("pipelines/demo.kdl"))
        .arg("--worktree")
        .arg(sb.wt())
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
}

#[test]
fn the_demo_runs_to_success_from_any_directory() {
    let sb = Sandbox::new("demo-elsewhere");
    let run = demo_from_elsewhere(&sb).run();
    run.expect_code(0);
    assert_eq!(run.finished(), ("success".into(), "done".into()));
    assert_eq!(
        first_line(&sb.task_dir("d").join("13-test-report.md")),
        "result: PASS"
    );
}

#[test]
fn the_demo_agent_runs_from_any_directory() {
    let sb = Sandbox::new("demo-elsewhere-llm");
    let run = demo_from_elsewhere(&sb)
        .env("ORCH_DEMO_TEST_RUNNER", "0")
        .run();
    run.expect_code(0);
    assert_eq!(run.finished(), ("success".into(), "done".into()));
    assert_eq!(
        read(&sb.task_dir("d").join("13-test-report.md")),
        "result: PASS\nstatus: the agent ran the suite (the test runner was off)\n"
    );
}

#[test]
fn explain_renders_pipeline_dir_as_the_pipeline_files_directory() {
    let sb = Sandbox::new("demo-explain");
    let run = Orch::new(&sb.wt())
        .arg("explain")
        .arg("review")
        .arg("-p")
        .arg(repo_root().join("pipelines/demo.kdl"))
        .arg("--worktree")
        .arg(sb.wt())
        .run();
    run.expect_code(0);
    let agent = std::fs::canonicalize(repo_root().join("pipelines/demo/agent.sh")).unwrap();
    assert!(
        run.stdout
            .contains(&format!("argv: [\"sh\", \"{}\"]", agent.display())),
        "{run}"
    );
}
