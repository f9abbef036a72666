//! `orch history` after a run: how the run moved and why it ended (its
//! transitions, with their reasons), what became of its alerts, and its
//! notes, in text and `--json`.

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// One runner stage whose runner is switched off when `R_ON=0`: the stage
/// fails closed before any attempt and pages through the alert `ALERT`,
/// whose command is `ALERT_SH`.
fn switched_off_pipeline(alert: &str, alert_sh: &str) -> String {
    format!(
        r#"pipeline "p" start="build"

artifact "rep" path="rep.md" {{
    field "result" "PASS" "FAIL"
}}
gate "ok" artifact="rep" {{
    expect "result" "PASS"
}}
runner "r" {{
    command "sh" "-c" "exit 0"
    timeout "10s"
    grace "1s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "rep"
    enabled #true env="R_ON"
}}
call-site "cs" axis="C" verdict="machine" mode="runner" {{
    runner "r"
}}
stage "build" call-site="cs" gate="ok" {{
    pass "done"
    exhausted "failed" alert="{alert}"
}}
end "done" outcome="success"
end "failed" outcome="failure"
alert "{alert}" {{
    command "sh" "-c" "{alert_sh}"
    timeout "30s"
}}
"#
    )
}

fn write_pipeline(sb: &Sandbox, text: &str) -> PathBuf {
    let p = sb.dir("pipelines").join("p.kdl");
    std::fs::write(&p, text).unwrap();
    p
}

/// `orch history TASK --state-dir STATE` (the text view).
fn history_text(sb: &Sandbox, task: &str) -> String {
    let run = Orch::new(&sb.root)
        .arg("history")
        .arg(task)
        .arg("--state-dir")
        .arg(sb.state())
        .run();
    run.expect_code(0);
    run.stdout.clone()
}

const SWITCHED_OFF: &str =
    "runner `r` is switched off (environment variable R_ON=0), and mode=\"runner\" has no fallback";

#[test]
fn history_says_why_a_run_that_failed_before_any_attempt_ended_and_what_its_alert_did() {
    let sb = Sandbox::new("history-why");
    let p = write_pipeline(&sb, &switched_off_pipeline("console", "exit 3"));
    sb.run("t", &p).env("R_ON", "0").run().expect_code(1);

    let text = history_text(&sb, "t");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("run #1 of task t: failure (end `failed`) in "),
        "{text}"
    );
    assert_eq!(
        lines[1..],
        [
            "  (no attempts)",
            &format!("  build → failed (exhausted: {SWITCHED_OFF})"),
            "  alert console for build: failed (exit code 3)",
            "",
        ],
        "{text}"
    );

    let run = &history_json(&sb, "t")["runs"][0];
    assert_eq!(
        run["transitions"],
        json!([{
            "from": "build",
            "kind": "exhausted",
            "to": "failed",
            "reason": SWITCHED_OFF,
        }]),
        "{run:#}"
    );
    assert_eq!(
        run["alerts"],
        json!([{ "stage": "build", "alert": "console", "state": "failed", "error": "exit code 3" }]),
        "{run:#}"
    );
}

#[test]
fn history_shows_every_transition_of_a_run_and_a_sent_alert() {
    let sb = Sandbox::new("history-moves");
    let p = write_pipeline(&sb, &switched_off_pipeline("console", "exit 0"));
    sb.run("t", &p).run().expect_code(0);
    sb.run("u", &p).env("R_ON", "0").run().expect_code(1);

    let ok = history_text(&sb, "t");
    assert!(ok.contains("\n  build → done (pass"), "{ok}");
    assert!(
        !ok.contains("alert"),
        "a run that passed sent no alert: {ok}"
    );
    let run = &history_json(&sb, "t")["runs"][0];
    assert_eq!(run["transitions"][0]["to"], "done", "{run:#}");
    assert_eq!(run["transitions"][0]["kind"], "pass", "{run:#}");
    assert_eq!(run["alerts"], json!([]), "{run:#}");

    let failed = history_text(&sb, "u");
    assert!(
        failed.ends_with("  alert console for build: sent\n\n"),
        "{failed}"
    );
    let run = &history_json(&sb, "u")["runs"][0];
    assert_eq!(
        run["alerts"],
        json!([{ "stage": "build", "alert": "console", "state": "sent", "error": null }]),
        "{run:#}"
    );
}

#[test]
fn an_alert_the_resumed_pipeline_no_longer_defines_is_reported_failed_and_shown_by_history() {
    let sb = Sandbox::new("history-undefined-alert");
    // The alert records its pid and waits: orch is interrupted while it
    // runs, so it stays pending for the resume.
    let waits = r#"echo $$ > \"$T_OUT/alert.pid\"; sleep 30"#;
    let p = write_pipeline(&sb, &switched_off_pipeline("page", waits));
    let child = sb.run("t", &p).env("R_ON", "0").arg("--json").spawn();
    sb.wait_for_out("alert.pid", Duration::from_secs(20));
    signal(child.id(), Signal::SIGINT);
    finish(child, HANG).expect_code(3);
    let run = &history_json(&sb, "t")["runs"][0];
    assert_eq!(
        run["alerts"],
        json!([{ "stage": "build", "alert": "page", "state": "pending", "error": null }]),
        "{run:#}"
    );
    assert!(
        history_text(&sb, "t").contains("\n  alert page for build: pending\n"),
        "{run:#}"
    );

    // The pipeline now pages through another alert: `page` is gone.
    write_pipeline(&sb, &switched_off_pipeline("other", "exit 0"));
    let resumed = sb
        .run("t", &p)
        .env("R_ON", "0")
        .arg("--resume")
        .arg("--allow-changed-pipeline")
        .arg("--json")
        .run();
    resumed.expect_code(1);
    let alert = resumed.one("alert");
    assert_eq!(alert["alert"], "page", "{resumed}");
    assert_eq!(alert["ok"], false, "{resumed}");
    assert_eq!(
        alert["exit"], "the pipeline no longer defines it",
        "{resumed}"
    );

    let text = history_text(&sb, "t");
    assert!(
        text.contains("\n  alert page for build: failed (the pipeline no longer defines it)\n"),
        "{text}"
    );
    let run = &history_json(&sb, "t")["runs"][0];
    assert_eq!(run["alerts"][0]["state"], "failed", "{run:#}");
    assert_eq!(
        run["alerts"][0]["error"], "the pipeline no longer defines it",
        "{run:#}"
    );
}
