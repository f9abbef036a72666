//! The executor: turns the dispatcher's "start an attempt" into a process.
//! It chooses the producer, records the attempt, clears the stale artifact,
//! spawns and supervises the producer (through [`process`](crate::process)),
//! and records its exit; it also runs alerts and writes runner artifacts.

use std::time::{Duration, Instant};

use orch_lang::choice::{self, Kind};
use orch_lang::invocation::{self, Invocation};
use orch_lang::model::Stage;
use orch_store::{Alert, Attempt, ExitRecord, GroupRecord, NewAttempt, ProducerKind, RunStore};

use crate::dispatcher::Engine;
use crate::error::RunError;
use crate::events::Event;
use crate::failpoint::{self, Point};
use crate::process::{self, Exit};
use crate::{artifact, producer};

fn producer_kind(k: Kind) -> ProducerKind {
    match k {
        Kind::Runner => ProducerKind::Runner,
        Kind::Llm => ProducerKind::Llm,
    }
}

/// What the chosen producer is and the process it would be.
struct Planned {
    kind: Kind,
    name: String,
    reason: String,
    invocation: Result<Invocation, String>,
    call_site: String,
}

/// Chooses the producer for the stage now. `Err(reason)`: the stage cannot
/// run as configured and must fail closed.
fn plan<S: RunStore>(
    e: &Engine<S>,
    stage: &Stage,
    attempt_no: i64,
) -> Result<Result<Planned, String>, RunError> {
    let name = &stage.name.value;
    let Some(cs) = e.p.call_site(&stage.call_site.value) else {
        return Err(RunError::Usage(format!(
            "call-site `{}` is not defined",
            stage.call_site.value
        )));
    };
    let env = |k: &str| std::env::var(k).ok();
    let choice = match choice::choose(&e.p, cs, &e.repo, &env) {
        Ok(c) => c,
        Err(reason) => return Ok(Err(reason)),
    };
    let ctx = e.context(name, attempt_no);
    let invocation = invocation::of(choice.producer, &ctx, &e.pipeline_path);
    Ok(Ok(Planned {
        kind: choice.producer.kind(),
        name: choice.producer.name().to_string(),
        reason: choice.reason,
        invocation,
        call_site: cs.name.value.clone(),
    }))
}

/// Chooses the producer, records the attempt, runs it, records its exit.
/// `None` when the stage failed closed before anything ran, or when the
/// attempt was interrupted.
pub(crate) async fn start_attempt<S: RunStore>(
    e: &mut Engine<S>,
    stage: &Stage,
    attempt_no: i64,
    visit: i64,
    defers: i64,
) -> Result<Option<Attempt>, RunError> {
    let name = stage.name.value.clone();
    let planned = match plan(e, stage, attempt_no)? {
        Ok(p) => p,
        Err(reason) => {
            e.fail_closed(stage, None, &reason).await?;
            return Ok(None);
        }
    };
    let log = Log::of(e, format!("{name}.{attempt_no}.log"));
    let log_str = log.path.display().to_string();
    let mut invocation = planned.invocation;
    // The producer gets its real argv; the record and the events, the
    // argv with its secrets redacted.
    let argv = invocation
        .as_ref()
        .map(|s| e.redactor.redact_all(&s.argv))
        .unwrap_or_default();
    let kind = producer_kind(planned.kind);
    let id = e
        .store
        .insert_attempt(&NewAttempt {
            run_id: e.run_id,
            task: &e.task,
            stage: &name,
            attempt: attempt_no,
            visit,
            call_site: &planned.call_site,
            producer: kind,
            producer_name: &planned.name,
            argv: &argv,
            defers,
            log_path: &log_str,
        })
        .await?;
    // A stale artifact from an earlier visit must never pass this gate;
    // if it cannot be cleared the attempt cannot run (a tool-error).
    if let Some(rel) = e.artifact_of_stage(&name) {
        if let Err(reason) = artifact::clear(e.dir(), &rel) {
            invocation = Err(reason);
        }
    }
    e.emit(Event::AttemptStarted {
        stage: name.clone(),
        attempt: attempt_no,
        producer: kind.as_str().into(),
        name: planned.name.clone(),
        argv,
        reason: planned.reason,
    });
    failpoint::hit(Point::BeforeSpawn, &name);
    let spawned = Instant::now();
    let outcome = supervise(e, id, invocation, log).await?;
    e.profile.producers += spawned.elapsed();
    e.profile.attempts += 1;
    if outcome.exit == Exit::Interrupted {
        e.store.set_step(id, orch_store::Step::Interrupted).await?;
        return Ok(None);
    }
    let exited = Exited {
        id,
        stage: name,
        attempt: attempt_no,
        kind: planned.kind,
        producer: planned.name,
        defers,
        log: log_str,
    };
    record_exit(e, exited, &outcome).await
}

