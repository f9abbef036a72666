//! Validation hardening: hostile pipeline files and task names that used to
//! crash, hang or mislead `orch`, each checked with the real binary.

use crate::common::*;
use std::path::Path;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_task_name_starting_with_a_dash_exits_2_and_creates_nothing() {
    let sb = Sandbox::new("task-dash");
    for name in ["-rf", "--help", "-"] {
        // After `--`, clap takes the name as the task, not as an option.
        let run = Orch::new(&sb.root)
            .arg("run")
            .arg("-p")
            .arg(fixture("ok.kdl"))
            .arg("--state-dir")
            .arg(sb.state())
            .arg("--worktree")
            .arg(sb.wt())
            .arg("--var")
            .arg(format!("scripts={}", scripts().display()))
            .env("T_OUT", sb.out())
            .arg("--")
            .arg(name)
            .run();
        run.expect_code(2);
        assert!(
            run.stderr
                .starts_with(&format!("error: invalid task name {name:?}")),
            "{name:?}: {}",
            run.stderr
        );
    }
    assert_eq!(entries(&sb.root), vec!["out", "wt"]);
    assert_eq!(entries(&sb.out()), Vec::<String>::new());
}

/// The findings of `text` checked as `name`, offline: (code, message).
fn findings(name: &str, text: &str) -> Vec<(String, String)> {
    let checked = orch_lang::analysis::analyze_text(
        name,
        text,
        &orch_lang::validate::Options { offline: true },
    );
    checked
        .report
        .findings
        .iter()
        .map(|f| (f.code.as_str().to_string(), f.message.clone()))
        .collect()
}

/// A valid one-stage pipeline with its artifact at `path` and its stage named `stage`.
fn one_stage(path: &str, stage: &str) -> String {
    format!(
        r#"pipeline "p" start="{stage}"
artifact "report" path="{path}" {{
    field "result" "PASS" "FAIL"
}}
gate "green" artifact="report" {{
    expect "result" "PASS"
}}
runner "check" {{
    command "true"
    timeout "1m"
    exit-code 0 verdict="PASS"
    otherwise verdict="FAIL"
    writes "report"
}}
call-site "builder" axis="C" verdict="machine" mode="runner" {{
    runner "check"
}}
stage "{stage}" call-site="builder" gate="green" {{
    pass "done"
    exhausted "failed"
}}
end "done" outcome="success"
end "failed" outcome="failure"
"#
    )
}

fn codes_of(found: &[(String, String)]) -> Vec<&str> {
    found.iter().map(|(c, _)| c.as_str()).collect()
}

#[test]
fn the_one_stage_pipeline_is_valid() {
    let found = findings("p.kdl", &one_stage("report.md", "build"));
    assert!(found.is_empty(), "{found:?}");
    for ok in [
        "r.md",
        "out/report.md",
        "./r.md",
        "logs.md",
        "a.b/c-d_e.txt",
    ] {
        let found = findings("p.kdl", &one_stage(ok, "build"));
        assert!(found.is_empty(), "{ok}: {found:?}");
    }
    for ok in ["b", "build-2", "a.b", "A_b", "9"] {
        let found = findings("p.kdl", &one_stage("r.md", ok));
        assert!(found.is_empty(), "{ok}: {found:?}");
    }
}

#[test]
fn stage_names_that_are_not_file_names_are_bad_names() {
    for bad in [
        "deploy/prod",
        "../x",
        "..",
        ".hidden",
        "-x",
        "a b",
        "a\\\\b",
        "ü",
    ] {
        let found = findings("p.kdl", &one_stage("r.md", bad));
        assert_eq!(codes_of(&found), ["orch::bad-name"], "{bad}: {found:?}");
    }
}

#[test]
fn artifact_paths_orch_cannot_use_are_bad_paths() {
    let cases = [
        (".", "names a directory, not a file"),
        ("./", "names a directory, not a file"),
        ("out/", "names a directory, not a file"),
        ("..", "must stay inside the task directory"),
        ("a/../b.md", "must stay inside the task directory"),
        ("/tmp/r.md", "must stay inside the task directory"),
        ("a\\u{0}b", "contains a NUL character"),
        ("logs", "collides with orch's own `logs` directory"),
        (
            "logs/build.1.log",
            "collides with orch's own `logs` directory",
        ),
        ("./logs/x.md", "collides with orch's own `logs` directory"),
    ];
    for (path, why) in cases {
        let found = findings("p.kdl", &one_stage(path, "build"));
        assert_eq!(codes_of(&found), ["orch::bad-path"], "{path}: {found:?}");
        assert!(found[0].1.contains(why), "{path}: {found:?}");
    }
}
