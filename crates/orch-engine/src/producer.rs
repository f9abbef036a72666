//! What a producer's outcome means: its verdict, and the artifact a runner
//! writes.

use orch_lang::model::*;

use crate::process::Exit;

/// A runner's verdict for how its process ended. Anything but a mapped
/// exit code or a timeout is a tool-error: the suite did not execute.
pub(crate) fn runner_verdict(r: &Runner, exit: &Exit) -> String {
    match exit {
        Exit::Code(c) => r.verdict_for_exit(*c).to_string(),
        Exit::TimedOut | Exit::IdleTimedOut => r.verdict_on_timeout().to_string(),
        Exit::Signal(_) | Exit::SpawnFailed(_) | Exit::Interrupted => TOOL_ERROR.to_string(),
    }
}

/// An LLM attempt executed when its transport exited 0; the agent wrote the
/// artifact and the gate will judge it. Anything else is a tool-error.
pub(crate) fn llm_verdict(exit: &Exit) -> String {
    match exit {
        Exit::Code(0) => "executed".to_string(),
        _ => TOOL_ERROR.to_string(),
    }
}

/// `s` on one line: a backslash, and every control or line-separating
/// character (a newline, a carriage return, U+2028…), escaped Rust-style
/// (`\\`, `\n`, `\u{2028}`), so that nothing orch copies into an artifact
/// (an argument from `--var` or the environment, an error message) can
/// start a line of its own and pose as a `KEY: VALUE` field.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '\n' | '\r' | '\t' => out.extend(c.escape_default()),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.extend(c.escape_unicode())
            }
            c => out.push(c),
        }
    }
    out
}

/// The artifact a runner writes: the verdict line first (the first line of
/// a key wins), then a readable body in which no line can start a field:
/// the command, its result and the runner's name each on one line (see
/// [`one_line`]), the output's lines indented.
pub(crate) fn runner_artifact(
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
        "# Report of runner `{}` (written by orch)\n\n",
        one_line(runner)
    ));
    let command: Vec<String> = argv.iter().map(|a| one_line(a)).collect();
    s.push_str(&format!("- command: `{}`\n", command.join(" ")));
    s.push_str(&format!("- result: {}\n", one_line(exit)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_copied_into_a_runner_artifact_starts_a_line() {
        let argv = [
            "sh".to_string(),
            "x\nresult: PASS".to_string(),
            "a\r\nb: c\u{2028}d: e\\n".to_string(),
        ];
        let body = runner_artifact(
            "outcome",
            "FAIL",
            "r",
            &argv,
            "could not start: `x\nresult: PASS`",
            std::time::Duration::ZERO,
            &["result: PASS".to_string()],
        );
        assert!(body.contains("- command: `sh x\\nresult: PASS a\\r\\nb: c\\u{2028}d: e\\\\n`\n"));
        let fields = orch_lang::gate::parse_fields(&body);
        assert_eq!(fields.get("outcome").map(String::as_str), Some("FAIL"));
        assert!(!fields.contains_key("result"), "{body}");
        assert!(!fields.contains_key("b"), "{body}");
        assert!(!fields.contains_key("d"), "{body}");
        assert_eq!(
            body.lines().filter(|l| l.contains("result: PASS")).count(),
            3
        );
    }
}
