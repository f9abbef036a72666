//! `orch run --junit FILE`: the invocation as a JUnit XML report, one test
//! case per stage attempt and one for the run itself, so CI systems can
//! display it.
//!
//! Whatever way `orch run` exits, FILE afterwards describes that
//! invocation, and a run that is not a success is never reported green:
//!
//! - FILE is replaced before anything runs by a report whose run case is
//!   an error ("did not finish"): a report an earlier invocation left is
//!   never taken for this one's, and an orch killed before it could write
//!   its own leaves that error;
//! - every write is a temporary file beside FILE renamed over it, so FILE
//!   is never half a report;
//! - the run case passes only when the run reached an end whose outcome is
//!   success. A failure end is a `<failure>` (with the reason of the
//!   transition that reached it); a run that stopped before an end (waiting
//!   for a decision, interrupted) or an invocation that could not run (a
//!   usage error, a store error, nothing to resume, a busy task) is an
//!   `<error>`. CI systems (Jenkins, GitLab, GitHub's JUnit reporters)
//!   count both as failed tests, whereas a `<skipped>` case alone leaves a
//!   report green.
//! - an approval attempt that has no decision is `<skipped>`: nothing
//!   failed yet, and the run case carries the error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use orch_engine::events::{Event, Sink, Stop, Why};
use orch_lang::model::TOOL_ERROR;
use orch_lang::xml::escape;
use orch_store::{Attempt, Outcome, ProducerKind, Step, TransitionKind};

/// The report file of one `orch run`.
pub(crate) struct JUnitFile {
    /// As given, for messages.
    path: PathBuf,
    /// The file written: `path`, or the file it links to.
    target: PathBuf,
}

impl JUnitFile {
    /// Replaces the file at `path` with a report saying this invocation
    /// has not finished, or says why it cannot be written (checked before
    /// anything runs).
    pub(crate) fn start(task: &str, path: PathBuf) -> std::io::Result<JUnitFile> {
        let context = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("cannot write the JUnit report {}: {e}", path.display()),
            )
        };
        let target = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&path).map_err(context)?,
            _ => path.clone(),
        };
        match std::fs::metadata(&target) {
            Ok(m) if !m.is_file() => {
                return Err(context(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "it exists and is not a regular file",
                )))
            }
            _ => {}
        }
        let file = JUnitFile {
            path: path.clone(),
            target,
        };
        replace(&file.target, &Report::unfinished(task).render()).map_err(context)?;
        Ok(file)
    }

    /// Replaces the report with `report`.
    pub(crate) fn write(&self, report: &Report) -> std::io::Result<()> {
        replace(&self.target, &report.render()).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot write the JUnit report {}: {e}", self.path.display()),
            )
        })
    }
}

/// Replaces the report file whole (its temporary name, hidden and not
/// ending in `.xml`, is not one a CI glob for reports picks up).
fn replace(target: &Path, text: &str) -> std::io::Result<()> {
    crate::replace::replace_file(target, text, "junit", None)
}

/// Where the sink leaves the report of the run it saw, for `orch run` to
/// write once the invocation is over.
pub(crate) type Slot = Arc<Mutex<Option<Report>>>;

/// Takes the report out of `slot`.
pub(crate) fn take(slot: &Slot) -> Option<Report> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Builds the report from the run's stop (or from a task found already
/// finished) into its slot.
pub(crate) struct JUnitSink {
    task: String,
    slot: Slot,
}

impl JUnitSink {
    pub(crate) fn new(task: &str, slot: Slot) -> JUnitSink {
        JUnitSink {
            task: task.to_string(),
            slot,
        }
    }

    fn keep(&self, report: Report) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }
}

impl Sink for JUnitSink {
    fn event(&mut self, e: &Event) {
        if let Event::AlreadyFinished {
            run_id,
            outcome,
            end,
            ..
        } = e
        {
            self.keep(Report::already_finished(&self.task, *run_id, outcome, end));
        }
    }

    fn stopped(&mut self, stop: &Stop<'_>) -> std::io::Result<()> {
        self.keep(Report::of_stop(&self.task, stop));
        Ok(())
    }
}