/// An attempt whose producer ended, before its exit is recorded.
struct Exited {
    id: i64,
    stage: String,
    attempt: i64,
    kind: Kind,
    producer: String,
    defers: i64,
    log: String,
}

/// Maps the exit to a verdict and records it (with any leaks and the tail
/// of the output); the attempt as recorded.
async fn record_exit<S: RunStore>(
    e: &mut Engine<S>,
    x: Exited,
    outcome: &process::Outcome,
) -> Result<Option<Attempt>, RunError> {
    let verdict = match x.kind {
        Kind::Runner => {
            let r =
                e.p.runner(&x.producer)
                    .ok_or_else(|| RunError::Usage("no runner".into()))?;
            producer::runner_verdict(r, &outcome.exit)
        }
        Kind::Llm => producer::llm_verdict(&outcome.exit),
    };
    let leaks: Vec<String> = outcome
        .leaks
        .iter()
        .map(|l| e.redactor.redact(&format!("pid {} `{}`", l.pid, l.command)))
        .collect();
    let exit_text = e.redactor.redact(&outcome.exit.describe());
    // Already redacted as it was read; a secret spread over a line break of
    // the tail's lossy decoding is redacted again here.
    let tail = e.redactor.redact_all(&outcome.tail);
    e.store
        .record_exit(
            x.id,
            &ExitRecord {
                exit_code: outcome.exit.code(),
                exit: &exit_text,
                verdict: &verdict,
                leaks: &leaks,
                duration: outcome.duration,
                tail: &tail,
            },
        )
        .await?;
    e.emit(Event::AttemptFinished {
        stage: x.stage.clone(),
        attempt: x.attempt,
        producer: producer_kind(x.kind).as_str().into(),
        name: x.producer,
        exit: exit_text,
        exit_code: outcome.exit.code(),
        verdict,
        duration_ms: outcome.duration.as_millis() as u64,
        defers: x.defers,
        leaked: leaks,
        log: x.log,
    });
    failpoint::hit(Point::AfterExit, &x.stage);
    Ok(e.store.attempt(x.id).await?)
}

/// An attempt's (or an alert's) log: `logs/NAME` in the task directory.
struct Log {
    /// Relative to the task directory.
    rel: String,
    /// As shown and recorded.
    path: std::path::PathBuf,
}

impl Log {
    fn of<S: RunStore>(e: &Engine<S>, name: String) -> Log {
        Log {
            path: e.logs.join(&name),
            rel: format!("logs/{name}"),
        }
    }

    /// Creates the log beneath the task directory, replacing whatever a
    /// producer left at its path, never through a link.
    fn create<S: RunStore>(&self, e: &Engine<S>) -> Result<std::fs::File, String> {
        e.dir()
            .create(&self.rel)
            .map_err(|err| format!("cannot create log {}: {err}", self.path.display()))
    }
}

/// Runs the producer's process, recording its group as soon as it exists.
async fn supervise<S: RunStore>(
    e: &Engine<S>,
    attempt_id: i64,
    invocation: Result<Invocation, String>,
    log: Log,
) -> Result<process::Outcome, RunError> {
    let invocation = match invocation {
        Ok(i) => i,
        Err(reason) => {
            let reason = e.redactor.redact(&reason);
            if let Ok(mut f) = log.create(e) {
                use std::io::Write;
                let _ = writeln!(f, "orch: could not build the command: {reason}");
            }
            return Ok(process::Outcome {
                exit: Exit::SpawnFailed(reason),
                duration: Duration::ZERO,
                tail: Vec::new(),
                leaks: Vec::new(),
            });
        }
    };
    let file = log.create(e);
    let spec = process::Spec {
        invocation,
        log: log.path,
        redactor: e.redactor.clone(),
    };
    let (group_tx, group_rx) = tokio::sync::oneshot::channel::<GroupRecord>();
    let store = e.store.clone();
    // The group is recorded while the producer runs: a crash from here on
    // leaves the record a resume needs to terminate it.
    let recorder = async move {
        match group_rx.await {
            Ok(group) => store.record_group(attempt_id, &group).await,
            Err(_) => Ok(()),
        }
    };
    let run = process::run_with_log(
        &spec,
        file,
        move |group| {
            let _ = group_tx.send(crate::groups::record_of(group));
        },
        e.cancel.clone(),
    );
    let (outcome, recorded) = tokio::join!(run, recorder);
    recorded?;
    Ok(outcome)
}

