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

#[test]
fn history_after_a_restart_points_every_attempt_at_its_own_log() {
    let sb = Sandbox::new("history-restart-logs");
    sb.orch("ok.kdl", "t").run().expect_code(0);
    sb.orch("ok.kdl", "t").arg("--restart").run().expect_code(0);

    let doc = history_json(&sb, "t");
    let logs: Vec<String> = doc["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| s(&r["attempts"][0]["log"]).to_string())
        .collect();
    assert_eq!(logs.len(), 2);
    assert_ne!(logs[0], logs[1], "two runs, two logs");
    // plan.sh prints which call of the stage it is: the first run's log
    // holds call 1, the restarted run's call 2.
    for (log, call) in logs.iter().zip(["call 1 ", "call 2 "]) {
        let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{log}: {e}"));
        assert!(text.contains(call), "{log} should hold {call:?}: {text:?}");
    }
    assert!(
        logs[0].contains("/archive/t/run-1/logs/"),
        "the first run's log moved to its archive: {}",
        logs[0]
    );
}

#[test]
fn a_resumed_run_reports_the_whole_run_and_status_shows_human_times() {
    let sb = Sandbox::new("resumed-duration");
    let crashed = sb
        .orch("ok.kdl", "t")
        .env("ORCH_FAILPOINT", "before-spawn")
        .run();
    assert_eq!(crashed.code(), None, "{crashed}");

    let status = Orch::new(&sb.root)
        .arg("status")
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
        .run();
    status.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    let started = s(&doc["tasks"][0]["started"]).to_string();
    assert!(
        is_rfc3339(&started),
        "status gives RFC 3339 times: {started:?}"
    );

    std::thread::sleep(std::time::Duration::from_millis(600));
    let resumed = sb.orch("ok.kdl", "t").arg("--resume").run();
    resumed.expect_code(0);
    let finished = resumed.one("run-finished");
    let ms = finished["duration_ms"].as_u64().expect("duration_ms");
    assert!(
        ms >= 600,
        "the run took at least the 600ms between its start and its resume, reported {ms}ms"
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn verbose_debug_lines_on_a_pipe_carry_no_colour() {
    let sb = Sandbox::new("verbose-pipe");
    let run = sb.orch("ok.kdl", "t").arg("-v").run();
    run.expect_code(0);
    assert!(
        run.stderr.contains("DEBUG"),
        "-v prints the engine's debug lines: {run}"
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no escape sequences on a pipe: {:?}",
        run.stderr.lines().next()
    );
}
