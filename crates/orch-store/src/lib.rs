//! orch's run store: every step the engine takes is recorded here before the
//! next is taken, so a run can be resumed from the records alone.
//!
//! [`RunStore`] is the interface the engine, history and status go through,
//! in domain records ([`Run`], [`Attempt`], ...); [`SqliteStore`] is the embedded
//! implementation. Behaviour tests are written against the trait.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod any;
mod error;
pub mod lock;
pub mod postgres;
mod records;
mod sqlite;
mod time;

use std::future::Future;
use std::time::Duration;

pub use any::{AnyGuard, AnyStore, StoreLocation};
pub use error::{Result, StoreError};
pub use postgres::{PgOptions, PostgresStore};
pub use records::*;
pub use sqlite::SqliteStore;
pub use time::{now_ms, rfc3339};

/// The largest artifact a store keeps the bytes of (1 MiB): artifacts are
/// reports of a few kilobytes; a larger one is recorded by its digest
/// alone, as on a store that keeps none.
pub const MAX_KEPT_ARTIFACT_BYTES: usize = 1024 * 1024;

/// What a lock is for: one live run per task, one task at a time in a
/// serial stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    Task(String),
    Stage(String),
}

/// The store interface. Every write is durable when it returns: the engine
/// acts on a step only after recording it. Methods are async so that a
/// networked store can implement them on tokio; an embedded one simply
/// does its work inside.
pub trait RunStore: Send + Sync + 'static {
    /// Held for as long as it lives; dropping it releases the lock, and a
    /// holder that dies loses it.
    type Guard: Send + 'static;

    // Runs.
    fn latest_run(&self, task: &str) -> impl Future<Output = Result<Option<Run>>> + Send;
    /// Every run, or a task's runs, oldest first.
    fn runs(&self, task: Option<&str>) -> impl Future<Output = Result<Vec<Run>>> + Send;
    fn create_run(&self, run: &NewRun<'_>) -> impl Future<Output = Result<i64>> + Send;
    fn set_run_status(
        &self,
        run_id: i64,
        status: RunStatus,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Changes the variables and worktree of an unfinished run (a resume
    /// that was allowed to change them).
    fn set_run_bindings(
        &self,
        run_id: i64,
        vars: &std::collections::BTreeMap<String, String>,
        worktree: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The run's logs moved from directory `from` to `to` (its task
    /// directory was archived): every log path recorded under `from` now
    /// names the file under `to`.
    fn relocate_logs(
        &self,
        run_id: i64,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn add_run_note(&self, run_id: i64, text: &str) -> impl Future<Output = Result<()>> + Send;
    fn run_notes(&self, run_id: i64) -> impl Future<Output = Result<Vec<RunNote>>> + Send;
    fn finish_run(
        &self,
        run_id: i64,
        outcome: Outcome,
        end: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    // Attempts and their steps.
    fn attempts(&self, run_id: i64) -> impl Future<Output = Result<Vec<Attempt>>> + Send;
    fn last_attempt(&self, run_id: i64) -> impl Future<Output = Result<Option<Attempt>>> + Send;
    fn attempt(&self, id: i64) -> impl Future<Output = Result<Option<Attempt>>> + Send;
    /// The last attempt of every run that has one, in one go (the
    /// dashboard's queue page shows each task's). The default asks run by
    /// run; a store can answer in one query.
    fn last_attempts(&self) -> impl Future<Output = Result<Vec<Attempt>>> + Send {
        async move {
            let mut out = Vec::new();
            for run in self.runs(None).await? {
                out.extend(self.last_attempt(run.id).await?);
            }
            Ok(out)
        }
    }
    /// Attempts of a stage in a run (attempt numbers run 1..=count).
    fn attempt_count(&self, run_id: i64, stage: &str) -> impl Future<Output = Result<i64>> + Send;
    fn insert_attempt(&self, a: &NewAttempt<'_>) -> impl Future<Output = Result<i64>> + Send;
    fn record_group(
        &self,
        attempt_id: i64,
        group: &GroupRecord,
    ) -> impl Future<Output = Result<()>> + Send;
    fn record_exit(
        &self,
        attempt_id: i64,
        exit: &ExitRecord<'_>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn record_artifact(
        &self,
        attempt_id: i64,
        sha256: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Records the digest of an attempt's artifact with its bytes, on a
    /// store that keeps artifacts ([`RunStore::keeps_artifacts`]): one write
    /// under the same fence as the other steps, the same on a retry. A
    /// store that does not keeps the digest alone (the default: SQLite,
    /// whose task directories are on its own host).
    fn record_artifact_content(
        &self,
        attempt_id: i64,
        sha256: &str,
        content: &[u8],
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = content;
        self.record_artifact(attempt_id, Some(sha256))
    }
    /// Whether the store keeps the bytes of artifacts, so that a service on
    /// another host can restore them ([`RunStore::artifact_content`]).
    fn keeps_artifacts(&self) -> bool {
        false
    }
    /// The artifact an attempt recorded with
    /// [`RunStore::record_artifact_content`], if the store kept it.
    fn artifact_content(
        &self,
        attempt_id: i64,
    ) -> impl Future<Output = Result<Option<StoredArtifact>>> + Send {
        let _ = attempt_id;
        async { Ok(None) }
    }
    fn record_gate(
        &self,
        attempt_id: i64,
        pass: bool,
        reason: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn set_step(&self, attempt_id: i64, step: Step) -> impl Future<Output = Result<()>> + Send;

    // Transitions and alerts.
    /// Records a transition, closes its attempt and queues its alert, all or
    /// nothing; returns the alert's id.
    fn record_transition(
        &self,
        t: &NewTransition<'_>,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    fn transitions(&self, run_id: i64) -> impl Future<Output = Result<Vec<Transition>>> + Send;
    fn position(&self, run_id: i64) -> impl Future<Output = Result<Position>> + Send;
    /// Rollbacks (`fail` transitions) a stage took in a run.
    fn fail_count(&self, run_id: i64, stage: &str) -> impl Future<Output = Result<i64>> + Send;
    fn pending_alerts(&self, run_id: i64) -> impl Future<Output = Result<Vec<Alert>>> + Send;
    /// Every alert the run queued, in order, whatever became of it.
    fn alerts(&self, run_id: i64) -> impl Future<Output = Result<Vec<Alert>>> + Send;
    fn finish_alert(
        &self,
        alert_id: i64,
        ok: bool,
        exit: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    // Reports.
    /// Every finished LLM attempt of the runs of the pipeline named
    /// `pipeline`: (call-site, duration in ms, the run's pipeline digest).
    fn llm_attempts(&self, pipeline: &str) -> impl Future<Output = Result<Vec<LlmAttempt>>> + Send;

    // Locks.
    /// Takes the lock, or says who holds it.
    fn try_lock(
        &self,
        key: &LockKey,
        holder: &str,
    ) -> impl Future<Output = Result<std::result::Result<Self::Guard, String>>> + Send;
    /// Who holds the lock, without taking it.
    fn lock_holder(&self, key: &LockKey) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Every serial stage's lock ever taken, by stage name, with its holder
    /// now (`None`: free).
    fn stage_locks(&self) -> impl Future<Output = Result<Vec<(String, Option<String>)>>> + Send;

    // The service's queue. Every write is committed when it returns.
    /// Enqueues a task; `None` (nothing written) when a task of that name is
    /// queued already or has runs. Returns its id (submission order).
    fn enqueue(&self, t: &NewQueuedTask<'_>) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// The queue's tasks in submission order; only those in `state` if given.
    fn queue(
        &self,
        state: Option<QueueState>,
    ) -> impl Future<Output = Result<Vec<QueuedTask>>> + Send;
    fn queued_task(&self, task: &str) -> impl Future<Output = Result<Option<QueuedTask>>> + Send;
    /// Takes the oldest queued task a service with no labels may run.
    fn take_queued(&self) -> impl Future<Output = Result<Option<QueuedTask>>> + Send {
        self.take_queued_for(&[])
    }
    /// Takes the oldest queued task whose `needs` are all among `labels`
    /// (the taking service's): marks it `running`, clears its `needs` and
    /// returns it.
    fn take_queued_for(
        &self,
        labels: &[String],
    ) -> impl Future<Output = Result<Option<QueuedTask>>> + Send;
    /// Gives a `running` task back to the queue at a stage boundary its
    /// service may not cross: `queued` again, needing `needs`. False
    /// (nothing written) when it was not running (under this service).
    fn release_queued(
        &self,
        task: &str,
        needs: &[String],
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Moves a task from state `from` to `to` (with `error` for `failed`);
    /// false (nothing written) when it was not in `from`.
    fn move_queued(
        &self,
        task: &str,
        from: QueueState,
        to: QueueState,
        error: Option<&str>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Asks the service holding a `running` task to cancel it: for a store
    /// shared by services, where the holder may be another process. False
    /// (nothing written) when the task is not running, and on a store of
    /// one host, whose one service cancels its tasks itself.
    fn request_cancel(&self, task: &str) -> impl Future<Output = Result<bool>> + Send {
        let _ = task;
        async { Ok(false) }
    }
    /// The tasks this service holds whose cancel another service asked
    /// for with [`RunStore::request_cancel`].
    fn cancel_requests(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The tasks a service resumes first when it starts: on a store of one
    /// host, every task left `running` (they were this host's). A shared
    /// store returns none: a dead service's tasks are claimed through
    /// `take_queued` once its lease has expired.
    fn recoverable(&self) -> impl Future<Output = Result<Vec<QueuedTask>>> + Send {
        self.queue(Some(QueueState::Running))
    }

    /// The services sharing the store, with their leases (none on a store
    /// of one host).
    fn services(&self) -> impl Future<Output = Result<Vec<ServiceRecord>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Whether the store can take writes now: a networked store says no
    /// while its database is unreachable or after its lease was lost
    /// (`/health` reports not-ready).
    fn healthy(&self) -> bool {
        true
    }

    // Approvals: a person's decision.
    /// Records the request of an approval attempt; a second call for the
    /// same attempt writes nothing and returns the first request's id (a
    /// resumed run asks again). Returns the request's id.
    fn request_approval(
        &self,
        r: &NewApprovalRequest<'_>,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// Every request (with its decision) of a task, or of every task, oldest
    /// first.
    fn approvals(&self, task: Option<&str>) -> impl Future<Output = Result<Vec<Approval>>> + Send;
    /// The request of an approval attempt, with its decision.
    fn approval_of_attempt(
        &self,
        attempt_id: i64,
    ) -> impl Future<Output = Result<Option<Approval>>> + Send;
    /// Records a decision, all or nothing and committed when it returns: at
    /// most one per request (a second is refused with the first), none at
    /// or after the request's expiry (`d.at_ms >= expires_ms`). Whether the
    /// decider may decide is the caller's to check first.
    fn decide_approval(
        &self,
        request_id: i64,
        d: &NewDecision<'_>,
    ) -> impl Future<Output = Result<DecisionOutcome>> + Send;

    /// Time spent in store calls so far (`ORCH_PROFILE`).
    fn spent(&self) -> Duration {
        Duration::ZERO
    }
}
