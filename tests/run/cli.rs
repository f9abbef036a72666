//! The command line of `orch run`: what it refuses before doing anything,
//! its exit statuses, interruption, and a finished task run again.

use crate::common::*;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn invalid_task_names_exit_2_and_create_nothing() {
    let sb = Sandbox::new("cli-task-names");
    for name in ["../x", ".a", "a/b", "..", "", "a b"] {
        // With an explicit state dir…
        let run = sb.orch("ok.kdl", name).run();
        run.expect_code(2);
        assert!(
            run.stderr
                .starts_with(&format!("error: invalid task name {name:?}")),
            "{name:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{name:?}");
        // …and with the default one (.orch in the current directory).
        let run = Orch::new(&sb.wt())
            .arg("run")
            .arg(name)
            .arg("-p")
            .arg(fixture("ok.kdl"))
            .env("T_OUT", sb.out())
            .run();
        run.expect_code(2);
    }
    // Nothing was created anywhere: no state dir, no task dir, nothing ran.
    assert_eq!(entries(&sb.root), vec!["out", "wt"]);
    assert_eq!(entries(&sb.wt()), Vec::<String>::new());
    assert_eq!(entries(&sb.out()), Vec::<String>::new());
    assert!(!sb.root.join("x").exists());
}

#[test]
fn an_invalid_pipeline_exits_2_and_runs_nothing() {
    let sb = Sandbox::new("cli-invalid");
    let run = sb.orch("invalid.kdl", "inv").run();
    run.expect_code(2);
    assert!(
        run.stderr.contains("runner `only` has no `timeout`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .trim_end()
            .ends_with("the pipeline is invalid; nothing was run"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    assert!(!sb.state().exists());
    assert_eq!(entries(&sb.out()), Vec::<String>::new());
}

#[test]
fn a_missing_pipeline_file_lists_the_pipelines_nearby() {
    let sb = Sandbox::new("cli-missing");
    let dir = sb.dir("here");
    for f in ["b.kdl", "a.kdl", "notes.txt", "pipelines/c.kdl"] {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }
    let missing = dir.join("missing.kdl");
    let run = Orch::new(&sb.root)
        .arg("run")
        .arg("t")
        .arg("-p")
        .arg(&missing)
        .arg("--state-dir")
        .arg(sb.state())
        .run();
    run.expect_code(2);
    let d = dir.display();
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot read pipeline {}: No such file or directory (os error 2); \
             pipelines nearby: {d}/a.kdl, {d}/b.kdl, {d}/pipelines/c.kdl (pass one with -p)\n",
            missing.display()
        )
    );
    assert!(!sb.state().exists());

    // The default `pipeline.kdl`, looked for in the current directory.
    let run = Orch::new(&dir).arg("run").arg("t").run();
    run.expect_code(2);
    assert!(
        run.stderr.starts_with(
            "error: cannot read pipeline pipeline.kdl: No such file or directory (os error 2); pipelines nearby: "
        ),
        "{}",
        run.stderr
    );
    for f in ["a.kdl", "b.kdl", "pipelines/c.kdl"] {
        assert!(run.stderr.contains(f), "{f}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("notes.txt"), "{}", run.stderr);
    assert!(!dir.join(".orch").exists());
}

#[test]
fn exit_status_is_0_for_a_success_end_and_1_for_a_failure_end() {
    let sb = Sandbox::new("cli-exit");
    let run = sb.orch("ok.kdl", "good").run();
    run.expect_code(0);
    assert_eq!(run.finished(), ("success".into(), "done".into()));
    let run = sb.orch("ok.kdl", "bad").env("T_PLAN_only", "1").run();
    run.expect_code(1);
    assert_eq!(run.finished(), ("failure".into(), "rejected".into()));
    // Failing closed ends in a failure end too.
    let run = sb.orch("ok.kdl", "ugly").env("T_PLAN_only", "9").run();
    run.expect_code(1);
    assert_eq!(run.finished(), ("failure".into(), "failed".into()));
}

fn interrupt(sig: Signal) {
    let sb = Sandbox::new("cli-interrupt");
    let mut child = sb.orch("long.kdl", "int").spawn();
    sb.wait_for_out("child.pid", Duration::from_secs(30));
    // Let orch settle in its wait for the runner.
    std::thread::sleep(Duration::from_millis(100));
    signal(child.id(), sig);
    let stdout = child.stdout.take().unwrap();
    let run = finish_with(
        child,
        Some(std::thread::spawn(move || {
            std::io::read_to_string(stdout).unwrap_or_default()
        })),
        Duration::from_secs(30),
    );
    let pids = [sb.pid("child.pid"), sb.pid("grandchild.pid")];
    let survivors: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
    for p in &survivors {
        kill_group(*p);
    }
    assert_eq!(
        survivors,
        Vec::<i32>::new(),
        "runner processes survived {sig}"
    );
    run.expect_code(3);
    assert!(run.of("run-finished").is_empty());
    assert!(run.of("transition").is_empty());
    let last = run.events().last().cloned().unwrap();
    assert_eq!(last["event"], "note");
    assert_eq!(
        last["message"],
        "interrupted; resume with `orch run int --resume`"
    );
    assert_eq!(
        read(&sb.task_dir("int").join("logs/run.1.log")),
        "sleeper: started\n"
    );
    // The run is unfinished: a plain second run refuses, naming --resume.
    let again = sb.orch("long.kdl", "int").run();
    again.expect_code(2);
    assert_eq!(
        again.stderr,
        "error: task int has an unfinished run (#1, interrupted): use --resume to continue it or --restart to start over\n"
    );
}

#[test]
fn sigint_during_a_long_runner_exits_3_and_terminates_the_runner_group() {
    interrupt(Signal::SIGINT);
}

#[test]
fn sigterm_during_a_long_runner_exits_3_and_terminates_the_runner_group() {
    interrupt(Signal::SIGTERM);
}

#[test]
fn a_finished_task_run_again_says_so_and_exits_with_its_outcome() {
    let sb = Sandbox::new("cli-finished");
    sb.orch("ok.kdl", "fin").run().expect_code(0);
    sb.orch("ok.kdl", "lost")
        .env("T_PLAN_only", "1")
        .run()
        .expect_code(1);
    let calls = sb.out_lines("calls");
    assert_eq!(calls, vec!["fin only 1", "lost only 1"]);

    let again = sb.orch("ok.kdl", "fin").without("--json").run();
    again.expect_code(0);
    assert_eq!(
        again.stdout,
        "task fin already finished: success (end `done`); use --restart to run it again\n"
    );
    let again = sb.orch("ok.kdl", "lost").without("--json").run();
    again.expect_code(1);
    assert_eq!(
        again.stdout,
        "task lost already finished: failure (end `rejected`); use --restart to run it again\n"
    );
    // Nothing ran again.
    assert_eq!(sb.out_lines("calls"), calls);
}

#[test]
fn a_finished_task_run_again_with_json_prints_only_json_lines() {
    let sb = Sandbox::new("cli-finished-json");
    sb.orch("ok.kdl", "fin").run().expect_code(0);
    let again = sb.orch("ok.kdl", "fin").run();
    again.expect_code(0);
    // Every line of stdout is a JSON event (`events` fails on any other
    // line), and one of them gives the outcome and the end it finished at.
    let events = again.events();
    assert!(
        events.iter().any(|e| {
            let text = e.to_string();
            text.contains("\"success\"") && text.contains("\"done\"")
        }),
        "{}",
        again.stdout
    );
}

#[test]
fn concurrent_first_runs_on_a_fresh_state_dir_all_start() {
    // Several `orch run`s of different tasks sharing a state dir that does
    // not exist yet: each must create or open the store and run its task.
    for round in 0..5 {
        let sb = Sandbox::new("cli-fresh-store");
        let tasks: Vec<String> = (0..4).map(|i| format!("f{round}-{i}")).collect();
        let children: Vec<_> = tasks.iter().map(|t| sb.orch("ok.kdl", t).spawn()).collect();
        for (t, c) in tasks.iter().zip(children) {
            let run = finish(c, HANG);
            assert_eq!(
                run.code(),
                Some(0),
                "round {round}, task {t}: {:?}\nstderr: {}",
                run.status,
                run.stderr
            );
        }
        let mut calls = sb.out_lines("calls");
        calls.sort();
        let mut want: Vec<String> = tasks.iter().map(|t| format!("{t} only 1")).collect();
        want.sort();
        assert_eq!(calls, want);
    }
}
