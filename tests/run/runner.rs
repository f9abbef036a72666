//! Runners: exit codes mapped to verdicts, the artifact orch writes, and the
//! supervision of the runner's process tree (timeout, idle timeout, escapees).

use crate::common::*;

fn mapped(sb: &Sandbox, task: &str, code: &str) -> Run {
    sb.orch("runner.kdl", task).env("T_PLAN_check", code).run()
}

#[test]
fn several_exit_codes_map_to_one_verdict_and_otherwise_takes_the_rest() {
    let sb = Sandbox::new("runner-map");
    // (exit code, verdict, exit status of orch, end)
    let cases = [
        ("0", "PASS", 0, "done"),
        ("1", "FAIL", 1, "rejected"),
        ("5", "FAIL", 1, "rejected"),
        ("7", "SKIP", 1, "rejected"),
        ("42", "SKIP", 1, "rejected"),
        ("2", "SKIP", 1, "rejected"),
    ];
    for (code, verdict, status, end) in cases {
        let task = format!("code-{code}");
        let run = mapped(&sb, &task, code);
        run.expect_code(status);
        let f = run.one("attempt-finished");
        assert_eq!(f["producer"], "runner");
        assert_eq!(f["name"], "mapped");
        assert_eq!(s(&f["exit"]), format!("exit code {code}"));
        assert_eq!(f["exit_code"], code.parse::<i64>().unwrap());
        assert_eq!(f["verdict"], verdict, "exit code {code}");
        assert_eq!(f["leaked"], serde_json::json!([]));
        // The verdict is the first line of the artifact, under the field
        // named by `writes … field="outcome"`.
        let artifact = sb.task_dir(&task).join("check-report.md");
        assert_eq!(first_line(&artifact), format!("outcome: {verdict}"));
        let gate = run.one("gate");
        assert_eq!(gate["pass"], verdict == "PASS");
        if verdict == "PASS" {
            assert_eq!(gate["reason"], "outcome: PASS");
            assert_eq!(run.transitions(), triples(&[("check", "pass", "done")]));
        } else {
            assert_eq!(
                s(&gate["reason"]),
                format!("`outcome` is {verdict}, expected PASS")
            );
            assert_eq!(run.transitions(), triples(&[("check", "fail", end)]));
        }
        assert_eq!(run.finished().1, end);
    }
}

#[test]
fn an_exit_code_mapped_to_tool_error_writes_no_artifact_and_fails_closed() {
    let sb = Sandbox::new("runner-map-tool-error");
    let run = mapped(&sb, "te", "3");
    run.expect_code(1);
    let f = run.one("attempt-finished");
    assert_eq!(f["verdict"], "tool-error");
    assert_eq!(f["exit_code"], 3);
    // No retry configured: one attempt, then exhausted. No gate ever ran.
    assert!(run.of("deferred").is_empty());
    assert!(run.of("gate").is_empty());
    assert!(!sb.task_dir("te").join("check-report.md").exists());
    assert_eq!(
        run.transitions(),
        triples(&[("check", "exhausted", "failed")])
    );
    assert_eq!(
        s(&run.one("transition")["reason"]),
        "tool-error on 1 attempt(s): the retry budget is spent (exit code 3)"
    );
}

