//! `orch run --junit FILE`: the run as a JUnit XML report, one test case per
//! stage attempt, so CI systems can display it.

use std::path::PathBuf;

use orch_engine::events::{Event, Sink};
use orch_lang::model::TOOL_ERROR;
use orch_store::{Attempt, Step};

/// Writes the report to `path` when the run stops. The file is opened (or
/// created) before the run starts, so that an unwritable path is found
/// before anything runs; one it created and never wrote is removed.
pub(crate) struct JUnitSink {
    task: String,
    path: PathBuf,
    file: std::fs::File,
    created: bool,
    written: bool,
}

impl JUnitSink {
    /// Opens `path` for the report, or says why it cannot be written.
    pub(crate) fn open(task: &str, path: PathBuf) -> std::io::Result<JUnitSink> {
        let context = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("cannot write the JUnit report {}: {e}", path.display()),
            )
        };
        let existed = std::fs::symlink_metadata(&path).is_ok();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(context)?;
        Ok(JUnitSink {
            task: task.to_string(),
            path,
            file,
            created: !existed,
            written: false,
        })
    }
}

impl Drop for JUnitSink {
    fn drop(&mut self) {
        if self.created && !self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Sink for JUnitSink {
    fn event(&mut self, _: &Event) {}

    fn stopped(&mut self, attempts: &[Attempt], outcome: Option<&str>) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        let text = render(&self.task, attempts, outcome);
        self.written = true;
        self.file
            .set_len(0)
            .and_then(|_| self.file.rewind())
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|_| self.file.flush())
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot write {}: {e}", self.path.display()),
                )
            })
    }
}

use orch_lang::xml::escape;

/// The report of one run. `outcome` is the end's outcome, if it ended.
pub(crate) fn render(task: &str, attempts: &[Attempt], outcome: Option<&str>) -> String {
    let secs = |a: &Attempt| a.duration_ms.unwrap_or(0).max(0) as f64 / 1000.0;
    let failures = attempts
        .iter()
        .filter(|a| a.gate_pass == Some(false))
        .count();
    let errors = attempts
        .iter()
        .filter(|a| a.verdict.as_deref() == Some(TOOL_ERROR) || a.step == Step::Interrupted)
        .count();
    let total: f64 = attempts.iter().map(secs).sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites name=\"orch\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">\n",
        attempts.len()
    ));
    s.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">\n",
        escape(task),
        attempts.len()
    ));
    if let Some(o) = outcome {
        s.push_str(&format!(
            "    <properties><property name=\"outcome\" value=\"{}\"/></properties>\n",
            escape(o)
        ));
    }
    for a in attempts {
        s.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{} attempt {} ({}:{})\" time=\"{:.3}\"",
            escape(&a.stage),
            escape(&a.stage),
            a.attempt,
            escape(a.producer.as_str()),
            escape(&a.producer_name),
            secs(a)
        ));
        let verdict = a.verdict.as_deref().unwrap_or("");
        let mut body = String::new();
        if verdict == TOOL_ERROR {
            body.push_str(&format!(
                "      <error type=\"tool-error\" message=\"{}\"/>\n",
                escape(&format!(
                    "the producer did not execute: {}",
                    a.exit.as_deref().unwrap_or("")
                ))
            ));
        } else if a.step == Step::Interrupted {
            body.push_str("      <error type=\"interrupted\" message=\"orch stopped during this attempt\"/>\n");
        } else if a.gate_pass == Some(false) {
            body.push_str(&format!(
                "      <failure type=\"gate\" message=\"{}\"/>\n",
                escape(a.gate_reason.as_deref().unwrap_or("the gate failed"))
            ));
        }
        if !a.tail.is_empty() {
            body.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                escape(&a.tail.join("\n"))
            ));
        }
        if body.is_empty() {
            s.push_str("/>\n");
        } else {
            s.push_str(">\n");
            s.push_str(&body);
            s.push_str("    </testcase>\n");
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1b}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }
}
