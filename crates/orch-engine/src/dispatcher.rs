//! The dispatcher: owns a run's step machine. Each turn it reads where the
//! run is from the store, asks [`decide`](crate::decide) what follows, has
//! the [executor](crate::executor) run producers and alerts, and records
//! every step before acting on it, so the run can be killed at any moment
//! and resumed from the records alone:
//! attempt → spawn → exit and verdict → artifact → gate → transition.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use orch_lang::model::{Outcome as EndOutcome, Pipeline, Retry, Stage};
use orch_lang::template::Context;
use orch_store::lock::holder_line;
use orch_store::{
    Attempt, LockKey, NewTransition, Outcome, ProducerKind, RunStatus, RunStore, Step,
};

use crate::decide::{self, AfterExit, Next, Take};
use crate::error::{exit, RunError};
use crate::events::{Event, Sink, Stop, Why};
use crate::executor::AlertEnd;
use crate::failpoint::{self, Point};
use crate::groups::{self, Cleanup};
use crate::session::Prepared;
use crate::taskdir::{self, TaskDir};
use crate::{artifact, executor};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub exit_code: u8,
    /// Stopped before a stage this process may not run (its labels): the
    /// run is interrupted, resumable at that stage by one that may.
    pub released: Option<Released>,
}

/// A run stopped at the boundary of a stage needing labels this process
/// lacks; nothing of the stage was started.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    pub stage: String,
    /// Every label the stage needs (sorted), not only the missing ones.
    pub needs: Vec<String>,
}

/// Where a run's time went, printed to stderr when `ORCH_PROFILE` is set.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    pub(crate) attempts: u32,
    /// Producer processes, spawn to exit and clean-up.
    pub(crate) producers: Duration,
    /// Writing runner artifacts and hashing artifacts.
    pub(crate) artifacts: Duration,
    pub(crate) gates: Duration,
}

pub(crate) enum Flow {
    Continue,
    Interrupted,
    /// An approval request is pending: the run stops, resumable.
    Waiting,
}

pub(crate) struct Engine<S: RunStore> {
    pub(crate) p: Arc<Pipeline>,
    pub(crate) task: String,
    pub(crate) pipeline_shown: String,
    pub(crate) pipeline_path: PathBuf,
    pub(crate) store: Arc<S>,
    pub(crate) run_id: i64,
    /// When the run began (an earlier process, for a resumed run).
    run_started_ms: i64,
    pub(crate) task_dir: PathBuf,
    pub(crate) logs: PathBuf,
    pub(crate) worktree: PathBuf,
    pub(crate) vars: HashMap<String, String>,
    pub(crate) repo: String,
    /// The run's secret values, redacted from everything it writes.
    pub(crate) redactor: crate::redact::Redactor,
    sink: Box<dyn Sink>,
    pub(crate) cancel: watch::Receiver<bool>,
    /// Set before `cancel` turns when the stop is a cancel (the run is
    /// over), not an interruption ([`crate::Stop`]).
    pub(crate) cancel_for_good: Arc<std::sync::atomic::AtomicBool>,
    /// `--wait`: at an approval stage, wait for the decision.
    pub(crate) wait: bool,
    /// The labels this process holds; `None`: it runs every stage.
    labels: Option<Vec<String>>,
    serial: Option<(String, S::Guard)>,
    pub(crate) profile: Profile,
    /// Stage name → the artifact path its gate reads.
    artifacts: HashMap<String, String>,
}

/// Every stage's artifact path, through its gate.
fn artifacts_of(p: &Pipeline) -> HashMap<String, String> {
    p.stages
        .iter()
        .filter_map(|s| {
            let g = p.gate(&s.gate.value)?;
            let a = p.artifact(&g.artifact.value)?;
            Some((s.name.value.clone(), a.path.value.clone()))
        })
        .collect()
}

