//! LLM transports: the prompt on stdin or as the last argument, rendered from
//! its file; any way the call fails to execute is a tool-error.

use crate::common::*;

fn expected_prompt(sb: &Sandbox, task: &str, stage: &str) -> String {
    format!(
        "Task {task}, stage {stage}, attempt 1.\n\
         Worktree: {wt}\n\
         Task dir: {td}\n\
         Flavour: mint\n\
         From the environment: hello\n\
         Braces stay: {{literal}}\n",
        wt = sb.wt().display(),
        td = sb.task_dir(task).display()
    )
}

#[test]
fn the_prompt_goes_on_stdin_or_as_the_last_argument_with_placeholders_rendered() {
    let sb = Sandbox::new("transport-prompt");
    let run = sb
        .orch("transport.kdl", "tp")
        .arg("--var")
        .arg("flavour=mint")
        .env("T_PROMPT_ENV", "hello")
        .run();
    run.expect_code(0);
    assert_eq!(
        run.producers(),
        triples(&[
            ("askstdin", "llm", "stdin-agent"),
            ("askarg", "llm", "arg-agent"),
        ])
    );
    let script = scripts().join("agent.sh").display().to_string();

    // prompt "stdin": no extra argument, the prompt on stdin.
    let prompt = expected_prompt(&sb, "tp", "askstdin");
    assert_eq!(sb.out_file("agent.askstdin.1.argc").unwrap(), "0\n");
    assert_eq!(sb.out_file("agent.askstdin.1.stdin").unwrap(), prompt);
    assert_eq!(
        run.of_stage("attempt-started", "askstdin")[0]["argv"],
        serde_json::json!(["sh", script])
    );

    // prompt "arg": the command's own arguments (rendered), then the prompt
    // as the last one; nothing on stdin.
    let prompt = expected_prompt(&sb, "tp", "askarg");
    assert_eq!(sb.out_file("agent.askarg.1.argc").unwrap(), "3\n");
    assert_eq!(sb.out_file("agent.askarg.1.arg1").unwrap(), "--print");
    assert_eq!(sb.out_file("agent.askarg.1.arg2").unwrap(), "askarg");
    assert_eq!(sb.out_file("agent.askarg.1.arg3").unwrap(), prompt);
    assert_eq!(sb.out_file("agent.askarg.1.stdin").unwrap(), "");
    assert_eq!(
        run.of_stage("attempt-started", "askarg")[0]["argv"],
        serde_json::json!(["sh", script, "--print", "askarg", prompt])
    );

    // An LLM attempt that exited 0 "executed"; its own artifact is gated.
    for f in run.of("attempt-finished") {
        assert_eq!(f["verdict"], "executed");
        assert_eq!(f["exit_code"], 0);
    }
    for g in run.of("gate") {
        assert_eq!(g["pass"], true);
        assert_eq!(g["reason"], "result: PASS");
    }
}

/// llm-errors.kdl: one stage, a transport without retries (timeout 1s), an
/// alert `ops`. Asserts the attempt was a tool-error that failed the stage
/// closed, and returns the attempt-finished event.
fn assert_tool_error(sb: &Sandbox, run: &Run, task: &str, exit: &str) -> serde_json::Value {
    run.expect_code(1);
    let f = run.one("attempt-finished");
    assert_eq!(f["producer"], "llm");
    assert_eq!(f["verdict"], "tool-error");
    assert_eq!(f["exit"], exit);
    // The producer did not execute: no gate reads anything, whatever is on disk.
    assert!(run.of("gate").is_empty(), "{}", run.stdout);
    assert_eq!(
        run.transitions(),
        triples(&[("ask", "exhausted", "failed")])
    );
    assert_eq!(
        s(&run.one("transition")["reason"]),
        format!("tool-error on 1 attempt(s): the retry budget is spent ({exit})")
    );
    assert_eq!(sb.out_lines("alerts"), vec![format!("ops {task} ask")]);
    assert_eq!(run.one("alert")["ok"], true);
    assert_eq!(run.finished(), ("failure".into(), "failed".into()));
    f
}

#[test]
fn a_non_zero_exit_is_a_tool_error_even_with_a_passing_artifact_on_disk() {
    let sb = Sandbox::new("transport-exit");
    let run = sb
        .orch("llm-errors.kdl", "nz")
        .env("T_AGENT", "fail")
        .env("T_AGENT_CODE", "4")
        .run();
    let f = assert_tool_error(&sb, &run, "nz", "exit code 4");
    assert_eq!(f["exit_code"], 4);
    // The agent did write `result: PASS` before failing: it is not a PASS.
    assert_eq!(read(&sb.task_dir("nz").join("answer.md")), "result: PASS\n");
}

#[test]
fn a_timeout_is_a_tool_error_and_kills_the_agent() {
    let sb = Sandbox::new("transport-timeout");
    let run = sb
        .orch("llm-errors.kdl", "hung")
        .env("T_AGENT", "hang")
        .run();
    let pid = sb.pid("agent.pid");
    let alive = running(pid);
    if alive {
        kill_group(pid);
    }
    assert!(!alive, "the hung agent {pid} survived its timeout");
    let f = assert_tool_error(&sb, &run, "hung", "timed out");
    assert_eq!(f["exit_code"], serde_json::Value::Null);
}

#[test]
fn a_missing_executable_is_a_tool_error() {
    let sb = Sandbox::new("transport-missing");
    let run = sb
        .orch("llm-errors.kdl", "gone")
        .arg("--var")
        .arg("shell=orch-test-no-such-program")
        .run();
    let exit =
        "could not start: `orch-test-no-such-program`: No such file or directory (os error 2)";
    let f = assert_tool_error(&sb, &run, "gone", exit);
    assert_eq!(f["exit_code"], serde_json::Value::Null);
    assert_eq!(sb.out_lines("calls"), Vec::<String>::new());
    assert_eq!(
        read(&sb.task_dir("gone").join("logs/ask.1.log")),
        "orch: could not start `orch-test-no-such-program`: No such file or directory (os error 2)\n"
    );
}