#[test]
fn the_artifact_holds_the_verdict_first_then_command_exit_duration_and_output_tail() {
    let sb = Sandbox::new("runner-artifact");
    // The output holds a line that looks like the verdict field: it must not
    // pose as one (the first line of a key wins, and output is indented).
    let run = sb
        .orch("runner.kdl", "art")
        .env("T_PLAN_check", "5")
        .env("T_SAY", "outcome: PASS\\nsecond line")
        .run();
    run.expect_code(1);
    let f = run.one("attempt-finished");
    let duration = human_ms(f["duration_ms"].as_u64().unwrap());
    let artifact = read(&sb.task_dir("art").join("check-report.md"));
    let expected = format!(
        "outcome: FAIL\n\
         \n\
         # Report of runner `mapped` (written by orch)\n\
         \n\
         - command: `sh {scripts}/plan.sh --label art`\n\
         - result: exit code 5\n\
         - duration: {duration}\n\
         \n\
         ## Output (last 3 lines)\n\
         \n\
         \x20   outcome: PASS\n\
         \x20   second line\n\
         \x20   plan: check call 1 exits 5\n",
        scripts = scripts().display()
    );
    assert_eq!(artifact, expected);
    assert_eq!(
        run.one("gate")["reason"],
        "`outcome` is FAIL, expected PASS"
    );
    // The attempt's log holds the whole output, unindented.
    let log = sb.task_dir("art").join("logs/check.1.log");
    assert_eq!(s(&f["log"]), log.display().to_string());
    assert_eq!(
        read(&log),
        "outcome: PASS\nsecond line\nplan: check call 1 exits 5\n"
    );
}

#[test]
fn the_artifact_keeps_the_last_50_lines_of_output() {
    let sb = Sandbox::new("runner-tail");
    let say: Vec<String> = (1..=60).map(|i| format!("out {i}")).collect();
    let run = sb
        .orch("runner.kdl", "tail")
        .env("T_PLAN_check", "0")
        .env("T_SAY", say.join("\\n"))
        .run();
    run.expect_code(0);
    let artifact = read(&sb.task_dir("tail").join("check-report.md"));
    let (_, output) = artifact
        .split_once("## Output (last 50 lines)\n\n")
        .unwrap_or_else(|| panic!("no 50-line output section:\n{artifact}"));
    let mut want: Vec<String> = (12..=60).map(|i| format!("    out {i}")).collect();
    want.push("    plan: check call 1 exits 0".into());
    assert_eq!(output.lines().collect::<Vec<_>>(), want);
    // The log keeps everything.
    assert_eq!(
        read(&sb.task_dir("tail").join("logs/check.1.log"))
            .lines()
            .count(),
        61
    );
}

/// Asserts that the sleeper's child and grandchild are gone.
fn assert_tree_gone(sb: &Sandbox) {
    for name in ["child.pid", "grandchild.pid"] {
        let pid = sb.pid(name);
        let alive = running(pid);
        if alive {
            kill_group(pid);
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .ok();
        }
        assert!(!alive, "{name} ({pid}) survived the attempt");
    }
}

fn assert_timed_out(sb: &Sandbox, run: &Run, task: &str, exit: &str) {
    run.expect_code(1);
    let f = run.one("attempt-finished");
    assert_eq!(f["exit"], exit);
    assert_eq!(f["exit_code"], serde_json::Value::Null);
    // `on-timeout verdict="FAIL"`.
    assert_eq!(f["verdict"], "FAIL");
    assert_eq!(f["leaked"], serde_json::json!([]));
    let artifact = read(&sb.task_dir(task).join("report.md"));
    assert_eq!(artifact.lines().next(), Some("result: FAIL"));
    assert!(
        artifact.contains(&format!("\n- result: {exit}\n")),
        "{artifact}"
    );
    assert!(artifact.contains("\n    sleeper: started\n"), "{artifact}");
    let log = read(&sb.task_dir(task).join("logs/run.1.log"));
    assert_eq!(log, "sleeper: started\n");
    assert_eq!(run.one("gate")["reason"], "`result` is FAIL, expected PASS");
    assert_eq!(run.transitions(), triples(&[("run", "fail", "rejected")]));
    assert_tree_gone(sb);
}

#[test]
fn a_timeout_kills_the_whole_process_tree_with_the_on_timeout_verdict() {
    let sb = Sandbox::new("runner-timeout");
    let run = sb.orch("tree.kdl", "slow").run();
    assert_timed_out(&sb, &run, "slow", "timed out");
}

