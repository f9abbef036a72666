//! The scheduler: takes queued tasks in submission order while fewer than
//! `--workers` hold a worker (a task waiting for a serial stage holds
//! none), runs each on the engine `orch run` uses, records how it ended in
//! the queue, and drains on a signal.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use orch_engine::{exit, Finished, RunError, RunOptions};
use orch_store::{QueueState, QueuedTask, RunStatus};

use crate::auth::Token;
use crate::board::{Board, Live};
use crate::config::{Config, Served};
use crate::events::TaskSink;
use crate::Store;

/// Everything the service's parts share.
pub(crate) struct App<S: Store> {
    pub(crate) store: Arc<S>,
    pub(crate) config: Config,
    /// The last valid pipeline; new tasks take it, runs in flight keep
    /// theirs.
    pub(crate) served: std::sync::RwLock<Arc<Served>>,
    /// The digest of the last invalid text seen, logged once.
    pub(crate) rejected: std::sync::Mutex<Option<[u8; 32]>>,
    pub(crate) board: Arc<Board>,
    pub(crate) token: Token,
    /// The tokens that name approval deciders (`--tokens-file`).
    pub(crate) deciders: crate::deciders::Deciders,
    pub(crate) started: Instant,
    /// Absolute.
    pub(crate) state_dir: PathBuf,
    /// Reads need the token too when the service listens beyond loopback.
    pub(crate) open_reads: bool,
    /// The address the service listens on: a read admitted without a token
    /// must name it, or a loopback host, in its `Host` header.
    pub(crate) listen: std::net::SocketAddr,
    /// Every task's engine events, for `GET /api/v1/events`.
    pub(crate) feed: crate::events::Feed,
    /// Set once the service has drained: event streams end.
    pub(crate) closing: watch::Sender<bool>,
}

impl<S: Store> App<S> {
    /// The pipeline new tasks run on.
    pub(crate) fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the pipeline file: a changed text that validates serves the
    /// next tasks; an invalid one is logged (once) and the last valid
    /// pipeline keeps serving. Runs in flight are not touched.
    pub(crate) fn refresh(&self) -> Arc<Served> {
        use sha2::Digest;
        let current = self.served();
        let Ok(text) = std::fs::read_to_string(&current.path) else {
            tracing::warn!(path = %current.path.display(), "cannot read the pipeline; the last valid one serves");
            return current;
        };
        let digest: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
        if digest == current.digest {
            return current;
        }
        let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        if *rejected == Some(digest) {
            return current;
        }
        match crate::config::check_pipeline(&current.path, text) {
            Ok(new) => {
                let new = Arc::new(new);
                *self.served.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
                *rejected = None;
                tracing::info!(path = %new.path.display(), "the pipeline changed and validates: new tasks run on it");
                new
            }
            Err(e) => {
                *rejected = Some(digest);
                tracing::warn!(path = %current.path.display(), error = %e, "the pipeline changed but is invalid; the last valid one keeps serving");
                current
            }
        }
    }
}

/// Takes tasks until the service drains: first the runs that were in flight
/// when it last stopped (`recovered`, resumed), then the queue.
pub(crate) async fn schedule<S: Store>(app: Arc<App<S>>, mut recovered: VecDeque<QueuedTask>) {
    loop {
        loop {
            {
                let b = app.board.lock();
                if b.draining {
                    return;
                }
                if b.busy() < app.config.workers {
                    break;
                }
            }
            app.board.wake.notified().await;
        }
        let entry = match recovered.pop_front() {
            Some(t) => t,
            None => match app.store.take_queued_for(&app.config.labels).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    // A submission wakes us; the timer is a safety net.
                    tokio::select! {
                        _ = app.board.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot take the next task from the queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        start(&app, entry);
    }
}

/// Puts the task on the board and runs it. A task taken while the service
/// began to drain stays `running` in the queue: the next start resumes it.
fn start<S: Store>(app: &Arc<App<S>>, entry: QueuedTask) {
    let task = entry.task.clone();
    let (tx, rx) = watch::channel(false);
    let for_good = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let mut b = app.board.lock();
        if b.draining {
            return;
        }
        // Cancelled between being taken and started: it still runs through
        // the engine (a resumed run's stale producers are terminated), which
        // stops at once.
        let cancel_requested = b.cancel_before_start.remove(&task);
        for_good.store(cancel_requested, std::sync::atomic::Ordering::SeqCst);
        if cancel_requested {
            let _ = tx.send(true);
        }
        b.running.insert(
            task.clone(),
            Live {
                stage: None,
                attempt: None,
                attempt_running: false,
                waiting: None,
                cancel: tx,
                cancel_requested,
                for_good: for_good.clone(),
            },
        );
    }
    tracing::info!(task, "task taken");
    let stop = orch_engine::Stop {
        signal: rx,
        for_good,
    };
    let inner = tokio::spawn(run_task(app.clone(), entry, stop));
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = inner.await {
            tracing::error!(task, error = %e, "the task's worker ended abnormally");
        }
        app.board.lock().running.remove(&task);
        app.board.wake();
    });
}

