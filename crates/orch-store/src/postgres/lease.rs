//! Leases and what hangs on them. Each process that writes the store is a
//! *service* row with an expiry it renews every third of its lease; a
//! lock (a task's, a serial stage's) and a claimed queue entry name the
//! service holding them and are free once its lease has expired. Every
//! write of a step carries the fence ([`fence`]): it is made only while the
//! writer's own lease is live and no other live service holds the task, so
//! a service that stopped renewing (paused, partitioned) and was taken
//! over can never record a step after the takeover.
//!
//! The database's clock decides expiry (`clock_timestamp()`): services on
//! many hosts need not agree on the time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Inner;
use crate::{LockKey, Result, StoreError};

/// The SQL condition that the service `$me` may write for the task named by
/// the SQL expression `task`.
pub(super) fn fence(task: &str, me: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM services f WHERE f.id = {me} AND f.expires_at > clock_timestamp())
          AND NOT EXISTS (SELECT 1 FROM locks fl JOIN services fs ON fs.id = fl.owner
                          WHERE fl.key = 'task:' || ({task}) AND fl.owner <> {me}
                            AND fs.expires_at > clock_timestamp()))"
    )
}

/// The lease of the service (or command) this store writes as.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(crate) id: String,
    pub(crate) lease: Duration,
}

pub(super) fn key_text(key: &LockKey) -> String {
    match key {
        LockKey::Task(t) => format!("task:{t}"),
        LockKey::Stage(s) => format!("stage:{s}"),
    }
}

/// A process-unique id: host, pid and the time it started.
pub(super) fn new_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:x}-{n}",
        crate::lock::hostname(),
        std::process::id(),
        nanos
    )
}

