//! What users read must be true: the accounts orch gives of what happened
//! (history, roadmap, summaries) checked against runs that reproduce them.

mod common;

use common::*;

/// Runs the demo with its test runner switched off, so the hybrid `tester`
/// falls back to the LLM transport: LLM attempts of pipeline `demo`.
fn demo_with_llm_fallback(sb: &Sandbox) {
    Orch::new(&repo_root())
        .arg("run")
        .arg("d")
        .arg("-p")
        .arg("pipelines/demo.kdl")
        .arg("--state-dir")
        .arg(sb.state())
        .env("ORCH_DEMO_TEST_RUNNER", "0")
        .run()
        .expect_code(0);
}

fn roadmap(sb: &Sandbox, pipeline: &std::path::Path) -> Run {
    let run = Orch::new(&repo_root())
        .arg("roadmap")
        .arg("-p")
        .arg(pipeline)
        .arg("--state-dir")
        .arg(sb.state())
        .run();
    run.expect_code(0);
    run
}

#[test]
fn a_roadmap_counts_only_the_runs_of_its_own_pipeline() {
    let sb = Sandbox::new("roadmap-own");
    demo_with_llm_fallback(&sb);

    // The reference pipeline also has a call-site named `tester`; the demo's
    // runs are not its history.
    let other = roadmap(&sb, &repo_root().join("pipelines/orchestrator.kdl"));
    assert!(!other.stdout.contains("`tester`"), "{other}");
    assert!(
        other
            .stdout
            .contains("(ranked by 0 recorded LLM attempt(s) of pipeline `orchestrator`)"),
        "{other}"
    );

    let own = roadmap(&sb, &repo_root().join("pipelines/demo.kdl"));
    assert!(
        own.stdout
            .contains("`tester` (stage testing) — hybrid whose LLM fallback has fired"),
        "{own}"
    );
    assert!(
        own.stdout
            .contains("(ranked by 2 recorded LLM attempt(s) of pipeline `demo`)"),
        "{own}"
    );
}

#[test]
fn a_roadmap_says_when_its_history_ran_an_earlier_version_of_the_file() {
    let sb = Sandbox::new("roadmap-earlier");
    demo_with_llm_fallback(&sb);
    let edited = sb.root.join("demo.kdl");
    let text = std::fs::read_to_string(repo_root().join("pipelines/demo.kdl")).unwrap();
    std::fs::write(&edited, format!("// edited since\n{text}")).unwrap();
    let run = roadmap(&sb, &edited);
    assert!(
        run.stdout.contains(&format!(
            "(ranked by 2 recorded LLM attempt(s) of pipeline `demo`; 2 of them ran an earlier version of {})",
            edited.display()
        )),
        "{run}"
    );
}
