//! The typed events a run emits, and the sinks that receive them. The engine
//! only emits; how an event is shown (a live terminal, plain lines, JSON,
//! JUnit, a service's event stream) is the sink's business.

use serde::Serialize;

use orch_store::{Attempt, Outcome, Transition};

/// One thing that happened in a run. `--json` prints these, one per line.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        task: String,
        run_id: i64,
        pipeline: String,
        resumed: bool,
    },
    AttemptStarted {
        stage: String,
        attempt: i64,
        producer: String,
        name: String,
        argv: Vec<String>,
        reason: String,
    },
    AttemptFinished {
        stage: String,
        attempt: i64,
        producer: String,
        name: String,
        exit: String,
        exit_code: Option<i32>,
        verdict: String,
        duration_ms: u64,
        defers: i64,
        leaked: Vec<String>,
        log: String,
    },
    Deferred {
        stage: String,
        attempt: i64,
        reason: String,
        delay_ms: u64,
        attempts_left: i64,
    },
    Gate {
        stage: String,
        gate: String,
        pass: bool,
        reason: String,
    },
    Transition {
        from: String,
        kind: String,
        to: String,
        reason: String,
    },
    Alert {
        stage: String,
        alert: String,
        ok: bool,
        exit: String,
    },
    Waiting {
        stage: String,
        reason: String,
    },
    /// The serial stage a `Waiting` named was taken: the task goes on.
    Acquired {
        stage: String,
    },
    Note {
        message: String,
    },
    RunFinished {
        task: String,
        outcome: String,
        end: String,
        duration_ms: u64,
    },
    /// The task's latest run had already finished; nothing ran.
    AlreadyFinished {
        task: String,
        run_id: i64,
        outcome: String,
        end: String,
        /// What changed in the pipeline file since that run, if anything.
        pipeline_changed: Option<String>,
    },
}

/// Receives a run's events in order. A sink must not fail the run: the
/// store keeps the account whatever a sink does with it.
pub trait Sink: Send + Sync {
    fn event(&mut self, event: &Event);

    /// The run stopped: at an end, waiting for a decision, or interrupted.
    /// Called before `RunFinished`.
    fn stopped(&mut self, stop: &Stop<'_>) -> std::io::Result<()> {
        let _ = stop;
        Ok(())
    }
}

/// A run that stopped, as [`Sink::stopped`] is told of it: its attempts and
/// transitions as recorded (across resumes), and why it stopped.
#[derive(Debug, Clone, Copy)]
pub struct Stop<'a> {
    pub attempts: &'a [Attempt],
    pub transitions: &'a [Transition],
    pub why: Why<'a>,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why<'a> {
    /// It reached `end`, whose outcome is `outcome`.
    End { end: &'a str, outcome: Outcome },
    /// It stopped at approval stage `stage`, whose request has no decision
    /// yet; `--resume` continues it once one exists.
    Waiting { stage: &'a str },
    /// It stopped before reaching an end and may be resumed: a signal, a
    /// cancel, or a stage needing labels this process lacks. `reason` says
    /// which.
    Interrupted { reason: &'a str },
}

impl Stop<'_> {
    /// The outcome of the end it reached, if it reached one.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.why {
            Why::End { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// Forwards every event to each of its sinks in turn.
pub struct Tee(pub Vec<Box<dyn Sink>>);

impl Sink for Tee {
    fn event(&mut self, event: &Event) {
        for s in &mut self.0 {
            s.event(event);
        }
    }

    fn stopped(&mut self, stop: &Stop<'_>) -> std::io::Result<()> {
        for s in &mut self.0 {
            s.stopped(stop)?;
        }
        Ok(())
    }
}