/// How long a dead service's row stays listed (`orch status`, `GET
/// /status`) after its lease expired, when it holds nothing.
pub(super) const DEAD_KEPT: Duration = Duration::from_secs(24 * 3600);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Inner {
    /// Records this process as a service with a live lease.
    pub(super) async fn register(
        &self,
        me: &Identity,
        name: &str,
        labels: &[String],
    ) -> Result<()> {
        let labels = serde_json::to_string(labels).map_err(|source| StoreError::Encode {
            what: "the labels",
            source,
        })?;
        let pid = i64::from(std::process::id());
        self.pool
            .query(
                "INSERT INTO services (id, name, host, pid, labels, started_at, renewed_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, clock_timestamp(), clock_timestamp(),
                         clock_timestamp() + make_interval(secs => $6))",
                &[
                    &me.id,
                    &name,
                    &crate::lock::hostname(),
                    &pid,
                    &labels,
                    &secs(me.lease),
                ],
            )
            .await?;
        self.forget_dead_services().await
    }

    /// Deletes the rows of services dead for longer than [`DEAD_KEPT`]
    /// that hold nothing: a clean stop deletes its own row, but a killed
    /// service (and every killed `orch run --store`) leaves one behind,
    /// which `orch status` would list for ever. A dead service that still
    /// names a running task or a lock stays listed until the task is taken
    /// over; deleting its row would free nothing that expiry did not free.
    async fn forget_dead_services(&self) -> Result<()> {
        self.pool
            .query(
                "DELETE FROM services s
                 WHERE s.expires_at < clock_timestamp() - make_interval(secs => $1)
                   AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.owner = s.id AND q.state = 'running')
                   AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.owner = s.id)",
                &[&secs(DEAD_KEPT)],
            )
            .await?;
        Ok(())
    }

    /// Extends the lease; false when it had already expired (the service
    /// lost everything it held and must write nothing more).
    async fn renew(&self, me: &Identity) -> Result<bool> {
        let rows = self
            .pool
            .query(
                "UPDATE services SET renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + make_interval(secs => $2)
                 WHERE id = $1 AND expires_at > clock_timestamp() RETURNING 1",
                &[&me.id, &secs(me.lease)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub(super) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.lost_tx.send_replace(true);
    }

    /// Ends the lease at once: every lock and claim of this service is free
    /// for the others (a clean stop, or the end of an `orch run`).
    pub(super) async fn retire(&self, me: &Identity) -> Result<()> {
        self.pool
            .query(
                "UPDATE locks SET owner = NULL, guard = NULL, holder = NULL WHERE owner = $1",
                &[&me.id],
            )
            .await?;
        self.pool
            .query("DELETE FROM services WHERE id = $1", &[&me.id])
            .await?;
        Ok(())
    }

    pub(super) async fn take_lock(
        &self,
        me: &Identity,
        key: &LockKey,
        holder: &str,
    ) -> Result<std::result::Result<String, String>> {
        let key = key_text(key);
        let guard = new_id();
        // A holder may release between the attempt and the look at who
        // holds it: then the lock is tried again.
        for _ in 0..5 {
            if let Some(taken) = self.try_take(me, &key, &guard, holder).await? {
                return Ok(Ok(taken));
            }
            if let Some(h) = self.holder_of(&key).await? {
                return Ok(Err(h));
            }
            if !self.alive(me).await? {
                break;
            }
        }
        Err(self.fenced(&key, "this process's lease has ended"))
    }

    /// Whether this process's lease is live.
    async fn alive(&self, me: &Identity) -> Result<bool> {
        let rows = self
            .pool
            .query(
                "SELECT 1 FROM services WHERE id = $1 AND expires_at > clock_timestamp()",
                &[&me.id],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// One attempt at the lock: its guard id when taken. The guard is new
    /// for each [`Inner::take_lock`] and names the row it wrote: a statement
    /// retried after its connection broke finds the lock its first try
    /// took (it may have committed) and takes it again, instead of seeing
    /// it held by a guard nobody holds.
    async fn try_take(
        &self,
        me: &Identity,
        key: &str,
        guard: &str,
        holder: &str,
    ) -> Result<Option<String>> {
        let rows = self
            .pool
            .query(
                "INSERT INTO locks (key, owner, guard, holder, taken_at)
                 SELECT $1, $2, $3, $4, clock_timestamp()
                 WHERE EXISTS (SELECT 1 FROM services s WHERE s.id = $2 AND s.expires_at > clock_timestamp())
                 ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, guard = EXCLUDED.guard,
                     holder = EXCLUDED.holder, taken_at = EXCLUDED.taken_at
                 WHERE locks.owner IS NULL OR locks.guard = EXCLUDED.guard OR NOT EXISTS (
                     SELECT 1 FROM services s WHERE s.id = locks.owner AND s.expires_at > clock_timestamp())
                 RETURNING guard",
                &[&key, &me.id, &guard, &holder],
            )
            .await?;
        Ok((!rows.is_empty()).then(|| guard.to_string()))
    }

    /// Who holds a lock under a live lease.
    pub(super) async fn holder_of(&self, key: &str) -> Result<Option<String>> {
        let rows = self
            .pool
            .query(
                "SELECT l.holder, s.name, s.host FROM locks l JOIN services s ON s.id = l.owner
                 WHERE l.key = $1 AND s.expires_at > clock_timestamp()",
                &[&key],
            )
            .await?;
        Ok(rows.first().map(|r| {
            let holder: Option<String> = r.get(0);
            let name: String = r.get(1);
            let host: String = r.get(2);
            format!(
                "{} (service {name} on {host})",
                holder.unwrap_or_else(|| "a holder that did not say who it is".into())
            )
        }))
    }

    pub(super) async fn release(&self, key: &str, guard: &str) {
        let _ = self
            .pool
            .query(
                "UPDATE locks SET owner = NULL, guard = NULL, holder = NULL WHERE key = $1 AND guard = $2",
                &[&key, &guard],
            )
            .await;
    }

    pub(super) fn fenced(&self, what: &str, detail: &str) -> StoreError {
        StoreError::Fenced {
            url: self.pool.target.shown.clone(),
            task: what.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// Renews the lease every third of its length until the store is dropped;
/// marks the store lost when the lease ended before it could be renewed
/// (paused past it, or the database unreachable for as long).
pub(super) async fn renew_loop(inner: Weak<Inner>, me: Identity) {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(me.lease / 3).await;
        let Some(inner) = inner.upgrade() else { return };
        match inner.renew(&me).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                inner.mark_lost();
                return;
            }
            Err(_) if last_ok.elapsed() >= me.lease => {
                inner.mark_lost();
                return;
            }
            Err(_) => {}
        }
        drop(inner);
    }
}

/// A lock held in the database for as long as the value lives (and this
/// process's lease lasts).
pub struct PgGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) key: String,
    pub(super) guard: String,
}

impl std::fmt::Debug for PgGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgGuard({})", self.key)
    }
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        let inner = self.inner.clone();
        let key = std::mem::take(&mut self.key);
        let guard = std::mem::take(&mut self.guard);
        // Outside a runtime the lock is freed by `close` or the lease's end.
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move { inner.release(&key, &guard).await });
        }
    }
}