/// Runs a taken task to its end (or until it is cancelled or drained) and
/// records how it ended in the queue.
async fn run_task<S: Store>(app: Arc<App<S>>, entry: QueuedTask, stop: orch_engine::Stop) {
    let task = entry.task.clone();
    let result = match app.store.latest_run(&task).await {
        Ok(run) => {
            // A run exists: the task was in flight when the service stopped;
            // it continues exactly as `orch run --resume` would, with the
            // run's own variables and worktree.
            let resume = run.is_some();
            let served = app.refresh();
            // This host's place for the task (`--worktree`), resumed runs
            // included: a task taken over works where its taker puts it.
            let here = app.config.worktree.as_ref().map(|t| t.for_task(&task));
            if let Some(dir) = &here {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    let why = format!("cannot create the worktree {}: {e}", dir.display());
                    settle(&app, &task, Err(RunError::Usage(why))).await;
                    return;
                }
            }
            let opts = RunOptions {
                task: task.clone(),
                pipeline: served.path.clone(),
                worktree: match &here {
                    Some(dir) => Some(dir.clone()),
                    None => (!resume).then(|| PathBuf::from(&entry.worktree)),
                },
                vars: if resume {
                    Vec::new()
                } else {
                    entry.vars.clone().into_iter().collect()
                },
                state_dir: app.state_dir.clone(),
                resume,
                restart: false,
                allow_changed_pipeline: false,
                // Only the worktree may differ (vars are the run's own).
                allow_changed_vars: resume && here.is_some(),
                // A waiting task gives its worker back (see `Waiting`).
                wait: false,
                labels: Some(app.config.labels.clone()),
            };
            let sink = Box::new(TaskSink {
                task: task.clone(),
                board: app.board.clone(),
                feed: app.feed.clone(),
            });
            match orch_engine::prepare_text(opts, served.text.clone()) {
                Ok(prepared) => {
                    orch_engine::run_until(prepared, app.store.clone(), sink, stop).await
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(RunError::from(e)),
    };
    settle(&app, &task, result).await;
}

/// Records in the queue how a task's run ended.
async fn settle<S: Store>(app: &App<S>, task: &str, result: Result<Finished, RunError>) {
    let cancel_requested = app
        .board
        .lock()
        .running
        .get(task)
        .is_some_and(|l| l.cancel_requested);
    let recorded = match result {
        // Its next stage needs labels this service lacks: back to the
        // queue, for a service that has them.
        Ok(Finished {
            released: Some(r), ..
        }) if !cancel_requested => {
            tracing::info!(
                task,
                stage = r.stage,
                needs = r.needs.join(","),
                "released: the next stage needs labels this service lacks"
            );
            app.store
                .release_queued(task, &r.needs)
                .await
                .map(|released| {
                    if !released {
                        tracing::warn!(task, "the released task was no longer this service's");
                    }
                })
        }
        Ok(f) if f.exit_code == exit::INTERRUPTED && !cancel_requested => {
            tracing::info!(
                task,
                "interrupted; the next start of the service resumes it"
            );
            Ok(())
        }
        // A run that reached its end before the cancel took effect stays
        // finished.
        Ok(f) if f.exit_code == exit::INTERRUPTED => mark_cancelled(&*app.store, task, None).await,
        // Waiting for a person: the worker is free; the approval clock
        // queues the task again once it is decided or expired.
        Ok(f) if f.exit_code == exit::WAITING => {
            tracing::info!(task, "waiting for an approval decision");
            app.store
                .move_queued(task, QueueState::Running, QueueState::Waiting, None)
                .await
                .map(drop)
        }
        // Cancelled, and the run stopped on an error meanwhile: the cancel
        // is recorded, and the error kept where the queue shows it.
        Err(e) if cancel_requested => {
            tracing::warn!(task, error = %e, "task failed while being cancelled");
            mark_cancelled(&*app.store, task, Some(&e.to_string())).await
        }
        Ok(f) => {
            tracing::info!(task, exit_code = f.exit_code, "task finished");
            app.store
                .move_queued(task, QueueState::Running, QueueState::Finished, None)
                .await
                .map(drop)
        }
        Err(e) => {
            tracing::warn!(task, error = %e, "task failed");
            app.store
                .move_queued(
                    task,
                    QueueState::Running,
                    QueueState::Failed,
                    Some(&e.to_string()),
                )
                .await
                .map(drop)
        }
    };
    if let Err(e) = recorded {
        tracing::error!(task, error = %e, "cannot record how the task ended");
    }
}

/// How often the service looks at waiting tasks' approval requests and at
/// cancels asked for through other services.
const TICK: Duration = Duration::from_millis(250);

/// The service's clock. A waiting task whose request was decided (through
/// the API or `orch approve`) or has expired is queued again; the engine
/// then applies the decision, or fails the stage closed. A task this
/// service holds whose cancel was asked for through another service (a
/// shared store) is cancelled as if asked here.
pub(crate) async fn clock<S: Store>(app: Arc<App<S>>) {
    loop {
        if let Err(e) = requeue_decided(&app).await {
            tracing::error!(error = %e, "cannot look at the waiting tasks");
        }
        if let Err(e) = cancel_requested(&app).await {
            tracing::error!(error = %e, "cannot look at the cancel requests");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Cancels the tasks held here whose cancel another service recorded.
pub(crate) async fn cancel_requested<S: Store>(app: &App<S>) -> orch_store::Result<()> {
    for task in app.store.cancel_requests().await? {
        let mut b = app.board.lock();
        match b.running.get_mut(&task) {
            Some(live) if !live.cancel_requested => {
                live.cancel_for_good();
                tracing::info!(task, "cancelling, as asked through another service");
            }
            Some(_) => {}
            // Taken, not started yet: it stops as soon as it starts.
            None => {
                b.cancel_before_start.insert(task);
            }
        }
    }
    Ok(())
}

/// Queues again every waiting task whose latest request is no longer pending.
pub(crate) async fn requeue_decided<S: Store>(app: &App<S>) -> orch_store::Result<()> {
    let now = orch_store::now_ms();
    for t in app.store.queue(Some(QueueState::Waiting)).await? {
        let latest = app.store.approvals(Some(&t.task)).await?.pop();
        let pending = latest.as_ref().is_some_and(|a| {
            matches!(
                orch_engine::decide::approval_state(a, now),
                orch_engine::decide::ApprovalState::Pending { .. }
            )
        });
        if !pending
            && app
                .store
                .move_queued(&t.task, QueueState::Waiting, QueueState::Queued, None)
                .await?
        {
            tracing::info!(task = t.task, "approval decided or expired: queued again");
            app.board.wake();
        }
    }
    Ok(())
}

/// The task's run (if it has one) and its queue entry are cancelled;
/// `error`, when the run stopped on an error as the cancel came, is kept
/// with the queue entry.
async fn mark_cancelled<S: Store>(
    store: &S,
    task: &str,
    error: Option<&str>,
) -> orch_store::Result<()> {
    cancel_run(store, task).await?;
    store
        .move_queued(task, QueueState::Running, QueueState::Cancelled, error)
        .await?;
    tracing::info!(task, "task cancelled");
    Ok(())
}

/// Records the task's latest run cancelled, unless it is already over. A
/// cancelled run is never resumed, so the alerts it still had queued are
/// recorded as not sent (`cancelled`) rather than left pending for ever.
pub(crate) async fn cancel_run<S: Store>(store: &S, task: &str) -> orch_store::Result<()> {
    let Some(run) = store.latest_run(task).await? else {
        return Ok(());
    };
    if matches!(
        run.status,
        RunStatus::Finished | RunStatus::Cancelled | RunStatus::Abandoned
    ) {
        return Ok(());
    }
    store.set_run_status(run.id, RunStatus::Cancelled).await?;
    for alert in store.pending_alerts(run.id).await? {
        store.finish_alert(alert.id, false, "cancelled").await?;
        tracing::warn!(
            task,
            alert = alert.alert,
            stage = alert.stage,
            "alert not sent: the run was cancelled before it started"
        );
    }
    Ok(())
}

/// Stops taking tasks; lets running attempts finish within `timeout` (a task
/// stops at the step after its running attempt; one with no attempt running
/// stops now), then cancels the rest: producers are terminated with their
/// grace and the runs left interrupted, resumable. Returns when no task is
/// left.
pub(crate) async fn drain<S: Store>(app: &App<S>, timeout: Duration) {
    let left = {
        let mut b = app.board.lock();
        b.draining = true;
        for live in b.running.values() {
            if !live.attempt_running {
                let _ = live.cancel.send(true);
            }
        }
        b.running.len()
    };
    app.board.wake();
    tracing::info!(
        tasks = left,
        timeout_ms = timeout.as_millis() as u64,
        "draining"
    );
    let deadline = Instant::now() + timeout;
    while !app.board.lock().running.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let b = app.board.lock();
        if !b.running.is_empty() {
            tracing::warn!(
                tasks = b.running.len(),
                "drain timeout: cancelling the running attempts"
            );
        }
        for live in b.running.values() {
            let _ = live.cancel.send(true);
        }
    }
    // The engine terminates each producer within its grace.
    while !app.board.lock().running.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
