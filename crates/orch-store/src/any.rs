//! The store a command chose (`--store`, `ORCH_STORE`, else the state
//! directory's SQLite database), behind one type: [`RunStore`] is not
//! object-safe (its methods return `impl Future`), so the binary holds an
//! enum that delegates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lock::Lock;
use crate::postgres::{PgGuard, PgOptions, PostgresStore};
use crate::records::*;
use crate::{LockKey, Result, RunStore, SqliteStore};

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `STATE/orch.db` (no `--store`).
    StateDir(PathBuf),
    /// An SQLite database file (`--store PATH` or `sqlite://PATH`).
    SqliteFile(PathBuf),
    /// A PostgreSQL URL (`postgres://…` or `postgresql://…`).
    Postgres(String),
}

impl StoreLocation {
    /// `--store` (or `ORCH_STORE`) as given; `None`: the state directory's.
    pub fn choose(given: Option<&str>, state_dir: &Path) -> StoreLocation {
        match given.map(str::trim).filter(|s| !s.is_empty()) {
            None => StoreLocation::StateDir(state_dir.to_path_buf()),
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                StoreLocation::Postgres(s.to_string())
            }
            Some(s) => {
                StoreLocation::SqliteFile(PathBuf::from(s.strip_prefix("sqlite://").unwrap_or(s)))
            }
        }
    }
}

pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// The lock of either store.
pub enum AnyGuard {
    Sqlite(Lock),
    Postgres(PgGuard),
}

impl AnyStore {
    /// Opens (creating or migrating) the store; a PostgreSQL one registers
    /// this process with a lease (`opts`). Needs a tokio runtime.
    pub async fn open(at: &StoreLocation, opts: PgOptions) -> Result<AnyStore> {
        Ok(match at {
            StoreLocation::StateDir(d) => AnyStore::Sqlite(SqliteStore::open_dir(d)?),
            StoreLocation::SqliteFile(p) => AnyStore::Sqlite(SqliteStore::open(p)?),
            StoreLocation::Postgres(url) => {
                AnyStore::Postgres(PostgresStore::open(url, opts).await?)
            }
        })
    }

    /// The store for reading; `None` when nothing was ever recorded there.
    pub async fn open_existing(at: &StoreLocation) -> Result<Option<AnyStore>> {
        Ok(match at {
            StoreLocation::StateDir(d) => SqliteStore::open_existing(d)?.map(AnyStore::Sqlite),
            StoreLocation::SqliteFile(p) => {
                if std::fs::metadata(p).is_err() {
                    return Ok(None);
                }
                SqliteStore::open_read_only(p)?.map(AnyStore::Sqlite)
            }
            StoreLocation::Postgres(url) => PostgresStore::open_existing(url)
                .await?
                .map(AnyStore::Postgres),
        })
    }

    /// Ends this process's lease (PostgreSQL): what it holds is free for
    /// the others now.
    pub async fn close(&self) -> Result<()> {
        match self {
            AnyStore::Sqlite(_) => Ok(()),
            AnyStore::Postgres(p) => p.close().await,
        }
    }

    /// Turns true when this process lost its lease (never, on SQLite).
    pub fn lost(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        match self {
            AnyStore::Sqlite(_) => None,
            AnyStore::Postgres(p) => Some(p.lost()),
        }
    }
}

/// Calls the same method on whichever store it is.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

impl RunStore for AnyStore {
    type Guard = AnyGuard;

