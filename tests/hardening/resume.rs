//! Resume and re-run integrity: a resumed run finishes with the variables
//! and worktree it began with; a finished task run again says when its
//! pipeline changed since.

use crate::common::*;
use std::path::{Path, PathBuf};

fn pipeline() -> PathBuf {
    hardening_fixture("resume-vars.kdl")
}

/// `orch run TASK -p resume-vars.kdl --state-dir state`, from the sandbox
/// root, with nothing else: the command orch prints for a resume.
fn bare(sb: &Sandbox, task: &str) -> Orch {
    Orch::new(&sb.root)
        .arg("run")
        .arg(task)
        .arg("-p")
        .arg(pipeline())
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
        .env("T_OUT", sb.out())
}

/// Starts the task in worktree `wt` with `target=staging` and crashes orch
/// just before the second stage's producer would start.
fn crash_before_second(sb: &Sandbox, task: &str, wt: &Path) {
    let run = bare(sb, task)
        .arg("--worktree")
        .arg(wt)
        .arg("--var")
        .arg(format!("scripts={}", scripts().display()))
        .arg("--var")
        .arg("target=staging")
        .env("ORCH_FAILPOINT", "before-spawn@second")
        .run();
    assert_eq!(
        run.code(),
        None,
        "orch killed itself at the failpoint: {run}"
    );
    assert_eq!(
        sb.out_lines("args.runner.first"),
        ["staging"],
        "the first stage ran with the given variable"
    );
    assert!(sb.out_file("args.runner.second").is_none());
}

#[test]
fn a_bare_resume_runs_with_the_variables_and_worktree_the_run_began_with() {
    let sb = Sandbox::new("resume-bare");
    let a = sb.dir("worktree-a");
    crash_before_second(&sb, "t", &a);

    let run = bare(&sb, "t").arg("--resume").run();
    run.expect_code(0);
    assert_eq!(sb.out_lines("args.runner.second"), ["staging"]);
    assert_eq!(
        sb.out_lines("cwd.runner.second"),
        [a.display().to_string()],
        "the second stage ran in the run's worktree, not the current directory"
    );
}

#[test]
fn a_resume_with_another_variable_or_worktree_is_refused_naming_the_difference() {
    let sb = Sandbox::new("resume-refused");
    let a = sb.dir("worktree-a");
    let b = sb.dir("worktree-b");
    crash_before_second(&sb, "t", &a);

    let run = bare(&sb, "t")
        .arg("--resume")
        .arg("--var")
        .arg("target=prod")
        .run();
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("--var target=prod (the run has target=staging)"),
        "{run}"
    );
    assert!(run.stderr.contains("--allow-changed-vars"), "{run}");

    let run = bare(&sb, "t")
        .arg("--resume")
        .arg("--worktree")
        .arg(&b)
        .run();
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "--worktree {} (the run has {})",
            b.display(),
            a.display()
        )),
        "{run}"
    );
    assert!(
        sb.out_file("args.runner.second").is_none(),
        "nothing ran on a refused resume"
    );

    // The same value as recorded is no difference.
    let run = bare(&sb, "t")
        .arg("--resume")
        .arg("--var")
        .arg("target=staging")
        .arg("--worktree")
        .arg(&a)
        .run();
    run.expect_code(0);
    assert_eq!(sb.out_lines("args.runner.second"), ["staging"]);
}

#[test]
fn a_consented_change_on_resume_is_taken_and_recorded_in_the_run() {
    let sb = Sandbox::new("resume-consent");
    let a = sb.dir("worktree-a");
    crash_before_second(&sb, "t", &a);

    let run = bare(&sb, "t")
        .arg("--resume")
        .arg("--allow-changed-vars")
        .arg("--var")
        .arg("target=prod")
        .run();
    run.expect_code(0);
    assert_eq!(sb.out_lines("args.runner.second"), ["prod"]);
    assert_eq!(sb.out_lines("cwd.runner.second"), [a.display().to_string()]);

    let doc = history_json(&sb, "t");
    let run0 = &doc["runs"][0];
    assert_eq!(run0["vars"]["target"], "prod");
    assert_eq!(
        run0["notes"][0],
        "resumed with changed variables or worktree: --var target=prod (the run has target=staging)"
    );
}

#[test]
fn a_finished_task_run_again_says_its_pipeline_changed_and_how_to_run_it_anew() {
    let sb = Sandbox::new("finished-changed");
    let file = sb.root.join("pipeline.kdl");
    let text = std::fs::read_to_string(pipeline()).unwrap();
    std::fs::write(&file, &text).unwrap();
    let run_it = || {
        Orch::new(&sb.root)
            .arg("run")
            .arg("t")
            .arg("-p")
            .arg(&file)
            .arg("--state-dir")
            .arg(sb.state())
            .arg("--var")
            .arg(format!("scripts={}", scripts().display()))
            .env("T_OUT", sb.out())
            .run()
    };
    run_it().expect_code(0);

    let again = run_it();
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains("already finished: success (end `done`); use --restart"),
        "{again}"
    );

    std::fs::write(
        &file,
        text.replace("var \"target\" \"dev\"", "var \"target\" \"qa\""),
    )
    .unwrap();
    let changed = run_it();
    changed.expect_code(0);
    assert!(
        changed.stdout.contains(
            "with an earlier version of the pipeline; it changed since run #1 (changed `pipeline \"resume-vars\"`): use --restart to run it anew"
        ),
        "{changed}"
    );
}
