//! Setting a run up: the task name, the pipeline checked and bound to its
//! variables and worktree ([`prepare`]), then, with a store, the decision
//! to start, resume, restart or report a finished run ([`run`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use orch_lang::analysis;
use orch_lang::diagnostic::did_you_mean;
use orch_lang::model::{Header, Pipeline};
use orch_lang::validate::Options;
use orch_store::lock::{holder_line, hostname};
use orch_store::{LockKey, NewRun, Outcome, Run, RunStatus, RunStore, Step};

use crate::artifact::sha256_hex;
use crate::dispatcher::{Engine, Finished};
use crate::error::{exit, io_err, RunError};
use crate::events::{Event, Sink};
use crate::groups::{self, Cleanup};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub task: String,
    pub pipeline: PathBuf,
    /// `None`: the current directory for a new run, the run's own on resume.
    pub worktree: Option<PathBuf>,
    /// `--var` overrides, as given.
    pub vars: Vec<(String, String)>,
    /// Where task directories (artifacts, logs) and archives live.
    pub state_dir: PathBuf,
    pub resume: bool,
    pub restart: bool,
    pub allow_changed_pipeline: bool,
    /// Resume with other `--var` values or another `--worktree` than the
    /// run began with.
    pub allow_changed_vars: bool,
    /// At an approval stage, wait for the decision (or the expiry) instead
    /// of stopping with [`exit::WAITING`](crate::exit::WAITING).
    pub wait: bool,
    /// The labels this process holds (`orch serve --labels`): a stage whose
    /// runner or transport needs one it lacks is not started, and the run
    /// stops at that stage's boundary, [released](crate::Released).
    /// `None` (`orch run`): every stage runs here.
    pub labels: Option<Vec<String>>,
}

/// The digest a run records of its pipeline file's text.
pub fn pipeline_digest(text: &str) -> String {
    sha256_hex(text.as_bytes())
}

