//! What a run tells its user: the engine's typed events, rendered as a live
//! terminal view, plain lines, or JSON lines.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orch_engine::events::{Event, Sink, Stop};
use orch_lang::duration::human;
use orch_store::Attempt;

/// How events reach the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// A live line per stage and a summary table (a terminal).
    Live,
    /// Plain lines (a pipe or a file) and the summary table.
    Plain,
    /// JSON lines on stdout.
    Json,
}

struct Live {
    label: String,
    started: Instant,
}

pub(crate) struct Reporter {
    style: Style,
    color: bool,
    live: Arc<Mutex<Option<Live>>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    // A closed stdout must not stop a run: the store keeps the account.
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

impl Reporter {
    pub(crate) fn new(style: Style, color: bool) -> Self {
        Reporter {
            style,
            color,
            live: Arc::new(Mutex::new(None)),
            ticker: None,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn stop_live(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Ok(mut l) = self.live.lock() {
            if l.take().is_some() {
                out("\r\x1b[2K");
            }
        }
    }

    fn render(&mut self, e: &Event) {
        if self.style == Style::Json {
            if let Ok(s) = serde_json::to_string(e) {
                out(&format!("{s}\n"));
            }
            return;
        }
        self.stop_live();
        match e {
            Event::AttemptStarted {
                stage,
                attempt,
                producer,
                name,
                ..
            } if self.style == Style::Live => {
                self.start_live(format!("{stage}  {producer}:{name}  attempt {attempt}"))
            }
            Event::AttemptFinished { .. } => out(&self.attempt_finished(e)),
            _ => out(&self.line(e)),
        }
    }

    /// A spinner line for the running attempt, redrawn until the next event.
    fn start_live(&mut self, label: String) {
        if let Ok(mut l) = self.live.lock() {
            *l = Some(Live {
                label,
                started: Instant::now(),
            });
        }
        let live = self.live.clone();
        self.ticker = Some(tokio::spawn(async move {
            let mut i = 0usize;
            loop {
                if let Ok(l) = live.lock() {
                    if let Some(l) = l.as_ref() {
                        out(&format!(
                            "\r\x1b[2K{} {}  {}",
                            SPINNER[i % SPINNER.len()],
                            l.label,
                            human(l.started.elapsed())
                        ));
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    fn attempt_finished(&self, e: &Event) -> String {
        let Event::AttemptFinished {
            stage,
            attempt,
            producer,
            name,
            exit,
            verdict,
            duration_ms,
            defers,
            leaked,
            log,
            ..
        } = e
        else {
            return String::new();
        };
        let tool_error = verdict == orch_lang::model::TOOL_ERROR;
        let mark = if tool_error {
            self.paint("33", "!")
        } else {
            self.paint("36", "•")
        };
        let retry = if *defers > 0 {
            format!(" (retry {defers})")
        } else {
            String::new()
        };
        let leak = if leaked.is_empty() {
            String::new()
        } else {
            format!(
                "  {} killed {} escaped process(es): {}",
                self.paint("31", "LEAK"),
                leaked.len(),
                leaked.join("; ")
            )
        };
        let mut s = format!(
            "{mark} {stage}  {producer}:{name}  attempt {attempt}{retry}  {exit} → {verdict}  {}{leak}\n",
            human(Duration::from_millis(*duration_ms)),
        );
        if tool_error {
            s.push_str(&format!("    log: {log}\n"));
        }
        s
    }

    /// The plain line of every event but a finished attempt. Long on
    /// purpose: one short arm per event kind, read side by side.
    fn line(&self, e: &Event) -> String {
        match e {
            Event::RunStarted {
                task,
                pipeline,
                resumed,
                ..
            } => format!(
                "{} task {task} with {pipeline}\n",
                if *resumed { "resuming" } else { "running" }
            ),
            Event::AttemptStarted {
                stage,
                attempt,
                producer,
                name,
                reason,
                ..
            } => format!("[{stage}] attempt {attempt}: {producer} `{name}` ({reason})\n"),
            Event::AttemptFinished { .. } => self.attempt_finished(e),
            Event::Deferred {
                stage,
                reason,
                delay_ms,
                attempts_left,
                ..
            } => format!(
                "  {} {stage}: {reason}; retrying in {} ({attempts_left} attempt(s) left)\n",
                self.paint("33", "DEFER"),
                human(Duration::from_millis(*delay_ms))
            ),
            Event::Gate {
                gate, pass, reason, ..
            } => {
                let v = if *pass {
                    self.paint("32", "PASS")
                } else {
                    self.paint("31", "FAIL")
                };
                format!("  gate {gate}: {v} ({reason})\n")
            }
            Event::Transition {
                from,
                kind,
                to,
                reason,
            } if reason.is_empty() => format!("  {from} → {to} ({kind})\n"),
            Event::Transition {
                from,
                kind,
                to,
                reason,
            } => format!("  {from} → {to} ({kind}: {reason})\n"),
            Event::Alert { stage, alert, ok, .. } if *ok => {
                format!("  alert {alert} for {stage}: sent\n")
            }
            Event::Alert {
                stage, alert, exit, ..
            } => format!(
                "  alert {alert} for {stage}: {} ({exit}); the task's outcome is unchanged\n",
                self.paint("31", "failed")
            ),
            Event::Waiting { stage, reason } => {
                format!("  waiting for serial stage {stage}: {reason}\n")
            }
            Event::Acquired { stage } => format!("  took serial stage {stage}\n"),
            Event::Note { message } => format!("  {message}\n"),
            Event::AlreadyFinished {
                task,
                run_id,
                outcome,
                ..
            } if outcome == "cancelled" => format!(
                "task {task} was cancelled (run #{run_id}); use --restart to run it again\n"
            ),
            Event::AlreadyFinished {
                task,
                outcome,
                end,
                pipeline_changed: None,
                ..
            } => format!(
                "task {task} already finished: {outcome} (end `{end}`); use --restart to run it again\n"
            ),
            Event::AlreadyFinished {
                task,
                run_id,
                outcome,
                end,
                pipeline_changed: Some(changes),
            } => format!(
                "task {task} already finished: {outcome} (end `{end}`) with an earlier version of the pipeline; it changed since run #{run_id} ({changes}): use --restart to run it anew with this one\n"
            ),
            Event::RunFinished {
                task,
                outcome,
                end,
                duration_ms,
            } => {
                let color = if outcome == "success" { "32" } else { "31" };
                format!(
                    "task {task}: {} (end `{end}`) in {}\n",
                    self.paint(color, outcome),
                    human(Duration::from_millis(*duration_ms))
                )
            }
        }
    }

    /// The run's attempts as a table (not in JSON mode, where the events
    /// carry everything).
    pub(crate) fn summary(&mut self, attempts: &[Attempt]) {
        if self.style == Style::Json || attempts.is_empty() {
            return;
        }
        self.stop_live();
        out(&format!("\n{}\n", attempts_table(attempts, "", false)));
    }
}

/// Attempts as a table: stage, attempt, producer, verdict (LEAK marked),
/// gate, duration, defers (a pass after retries says so), and the log path
/// when asked for. Shared by the run summary and `orch history`.
pub(crate) fn attempts_table(attempts: &[Attempt], indent: &str, with_log: bool) -> String {
    let mut header = vec![
        "stage", "attempt", "producer", "verdict", "gate", "duration", "defers",
    ];
    if with_log {
        header.push("log");
    }
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|r| {
            let mut verdict = r.verdict.clone().unwrap_or_else(|| r.step.as_str().into());
            if r.leaked {
                verdict.push_str(" LEAK");
            }
            let defers = if r.defers > 0 && r.gate_pass == Some(true) {
                format!("{} (passed after retries)", r.defers)
            } else {
                r.defers.to_string()
            };
            let mut row = vec![
                r.stage.clone(),
                r.attempt.to_string(),
                format!("{}:{}", r.producer, r.producer_name),
                verdict,
                match r.gate_pass {
                    Some(true) => "pass".into(),
                    Some(false) => "fail".into(),
                    None => "-".into(),
                },
                human(Duration::from_millis(
                    r.duration_ms.unwrap_or(0).max(0) as u64
                )),
                defers,
            ];
            if with_log {
                row.push(r.log_path.clone());
            }
            row
        })
        .collect();
    table(&header, &rows, indent)
}

/// A plain text table: a header, a rule, the rows, columns padded to fit.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], indent: &str) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[&str]| {
        let mut s = String::from(indent);
        for (c, w) in cols.iter().zip(&widths) {
            s.push_str(c);
            s.push_str(&" ".repeat(w - c.chars().count() + 2));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(header);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    s.push_str(&line(&rules.iter().map(String::as_str).collect::<Vec<_>>()));
    for row in rows {
        s.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    s
}

impl Sink for Reporter {
    fn event(&mut self, e: &Event) {
        self.render(e);
    }

    fn stopped(&mut self, stop: &Stop<'_>) -> std::io::Result<()> {
        if stop.outcome().is_some() {
            self.summary(stop.attempts);
        }
        Ok(())
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop_live();
    }
}
