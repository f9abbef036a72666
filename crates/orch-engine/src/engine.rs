//! `orch run`: the state machine that takes a task through the pipeline.
//!
//! Every step is recorded in the store before the engine acts on it, so the
//! engine can be killed at any moment and resumed from the rows alone:
//! attempt row → spawn → exit and verdict → artifact → gate → transition.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use orch_lang::analysis;
use orch_lang::choice::{self, Kind};
use orch_lang::diagnostic::{did_you_mean, FileReport};
use orch_lang::invocation;
use orch_lang::model::*;
use orch_lang::template::Context;
use orch_lang::validate::Options;
use orch_store::lock::{holder_line, hostname, try_lock, Lock};
use orch_store::{self as store, AttemptRow, Step, Store, StoreError};

use crate::events::{Event, Sink};
use crate::process::{self, Exit};
use crate::producer;

/// Exit statuses of `orch run`.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const INTERRUPTED: u8 = 3;
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub task: String,
    pub pipeline: PathBuf,
    pub worktree: PathBuf,
    pub vars: Vec<(String, String)>,
    pub state_dir: PathBuf,
    pub resume: bool,
    pub restart: bool,
    pub allow_changed_pipeline: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    /// The validator's findings; nothing was run.
    #[error("the pipeline is invalid; nothing was run")]
    Invalid(Box<FileReport>),
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Busy(_) => exit::INTERRUPTED,
            _ => exit::INVALID,
        }
    }
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> RunError {
    move |e| RunError::Io(format!("{what}: {e}"))
}

/// A task name: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_task_name(task: &str) -> Result<(), RunError> {
    let ok = !task.is_empty()
        && !task.starts_with('.')
        && task
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RunError::Usage(format!(
            "invalid task name {task:?}: use letters, digits, '.', '_' and '-', not starting with '.'"
        )))
    }
}