/// A task name: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_task_name(task: &str) -> Result<(), RunError> {
    let ok = !task.is_empty()
        && !task.starts_with(['.', '-'])
        && task
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RunError::Usage(format!(
            "invalid task name {task:?}: use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
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

/// A task ready to run: its pipeline valid and bound, its state directory
/// created. Nothing is written before the pipeline is known to be valid.
pub struct Prepared {
    pub(crate) opts: RunOptions,
    pub(crate) pipeline: Pipeline,
    pub(crate) text: String,
    /// As given, for messages.
    pub(crate) pipeline_shown: String,
    /// Absolute, for producers (`ORCH_PIPELINE`) and the record.
    pub(crate) pipeline_path: PathBuf,
    pub(crate) bindings: Bindings,
    /// Absolute.
    pub(crate) state_dir: PathBuf,
}

impl Prepared {
    /// The state directory, absolute: where the caller opens its store.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn task(&self) -> &str {
        &self.opts.task
    }
}

/// Checks and binds everything a run needs before anything is recorded.
pub fn prepare(opts: RunOptions) -> Result<Prepared, RunError> {
    check_task_name(&opts.task)?;
    let text = std::fs::read_to_string(&opts.pipeline).map_err(|e| {
        RunError::Usage(format!(
            "cannot read pipeline {}: {e}{}",
            opts.pipeline.display(),
            nearby_pipelines(&opts.pipeline)
        ))
    })?;
    prepare_text(opts, text)
}

/// As [`prepare`], with the pipeline's text given (read earlier from
/// `opts.pipeline`, which still names it): `orch serve` runs new tasks on
/// the last valid text of a file that may have changed since.
pub fn prepare_text(opts: RunOptions, text: String) -> Result<Prepared, RunError> {
    check_task_name(&opts.task)?;
    let pipeline_shown = opts.pipeline.display().to_string();
    let checked = analysis::analyze_text(&pipeline_shown, &text, &Options { offline: true });
    if checked.has_errors() {
        return Err(RunError::Invalid(Box::new(checked.report)));
    }
    let pipeline = checked.pipeline;
    let header = pipeline
        .header
        .as_ref()
        .ok_or_else(|| RunError::Usage("the pipeline has no header".into()))?;
    let worktree = opts.worktree.as_deref().unwrap_or(Path::new("."));
    let bindings = bind(header, &opts.vars, worktree)?;
    let pipeline_path = std::fs::canonicalize(&opts.pipeline).unwrap_or(opts.pipeline.clone());
    std::fs::create_dir_all(&opts.state_dir).map_err(io_err(format!(
        "cannot create state dir {}",
        opts.state_dir.display()
    )))?;
    let state_dir = std::fs::canonicalize(&opts.state_dir).map_err(io_err("state dir"))?;
    Ok(Prepared {
        opts,
        pipeline,
        text,
        pipeline_shown,
        pipeline_path,
        bindings,
        state_dir,
    })
}

/// How a caller stops a run: `signal` turning true stops it. `for_good`,
/// set before `signal` turns, says the stop is a cancel: the run is over,
/// never resumed. Otherwise it is an interruption (a signal, a service
/// draining), and the run is left resumable.
#[derive(Clone)]
pub struct Stop {
    pub signal: watch::Receiver<bool>,
    pub for_good: Arc<std::sync::atomic::AtomicBool>,
}

/// Runs (or resumes) a prepared task on `store`. `cancel` turning true
/// interrupts the run (the caller decides when: a signal, a service
/// draining); events go to `sink`. Errors come back for the caller to print.
pub async fn run<S: RunStore>(
    prepared: Prepared,
    store: Arc<S>,
    sink: Box<dyn Sink>,
    cancel: watch::Receiver<bool>,
) -> Result<Finished, RunError> {
    let stop = Stop {
        signal: cancel,
        for_good: Arc::default(),
    };
    run_until(prepared, store, sink, stop).await
}

/// As [`run`], stopped by `stop`: an interruption leaves the run resumable
/// (as `run`'s cancel does); a cancel ([`Stop::for_good`]) does not cut
/// off an alert that has started, and a run that reached its end before
/// the cancel took effect finishes there.
pub async fn run_until<S: RunStore>(
    prepared: Prepared,
    store: Arc<S>,
    mut sink: Box<dyn Sink>,
    stop: Stop,
) -> Result<Finished, RunError> {
    let cancel = stop.signal;
    let task = prepared.opts.task.clone();
    let task_lock = match store
        .try_lock(&LockKey::Task(task.clone()), &holder_line())
        .await?
    {
        Ok(l) => l,
        Err(holder) => {
            return Err(RunError::Busy(format!(
                "task {task} is already running ({holder})"
            )))
        }
    };
    let mut prepared = prepared;
    let mut notes = Vec::new();
    let begun = match begin(&mut prepared, &*store, &mut notes).await? {
        Begin::Run(id, resumed, started_ms) => (id, resumed, started_ms),
        Begin::AlreadyFinished(run) => {
            let outcome = run.outcome;
            let changed = (run.pipeline_hash != sha256_hex(prepared.text.as_bytes())).then(|| {
                orch_lang::changes::pipeline_changes(&run.pipeline_text, &prepared.text).join(", ")
            });
            sink.event(&Event::AlreadyFinished {
                task,
                run_id: run.id,
                outcome: match run.status {
                    RunStatus::Cancelled => RunStatus::Cancelled.as_str(),
                    _ => outcome.map(|o| o.as_str()).unwrap_or_default(),
                }
                .into(),
                end: run.end_name.unwrap_or_default(),
                pipeline_changed: changed,
            });
            return Ok(Finished {
                exit_code: if outcome == Some(Outcome::Success) {
                    exit::SUCCESS
                } else {
                    exit::FAILURE
                },
                released: None,
            });
        }
    };
    let (run_id, resumed, started_ms) = begun;
    let mut engine = Engine::new(prepared, store, run_id, started_ms, sink, cancel)?;
    engine.cancel_for_good = stop.for_good;
    engine.started(resumed, notes);
    let result = engine.drive(resumed).await;
    drop(task_lock);
    result
}

enum Begin {
    /// The run to drive, whether it is resumed, and when it began.
    Run(i64, bool, i64),
    AlreadyFinished(Box<Run>),
}

/// Starts a new run, resumes the unfinished one, or finds the task done.
async fn begin<S: RunStore>(
    prepared: &mut Prepared,
    store: &S,
    notes: &mut Vec<String>,
) -> Result<Begin, RunError> {
    let opts = &prepared.opts;
    let hash = sha256_hex(prepared.text.as_bytes());
    match store.latest_run(&opts.task).await? {
        // A cancelled run is over too: a person stopped it, and only
        // `--restart` overrides that.
        Some(run)
            if matches!(run.status, RunStatus::Finished | RunStatus::Cancelled)
                && !opts.restart =>
        {
            Ok(Begin::AlreadyFinished(Box::new(run)))
        }
        Some(run) if run.status != RunStatus::Abandoned && !opts.restart => {
            resume(prepared, store, &run, &hash, notes).await?;
            rebind(prepared, store, &run, notes).await?;
            Ok(Begin::Run(run.id, true, run.started_ms))
        }
        None if opts.resume => Err(RunError::Usage(format!(
            "task {} has no run to resume in {}",
            opts.task,
            prepared.state_dir.display()
        ))),
        previous => {
            if let Some(run) = previous {
                abandon(prepared, store, &run, notes).await?;
            }
            let vars = recorded_vars(prepared, &prepared.bindings.vars);
            let name = prepared
                .pipeline
                .header
                .as_ref()
                .map(|h| h.name.value.clone())
                .unwrap_or_default();
            let started_ms = orch_store::now_ms();
            let id = store
                .create_run(&NewRun {
                    task: &opts.task,
                    pipeline_path: &prepared.pipeline_path.display().to_string(),
                    pipeline_name: &name,
                    pipeline_hash: &hash,
                    pipeline_text: &prepared.text,
                    vars: &vars,
                    worktree: &prepared.bindings.worktree.display().to_string(),
                    host: &hostname(),
                })
                .await?;
            Ok(Begin::Run(id, false, started_ms))
        }
    }
}

/// Checks that an unfinished run may be resumed, and marks it running.
async fn resume<S: RunStore>(
    prepared: &Prepared,
    store: &S,
    run: &Run,
    hash: &str,
    notes: &mut Vec<String>,
) -> Result<(), RunError> {
    let opts = &prepared.opts;
    if !opts.resume {
        return Err(RunError::Usage(format!(
            "task {} has an unfinished run (#{}, {}): use --resume to continue it or --restart to start over",
            opts.task, run.id, run.status
        )));
    }
    if run.pipeline_hash != hash {
        let changes =
            orch_lang::changes::pipeline_changes(&run.pipeline_text, &prepared.text).join(", ");
        if !opts.allow_changed_pipeline {
            return Err(RunError::Usage(format!(
                "the pipeline changed since run #{} began ({changes}); refusing to resume (use --allow-changed-pipeline to resume anyway)",
                run.id
            )));
        }
        let note = format!("resuming with a changed pipeline: {changes}");
        store.add_run_note(run.id, &note).await?;
        notes.push(note);
    }
    store.set_run_status(run.id, RunStatus::Running).await?;
    Ok(())
}

/// A resumed run runs with the variables and worktree it began with; a
/// `--var` or `--worktree` that differs is refused, or, with
/// `--allow-changed-vars`, taken and recorded in the run.
async fn rebind<S: RunStore>(
    prepared: &mut Prepared,
    store: &S,
    run: &Run,
    notes: &mut Vec<String>,
) -> Result<(), RunError> {
    let opts = &prepared.opts;
    let mut vars = run.vars.clone();
    let mut changes = Vec::new();
    // A secret variable is recorded redacted: it takes the value given now
    // (or its default), which cannot be compared with the run's.
    let secret = secret_vars(prepared);
    for k in &secret {
        if let Some(v) = prepared.bindings.vars.get(k) {
            vars.insert(k.clone(), v.clone());
        }
    }
    let redactor = crate::redact::Redactor::for_run(
        prepared.pipeline.header.as_ref(),
        &prepared.bindings.vars,
        crate::redact::env_vars(),
    );
    changes.extend(override_vars(
        &opts.vars, run, &secret, &redactor, &mut vars,
    ));
    let recorded = PathBuf::from(&run.worktree);
    let worktree = match &opts.worktree {
        Some(_) if prepared.bindings.worktree != recorded => {
            changes.push(format!(
                "--worktree {} (the run has {})",
                prepared.bindings.worktree.display(),
                recorded.display()
            ));
            prepared.bindings.worktree.clone()
        }
        _ => recorded,
    };
    if !changes.is_empty() {
        let changes = redactor.redact(&changes.join(", "));
        if !opts.allow_changed_vars {
            return Err(RunError::Usage(format!(
                "run #{} began with other variables or another worktree: {changes}; resume without them to use the run's own, or pass --allow-changed-vars to change them",
                run.id
            )));
        }
        let note = format!("resumed with changed variables or worktree: {changes}");
        let recorded = recorded_vars(prepared, &vars.clone().into_iter().collect());
        store
            .set_run_bindings(run.id, &recorded, &worktree.display().to_string())
            .await?;
        store.add_run_note(run.id, &note).await?;
        notes.push(note);
    }
    if !worktree.is_dir() {
        return Err(RunError::Usage(format!(
            "the run's worktree {} is not a directory",
            worktree.display()
        )));
    }
    let repo = vars.get("repo").cloned().unwrap_or_else(|| {
        worktree
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    prepared.bindings = Bindings {
        vars: vars.into_iter().collect(),
        worktree,
        repo,
    };
    Ok(())
}

/// Applies the `--var`s given on resume to the run's variables; what each
/// changes, said for the refusal or the run's note (secrets are skipped:
/// they take the value given now).
fn override_vars(
    given: &[(String, String)],
    run: &Run,
    secret: &HashSet<String>,
    redactor: &crate::redact::Redactor,
    vars: &mut std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut changes = Vec::new();
    for (k, v) in given {
        if secret.contains(k) {
            continue;
        }
        match run.vars.get(k) {
            Some(old) if old == v => {}
            // Recorded with an environment secret redacted: the same value.
            Some(old) if *old == redactor.redact(v) => {}
            Some(old) => changes.push(format!("--var {k}={v} (the run has {k}={old})")),
            None => changes.push(format!("--var {k}={v} (the run has no {k})")),
        }
        vars.insert(k.clone(), v.clone());
    }
    changes
}

/// The pipeline variables marked `secret`.
fn secret_vars(prepared: &Prepared) -> HashSet<String> {
    prepared
        .pipeline
        .header
        .as_ref()
        .map(crate::redact::secret_vars)
        .unwrap_or_default()
}

/// The variables as recorded in the run: a secret one's value redacted,
/// and every value with the run's secrets redacted.
fn recorded_vars(prepared: &Prepared, vars: &HashMap<String, String>) -> BTreeMap<String, String> {
    let secret = secret_vars(prepared);
    let redactor = crate::redact::Redactor::for_run(
        prepared.pipeline.header.as_ref(),
        vars,
        crate::redact::env_vars(),
    );
    vars.iter()
        .map(|(k, v)| {
            let v = if secret.contains(k) {
                crate::redact::MASK.to_string()
            } else {
                redactor.redact(v)
            };
            (k.clone(), v)
        })
        .collect()
}

/// Gives up an unfinished run for a new one (`--restart`): nothing of it
/// may keep running into the new run, and its task directory is archived.
async fn abandon<S: RunStore>(
    prepared: &Prepared,
    store: &S,
    run: &Run,
    notes: &mut Vec<String>,
) -> Result<(), RunError> {
    let task = &prepared.opts.task;
    if run.status != RunStatus::Finished {
        for a in store.attempts(run.id).await? {
            if !matches!(a.step, Step::Started | Step::Interrupted) {
                continue;
            }
            if let Some(group) = &a.group {
                match groups::terminate_recorded(group, Duration::from_secs(5)).await {
                    Cleanup::Terminated => notes.push(format!(
                        "terminated the producer group {} left running by run #{}",
                        group.pgid, run.id
                    )),
                    Cleanup::Gone => {}
                    Cleanup::LeftAlone(reason) => notes.push(format!(
                        "left process group {} of run #{} alone: {reason}",
                        group.pgid, run.id
                    )),
                    Cleanup::Survived(reason) => notes.push(format!(
                        "could not terminate the producer group {} left running by run #{}: {reason}",
                        group.pgid, run.id
                    )),
                }
            }
        }
        // A run already over keeps how it ended: a cancelled run stays
        // cancelled (only a run left unfinished is given up).
        if !matches!(run.status, RunStatus::Cancelled | RunStatus::Abandoned) {
            store.set_run_status(run.id, RunStatus::Abandoned).await?;
        }
    }
    let task_dir = prepared.state_dir.join("tasks").join(task);
    if task_dir.exists() {
        let archive = prepared
            .state_dir
            .join("archive")
            .join(task)
            .join(format!("run-{}", run.id));
        if let Some(parent) = archive.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("cannot create archive dir"))?;
        }
        std::fs::rename(&task_dir, &archive)
            .map_err(io_err(format!("cannot archive {}", task_dir.display())))?;
        // The run's account must keep pointing at its logs.
        store
            .relocate_logs(
                run.id,
                &task_dir.display().to_string(),
                &archive.display().to_string(),
            )
            .await?;
    }
    Ok(())
}