    async fn latest_run(&self, task: &str) -> Result<Option<Run>> {
        delegate!(self, s => s.latest_run(task))
    }
    async fn runs(&self, task: Option<&str>) -> Result<Vec<Run>> {
        delegate!(self, s => s.runs(task))
    }
    async fn create_run(&self, run: &NewRun<'_>) -> Result<i64> {
        delegate!(self, s => s.create_run(run))
    }
    async fn set_run_status(&self, run_id: i64, status: RunStatus) -> Result<()> {
        delegate!(self, s => s.set_run_status(run_id, status))
    }
    async fn set_run_bindings(
        &self,
        run_id: i64,
        vars: &std::collections::BTreeMap<String, String>,
        worktree: &str,
    ) -> Result<()> {
        delegate!(self, s => s.set_run_bindings(run_id, vars, worktree))
    }
    async fn relocate_logs(&self, run_id: i64, from: &str, to: &str) -> Result<()> {
        delegate!(self, s => s.relocate_logs(run_id, from, to))
    }
    async fn add_run_note(&self, run_id: i64, text: &str) -> Result<()> {
        delegate!(self, s => s.add_run_note(run_id, text))
    }
    async fn run_notes(&self, run_id: i64) -> Result<Vec<RunNote>> {
        delegate!(self, s => s.run_notes(run_id))
    }
    async fn finish_run(&self, run_id: i64, outcome: Outcome, end: &str) -> Result<()> {
        delegate!(self, s => s.finish_run(run_id, outcome, end))
    }
    async fn attempts(&self, run_id: i64) -> Result<Vec<Attempt>> {
        delegate!(self, s => s.attempts(run_id))
    }
    async fn last_attempt(&self, run_id: i64) -> Result<Option<Attempt>> {
        delegate!(self, s => s.last_attempt(run_id))
    }
    async fn last_attempts(&self) -> Result<Vec<Attempt>> {
        delegate!(self, s => s.last_attempts())
    }
    async fn attempt(&self, id: i64) -> Result<Option<Attempt>> {
        delegate!(self, s => s.attempt(id))
    }
    async fn attempt_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        delegate!(self, s => s.attempt_count(run_id, stage))
    }
    async fn insert_attempt(&self, a: &NewAttempt<'_>) -> Result<i64> {
        delegate!(self, s => s.insert_attempt(a))
    }
    async fn record_group(&self, attempt_id: i64, group: &GroupRecord) -> Result<()> {
        delegate!(self, s => s.record_group(attempt_id, group))
    }
    async fn record_exit(&self, attempt_id: i64, exit: &ExitRecord<'_>) -> Result<()> {
        delegate!(self, s => s.record_exit(attempt_id, exit))
    }
    async fn record_artifact(&self, attempt_id: i64, sha256: Option<&str>) -> Result<()> {
        delegate!(self, s => s.record_artifact(attempt_id, sha256))
    }
    async fn record_artifact_content(
        &self,
        attempt_id: i64,
        sha256: &str,
        content: &[u8],
    ) -> Result<()> {
        delegate!(self, s => s.record_artifact_content(attempt_id, sha256, content))
    }
    fn keeps_artifacts(&self) -> bool {
        match self {
            AnyStore::Sqlite(s) => s.keeps_artifacts(),
            AnyStore::Postgres(s) => s.keeps_artifacts(),
        }
    }
    async fn artifact_content(&self, attempt_id: i64) -> Result<Option<StoredArtifact>> {
        delegate!(self, s => s.artifact_content(attempt_id))
    }
    async fn record_gate(&self, attempt_id: i64, pass: bool, reason: &str) -> Result<()> {
        delegate!(self, s => s.record_gate(attempt_id, pass, reason))
    }
    async fn set_step(&self, attempt_id: i64, step: Step) -> Result<()> {
        delegate!(self, s => s.set_step(attempt_id, step))
    }
    async fn record_transition(&self, t: &NewTransition<'_>) -> Result<Option<i64>> {
        delegate!(self, s => s.record_transition(t))
    }
    async fn transitions(&self, run_id: i64) -> Result<Vec<Transition>> {
        delegate!(self, s => s.transitions(run_id))
    }
    async fn position(&self, run_id: i64) -> Result<Position> {
        delegate!(self, s => s.position(run_id))
    }
    async fn fail_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        delegate!(self, s => s.fail_count(run_id, stage))
    }
    async fn pending_alerts(&self, run_id: i64) -> Result<Vec<Alert>> {
        delegate!(self, s => s.pending_alerts(run_id))
    }
    async fn alerts(&self, run_id: i64) -> Result<Vec<Alert>> {
        delegate!(self, s => s.alerts(run_id))
    }
    async fn finish_alert(&self, alert_id: i64, ok: bool, exit: &str) -> Result<()> {
        delegate!(self, s => s.finish_alert(alert_id, ok, exit))
    }
    async fn llm_attempts(&self, pipeline: &str) -> Result<Vec<LlmAttempt>> {
        delegate!(self, s => s.llm_attempts(pipeline))
    }
    async fn try_lock(
        &self,
        key: &LockKey,
        holder: &str,
    ) -> Result<std::result::Result<AnyGuard, String>> {
        Ok(match self {
            AnyStore::Sqlite(s) => s.try_lock(key, holder).await?.map(AnyGuard::Sqlite),
            AnyStore::Postgres(s) => s.try_lock(key, holder).await?.map(AnyGuard::Postgres),
        })
    }
    async fn lock_holder(&self, key: &LockKey) -> Result<Option<String>> {
        delegate!(self, s => s.lock_holder(key))
    }
    async fn stage_locks(&self) -> Result<Vec<(String, Option<String>)>> {
        delegate!(self, s => s.stage_locks())
    }
    async fn enqueue(&self, t: &NewQueuedTask<'_>) -> Result<Option<i64>> {
        delegate!(self, s => s.enqueue(t))
    }
    async fn queue(&self, state: Option<QueueState>) -> Result<Vec<QueuedTask>> {
        delegate!(self, s => s.queue(state))
    }
    async fn queued_task(&self, task: &str) -> Result<Option<QueuedTask>> {
        delegate!(self, s => s.queued_task(task))
    }
    async fn take_queued_for(&self, labels: &[String]) -> Result<Option<QueuedTask>> {
        delegate!(self, s => s.take_queued_for(labels))
    }
    async fn release_queued(&self, task: &str, needs: &[String]) -> Result<bool> {
        delegate!(self, s => s.release_queued(task, needs))
    }
    async fn move_queued(
        &self,
        task: &str,
        from: QueueState,
        to: QueueState,
        error: Option<&str>,
    ) -> Result<bool> {
        delegate!(self, s => s.move_queued(task, from, to, error))
    }
    async fn request_approval(&self, r: &NewApprovalRequest<'_>) -> Result<i64> {
        delegate!(self, s => s.request_approval(r))
    }
    async fn approvals(&self, task: Option<&str>) -> Result<Vec<Approval>> {
        delegate!(self, s => s.approvals(task))
    }
    async fn approval_of_attempt(&self, attempt_id: i64) -> Result<Option<Approval>> {
        delegate!(self, s => s.approval_of_attempt(attempt_id))
    }
    async fn decide_approval(
        &self,
        request_id: i64,
        d: &NewDecision<'_>,
    ) -> Result<DecisionOutcome> {
        delegate!(self, s => s.decide_approval(request_id, d))
    }
    async fn recoverable(&self) -> Result<Vec<QueuedTask>> {
        delegate!(self, s => s.recoverable())
    }
    async fn request_cancel(&self, task: &str) -> Result<bool> {
        delegate!(self, s => s.request_cancel(task))
    }
    async fn cancel_requests(&self) -> Result<Vec<String>> {
        delegate!(self, s => s.cancel_requests())
    }
    async fn services(&self) -> Result<Vec<ServiceRecord>> {
        delegate!(self, s => RunStore::services(s))
    }
    fn spent(&self) -> Duration {
        match self {
            AnyStore::Sqlite(s) => s.spent(),
            AnyStore::Postgres(s) => s.spent(),
        }
    }
    fn healthy(&self) -> bool {
        match self {
            AnyStore::Sqlite(s) => s.healthy(),
            AnyStore::Postgres(s) => s.healthy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_chosen_by_its_url() {
        let dir = Path::new(".orch");
        assert_eq!(
            StoreLocation::choose(None, dir),
            StoreLocation::StateDir(dir.into())
        );
        assert_eq!(
            StoreLocation::choose(Some(""), dir),
            StoreLocation::StateDir(dir.into())
        );
        assert_eq!(
            StoreLocation::choose(Some("postgres://u@h/db"), dir),
            StoreLocation::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            StoreLocation::choose(Some("postgresql://h/db"), dir),
            StoreLocation::Postgres("postgresql://h/db".into())
        );
        assert_eq!(
            StoreLocation::choose(Some("sqlite:///srv/orch.db"), dir),
            StoreLocation::SqliteFile("/srv/orch.db".into())
        );
        assert_eq!(
            StoreLocation::choose(Some("runs/orch.db"), dir),
            StoreLocation::SqliteFile("runs/orch.db".into())
        );
    }
}
