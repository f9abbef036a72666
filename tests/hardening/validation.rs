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