/// `*.kdl` files in the directory of a missing pipeline, for the error.
fn nearby_pipelines(path: &Path) -> String {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut found: Vec<String> = Vec::new();
    for d in [dir.to_path_buf(), dir.join("pipelines")] {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "kdl") {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found.sort();
    if found.is_empty() {
        String::new()
    } else {
        format!(
            "; pipelines nearby: {} (pass one with -p)",
            found.join(", ")
        )
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_sha256(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(sha256_hex(&buf))
}

/// Removes an artifact left by an earlier attempt (a file, or whatever
/// occupies its path) and makes sure its directory exists, so a producer can
/// write it.
fn clear_artifact(path: &Path) -> Result<(), String> {
    let cleared = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    cleared
        .and_then(|_| path.parent().map_or(Ok(()), std::fs::create_dir_all))
        .map_err(|e| format!("cannot clear the stale artifact {}: {e}", path.display()))
}

/// Test hook: `ORCH_FAILPOINT=POINT` or `POINT@STAGE` makes orch kill itself
/// with SIGKILL at that step, exactly as a crash would, so the durability
/// tests can stop it at every step boundary. Points: `before-spawn`,
/// `after-exit`, `after-artifact`, `after-gate`.
fn failpoint(point: &str, stage: &str) {
    let Ok(want) = std::env::var("ORCH_FAILPOINT") else {
        return;
    };
    let hit = match want.split_once('@') {
        Some((p, s)) => p == point && s == stage,
        None => want == point,
    };
    if hit {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Variable values, the worktree and the repo a task runs with.
pub struct Bindings {
    pub vars: HashMap<String, String>,
    /// Absolute.
    pub worktree: PathBuf,
    /// What runner scopes are checked against: `--var repo=NAME`, else the
    /// worktree directory's name.
    pub repo: String,
}

/// Declared defaults overridden by `--var`; `repo` may always be set.
pub fn bind(
    header: &Header,
    overrides: &[(String, String)],
    worktree: &Path,
) -> Result<Bindings, RunError> {
    let mut vars: HashMap<String, String> = header
        .vars
        .iter()
        .map(|v| (v.name.value.clone(), v.default.clone()))
        .collect();
    for (k, v) in overrides {
        if !vars.contains_key(k) && k != "repo" {
            let help = did_you_mean(k, header.vars.iter().map(|v| v.name.value.as_str()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(RunError::Usage(format!(
                "--var {k}: the pipeline declares no variable `{k}`{help}"
            )));
        }
        vars.insert(k.clone(), v.clone());
    }
    let worktree = std::fs::canonicalize(worktree)
        .ok()
        .filter(|w| w.is_dir())
        .ok_or_else(|| {
            RunError::Usage(format!(
                "worktree {} is not a directory",
                worktree.display()
            ))
        })?;
    let repo = vars.get("repo").cloned().unwrap_or_else(|| {
        worktree
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Ok(Bindings {
        vars,
        worktree,
        repo,
    })
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub exit_code: u8,
}

/// Where a run's time went, printed to stderr when `ORCH_PROFILE` is set.
#[derive(Debug, Default)]
struct Profile {
    attempts: u32,
    /// Producer processes, spawn to exit and clean-up.
    producers: Duration,
    /// Writing runner artifacts and hashing artifacts.
    artifacts: Duration,
    gates: Duration,
}

enum Flow {
    Continue,
    Interrupted,
}

struct Engine {
    p: std::sync::Arc<Pipeline>,
    opts: RunOptions,
    pipeline_path: PathBuf,
    store: Store,
    run_id: i64,
    task_dir: PathBuf,
    logs: PathBuf,
    locks: PathBuf,
    worktree: PathBuf,
    vars: HashMap<String, String>,
    repo: String,
    sink: Box<dyn Sink>,
    cancel: watch::Receiver<bool>,
    serial: Option<(String, Lock)>,
    profile: Profile,
}

/// Runs (or resumes) a task. Errors come back for the caller to print.
/// `cancel` turning true interrupts the run (the caller decides when: a
/// signal, a service draining); events go to `sink`.
pub async fn run(
    opts: RunOptions,
    mut sink: Box<dyn Sink>,
    cancel: watch::Receiver<bool>,
) -> Result<Finished, RunError> {
    check_task_name(&opts.task)?;
    let text = match std::fs::read_to_string(&opts.pipeline) {
        Ok(t) => t,
        Err(e) => {
            return Err(RunError::Usage(format!(
                "cannot read pipeline {}: {e}{}",
                opts.pipeline.display(),
                nearby_pipelines(&opts.pipeline)
            )))
        }
    };
    let path_str = opts.pipeline.display().to_string();
    let checked = analysis::analyze_text(&path_str, &text, &Options { offline: true });
    if checked.has_errors() {
        return Err(RunError::Invalid(Box::new(checked.report)));
    }
    let p = checked.pipeline;
    let header = p
        .header
        .clone()
        .ok_or_else(|| RunError::Usage("the pipeline has no header".into()))?;

    let Bindings {
        vars,
        worktree,
        repo,
    } = bind(&header, &opts.vars, &opts.worktree)?;
    let pipeline_path = std::fs::canonicalize(&opts.pipeline).unwrap_or(opts.pipeline.clone());

    std::fs::create_dir_all(&opts.state_dir).map_err(io_err(format!(
        "cannot create state dir {}",
        opts.state_dir.display()
    )))?;
    let state_dir = std::fs::canonicalize(&opts.state_dir).map_err(io_err("state dir"))?;
    let locks = state_dir.join("locks");
    std::fs::create_dir_all(&locks).map_err(io_err("cannot create locks dir"))?;
    let task_lock = match try_lock(
        &locks.join(format!("task.{}.lock", opts.task)),
        &holder_line(),
    )
    .map_err(|e| RunError::Io(e.to_string()))?
    {
        Ok(l) => l,
        Err(holder) => {
            return Err(RunError::Busy(format!(
                "task {} is already running ({holder})",
                opts.task
            )))
        }
    };
    let store = Store::open(&state_dir.join("orch.db"))?;
    let task_dir = state_dir.join("tasks").join(&opts.task);
    let logs = task_dir.join("logs");

    let hash = sha256_hex(text.as_bytes());
    let vars_json = serde_json::to_string(&vars).unwrap_or_default();
    let latest = store.latest_run(&opts.task)?;
    let mut notes = Vec::new();
    let (run_id, resumed) = match latest {
        Some(run) if run.status == "finished" && !opts.restart => {
            let outcome = run.outcome.clone().unwrap_or_default();
            sink.event(&Event::AlreadyFinished {
                task: opts.task.clone(),
                run_id: run.id,
                outcome: outcome.clone(),
                end: run.end_name.unwrap_or_default(),
            });
            return Ok(Finished {
                exit_code: if outcome == "success" {
                    exit::SUCCESS
                } else {
                    exit::FAILURE
                },
            });
        }
        Some(run) if run.status != "finished" && run.status != "abandoned" && !opts.restart => {
            if !opts.resume {
                return Err(RunError::Usage(format!(
                    "task {} has an unfinished run (#{}, {}): use --resume to continue it or --restart to start over",
                    opts.task, run.id, run.status
                )));
            }
            if run.pipeline_hash != hash && !opts.allow_changed_pipeline {
                return Err(RunError::Usage(format!(
                    "the pipeline changed since run #{} began ({}); refusing to resume (use --allow-changed-pipeline to resume anyway)",
                    run.id,
                    orch_lang::changes::pipeline_changes(&run.pipeline_text, &text).join(", ")
                )));
            }
            if run.pipeline_hash != hash {
                notes.push(format!(
                    "resuming with a changed pipeline: {}",
                    orch_lang::changes::pipeline_changes(&run.pipeline_text, &text).join(", ")
                ));
            }
            store.set_run_status(run.id, "running")?;
            (run.id, true)
        }
        None if opts.resume => {
            return Err(RunError::Usage(format!(
                "task {} has no run to resume in {}",
                opts.task,
                state_dir.display()
            )))
        }
        previous => {
            if let Some(run) = previous {
                if run.status != "finished" {
                    // Nothing of the abandoned run may keep running into the new one.
                    for a in store.attempts(run.id)? {
                        if matches!(a.step, Step::Started | Step::Interrupted) {
                            if let Some(pgid) = a.pgid.filter(|g| *g > 1) {
                                if process::terminate_stale_group(
                                    pgid as u32,
                                    Duration::from_secs(5),
                                )
                                .await
                                {
                                    notes.push(format!(
                                        "terminated the producer group {pgid} left running by run #{}",
                                        run.id
                                    ));
                                }
                            }
                        }
                    }
                    store.set_run_status(run.id, "abandoned")?;
                }
                if task_dir.exists() {
                    let archive = state_dir
                        .join("archive")
                        .join(&opts.task)
                        .join(format!("run-{}", run.id));
                    if let Some(parent) = archive.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(io_err("cannot create archive dir"))?;
                    }
                    std::fs::rename(&task_dir, &archive)
                        .map_err(io_err(format!("cannot archive {}", task_dir.display())))?;
                }
            }
            let id = store.create_run(
                &opts.task,
                &pipeline_path.display().to_string(),
                &hash,
                &text,
                &vars_json,
                &worktree.display().to_string(),
                &hostname(),
            )?;
            (id, false)
        }
    };
    std::fs::create_dir_all(&logs).map_err(io_err(format!(
        "cannot create task dir {}",
        task_dir.display()
    )))?;

    let mut engine = Engine {
        p: std::sync::Arc::new(p),
        sink,
        opts,
        pipeline_path,
        store,
        run_id,
        task_dir,
        logs,
        locks,
        worktree,
        vars,
        repo,
        cancel,
        serial: None,
        profile: Profile::default(),
    };
    engine.emit(Event::RunStarted {
        task: engine.opts.task.clone(),
        run_id,
        pipeline: path_str,
        resumed,
    });
    for n in notes {
        engine.emit(Event::Note { message: n });
    }
    let result = engine.drive(resumed).await;
    drop(task_lock);
    result
}

impl Engine {
    fn emit(&mut self, e: Event) {
        tracing::debug!(?e, "event");
        self.sink.event(&e);
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    fn context(&self, stage: &str, attempt: i64) -> Context {
        Context {
            task: self.opts.task.clone(),
            stage: stage.to_string(),
            attempt: attempt.max(0) as u32,
            worktree: self.worktree.display().to_string(),
            task_dir: self.task_dir.display().to_string(),
            vars: self.vars.clone(),
        }
    }

    /// Tells the sink the run stopped, with its attempts.
    fn stopped(&mut self, outcome: Option<&str>) -> Result<(), RunError> {
        let attempts = self.store.attempts(self.run_id)?;
        self.sink
            .stopped(&attempts, outcome)
            .map_err(|e| RunError::Io(e.to_string()))
    }

    fn interrupted(&mut self) -> Result<Finished, RunError> {
        self.store.set_run_status(self.run_id, "interrupted")?;
        self.stopped(None)?;
        self.emit(Event::Note {
            message: format!(
                "interrupted; resume with `orch run {} --resume`",
                self.opts.task
            ),
        });
        Ok(Finished {
            exit_code: exit::INTERRUPTED,
        })
    }

    /// Checks what a resumed run left behind: stale producer groups and
    /// artifacts whose digest no longer matches.
    async fn recover(&mut self) -> Result<(), RunError> {
        let attempts = self.store.attempts(self.run_id)?;
        for a in &attempts {
            if matches!(a.step, Step::Started | Step::Interrupted) {
                if let Some(pgid) = a.pgid.filter(|g| *g > 1) {
                    if process::terminate_stale_group(pgid as u32, Duration::from_secs(5)).await {
                        self.emit(Event::Note {
                            message: format!(
                                "terminated the producer group {pgid} left running by the interrupted attempt {} of {}",
                                a.attempt, a.stage
                            ),
                        });
                    }
                }
                if a.step == Step::Started {
                    self.store.set_step(a.id, Step::Interrupted)?;
                }
            }
        }
        // The latest recorded digest of each artifact file must still hold.
        let mut latest: HashMap<PathBuf, (&AttemptRow, &str)> = HashMap::new();
        for a in &attempts {
            if let Some(sha) = a.artifact_sha256.as_deref() {
                if let Some(path) = self.artifact_path_of_stage(&a.stage) {
                    latest.insert(path, (a, sha));
                }
            }
        }
        let mut notes = Vec::new();
        for (path, (a, sha)) in latest {
            match file_sha256(&path) {
                Some(now) if now == sha => {}
                Some(_) => notes.push(format!(
                    "artifact {} changed since attempt {} of {} recorded it",
                    path.display(),
                    a.attempt,
                    a.stage
                )),
                None => notes.push(format!(
                    "artifact {} recorded by attempt {} of {} is gone",
                    path.display(),
                    a.attempt,
                    a.stage
                )),
            }
        }
        for n in notes {
            self.emit(Event::Note { message: n });
        }
        Ok(())
    }

    fn artifact_path_of_stage(&self, stage: &str) -> Option<PathBuf> {
        let s = self.p.stage(stage)?;
        let g = self.p.gate(&s.gate.value)?;
        let a = self.p.artifact(&g.artifact.value)?;
        Some(self.task_dir.join(&a.path.value))
    }

    async fn drive(&mut self, resumed: bool) -> Result<Finished, RunError> {
        let started = Instant::now();
        if resumed {
            self.recover().await?;
        }
        self.run_pending_alerts().await?;
        loop {
            if self.cancelled() {
                return self.interrupted();
            }
            let position = self.store.position(self.run_id)?;
            let current = match position.last_to {
                Some(to) => to,
                None => self
                    .p
                    .header
                    .as_ref()
                    .map(|h| h.start.value.clone())
                    .unwrap_or_default(),
            };
            if let Some(end_outcome) = self.p.end(&current).map(|e| e.outcome) {
                let outcome = match end_outcome {
                    Outcome::Success => "success",
                    Outcome::Failure => "failure",
                };
                self.serial = None;
                self.store.finish_run(self.run_id, outcome, &current)?;
                self.print_profile(started.elapsed());
                self.stopped(Some(outcome))?;
                self.emit(Event::RunFinished {
                    task: self.opts.task.clone(),
                    outcome: outcome.into(),
                    end: current.clone(),
                    duration_ms: started.elapsed().as_millis() as u64,
                });
                return Ok(Finished {
                    exit_code: if end_outcome == Outcome::Success {
                        exit::SUCCESS
                    } else {
                        exit::FAILURE
                    },
                });
            }
            let Some(stage) = self.p.stage(&current).cloned() else {
                return Err(RunError::Usage(format!(
                    "the run is at `{current}`, which the pipeline no longer defines"
                )));
            };
            if stage.serial && !self.holds_serial(&stage.name.value) {
                if !self.take_serial(&stage.name.value).await? {
                    return self.interrupted();
                }
            } else if !stage.serial {
                self.serial = None;
            }
            match self.step_stage(&stage, position.transitions).await? {
                Flow::Continue => {}
                Flow::Interrupted => return self.interrupted(),
            }
        }
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
        let path = self.locks.join(format!("stage.{stage}.lock"));
        let holder = format!("task {} ({})", self.opts.task, holder_line());
        let mut announced = false;
        loop {
            match try_lock(&path, &holder).map_err(|e| RunError::Io(e.to_string()))? {
                Ok(lock) => {
                    self.serial = Some((stage.to_string(), lock));
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
        let current = self
            .store
            .last_attempt(self.run_id)?
            .filter(|a| a.stage == stage.name.value && a.visit == visit);
        let attempt_no = self.store.attempt_count(self.run_id, &stage.name.value)? + 1;
        let (row, defers) = match current {
            Some(a) if matches!(a.step, Step::Exited | Step::Artifact | Step::Gated) => {
                let defers = a.defers;
                (a, defers)
            }
            Some(a) => {
                // Done (deferred) or interrupted: a new attempt in the same visit.
                let defers = if a.step == Step::Done {
                    a.defers + 1
                } else {
                    a.defers
                };
                match self.start_attempt(stage, attempt_no, visit, defers).await? {
                    Some(row) => (row, defers),
                    None => return Ok(self.flow_after_start()),
                }
            }
            None => match self.start_attempt(stage, attempt_no, visit, 0).await? {
                Some(row) => (row, 0),
                None => return Ok(self.flow_after_start()),
            },
        };
        self.finish_attempt(stage, row, defers).await
    }

    fn flow_after_start(&self) -> Flow {
        if self.cancelled() {
            Flow::Interrupted
        } else {
            Flow::Continue
        }
    }

    /// Chooses the producer, records the attempt, runs it, records its exit.
    /// `None` when the stage failed closed before anything ran, or when the
    /// attempt was interrupted.
    async fn start_attempt(
        &mut self,
        stage: &Stage,
        attempt_no: i64,
        visit: i64,
        defers: i64,
    ) -> Result<Option<AttemptRow>, RunError> {
        let name = stage.name.value.clone();
        let Some(cs) = self.p.call_site(&stage.call_site.value).cloned() else {
            return Err(RunError::Usage(format!(
                "call-site `{}` is not defined",
                stage.call_site.value
            )));
        };
        let env = |k: &str| std::env::var(k).ok();
        let p = self.p.clone();
        let choice = match choice::choose(&p, &cs, &self.repo, &env) {
            Ok(c) => c,
            Err(reason) => {
                self.fail_closed(stage, None, &reason).await?;
                return Ok(None);
            }
        };
        let ctx = self.context(&name, attempt_no);
        let log = self.logs.join(format!("{name}.{attempt_no}.log"));
        let (kind, producer_name, spec) = match choice.kind {
            Kind::Runner => {
                let r = choice
                    .runner
                    .ok_or_else(|| RunError::Usage("no runner".into()))?;
                (
                    Kind::Runner,
                    r.name.value.clone(),
                    invocation::runner(r, &ctx, &self.pipeline_path),
                )
            }
            Kind::Llm => {
                let (t, l) = choice
                    .llm
                    .ok_or_else(|| RunError::Usage("no transport".into()))?;
                (
                    Kind::Llm,
                    t.name.value.clone(),
                    invocation::llm(t, l, &ctx, &self.pipeline_path),
                )
            }
        };
        let mut spec = spec;
        let argv = spec.as_ref().map(|s| s.argv.clone()).unwrap_or_default();
        let log_str = log.display().to_string();
        let id = self.store.insert_attempt(&store::NewAttempt {
            run_id: self.run_id,
            task: &self.opts.task,
            stage: &name,
            attempt: attempt_no,
            visit,
            call_site: &cs.name.value,
            producer: kind.as_str(),
            producer_name: &producer_name,
            argv: &argv,
            defers,
            log_path: &log_str,
        })?;
        // A stale artifact from an earlier visit must never pass this gate;
        // if it cannot be cleared the attempt cannot run (a tool-error).
        if let Some(path) = self.artifact_path_of_stage(&name) {
            if let Err(reason) = clear_artifact(&path) {
                spec = Err(reason);
            }
        }
        self.emit(Event::AttemptStarted {
            stage: name.clone(),
            attempt: attempt_no,
            producer: kind.as_str().into(),
            name: producer_name.clone(),
            argv: argv.clone(),
            reason: choice.reason.clone(),
        });
        failpoint("before-spawn", &name);
        let spawned = Instant::now();
        let outcome = match spec {
            Ok(invocation) => {
                let spec = process::Spec {
                    invocation,
                    log: log.clone(),
                };
                let store = &self.store;
                let mut pgid_err = None;
                let o = process::run(
                    &spec,
                    |pgid| {
                        if let Err(e) = store.set_pgid(id, pgid) {
                            pgid_err = Some(e);
                        }
                    },
                    self.cancel.clone(),
                )
                .await;
                if let Some(e) = pgid_err {
                    return Err(e.into());
                }
                o
            }
            Err(reason) => {
                let _ = std::fs::write(
                    &log,
                    format!("orch: could not build the command: {reason}\n"),
                );
                process::Outcome {
                    exit: Exit::SpawnFailed(reason),
                    duration: Duration::ZERO,
                    tail: Vec::new(),
                    leaks: Vec::new(),
                }
            }
        };
        self.profile.producers += spawned.elapsed();
        self.profile.attempts += 1;
        if outcome.exit == Exit::Interrupted {
            self.store.set_step(id, Step::Interrupted)?;
            return Ok(None);
        }
        let verdict = match kind {
            Kind::Runner => producer::runner_verdict(
                choice
                    .runner
                    .ok_or_else(|| RunError::Usage("no runner".into()))?,
                &outcome.exit,
            ),
            Kind::Llm => producer::llm_verdict(&outcome.exit),
        };
        let leaks: Vec<String> = outcome
            .leaks
            .iter()
            .map(|l| format!("pid {} `{}`", l.pid, l.command))
            .collect();
        let exit_text = outcome.exit.describe();
        self.store.record_exit(
            id,
            outcome.exit.code(),
            &exit_text,
            &verdict,
            &leaks,
            outcome.duration,
            &outcome.tail,
        )?;
        self.emit(Event::AttemptFinished {
            stage: name.clone(),
            attempt: attempt_no,
            producer: kind.as_str().into(),
            name: producer_name,
            exit: exit_text,
            exit_code: outcome.exit.code(),
            verdict,
            duration_ms: outcome.duration.as_millis() as u64,
            defers,
            leaked: leaks,
            log: log_str,
        });
        failpoint("after-exit", &name);
        Ok(self.store.attempt(id)?)
    }

    /// From a recorded exit: defer, or write the artifact, gate, transition.
    async fn finish_attempt(
        &mut self,
        stage: &Stage,
        mut row: AttemptRow,
        defers: i64,
    ) -> Result<Flow, RunError> {
        let name = stage.name.value.clone();
        let verdict = row.verdict.clone().unwrap_or_else(|| TOOL_ERROR.into());
        if row.step == Step::Exited && verdict == TOOL_ERROR {
            let retry = if row.producer == Kind::Runner.as_str() {
                self.p.runner(&row.producer_name).map(|r| r.retry.clone())
            } else {
                self.p
                    .transport(&row.producer_name)
                    .map(|t| t.retry.clone())
            }
            .unwrap_or_else(Retry::none);
            let used = defers + 1;
            if used < retry.attempts as i64 {
                let delay = retry.delay_before(used as u32 + 1);
                self.store.set_step(row.id, Step::Done)?;
                self.emit(Event::Deferred {
                    stage: name.clone(),
                    attempt: row.attempt,
                    reason: format!(
                        "tool-error ({})",
                        row.exit.clone().unwrap_or_else(|| "did not run".into())
                    ),
                    delay_ms: delay.as_millis() as u64,
                    attempts_left: retry.attempts as i64 - used,
                });
                let mut cancel = self.cancel.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.wait_for(|c| *c) => return Ok(Flow::Interrupted),
                }
                return Ok(Flow::Continue);
            }
            let reason = format!(
                "tool-error on {used} attempt(s): the retry budget is spent ({})",
                row.exit.clone().unwrap_or_default()
            );
            self.fail_closed(stage, Some(row.id), &reason).await?;
            return Ok(Flow::Continue);
        }
        let artifact_path = self.artifact_path_of_stage(&name);
        if row.step == Step::Exited {
            let t = Instant::now();
            // Write the runner's verdict into its artifact; an agent wrote its own.
            if row.producer == Kind::Runner.as_str() {
                let runner = self.p.runner(&row.producer_name).cloned();
                if let (Some(r), Some(w)) = (
                    runner.as_ref(),
                    runner.as_ref().and_then(|r| r.writes.clone()),
                ) {
                    let a = self.p.artifact(&w.artifact.value).cloned();
                    if let Some(a) = a {
                        let key = w
                            .field
                            .as_ref()
                            .map(|f| f.value.clone())
                            .or_else(|| a.fields.first().map(|f| f.key.value.clone()))
                            .unwrap_or_else(|| "result".into());
                        let body = producer::runner_artifact(
                            &key,
                            &verdict,
                            &r.name.value,
                            &row.argv,
                            row.exit.as_deref().unwrap_or(""),
                            Duration::from_millis(row.duration_ms.unwrap_or(0).max(0) as u64),
                            &row.tail,
                        );
                        let path = self.task_dir.join(&a.path.value);
                        let tmp = path.with_extension("orch-tmp");
                        let written = path
                            .parent()
                            .map_or(Ok(()), std::fs::create_dir_all)
                            .and_then(|_| std::fs::write(&tmp, body.as_bytes()))
                            .and_then(|_| std::fs::rename(&tmp, &path));
                        if let Err(e) = written {
                            // The gate will find no artifact and fail closed.
                            self.emit(Event::Note {
                                message: format!("cannot write artifact {}: {e}", path.display()),
                            });
                        }
                    }
                }
            }
            let sha = artifact_path.as_deref().and_then(file_sha256);
            self.profile.artifacts += t.elapsed();
            self.store.record_artifact(row.id, sha.as_deref())?;
            failpoint("after-artifact", &name);
            row.step = Step::Artifact;
        }
        if row.step == Step::Artifact {
            let g = self.p.gate(&stage.gate.value).cloned();
            let a = g
                .as_ref()
                .and_then(|g| self.p.artifact(&g.artifact.value))
                .cloned();
            let t = Instant::now();
            let verdict = match (g.as_ref(), a, artifact_path.as_deref()) {
                (Some(g), Some(a), Some(path)) => crate::gate::evaluate(g, &a, path),
                _ => orch_lang::gate::Verdict {
                    pass: false,
                    reason: "the gate or its artifact is not defined".into(),
                },
            };
            self.profile.gates += t.elapsed();
            self.store
                .record_gate(row.id, verdict.pass, &verdict.reason)?;
            failpoint("after-gate", &name);
            self.emit(Event::Gate {
                stage: name.clone(),
                gate: stage.gate.value.clone(),
                pass: verdict.pass,
                reason: verdict.reason.clone(),
            });
            row.gate_pass = Some(verdict.pass);
            row.gate_reason = Some(verdict.reason);
            row.step = Step::Gated;
        }
        // Gated: take the transition.
        let pass = row.gate_pass.unwrap_or(false);
        let reason = row.gate_reason.clone().unwrap_or_default();
        if pass {
            let Some(t) = &stage.pass else {
                self.fail_closed(
                    stage,
                    Some(row.id),
                    "the gate passed but the stage has no `pass`",
                )
                .await?;
                return Ok(Flow::Continue);
            };
            self.transition(&name, Some(row.id), "pass", &t.target.value, &reason, None)
                .await?;
            return Ok(Flow::Continue);
        }
        let fails = self.store.fail_count(self.run_id, &name)? as u32;
        match &stage.fail {
            Some(f) if f.budget.as_ref().is_none_or(|b| fails < b.value) => {
                let budget = f
                    .budget
                    .as_ref()
                    .map(|b| format!(" (rollback {} of {})", fails + 1, b.value))
                    .unwrap_or_default();
                self.transition(
                    &name,
                    Some(row.id),
                    "fail",
                    &f.target.value,
                    &format!("{reason}{budget}"),
                    None,
                )
                .await?;
            }
            Some(f) => {
                let budget = f.budget.as_ref().map(|b| b.value).unwrap_or(0);
                self.fail_closed(
                    stage,
                    Some(row.id),
                    &format!("{reason}; the fail budget ({budget}) is spent"),
                )
                .await?;
            }
            None => {
                self.fail_closed(
                    stage,
                    Some(row.id),
                    &format!("{reason}; the stage has no `fail` transition"),
                )
                .await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// The stage fails closed: `exhausted`, and its alert.
    async fn fail_closed(
        &mut self,
        stage: &Stage,
        attempt_id: Option<i64>,
        reason: &str,
    ) -> Result<(), RunError> {
        let (target, alert) = match &stage.exhausted {
            Some(t) => (
                t.target.value.clone(),
                t.alert.as_ref().map(|a| a.value.clone()),
            ),
            None => {
                // Validation requires `exhausted`; without one the task cannot go on.
                return Err(RunError::Usage(format!(
                    "stage `{}` failed closed ({reason}) and has no `exhausted` transition",
                    stage.name.value
                )));
            }
        };
        self.transition(
            &stage.name.value,
            attempt_id,
            "exhausted",
            &target,
            reason,
            alert.as_deref(),
        )
        .await
    }

    async fn transition(
        &mut self,
        from: &str,
        attempt_id: Option<i64>,
        kind: &str,
        to: &str,
        reason: &str,
        alert: Option<&str>,
    ) -> Result<(), RunError> {
        self.store
            .record_transition(self.run_id, attempt_id, from, kind, to, reason, alert)?;
        self.emit(Event::Transition {
            from: from.into(),
            kind: kind.into(),
            to: to.into(),
            reason: reason.into(),
        });
        if self.serial.as_ref().is_some_and(|(s, _)| s == from) && to != from {
            self.serial = None;
        }
        self.run_pending_alerts().await
    }

    /// Runs every queued alert once; an alert's failure is reported and does
    /// not change the task's outcome.
    async fn run_pending_alerts(&mut self) -> Result<(), RunError> {
        for row in self.store.pending_alerts(self.run_id)? {
            let Some(alert) = self.p.alert(&row.alert).cloned() else {
                self.store
                    .finish_alert(row.id, false, "alert not defined")?;
                continue;
            };
            // The alert's attempt is the last attempt of the stage that failed closed.
            let attempt = self.store.attempt_count(self.run_id, &row.stage)?;
            let ctx = self.context(&row.stage, attempt);
            let log = self
                .logs
                .join(format!("alert.{}.{}.log", row.stage, row.id));
            let (ok, exit) = match invocation::alert(&alert, &ctx, &self.pipeline_path) {
                Ok(invocation) => {
                    let spec = process::Spec { invocation, log };
                    let o = process::run(&spec, |_| {}, self.cancel.clone()).await;
                    (o.exit == Exit::Code(0), o.exit.describe())
                }
                Err(e) => (false, e),
            };
            self.store.finish_alert(row.id, ok, &exit)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names() {
        for ok in ["demo-1", "T_2.x", "a"] {
            assert!(check_task_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", "é"] {
            assert!(check_task_name(bad).is_err(), "{bad}");
        }
    }
}