#[test]
fn a_timeout_kills_a_tree_that_ignores_sigterm_after_the_grace() {
    let sb = Sandbox::new("runner-timeout-term");
    let run = sb
        .orch("tree.kdl", "stubborn")
        .env("T_IGNORE_TERM", "1")
        .run();
    assert_timed_out(&sb, &run, "stubborn", "timed out");
}

#[test]
fn an_escaped_setsid_grandchild_is_killed_and_reported_as_leaked() {
    let sb = Sandbox::new("runner-leak");
    let run = sb
        .orch("tree.kdl", "leaky")
        .arg("--var")
        .arg("script=escape.sh")
        .run();
    let pid = sb.pid("escaped.pid");
    let alive = running(pid);
    if alive {
        kill_group(pid);
    }
    assert!(!alive, "the escaped process {pid} survived the attempt");
    run.expect_code(0);
    let f = run.one("attempt-finished");
    assert_eq!(f["exit"], "exit code 0");
    assert_eq!(f["verdict"], "PASS");
    assert_eq!(
        f["leaked"],
        serde_json::json!([format!("pid {pid} `sleep 30`")])
    );
}

#[test]
fn an_idle_timeout_ends_an_attempt_that_prints_nothing() {
    let sb = Sandbox::new("runner-idle");
    let run = sb.orch("idle.kdl", "quiet").run();
    assert_timed_out(&sb, &run, "quiet", "idle timeout (no output)");
}

#[test]
fn an_attempt_that_keeps_printing_outlives_its_idle_timeout() {
    let sb = Sandbox::new("runner-idle-ticker");
    let run = sb
        .orch("idle.kdl", "ticking")
        .arg("--var")
        .arg("script=ticker.sh")
        .run();
    run.expect_code(0);
    let f = run.one("attempt-finished");
    assert_eq!(f["exit"], "exit code 0");
    assert_eq!(f["verdict"], "PASS");
    let log = read(&sb.task_dir("ticking").join("logs/run.1.log"));
    let want: String = (1..=8).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(log, want);
}

#[test]
fn an_escapee_of_an_attempt_that_timed_out_is_killed_and_reported_as_leaked() {
    let sb = Sandbox::new("runner-leak-timeout");
    let run = sb
        .orch("tree.kdl", "leaky-slow")
        .arg("--var")
        .arg("script=escape.sh")
        .env("T_HANG", "1")
        .run();
    let pid = sb.pid("escaped.pid");
    let alive = running(pid);
    if alive {
        kill_group(pid);
    }
    assert!(!alive, "the escaped process {pid} survived the attempt");
    run.expect_code(1);
    let f = run.one("attempt-finished");
    assert_eq!(f["exit"], "timed out");
    assert_eq!(f["verdict"], "FAIL");
    assert_eq!(
        f["leaked"],
        serde_json::json!([format!("pid {pid} `sleep 30`")])
    );
}

#[test]
fn a_runner_artifact_may_live_in_a_subdirectory_of_the_task_dir() {
    let sb = Sandbox::new("runner-nested");
    let run = sb.orch("nested.kdl", "nest").run();
    run.expect_code(0);
    assert_eq!(
        first_line(&sb.task_dir("nest").join("reports/check/report.md")),
        "result: PASS"
    );
    assert_eq!(run.one("gate")["reason"], "result: PASS");
    assert_eq!(run.finished(), ("success".into(), "done".into()));
}

/// `orch run` runs every stage on its own machine, whatever the labels of
/// its runner and transport (placement is `orch serve --labels`'s).
#[test]
fn orch_run_runs_a_labelled_stage() {
    let sb = Sandbox::new("runner-labels");
    let run = sb
        .run("l", repo_root().join("tests/fixtures/valid/labels.kdl"))
        .arg("--json")
        .run();
    run.expect_code(0);
    assert_eq!(
        run.transitions(),
        triples(&[("build", "pass", "train"), ("train", "pass", "done")])
    );
}