impl<S: RunStore> Engine<S> {
    pub(crate) fn new(
        prepared: Prepared,
        store: Arc<S>,
        run_id: i64,
        run_started_ms: i64,
        sink: Box<dyn Sink>,
        cancel: watch::Receiver<bool>,
    ) -> Result<Self, RunError> {
        let task = prepared.opts.task.clone();
        let task_dir = prepared.state_dir.join("tasks").join(&task);
        let logs = task_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(crate::error::io_err(format!(
            "cannot create task dir {}",
            task_dir.display()
        )))?;
        let artifacts = artifacts_of(&prepared.pipeline);
        let wait = prepared.opts.wait;
        let labels = prepared.opts.labels.clone();
        let redactor = crate::redact::Redactor::for_run(
            prepared.pipeline.header.as_ref(),
            &prepared.bindings.vars,
            crate::redact::env_vars(),
        );
        Ok(Engine {
            artifacts,
            redactor,
            p: Arc::new(prepared.pipeline),
            task,
            pipeline_shown: prepared.pipeline_shown,
            pipeline_path: prepared.pipeline_path,
            store,
            run_id,
            run_started_ms,
            task_dir,
            logs,
            worktree: prepared.bindings.worktree,
            vars: prepared.bindings.vars,
            repo: prepared.bindings.repo,
            sink,
            cancel,
            cancel_for_good: Arc::default(),
            wait,
            labels,
            serial: None,
            profile: Profile::default(),
        })
    }

    pub(crate) fn started(&mut self, resumed: bool, notes: Vec<String>) {
        self.emit(Event::RunStarted {
            task: self.task.clone(),
            run_id: self.run_id,
            pipeline: self.pipeline_shown.clone(),
            resumed,
        });
        for message in notes {
            self.emit(Event::Note { message });
        }
    }

    pub(crate) fn emit(&mut self, e: Event) {
        tracing::debug!(?e, "event");
        self.sink.event(&e);
    }

    pub(crate) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Stopped by a cancel: the run is over, never resumed.
    pub(crate) fn cancelled_for_good(&self) -> bool {
        self.cancelled()
            && self
                .cancel_for_good
                .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn context(&self, stage: &str, attempt: i64) -> Context {
        Context {
            task: self.task.clone(),
            stage: stage.to_string(),
            attempt: attempt.max(0) as u32,
            worktree: self.worktree.display().to_string(),
            task_dir: self.task_dir.display().to_string(),
            pipeline_dir: pipeline_dir(&self.pipeline_path),
            vars: self.vars.clone(),
        }
    }

    /// The path of a stage's artifact, relative to the task directory.
    /// The artifact path (beneath the task directory) a stage's gate reads;
    /// looked up once per run, not at every step (the model's look-ups are
    /// linear in the number of declarations).
    pub(crate) fn artifact_of_stage(&self, stage: &str) -> Option<String> {
        self.artifacts.get(stage).cloned()
    }

    /// The task directory, every path beneath it opened without following
    /// links.
    pub(crate) fn dir(&self) -> TaskDir<'_> {
        TaskDir::new(&self.task_dir)
    }

    /// Tells the sink the run stopped, with its attempts and transitions.
    async fn stopped(&mut self, why: Why<'_>) -> Result<(), RunError> {
        let attempts = self.store.attempts(self.run_id).await?;
        let transitions = self.store.transitions(self.run_id).await?;
        self.sink
            .stopped(&Stop {
                attempts: &attempts,
                transitions: &transitions,
                why,
            })
            .map_err(|e| RunError::Io(e.to_string()))
    }

    /// Stops at approval stage `stage`, whose request is pending.
    async fn waiting(&mut self, stage: &str) -> Result<Finished, RunError> {
        self.serial = None;
        self.store
            .set_run_status(self.run_id, RunStatus::Waiting)
            .await?;
        self.stopped(Why::Waiting { stage }).await?;
        self.emit(Event::Note {
            message: format!(
                "waiting for a decision: `orch approve {0} --as NAME` or `orch reject {0} --as NAME --comment TEXT`, then `orch run {0} --resume`",
                self.task
            ),
        });
        Ok(Finished {
            exit_code: exit::WAITING,
            released: None,
        })
    }

