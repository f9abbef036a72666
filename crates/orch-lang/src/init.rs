//! `orch init`: a commented starter pipeline and its prompt files.

use std::path::{Path, PathBuf};

/// The starter pipeline: one LLM stage, one runner stage, one hybrid stage,
/// ends and an alert. It validates clean on any machine with `sh`.
pub(crate) const PIPELINE: &str = r#"// A starter pipeline written by `orch init`. Check it with `orch validate`,
// run a task with `orch run TASK`, and see docs/language.md in the orch
// repository for every node and property.

// The pipeline: its name, the first stage, and variables (`--var NAME=VALUE`
// overrides them; `{var.NAME}` uses them).
pipeline "starter" start="design" single-transport=#true {
    description "Design (LLM), build (runner), test (hybrid: runner, LLM fallback)."
    var "tests" "tests"
}

// How LLM calls are made. `agent.sh`, beside this file, is a stand-in that
// writes the design artifact, so that `orch run TASK` goes green out of the
// box. To plug in a real agent CLI, replace the command with it, e.g.
// `command "claude" "--print"`: the prompt file's text goes to it on stdin,
// and it must write the artifact the prompt names. See docs/agents.md in the
// orch repository.
transport "agent" {
    command "sh" "{pipeline-dir}/agent.sh"
    prompt "stdin"
    timeout "30m"
    idle-timeout "5m"
    retry "tool-error" attempts=2 delay="30s"
}

// Artifacts: the files producers write into the task directory, and the
// `KEY: VALUE` lines gates read from them.
artifact "design" path="03-design.md" {
    field "status" "DONE" "BLOCKED"
}

artifact "build-log" path="07-build-log.md" {
    field "build" "OK" "BROKEN"
}

artifact "test-report" path="13-test-report.md" {
    field "result" "PASS" "FAIL"
}

gate "design-done" artifact="design" {
    expect "status" "DONE"
}

gate "built" artifact="build-log" {
    expect "build" "OK"
}

gate "tests-passed" artifact="test-report" {
    expect "result" "PASS"
}

// Runners: deterministic producers. orch maps the exit code to a verdict and
// writes it into the artifact.
runner "build" {
    command "sh" "-c" "echo building; true"
    timeout "10m"
    exit-code 0 verdict="OK"
    exit-code 1 verdict="BROKEN"
    otherwise verdict="tool-error"  // the build did not run: retried, never a pass
    retry "tool-error" attempts=3 delay="10s" backoff=2.0
    writes "build-log"
}

runner "tests" {
    command "sh" "-c" "echo running {var.tests}; true"
    timeout "15m"
    exit-code 0 verdict="PASS"
    exit-code 1 verdict="FAIL"
    on-timeout verdict="FAIL"
    otherwise verdict="tool-error"
    enabled #true env="STARTER_TEST_RUNNER"  // the kill-switch: STARTER_TEST_RUNNER=0 falls back to the LLM
    writes "test-report"
}

// Call-sites: the C/P map. axis C = the artifact decides a transition;
// verdict machine = no judgement needed; mode = what executes today.
call-site "designer" axis="C" verdict="judgement" mode="llm" {
    llm transport="agent" prompt="prompts/designer.md"
    why "Whether a design fits the problem is a judgement."
}

call-site "builder" axis="C" verdict="machine" mode="runner" {
    runner "build"
}

call-site "tester" axis="C" verdict="machine" mode="hybrid" {
    runner "tests"
    llm transport="agent" prompt="prompts/tester.md"
}

// Stages: the state machine.
stage "design" call-site="designer" gate="design-done" {
    pass "build"
    exhausted "failed" alert="log"
}

stage "build" call-site="builder" gate="built" {
    pass "test"
    exhausted "failed" alert="log"
}

stage "test" call-site="tester" gate="tests-passed" {
    pass "done"
    fail "build" budget=2  // roll back at most twice per task
    exhausted "failed" alert="log"
}

end "done" outcome="success"
end "failed" outcome="failure"

// What runs when a stage fails closed.
alert "log" {
    command "sh" "-c" "echo \"task $ORCH_TASK failed closed in $ORCH_STAGE\" >&2"
    timeout "30s"
}
"#;

pub(crate) const DESIGNER_PROMPT: &str = "You are the designer for task {task}.\n\nRead the task in {worktree} and write {task-dir}/03-design.md, starting with\n`status: DONE` (or `status: BLOCKED` and the question that blocks you).\n";

/// The stand-in agent: reads its prompt on stdin and writes the design
/// artifact; in any other stage it says it is a stub and fails (a tool-error).
pub(crate) const AGENT_SCRIPT: &str = r#"#!/bin/sh
# A stand-in for an agent CLI, written by `orch init` so that the starter runs
# out of the box. It reads its prompt on stdin, as `claude --print` would, and
# writes the artifact of the `design` stage. Replace the transport's command
# in pipeline.kdl with a real agent CLI (see docs/agents.md in the orch
# repository) and delete this file.
prompt=$(cat)
printf 'stub agent: got a %s-byte prompt for stage %s\n' "${#prompt}" "$ORCH_STAGE"
case "$ORCH_STAGE" in
design)
    printf 'status: DONE\nThe stub agent designed nothing; plug in a real agent.\n' >"$ORCH_TASK_DIR/03-design.md"
    ;;
*)
    echo "stub agent: no work for stage $ORCH_STAGE; plug in a real agent (docs/agents.md)" >&2
    exit 2
    ;;
esac
"#;

pub(crate) const TESTER_PROMPT: &str = "You are the tester for task {task}; the test runner is switched off.\n\nRun the tests in {worktree}/{var.tests} and write {task-dir}/13-test-report.md, starting\nwith `result: PASS` or `result: FAIL`. Never report PASS for tests you did not run.\n";

/// Writes the starter files into `dir`; refuses to overwrite any of them,
/// and never writes through a symbolic link (a dangling one included).
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let prompts = dir.join("prompts");
    let files = [
        (dir.join("pipeline.kdl"), PIPELINE),
        (dir.join("agent.sh"), AGENT_SCRIPT),
        (prompts.join("designer.md"), DESIGNER_PROMPT),
        (prompts.join("tester.md"), TESTER_PROMPT),
    ];
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if let Some((existing, _)) = files.iter().find(|(p, _)| exists(p)) {
        return Err(format!(
            "{} already exists; orch init never overwrites",
            existing.display()
        ));
    }
    if std::fs::symlink_metadata(&prompts).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} is a symbolic link; orch init does not write through one",
            prompts.display()
        ));
    }
    std::fs::create_dir_all(&prompts)
        .map_err(|e| format!("cannot create {}: {e}", prompts.display()))?;
    let mut written = Vec::new();
    for (path, text) in files {
        // `create_new` never follows a symbolic link and never overwrites.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "{} already exists; orch init never overwrites",
                    path.display()
                ),
                _ => format!("cannot write {}: {e}", path.display()),
            })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;
    use crate::validate::Options;

    #[test]
    fn the_starter_pipeline_validates_clean_and_is_formatted() {
        let c = analyze_text("pipeline.kdl", PIPELINE, &Options { offline: true });
        assert!(c.report.findings.is_empty(), "{:?}", c.report.findings);
        assert_eq!(crate::fmt::format(PIPELINE).unwrap(), PIPELINE);
    }
}