/// Writes a runner's artifact from its recorded exit; a message when it
/// could not be written.
pub(crate) fn write_runner_artifact<S: RunStore>(
    e: &Engine<S>,
    row: &Attempt,
    verdict: &str,
) -> Option<String> {
    let r = e.p.runner(&row.producer_name)?;
    let w = r.writes.as_ref()?;
    let a = e.p.artifact(&w.artifact.value)?;
    let key = w
        .field
        .as_ref()
        .map(|f| f.value.clone())
        .or_else(|| a.fields.first().map(|f| f.key.value.clone()))
        .unwrap_or_else(|| "result".into());
    let body = producer::runner_artifact(
        &key,
        verdict,
        &r.name.value,
        // Recorded redacted; redacted again for a run recorded before.
        &e.redactor.redact_all(&row.argv),
        &e.redactor.redact(row.exit.as_deref().unwrap_or("")),
        Duration::from_millis(row.duration_ms.unwrap_or(0).max(0) as u64),
        &e.redactor.redact_all(&row.tail),
    );
    artifact::write(e.dir(), &a.path.value, &body)
        .err()
        .map(|err| {
            format!(
                "cannot write artifact {}: {err}",
                e.dir().show(&a.path.value).display()
            )
        })
}

/// How a queued alert's run ended.
pub(crate) enum AlertEnd {
    /// It ran to its end: whether it succeeded, and how it ended.
    Ran { ok: bool, exit: String },
    /// `orch` was interrupted while it ran: it was not delivered, and stays
    /// pending for the resume.
    Interrupted,
    /// The pipeline no longer defines it.
    Undefined,
}

/// Runs a queued alert.
pub(crate) async fn run_alert<S: RunStore>(
    e: &Engine<S>,
    row: &Alert,
) -> Result<AlertEnd, RunError> {
    let Some(alert) = e.p.alert(&row.alert) else {
        return Ok(AlertEnd::Undefined);
    };
    // The alert's attempt is the last attempt of the stage that failed closed.
    let attempt = e.store.attempt_count(e.run_id, &row.stage).await?;
    let ctx = e.context(&row.stage, attempt);
    let log = Log::of(e, format!("alert.{}.{}.log", row.stage, row.id));
    Ok(match invocation::alert(alert, &ctx, &e.pipeline_path) {
        Ok(invocation) => {
            let file = log.create(e);
            let spec = process::Spec {
                invocation,
                log: log.path,
                redactor: e.redactor.clone(),
            };
            // An interruption cuts the alert off (the resume sends it); a
            // cancel does not: the alert runs to its end or its own timeout.
            let (tx, interrupt) = tokio::sync::watch::channel(false);
            let mut stop = e.cancel.clone();
            let for_good = e.cancel_for_good.clone();
            let forward = tokio::spawn(async move {
                if stop.wait_for(|c| *c).await.is_ok()
                    && !for_good.load(std::sync::atomic::Ordering::SeqCst)
                {
                    let _ = tx.send(true);
                    // Held until the alert ends: a dropped sender reads as
                    // "nobody can interrupt any more".
                    std::future::pending::<()>().await;
                }
            });
            let o = process::run_with_log(&spec, file, |_| {}, interrupt).await;
            forward.abort();
            match o.exit {
                Exit::Interrupted => AlertEnd::Interrupted,
                exit => AlertEnd::Ran {
                    ok: exit == Exit::Code(0),
                    exit: e.redactor.redact(&exit.describe()),
                },
            }
        }
        Err(exit) => AlertEnd::Ran {
            ok: false,
            exit: e.redactor.redact(&exit),
        },
    })
}