    async fn interrupted(&mut self) -> Result<Finished, RunError> {
        self.store
            .set_run_status(self.run_id, RunStatus::Interrupted)
            .await?;
        // A cancelled run is never resumed: no note promises it (whoever
        // cancelled it records it cancelled).
        let message = if self.cancelled_for_good() {
            format!(
                "cancelled; the run is over (`orch run {} --restart` runs the task anew)",
                self.task
            )
        } else {
            format!("interrupted; resume with `orch run {} --resume`", self.task)
        };
        self.stopped(Why::Interrupted { reason: &message }).await?;
        self.emit(Event::Note { message });
        Ok(Finished {
            exit_code: exit::INTERRUPTED,
            released: None,
        })
    }

    /// Stops before `stage`, which needs labels this process lacks: the run
    /// is left interrupted, as by a signal, for a process that has them.
    async fn released(&mut self, stage: &str, needs: Vec<String>) -> Result<Finished, RunError> {
        self.serial = None;
        self.store
            .set_run_status(self.run_id, RunStatus::Interrupted)
            .await?;
        let held = self.labels.as_deref().unwrap_or_default();
        let missing: Vec<&str> = needs
            .iter()
            .filter(|n| !held.contains(n))
            .map(String::as_str)
            .collect();
        let message = format!(
            "released before stage {stage}: it needs the labels {}, and this service lacks {}; a service with them takes the task",
            needs.join(", "),
            missing.join(", ")
        );
        self.stopped(Why::Interrupted { reason: &message }).await?;
        self.emit(Event::Note { message });
        Ok(Finished {
            exit_code: exit::INTERRUPTED,
            released: Some(Released {
                stage: stage.to_string(),
                needs,
            }),
        })
    }

    /// Checks what a resumed run left behind: stale producer groups and
    /// artifacts whose digest no longer matches.
    async fn recover(&mut self) -> Result<(), RunError> {
        let attempts = self.store.attempts(self.run_id).await?;
        for a in &attempts {
            if !matches!(a.step, Step::Started | Step::Interrupted) {
                continue;
            }
            if let Some(group) = &a.group {
                let message = match groups::terminate_recorded(group, Duration::from_secs(5)).await {
                    Cleanup::Terminated => format!(
                        "terminated the producer group {} left running by the interrupted attempt {} of {}",
                        group.pgid, a.attempt, a.stage
                    ),
                    Cleanup::Gone => String::new(),
                    Cleanup::LeftAlone(reason) => format!(
                        "left process group {} of attempt {} of {} alone: {reason}",
                        group.pgid, a.attempt, a.stage
                    ),
                    Cleanup::Survived(reason) => format!(
                        "could not terminate the producer group {} left running by the interrupted attempt {} of {}: {reason}",
                        group.pgid, a.attempt, a.stage
                    ),
                };
                if !message.is_empty() {
                    self.emit(Event::Note { message });
                }
            }
            if a.step == Step::Started {
                self.store.set_step(a.id, Step::Interrupted).await?;
            }
        }
        self.check_artifacts(&attempts).await
    }