/// A JUnit report: test cases under one suite named after the task.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    task: String,
    /// The outcome of the end the run reached, if it reached one.
    outcome: Option<&'static str>,
    cases: Vec<Case>,
    /// The run's own case, last.
    run: Verdict,
}

#[derive(Debug, Clone)]
struct Case {
    classname: String,
    name: String,
    ms: i64,
    verdict: Verdict,
    out: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Passed,
    Skipped(String),
    /// `type`, message.
    Failure(&'static str, String),
    Error(&'static str, String),
}

impl Report {
    /// The report FILE holds while the invocation runs: if it is still
    /// there afterwards, orch never got to write its own.
    fn unfinished(task: &str) -> Report {
        Report::without_run(
            task,
            Verdict::Error(
                "unfinished",
                "orch run did not finish: it was killed, or is still running".into(),
            ),
        )
    }

    /// The report of an invocation that ran nothing: `error` says why.
    pub(crate) fn error(task: &str, error: &str) -> Report {
        Report::without_run(task, Verdict::Error("orch", error.to_string()))
    }

    fn without_run(task: &str, run: Verdict) -> Report {
        Report {
            task: task.to_string(),
            outcome: None,
            cases: Vec::new(),
            run,
        }
    }

    /// The task's latest run had already finished; nothing ran now.
    fn already_finished(task: &str, run_id: i64, outcome: &str, end: &str) -> Report {
        let run = if outcome == Outcome::Success.as_str() {
            Verdict::Passed
        } else {
            Verdict::Failure(
                "already-finished",
                format!(
                    "run #{run_id} of task {task} had already finished: {outcome}{}; nothing ran (`--restart` runs the task anew)",
                    if end.is_empty() { String::new() } else { format!(" (end `{end}`)") }
                ),
            )
        };
        Report::without_run(task, run)
    }

    /// The report of a run that stopped.
    fn of_stop(task: &str, stop: &Stop<'_>) -> Report {
        let closed_by = |a: &Attempt| {
            stop.transitions
                .iter()
                .rev()
                .find(|t| t.attempt_id == Some(a.id))
        };
        let cases = stop
            .attempts
            .iter()
            .map(|a| {
                let verdict = a.verdict.as_deref();
                let transition = closed_by(a);
                let verdict = if verdict == Some(TOOL_ERROR) {
                    Verdict::Error(
                        "tool-error",
                        format!(
                            "the producer did not execute: {}",
                            a.exit.as_deref().unwrap_or("")
                        ),
                    )
                } else if a.producer == ProducerKind::Approval
                    && verdict.is_none()
                    && transition.is_none()
                {
                    Verdict::Skipped(format!(
                        "approval `{}` is waiting for a decision",
                        a.producer_name
                    ))
                } else if a.step == Step::Interrupted {
                    Verdict::Error("interrupted", "orch stopped during this attempt".into())
                } else if a.gate_pass == Some(false) {
                    Verdict::Failure(
                        "gate",
                        a.gate_reason
                            .clone()
                            .unwrap_or_else(|| "the gate failed".into()),
                    )
                } else if let Some(t) = transition.filter(|t| t.kind != TransitionKind::Pass) {
                    // Closed without a gate's verdict: an expired approval,
                    // a stage that failed closed.
                    Verdict::Failure("fail-closed", t.reason.clone())
                } else {
                    Verdict::Passed
                };
                Case {
                    classname: a.stage.clone(),
                    name: format!(
                        "{} attempt {} ({}:{})",
                        a.stage,
                        a.attempt,
                        a.producer.as_str(),
                        a.producer_name
                    ),
                    ms: a.duration_ms.unwrap_or(0).max(0),
                    verdict,
                    out: a.tail.clone(),
                }
            })
            .collect();
        let run = match stop.why {
            Why::End {
                outcome: Outcome::Success,
                ..
            } => Verdict::Passed,
            Why::End { end, outcome } => {
                let how = stop
                    .transitions
                    .iter()
                    .rev()
                    .find(|t| t.to_stage == end)
                    .map(|t| {
                        format!(
                            ": {} {} → {}: {}",
                            t.from_stage,
                            t.kind.as_str(),
                            t.to_stage,
                            t.reason
                        )
                    })
                    .unwrap_or_default();
                Verdict::Failure(
                    "outcome",
                    format!(
                        "the run reached end `{end}`, outcome {}{how}",
                        outcome.as_str()
                    ),
                )
            }
            Why::Waiting { stage } => Verdict::Error(
                "waiting",
                format!(
                    "the run stopped at approval stage `{stage}`, waiting for a decision: `orch approve {task} --as NAME` or `orch reject {task} --as NAME --comment TEXT`, then `orch run {task} --resume`"
                ),
            ),
            Why::Interrupted { reason } => Verdict::Error("interrupted", reason.to_string()),
        };
        Report {
            task: task.to_string(),
            outcome: stop.outcome().map(Outcome::as_str),
            cases,
            run,
        }
    }

    /// The invocation failed after the run stopped (closing the store):
    /// the run case says so, whatever it said.
    pub(crate) fn failed_after(&mut self, error: &str) {
        let before = match &self.run {
            Verdict::Passed | Verdict::Skipped(_) => String::new(),
            Verdict::Failure(_, m) | Verdict::Error(_, m) => format!(" (the run: {m})"),
        };
        self.run = Verdict::Error("orch", format!("{error}{before}"));
    }

    pub(crate) fn render(&self) -> String {
        let run = Case {
            classname: "orch".into(),
            name: self.task.clone(),
            ms: 0,
            verdict: self.run.clone(),
            out: Vec::new(),
        };
        let cases: Vec<&Case> = self.cases.iter().chain([&run]).collect();
        let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
        let failures = count(|v| matches!(v, Verdict::Failure(..)));
        let errors = count(|v| matches!(v, Verdict::Error(..)));
        let skipped = count(|v| matches!(v, Verdict::Skipped(_)));
        let total = seconds(cases.iter().map(|c| c.ms).sum());
        let counts = format!(
            "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total}\"",
            cases.len()
        );
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.push_str(&format!("<testsuites name=\"orch\" {counts}>\n"));
        s.push_str(&format!(
            "  <testsuite name=\"{}\" {counts}>\n",
            escape(&self.task)
        ));
        if let Some(o) = self.outcome {
            s.push_str(&format!(
                "    <properties><property name=\"outcome\" value=\"{}\"/></properties>\n",
                escape(o)
            ));
        }
        for c in cases {
            s.push_str(&c.render());
        }
        s.push_str("  </testsuite>\n</testsuites>\n");
        s
    }
}

impl Case {
    fn render(&self) -> String {
        let mut body = match &self.verdict {
            Verdict::Passed => String::new(),
            Verdict::Skipped(m) => format!("      <skipped message=\"{}\"/>\n", escape(m)),
            Verdict::Failure(kind, m) => element("failure", kind, m),
            Verdict::Error(kind, m) => element("error", kind, m),
        };
        if !self.out.is_empty() {
            body.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                escape(&self.out.join("\n"))
            ));
        }
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            escape(&self.classname),
            escape(&self.name),
            seconds(self.ms)
        );
        if body.is_empty() {
            format!("{open}/>\n")
        } else {
            format!("{open}>\n{body}    </testcase>\n")
        }
    }
}

/// A `<failure>` or `<error>`: the message's first line as its attribute
/// (an attribute cannot keep line breaks), the whole message as its text
/// when it has more than one.
fn element(tag: &str, kind: &str, message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let head = format!(
        "      <{tag} type=\"{}\" message=\"{}\"",
        escape(kind),
        escape(first)
    );
    if first.len() == message.trim_end().len() {
        format!("{head}/>\n")
    } else {
        format!("{head}>{}</{tag}>\n", escape(message.trim_end()))
    }
}

/// Milliseconds as JUnit's seconds, `0.000` for none (never `-0.000`).
fn seconds(ms: i64) -> String {
    let ms = ms.max(0);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::{escape, seconds};

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1b}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }

    #[test]
    fn seconds_are_never_negative_zero() {
        assert_eq!(seconds(0), "0.000");
        assert_eq!(seconds(-5), "0.000");
        assert_eq!(seconds(1234), "1.234");
    }
}
