//! What a producer's outcome means: its verdict, and the artifact a runner
//! writes.

use orch_lang::model::*;

use crate::process::Exit;

/// A runner's verdict for how its process ended. Anything but a mapped
/// exit code or a timeout is a tool-error: the suite did not execute.
pub fn runner_verdict(r: &Runner, exit: &Exit) -> String {
    match exit {
        Exit::Code(c) => r.verdict_for_exit(*c).to_string(),
        Exit::TimedOut | Exit::IdleTimedOut => r.verdict_on_timeout().to_string(),
        Exit::Signal(_) | Exit::SpawnFailed(_) | Exit::Interrupted => TOOL_ERROR.to_string(),
    }
}

/// An LLM attempt executed when its transport exited 0; the agent wrote the
/// artifact and the gate will judge it. Anything else is a tool-error.
pub fn llm_verdict(exit: &Exit) -> String {
    match exit {
        Exit::Code(0) => "executed".to_string(),
        _ => TOOL_ERROR.to_string(),
    }
}

/// The artifact a runner writes: the verdict line first (the first line of
/// a key wins), then a readable body.
pub fn runner_artifact(
    key: &str,
    verdict: &str,
    runner: &str,
    argv: &[String],
    exit: &str,
    duration: std::time::Duration,
    tail: &[String],
) -> String {
    let mut s = format!("{key}: {verdict}\n\n");
    s.push_str(&format!(
        "# Report of runner `{runner}` (written by orch)\n\n"
    ));
    s.push_str(&format!("- command: `{}`\n", argv.join(" ")));
    s.push_str(&format!("- result: {exit}\n"));
    s.push_str(&format!(
        "- duration: {}\n\n",
        orch_lang::duration::human(duration)
    ));
    s.push_str(&format!("## Output (last {} lines)\n\n", tail.len()));
    // Indented, so that no output line can pose as a `KEY: VALUE` field.
    for line in tail {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}