    /// Checks the artifact files against what was recorded. Every attempt
    /// clears its stage's artifact when it starts, so the file is accounted
    /// for by the latest attempt of any stage that writes it (stages may
    /// share one): its recorded digest must still hold; when it recorded
    /// none (it was interrupted, or found no file), the file is that
    /// attempt's unfinished business and nothing is reported, unless the
    /// attempt found no file and its gate is still to come: a file there
    /// now fails that gate closed. A file that
    /// is missing or differs is restored from the store when the store kept
    /// it (a task taken over from a service on another host), and said so
    /// in a run note; otherwise it is reported, and when its attempt was
    /// not gated yet its gate fails closed now with that reason: orch never
    /// gates bytes other than those it recorded. (A gate already recorded
    /// judged the recorded bytes and stands.)
    async fn check_artifacts(&mut self, attempts: &[Attempt]) -> Result<(), RunError> {
        let mut latest: HashMap<String, &Attempt> = HashMap::new();
        for a in attempts {
            if let Some(rel) = self.artifact_of_stage(&a.stage) {
                // Attempts come in the order they were recorded: the latest
                // attempt to write a path (it cleared it first) is its owner.
                latest.insert(rel, a);
            }
        }
        let mut notes = Vec::new();
        let mut restored = Vec::new();
        // Attempts whose gate fails closed: (attempt id, stage, reason).
        let mut closed = Vec::new();
        for (rel, a) in latest {
            let path = self.dir().show(&rel);
            let Some(sha) = a.artifact_sha256.as_deref() else {
                // It found no file to record; one there now, before its
                // gate, is no file orch recorded.
                if a.step == Step::Artifact && artifact::file_sha256(self.dir(), &rel).is_ok() {
                    let note = format!(
                        "artifact {} appeared after attempt {} of {} found none",
                        path.display(),
                        a.attempt,
                        a.stage
                    );
                    closed.push((a.id, a.stage.clone(), note.clone()));
                    notes.push(note);
                }
                continue;
            };
            let what = format!(
                "artifact {} recorded by attempt {} of {}",
                path.display(),
                a.attempt,
                a.stage
            );
            let found = match artifact::file_sha256(self.dir(), &rel) {
                Ok(now) if now == sha => continue,
                Ok(_) => Found::Changed,
                Err(taskdir::Error::Missing) => Found::Gone,
                Err(e) => Found::Other(e.describe()),
            };
            match self.restore(&rel, a.id, sha).await? {
                Restore::Done => restored.push(format!(
                    "{what} {}; restored it from the store (sha256 {sha})",
                    match &found {
                        Found::Changed => "had changed".to_string(),
                        Found::Gone => "was missing".to_string(),
                        Found::Other(why) => why.clone(),
                    }
                )),
                not_restored => {
                    let mut note = found.note(&path, a);
                    if let Restore::Failed(why) = not_restored {
                        note = format!("{note}; not restored: {why}");
                    }
                    if a.step == Step::Artifact {
                        closed.push((a.id, a.stage.clone(), note.clone()));
                    }
                    notes.push(note);
                }
            }
        }
        restored.sort();
        for message in &restored {
            self.store.add_run_note(self.run_id, message).await?;
        }
        notes.extend(restored);
        notes.sort();
        for message in notes {
            self.emit(Event::Note { message });
        }
        closed.sort();
        for (attempt_id, stage, reason) in closed {
            self.record_gate(&stage, attempt_id, false, reason).await?;
        }
        Ok(())
    }

    /// Writes the copy the store kept of attempt `attempt_id`'s artifact
    /// back to `rel` beneath the task directory (whatever occupies the path
    /// is removed, never followed), checking its digest before and after.
    async fn restore(&self, rel: &str, attempt_id: i64, sha: &str) -> Result<Restore, RunError> {
        if !self.store.keeps_artifacts() {
            return Ok(Restore::NoCopy);
        }
        let Some(kept) = self.store.artifact_content(attempt_id).await? else {
            return Ok(Restore::NoCopy);
        };
        if kept.sha256 != sha || artifact::sha256_hex(&kept.content) != sha {
            return Ok(Restore::Failed(
                "the store's copy does not match the recorded digest".into(),
            ));
        }
        let dir = self.dir();
        if let Err(e) = dir.clear(rel).and_then(|()| dir.write(rel, &kept.content)) {
            return Ok(Restore::Failed(format!("cannot write it: {e}")));
        }
        match artifact::file_sha256(dir, rel) {
            Ok(now) if now == sha => Ok(Restore::Done),
            Ok(_) => Ok(Restore::Failed(
                "the file written differs from the recorded digest".into(),
            )),
            Err(e) => Ok(Restore::Failed(format!(
                "the file written {}",
                e.describe()
            ))),
        }
    }

    pub(crate) async fn drive(&mut self, resumed: bool) -> Result<Finished, RunError> {
        let started = Instant::now();
        if resumed {
            self.recover().await?;
        }
        self.run_pending_alerts().await?;
        loop {
            // An interruption leaves the run resumable where it is (its
            // alerts not yet sent are sent by the resume).
            let stopped = self.cancelled();
            if stopped && !self.cancelled_for_good() {
                return self.interrupted().await;
            }
            let position = self.store.position(self.run_id).await?;
            let current = match position.last_to {
                Some(to) => to,
                None => self
                    .p
                    .header
                    .as_ref()
                    .map(|h| h.start.value.clone())
                    .unwrap_or_default(),
            };
            // A run whose transition to an end is recorded has ended, even
            // if a cancel came meanwhile: it finishes with that end's
            // outcome, not relabelled cancelled.
            if let Some(end) = self.p.end(&current).map(|e| e.outcome) {
                return self.reach_end(&current, end, started).await;
            }
            if stopped {
                return self.interrupted().await;
            }
            let Some(stage) = self.p.stage(&current).cloned() else {
                return Err(RunError::Usage(format!(
                    "the run is at `{current}`, which the pipeline no longer defines"
                )));
            };
            // Placement: nothing of a stage starts on a process that lacks
            // a label it needs; another takes the task from this boundary.
            if let Some(held) = &self.labels {
                let needs = self.p.labels_of_stage(&stage.name.value);
                if !orch_store::holds_all(held, &needs) {
                    return self.released(&stage.name.value, needs).await;
                }
            }
            if stage.serial && !self.holds_serial(&stage.name.value) {
                if !self.take_serial(&stage.name.value).await? {
                    return self.interrupted().await;
                }
            } else if !stage.serial {
                self.serial = None;
            }
            match self.step_stage(&stage, position.transitions).await? {
                Flow::Continue => {}
                Flow::Interrupted => return self.interrupted().await,
                Flow::Waiting => return self.waiting(&stage.name.value).await,
            }
        }
    }

    async fn reach_end(
        &mut self,
        end: &str,
        outcome: EndOutcome,
        started: Instant,
    ) -> Result<Finished, RunError> {
        let outcome = match outcome {
            EndOutcome::Success => Outcome::Success,
            EndOutcome::Failure => Outcome::Failure,
        };
        self.serial = None;
        // Nothing runs a finished run's alerts later: those still queued
        // (a cancel came before they started) are sent now.
        self.send_alerts(self.cancelled_for_good()).await?;
        self.store.finish_run(self.run_id, outcome, end).await?;
        self.print_profile(started.elapsed());
        self.stopped(Why::End { end, outcome }).await?;
        self.emit(Event::RunFinished {
            task: self.task.clone(),
            outcome: outcome.as_str().into(),
            end: end.to_string(),
            // The whole run, across resumes.
            duration_ms: (orch_store::now_ms() - self.run_started_ms).max(0) as u64,
        });
        Ok(Finished {
            exit_code: if outcome == Outcome::Success {
                exit::SUCCESS
            } else {
                exit::FAILURE
            },
            released: None,
        })
    }

    fn print_profile(&self, total: Duration) {
        if std::env::var_os("ORCH_PROFILE").is_none() {
            return;
        }
        let p = &self.profile;
        let store = self.store.spent();
        let other = total
            .saturating_sub(p.producers)
            .saturating_sub(p.artifacts)
            .saturating_sub(p.gates)
            .saturating_sub(store);
        let us = |d: Duration| d.as_micros();
        eprintln!(
            "profile: attempts={} total_us={} producers_us={} artifacts_us={} gates_us={} store_us={} other_us={}",
            p.attempts,
            us(total),
            us(p.producers),
            us(p.artifacts),
            us(p.gates),
            us(store),
            us(other)
        );
    }

    fn holds_serial(&self, stage: &str) -> bool {
        self.serial.as_ref().is_some_and(|(s, _)| s == stage)
    }

    /// Waits for a serial stage's lock; false when interrupted meanwhile.
    async fn take_serial(&mut self, stage: &str) -> Result<bool, RunError> {
        self.serial = None;
        let key = LockKey::Stage(stage.to_string());
        let holder = format!("task {} ({})", self.task, holder_line());
        let mut announced = false;
        loop {
            match self.store.try_lock(&key, &holder).await? {
                Ok(guard) => {
                    self.serial = Some((stage.to_string(), guard));
                    if announced {
                        self.emit(Event::Acquired {
                            stage: stage.to_string(),
                        });
                    }
                    return Ok(true);
                }
                Err(other) => {
                    if !announced {
                        announced = true;
                        self.emit(Event::Waiting {
                            stage: stage.to_string(),
                            reason: format!("held by {other}"),
                        });
                    }
                    if self.cancelled() {
                        return Ok(false);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Advances the current stage by one step: an attempt (new or resumed),
    /// then its gate and transition.
    async fn step_stage(&mut self, stage: &Stage, visit: i64) -> Result<Flow, RunError> {
        if let Some(node) = self.p.approval_of_stage(&stage.name.value).cloned() {
            return crate::approval::step(self, stage, &node, visit).await;
        }
        let last = self.store.last_attempt(self.run_id).await?;
        let (row, defers) = match decide::next(last, &stage.name.value, visit) {
            Next::Continue(a) => {
                let defers = a.defers;
                (*a, defers)
            }
            Next::Start { defers } => {
                let attempt_no = self
                    .store
                    .attempt_count(self.run_id, &stage.name.value)
                    .await?
                    + 1;
                match executor::start_attempt(self, stage, attempt_no, visit, defers).await? {
                    Some(row) => (row, defers),
                    None if self.cancelled() => return Ok(Flow::Interrupted),
                    None => return Ok(Flow::Continue),
                }
            }
        };
        self.finish_attempt(stage, row, defers).await
    }

    fn retry_of(&self, a: &Attempt) -> Retry {
        match a.producer {
            ProducerKind::Runner => self
                .p
                .runner(&a.producer_name)
                .map(|r| r.process.retry.clone()),
            ProducerKind::Llm => self
                .p
                .transport(&a.producer_name)
                .map(|t| t.process.retry.clone()),
            // A person's decision is never a tool-error to retry.
            ProducerKind::Approval => None,
        }
        .unwrap_or_else(Retry::none)
    }

    /// From a recorded exit: defer, or write the artifact, gate, transition.
    pub(crate) async fn finish_attempt(
        &mut self,
        stage: &Stage,
        mut row: Attempt,
        defers: i64,
    ) -> Result<Flow, RunError> {
        if row.step == Step::Exited {
            let verdict = row
                .verdict
                .clone()
                .unwrap_or_else(|| orch_lang::model::TOOL_ERROR.into());
            match decide::after_exit(&verdict, row.exit.as_deref(), &self.retry_of(&row), defers) {
                AfterExit::Proceed => {}
                AfterExit::Defer {
                    delay,
                    attempts_left,
                } => return self.defer(&row, delay, attempts_left).await,
                AfterExit::FailClosed(reason) => {
                    self.fail_closed(stage, Some(row.id), &reason).await?;
                    return Ok(Flow::Continue);
                }
            }
            match self.record_artifact(&row, &verdict).await? {
                None => row.step = Step::Artifact,
                // orch could not write it: the gate failed closed unread.
                Some(reason) => {
                    row.gate_pass = Some(false);
                    row.gate_reason = Some(reason);
                    row.step = Step::Gated;
                }
            }
        }
        if row.step == Step::Artifact {
            let verdict = self.judge(stage, row.id).await?;
            row.gate_pass = Some(verdict.pass);
            row.gate_reason = Some(verdict.reason);
            row.step = Step::Gated;
        }
        // Gated: take the transition.
        let name = &stage.name.value;
        let pass = row.gate_pass.unwrap_or(false);
        let fails = if pass {
            0
        } else {
            self.store.fail_count(self.run_id, name).await? as u32
        };
        let reason = row.gate_reason.clone().unwrap_or_default();
        let take = decide::after_gate(stage, pass, &reason, fails);
        self.take(name, Some(row.id), take).await?;
        Ok(Flow::Continue)
    }

    async fn defer(
        &mut self,
        row: &Attempt,
        delay: Duration,
        attempts_left: i64,
    ) -> Result<Flow, RunError> {
        self.store.set_step(row.id, Step::Done).await?;
        self.emit(Event::Deferred {
            stage: row.stage.clone(),
            attempt: row.attempt,
            reason: format!(
                "tool-error ({})",
                row.exit.clone().unwrap_or_else(|| "did not run".into())
            ),
            delay_ms: delay.as_millis() as u64,
            attempts_left,
        });
        let mut cancel = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(Flow::Continue),
            _ = cancel.wait_for(|c| *c) => Ok(Flow::Interrupted),
        }
    }

    /// Writes a runner's verdict into its artifact (an agent wrote its own)
    /// and records the artifact's digest. When orch cannot write the
    /// artifact it must write (a runner's, an approval's decision), whatever
    /// is at its path is not orch's: it is removed if it can be, never
    /// gated, and the gate fails closed at once, recorded in the same step
    /// (a resume finds the attempt gated, not a file to judge). Returns that
    /// gate's reason.
    async fn record_artifact(
        &mut self,
        row: &Attempt,
        verdict: &str,
    ) -> Result<Option<String>, RunError> {
        let t = Instant::now();
        let unwritten = match row.producer {
            ProducerKind::Runner => executor::write_runner_artifact(self, row, verdict),
            ProducerKind::Approval => crate::approval::write_decision_artifact(self, row).await?,
            // The agent wrote its own.
            ProducerKind::Llm => None,
        };
        if let Some(message) = unwritten {
            let removed = match self.artifact_of_stage(&row.stage) {
                Some(rel) => match artifact::clear(self.dir(), &rel) {
                    Ok(()) => "; whatever was at its path is removed, never gated".to_string(),
                    Err(why) => format!("; whatever is at its path is never gated ({why})"),
                },
                None => String::new(),
            };
            self.profile.artifacts += t.elapsed();
            let reason = format!("orch could not write the artifact ({message}){removed}");
            let reason = self.record_gate(&row.stage, row.id, false, reason).await?;
            return Ok(Some(reason));
        }
        // Only a regular file has a digest; anything else fails its gate.
        let bytes = self
            .artifact_of_stage(&row.stage)
            .and_then(|rel| self.dir().read(&rel).ok());
        let sha = bytes.as_deref().map(artifact::sha256_hex);
        self.profile.artifacts += t.elapsed();
        match (bytes, sha) {
            // A store shared by many hosts keeps the bytes too, so that the
            // service that takes the task over can restore the file.
            (Some(bytes), Some(sha)) if self.store.keeps_artifacts() => {
                if bytes.len() <= orch_store::MAX_KEPT_ARTIFACT_BYTES {
                    self.store
                        .record_artifact_content(row.id, &sha, &bytes)
                        .await?;
                } else {
                    self.emit(Event::Note {
                        message: format!(
                            "artifact of attempt {} of {} is {} bytes, more than the {} the store keeps: only its digest is recorded",
                            row.attempt,
                            row.stage,
                            bytes.len(),
                            orch_store::MAX_KEPT_ARTIFACT_BYTES
                        ),
                    });
                    self.store.record_artifact(row.id, Some(&sha)).await?;
                }
            }
            (_, sha) => self.store.record_artifact(row.id, sha.as_deref()).await?,
        }
        failpoint::hit(Point::AfterArtifact, &row.stage);
        Ok(None)
    }

    /// Reads the stage's artifact for its gate and records the decision.
    async fn judge(
        &mut self,
        stage: &Stage,
        attempt_id: i64,
    ) -> Result<orch_lang::gate::Verdict, RunError> {
        let name = &stage.name.value;
        let g = self.p.gate(&stage.gate.value);
        let a = g.and_then(|g| self.p.artifact(&g.artifact.value));
        let t = Instant::now();
        let mut verdict = match (g, a) {
            (Some(g), Some(a)) => crate::gate::evaluate_beneath(g, a, &self.task_dir),
            _ => orch_lang::gate::Verdict::fail("the gate or its artifact is not defined"),
        };
        self.profile.gates += t.elapsed();
        verdict.reason = self
            .record_gate(name, attempt_id, verdict.pass, verdict.reason)
            .await?;
        Ok(verdict)
    }

    /// Records an attempt's gate decision and reports it; the reason as
    /// recorded (redacted: it may quote an artifact a producer wrote).
    async fn record_gate(
        &mut self,
        stage: &str,
        attempt_id: i64,
        pass: bool,
        reason: String,
    ) -> Result<String, RunError> {
        let reason = self.redactor.redact(&reason);
        self.store.record_gate(attempt_id, pass, &reason).await?;
        failpoint::hit(Point::AfterGate, stage);
        let gate = self
            .p
            .stage(stage)
            .map(|s| s.gate.value.clone())
            .unwrap_or_default();
        self.emit(Event::Gate {
            stage: stage.to_string(),
            gate,
            pass,
            reason: reason.clone(),
        });
        Ok(reason)
    }

    /// The stage fails closed: `exhausted`, and its alert.
    pub(crate) async fn fail_closed(
        &mut self,
        stage: &Stage,
        attempt_id: Option<i64>,
        reason: &str,
    ) -> Result<(), RunError> {
        let take = decide::fail_closed(stage, reason);
        self.take(&stage.name.value, attempt_id, take).await
    }

    async fn take(
        &mut self,
        from: &str,
        attempt_id: Option<i64>,
        take: Result<Take, decide::Stuck>,
    ) -> Result<(), RunError> {
        let t = take.map_err(|stuck| RunError::Usage(stuck.0))?;
        self.store
            .record_transition(&NewTransition {
                run_id: self.run_id,
                attempt_id,
                from,
                kind: t.kind,
                to: &t.to,
                reason: &t.reason,
                alert: t.alert.as_deref(),
            })
            .await?;
        self.emit(Event::Transition {
            from: from.into(),
            kind: t.kind.as_str().into(),
            to: t.to.clone(),
            reason: t.reason,
        });
        if self.serial.as_ref().is_some_and(|(s, _)| s == from) && t.to != from {
            self.serial = None;
        }
        self.run_pending_alerts().await
    }

    /// Runs every queued alert once; an alert's failure is reported and does
    /// not change the task's outcome.
    async fn run_pending_alerts(&mut self) -> Result<(), RunError> {
        self.send_alerts(false).await
    }

    /// Runs the queued alerts. An alert cut off by an interruption was not
    /// delivered: it stays pending, and the resume runs it again. A cancel
    /// does not cut off an alert that has started: it runs to its end
    /// within its own timeout (alerts are how people learn that a stage
    /// failed closed). Once the run is stopped no further alert starts,
    /// unless `even_if_cancelled` (a cancelled run at its end); those left
    /// stay pending (a cancelled run's are recorded as not sent by whoever
    /// cancelled it).
    async fn send_alerts(&mut self, even_if_cancelled: bool) -> Result<(), RunError> {
        for row in self.store.pending_alerts(self.run_id).await? {
            if self.cancelled() && !even_if_cancelled {
                break;
            }
            let (ok, exit) = match executor::run_alert(self, &row).await? {
                AlertEnd::Ran { ok, exit } => (ok, exit),
                // Recorded and reported like any failed alert: it was not
                // delivered, and the run says so.
                AlertEnd::Undefined => (false, "the pipeline no longer defines it".to_string()),
                AlertEnd::Interrupted => {
                    self.emit(Event::Note {
                        message: format!(
                            "alert {} for {} was interrupted; it runs again on resume",
                            row.alert, row.stage
                        ),
                    });
                    break;
                }
            };
            self.store.finish_alert(row.id, ok, &exit).await?;
            self.emit(Event::Alert {
                stage: row.stage.clone(),
                alert: row.alert.clone(),
                ok,
                exit,
            });
        }
        Ok(())
    }
}

/// `{pipeline-dir}`: the directory of the (canonical) pipeline file.
fn pipeline_dir(pipeline_path: &std::path::Path) -> String {
    pipeline_path
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// What a resumed run found at an artifact's path.
enum Found {
    Changed,
    Gone,
    /// Something that is not the file (a link, a directory), in words.
    Other(String),
}

impl Found {
    /// The note when the file stays as found.
    fn note(&self, path: &std::path::Path, a: &Attempt) -> String {
        match self {
            Found::Changed => format!(
                "artifact {} changed since attempt {} of {} recorded it",
                path.display(),
                a.attempt,
                a.stage
            ),
            Found::Gone => format!(
                "artifact {} recorded by attempt {} of {} is gone",
                path.display(),
                a.attempt,
                a.stage
            ),
            Found::Other(why) => format!(
                "artifact {} recorded by attempt {} of {} {why}",
                path.display(),
                a.attempt,
                a.stage
            ),
        }
    }
}

/// Whether an artifact was restored from the store.
enum Restore {
    Done,
    /// The store kept no copy (SQLite, or a file over the bound).
    NoCopy,
    Failed(String),
}
