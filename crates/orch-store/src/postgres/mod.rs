//! The shared store: PostgreSQL, for many `orch serve` processes (on many
//! hosts) sharing one queue, its runs, every step and the locks.
//!
//! Every store call is one SQL statement (a CTE where several rows change
//! together), so it is atomic without a client-side transaction and can be
//! retried as a whole on a new connection when the old one broke. Writes of
//! a run's steps carry the lease fence ([`lease::fence`]); the queue is
//! claimed with `FOR UPDATE SKIP LOCKED` ([`queue`]).
//!
//! Times in records are the writer's clock in milliseconds, as in SQLite;
//! lease expiry is the database's clock.

mod approvals;
mod lease;
mod pool;
mod queue;
mod rows;
mod schema;
mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::Row;

use crate::records::*;
use crate::{now_ms, LockKey, Result, RunStore, StoreError};
pub use lease::PgGuard;
use lease::{fence, Identity};
use pool::{Params, Pool};
use rows::{attempt_row, damaged, run_row, ATTEMPT_SELECT, RUN_SELECT};

/// How a writing process appears to the others sharing the store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Shown by `orch status` (default: `HOST:PID`).
    pub name: String,
    pub labels: Vec<String>,
    /// How long its claims and locks outlive its last renewal.
    pub lease: Duration,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            name: format!("{}:{}", crate::lock::hostname(), std::process::id()),
            labels: Vec::new(),
            lease: Duration::from_secs(10),
        }
    }
}

pub(crate) struct Inner {
    pool: Pool,
    /// `None`: opened for reading.
    me: Option<Identity>,
    /// The lease ended before it was renewed: nothing more is written.
    lost: AtomicBool,
    lost_tx: watch::Sender<bool>,
}

pub struct PostgresStore {
    inner: Arc<Inner>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(r) = &self.renewer {
            r.abort();
        }
    }
}

/// `url` without its password, for messages.
pub fn shown_url(url: &str) -> String {
    pool::redact(url)
}

fn target(url: &str) -> Result<pool::Target> {
    pool::parse_url(url).map_err(|e| StoreError::Open {
        path: std::path::PathBuf::from(pool::redact(url)),
        source: e.into(),
    })
}

fn json<T: serde::Serialize + ?Sized>(v: &T, what: &'static str) -> Result<String> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode { what, source })
}

/// The task of the run `$1`, of the attempt `$1`, in SQL.
const RUN_TASK: &str = "(SELECT task FROM runs WHERE id = $1)";
const ATTEMPT_TASK: &str = "(SELECT task FROM attempts WHERE id = $1)";

/// A write under the fence: `write` is one data-changing statement that
/// tests `(SELECT ok FROM ok)` and returns an `id`; the result is whether
/// the fence held, and the id written.
fn fenced(task: &str, me: &str, write: &str) -> String {
    fenced_or(task, me, write, "NULL")
}

/// Like [`fenced`], for an insert that may have been made already by an
/// earlier try of the same request: `found` reads the id it wrote then.
fn fenced_or(task: &str, me: &str, write: &str, found: &str) -> String {
    format!(
        "WITH ok AS (SELECT {} AS ok), w AS ({write})
         SELECT (SELECT ok FROM ok), coalesce((SELECT max(id) FROM w), {found})",
        fence(task, me)
    )
}

impl PostgresStore {
    /// Opens (creating or migrating) the store at `url` and registers this
    /// process as a service with a lease, renewed until the store is
    /// dropped or closed. Needs a tokio runtime.
    pub async fn open(url: &str, opts: PgOptions) -> Result<PostgresStore> {
        let pool = Pool::new(target(url)?);
        schema::set_up(&pool).await?;
        let me = Identity {
            id: lease::new_id(),
            lease: opts.lease.max(Duration::from_millis(300)),
        };
        let inner = Arc::new(Inner {
            pool,
            me: Some(me.clone()),
            lost: AtomicBool::new(false),
            lost_tx: watch::channel(false).0,
        });
        inner.register(&me, &opts.name, &opts.labels).await?;
        let renewer = tokio::spawn(lease::renew_loop(Arc::downgrade(&inner), me));
        Ok(PostgresStore {
            inner,
            renewer: Some(renewer),
        })
    }

    /// The store at `url` for reading only (no migration, no lease);
    /// `None` when nothing was ever recorded there.
    pub async fn open_existing(url: &str) -> Result<Option<PostgresStore>> {
        let pool = Pool::new(target(url)?);
        if schema::check_existing(&pool).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                me: None,
                lost: AtomicBool::new(false),
                lost_tx: watch::channel(false).0,
            }),
            renewer: None,
        }))
    }

    /// Ends this process's lease now: its locks and claims are free for
    /// the others at once rather than when the lease would expire.
    pub async fn close(&self) -> Result<()> {
        if let Some(r) = &self.renewer {
            r.abort();
        }
        match &self.inner.me {
            Some(me) if !self.inner.lost.load(Ordering::SeqCst) => self.inner.retire(me).await,
            _ => Ok(()),
        }
    }

    /// Turns true when this process's lease ended before it was renewed:
    /// it has lost its tasks and records nothing more.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.inner.lost_tx.subscribe()
    }

    /// Whether the last statement reached the database.
    pub(crate) fn reachable(&self) -> bool {
        self.inner.pool.reachable.load(Ordering::Relaxed)
    }

    /// This process's service id (`None`: opened for reading).
    pub fn service_id(&self) -> Option<&str> {
        self.inner.me.as_ref().map(|m| m.id.as_str())
    }

    /// The URL, without its password.
    pub fn shown(&self) -> &str {
        &self.inner.pool.target.shown
    }

    fn me(&self, what: &str) -> Result<&str> {
        let Some(me) = &self.inner.me else {
            return Err(self.inner.fenced(what, "the store was opened for reading"));
        };
        if self.inner.lost.load(Ordering::SeqCst) {
            return Err(self.inner.fenced(
                what,
                "this process's lease ended and others may hold its tasks now",
            ));
        }
        Ok(&me.id)
    }

    async fn rows<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl Fn(&Row) -> std::result::Result<T, rows::Bad>,
    ) -> Result<Vec<T>> {
        let rows = self.inner.pool.query(sql, params).await?;
        rows.iter()
            .map(|r| f(r).map_err(|b| damaged(&self.inner.pool.target.shown, b)))
            .collect()
    }

    async fn row<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl Fn(&Row) -> std::result::Result<T, rows::Bad>,
    ) -> Result<Option<T>> {
        Ok(self.rows(sql, params, f).await?.into_iter().next())
    }

    async fn count(&self, sql: &str, params: Params<'_>) -> Result<i64> {
        Ok(self
            .row(sql, params, |r| {
                r.try_get::<_, i64>(0).map_err(|e| rows::Bad(e.to_string()))
            })
            .await?
            .unwrap_or(0))
    }

    /// Runs a [`fenced`] statement: the id written, or `Fenced`.
    async fn write(&self, what: &str, sql: &str, params: Params<'_>) -> Result<Option<i64>> {
        let rows = self.inner.pool.query(sql, params).await?;
        let first = rows.first();
        let ok: Option<bool> = first.and_then(|r| r.try_get(0).ok());
        if ok != Some(true) {
            return Err(self.inner.fenced(
                what,
                "another service holds the task now, or this process's lease ended",
            ));
        }
        Ok(first.and_then(|r| r.try_get::<_, Option<i64>>(1).ok().flatten()))
    }

    /// Every service that shares the store, live or not yet cleaned up.
    pub async fn services(&self) -> Result<Vec<ServiceRecord>> {
        self.rows(
            "SELECT s.id, s.name, s.host, s.pid, s.labels,
                    (SELECT count(*) FROM queue q WHERE q.owner = s.id AND q.state = 'running'),
                    (extract(epoch FROM s.renewed_at) * 1000)::bigint,
                    (extract(epoch FROM s.expires_at) * 1000)::bigint,
                    s.expires_at > clock_timestamp()
             FROM services s ORDER BY s.name, s.id",
            &[],
            |r| {
                let bad = |e: tokio_postgres::Error| rows::Bad(e.to_string());
                let labels: String = r.try_get(4).map_err(bad)?;
                Ok(ServiceRecord {
                    id: r.try_get(0).map_err(bad)?,
                    name: r.try_get(1).map_err(bad)?,
                    host: r.try_get(2).map_err(bad)?,
                    pid: r.try_get(3).map_err(bad)?,
                    labels: serde_json::from_str(&labels).map_err(|e| rows::Bad(e.to_string()))?,
                    tasks_held: r.try_get(5).map_err(bad)?,
                    renewed_ms: r.try_get(6).map_err(bad)?,
                    expires_ms: r.try_get(7).map_err(bad)?,
                    live: r.try_get(8).map_err(bad)?,
                })
            },
        )
        .await
    }
}

impl RunStore for PostgresStore {
    type Guard = PgGuard;

    async fn latest_run(&self, task: &str) -> Result<Option<Run>> {
        self.row(
            &format!("{RUN_SELECT} WHERE task = $1 ORDER BY id DESC LIMIT 1"),
            &[&task],
            run_row,
        )
        .await
    }

    async fn runs(&self, task: Option<&str>) -> Result<Vec<Run>> {
        self.rows(
            &format!("{RUN_SELECT} WHERE ($1::text IS NULL OR task = $1::text) ORDER BY id"),
            &[&task],
            run_row,
        )
        .await
    }

    async fn create_run(&self, r: &NewRun<'_>) -> Result<i64> {
        let me = self.me(r.task)?;
        let vars = json(r.vars, "the variables")?;
        let pid = i64::from(std::process::id());
        let req = lease::new_id();
        let sql = fenced_or(
            "$1::text",
            "$11::text",
            "INSERT INTO runs (task, pipeline_path, pipeline_hash, pipeline_text, vars, worktree, status, pid, host, started_ms, pipeline_name, req)
             SELECT $1, $2, $3, $4, $5, $6, 'running', $7, $8, $9, $10, $12 WHERE (SELECT ok FROM ok)
             ON CONFLICT (req) DO NOTHING RETURNING id",
            "(SELECT id FROM runs WHERE req = $12)",
        );
        let id = self
            .write(
                r.task,
                &sql,
                &[
                    &r.task,
                    &r.pipeline_path,
                    &r.pipeline_hash,
                    &r.pipeline_text,
                    &vars,
                    &r.worktree,
                    &pid,
                    &r.host,
                    &now_ms(),
                    &r.pipeline_name,
                    &me,
                    &req,
                ],
            )
            .await?;
        id.ok_or_else(|| self.inner.fenced(r.task, "the run was not recorded"))
    }

    async fn set_run_status(&self, run_id: i64, status: RunStatus) -> Result<()> {
        let what = format!("run {run_id}");
        let me = self.me(&what)?;
        let pid = i64::from(std::process::id());
        let sql = fenced(
            RUN_TASK,
            "$4::text",
            "UPDATE runs SET status = $2, pid = $3 WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&run_id, &status.as_str(), &pid, &me])
            .await
            .map(drop)
    }

    async fn set_run_bindings(
        &self,
        run_id: i64,
        vars: &std::collections::BTreeMap<String, String>,
        worktree: &str,
    ) -> Result<()> {
        let what = format!("run {run_id}");
        let me = self.me(&what)?;
        let vars = json(vars, "the variables")?;
        let sql = fenced(
            RUN_TASK,
            "$4::text",
            "UPDATE runs SET vars = $2, worktree = $3 WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&run_id, &vars, &worktree, &me])
            .await
            .map(drop)
    }

    async fn relocate_logs(&self, run_id: i64, from: &str, to: &str) -> Result<()> {
        let what = format!("run {run_id}");
        let me = self.me(&what)?;
        let prefix = format!("{}/", from.trim_end_matches('/'));
        let to = format!("{}/", to.trim_end_matches('/'));
        let sql = fenced(
            RUN_TASK,
            "$4::text",
            "UPDATE attempts SET log_path = $3::text || substr(log_path, length($2::text) + 1)
             WHERE run_id = $1 AND substr(log_path, 1, length($2::text)) = $2::text AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&run_id, &prefix, &to, &me])
            .await
            .map(drop)
    }

    async fn add_run_note(&self, run_id: i64, text: &str) -> Result<()> {
        let what = format!("run {run_id}");
        let me = self.me(&what)?;
        let req = lease::new_id();
        let sql = fenced_or(
            RUN_TASK,
            "$4::text",
            "INSERT INTO run_notes (run_id, text, at_ms, req) SELECT $1, $2, $3, $5 WHERE (SELECT ok FROM ok)
             ON CONFLICT (req) DO NOTHING RETURNING id",
            "(SELECT id FROM run_notes WHERE req = $5)",
        );
        self.write(&what, &sql, &[&run_id, &text, &now_ms(), &me, &req])
            .await
            .map(drop)
    }

    async fn run_notes(&self, run_id: i64) -> Result<Vec<RunNote>> {
        self.rows(
            "SELECT at_ms, text FROM run_notes WHERE run_id = $1 ORDER BY id",
            &[&run_id],
            rows::note_row,
        )
        .await
    }

    async fn finish_run(&self, run_id: i64, outcome: Outcome, end: &str) -> Result<()> {
        let what = format!("run {run_id}");
        let me = self.me(&what)?;
        let sql = fenced(
            RUN_TASK,
            "$5::text",
            "UPDATE runs SET status = 'finished', outcome = $2, end_name = $3, finished_ms = $4
             WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(
            &what,
            &sql,
            &[&run_id, &outcome.as_str(), &end, &now_ms(), &me],
        )
        .await
        .map(drop)
    }

    async fn attempts(&self, run_id: i64) -> Result<Vec<Attempt>> {
        self.rows(
            &format!("{ATTEMPT_SELECT} WHERE run_id = $1 ORDER BY id"),
            &[&run_id],
            attempt_row,
        )
        .await
    }

    async fn last_attempt(&self, run_id: i64) -> Result<Option<Attempt>> {
        self.row(
            &format!("{ATTEMPT_SELECT} WHERE run_id = $1 ORDER BY id DESC LIMIT 1"),
            &[&run_id],
            attempt_row,
        )
        .await
    }

    async fn last_attempts(&self) -> Result<Vec<Attempt>> {
        self.rows(
            &format!("{ATTEMPT_SELECT} WHERE id IN (SELECT max(id) FROM attempts GROUP BY run_id) ORDER BY id"),
            &[],
            attempt_row,
        )
        .await
    }

    async fn attempt(&self, id: i64) -> Result<Option<Attempt>> {
        self.row(
            &format!("{ATTEMPT_SELECT} WHERE id = $1"),
            &[&id],
            attempt_row,
        )
        .await
    }

    async fn attempt_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        self.count(
            "SELECT count(*) FROM attempts WHERE run_id = $1 AND stage = $2",
            &[&run_id, &stage],
        )
        .await
    }

    async fn insert_attempt(&self, a: &NewAttempt<'_>) -> Result<i64> {
        let me = self.me(a.task)?;
        let argv = json(&a.argv, "the argv")?;
        let req = lease::new_id();
        let sql = fenced_or(
            RUN_TASK,
            "$13::text",
            "INSERT INTO attempts (run_id, task, stage, attempt, call_site, producer, producer_name, argv, defers, step, started_ms, log_path, visit, req)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'started', $10, $11, $12, $14 WHERE (SELECT ok FROM ok)
             ON CONFLICT (req) DO NOTHING RETURNING id",
            "(SELECT id FROM attempts WHERE req = $14)",
        );
        let id = self
            .write(
                a.task,
                &sql,
                &[
                    &a.run_id,
                    &a.task,
                    &a.stage,
                    &a.attempt,
                    &a.call_site,
                    &a.producer.as_str(),
                    &a.producer_name,
                    &argv,
                    &a.defers,
                    &now_ms(),
                    &a.log_path,
                    &a.visit,
                    &me,
                    &req,
                ],
            )
            .await?;
        id.ok_or_else(|| self.inner.fenced(a.task, "the attempt was not recorded"))
    }

    async fn record_group(&self, attempt_id: i64, g: &GroupRecord) -> Result<()> {
        let what = format!("attempt {attempt_id}");
        let me = self.me(&what)?;
        let sql = fenced(
            ATTEMPT_TASK,
            "$7::text",
            "UPDATE attempts SET pgid = $2, pg_leader_start = $3, pg_boot_id = $4, pg_host = $5, pg_token = $6
             WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(
            &what,
            &sql,
            &[
                &attempt_id,
                &g.pgid,
                &g.leader_start,
                &g.boot_id,
                &g.host,
                &g.token,
                &me,
            ],
        )
        .await
        .map(drop)
    }

    async fn record_exit(&self, attempt_id: i64, e: &ExitRecord<'_>) -> Result<()> {
        let what = format!("attempt {attempt_id}");
        let me = self.me(&what)?;
        let leaks = json(&e.leaks, "the leaks")?;
        let sql = fenced(
            ATTEMPT_TASK,
            "$10::text",
            "UPDATE attempts SET step = 'exited', exit_code = $2, exit = $3, verdict = $4, leaked = $5, leaks = $6,
                 finished_ms = $7, duration_ms = $8, tail = $9
             WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        let code = e.exit_code.map(i64::from);
        self.write(
            &what,
            &sql,
            &[
                &attempt_id,
                &code,
                &e.exit,
                &e.verdict,
                &!e.leaks.is_empty(),
                &leaks,
                &now_ms(),
                &(e.duration.as_millis() as i64),
                &e.tail.join("\n"),
                &me,
            ],
        )
        .await
        .map(drop)
    }

    async fn record_artifact(&self, attempt_id: i64, sha256: Option<&str>) -> Result<()> {
        let what = format!("attempt {attempt_id}");
        let me = self.me(&what)?;
        let sql = fenced(
            ATTEMPT_TASK,
            "$3::text",
            "UPDATE attempts SET step = 'artifact', artifact_sha256 = $2 WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&attempt_id, &sha256, &me])
            .await
            .map(drop)
    }

    async fn record_artifact_content(
        &self,
        attempt_id: i64,
        sha256: &str,
        content: &[u8],
    ) -> Result<()> {
        let what = format!("attempt {attempt_id}");
        let me = self.me(&what)?;
        // The digest and the bytes in one statement under the fence; a
        // retry of a statement that had committed writes the same row.
        let sql = format!(
            "WITH ok AS (SELECT {} AS ok),
             c AS (INSERT INTO artifacts (attempt_id, sha256, content)
                   SELECT $1::bigint, $2::text, $4::bytea WHERE (SELECT ok FROM ok)
                   ON CONFLICT (attempt_id) DO UPDATE SET sha256 = EXCLUDED.sha256, content = EXCLUDED.content),
             w AS (UPDATE attempts SET step = 'artifact', artifact_sha256 = $2
                   WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id)
             SELECT (SELECT ok FROM ok), (SELECT max(id) FROM w)",
            fence(ATTEMPT_TASK, "$3::text")
        );
        self.write(&what, &sql, &[&attempt_id, &sha256, &me, &content])
            .await
            .map(drop)
    }

    fn keeps_artifacts(&self) -> bool {
        true
    }

    async fn artifact_content(&self, attempt_id: i64) -> Result<Option<StoredArtifact>> {
        self.row(
            "SELECT sha256, content FROM artifacts WHERE attempt_id = $1",
            &[&attempt_id],
            |r| {
                let bad = |e: tokio_postgres::Error| rows::Bad(e.to_string());
                Ok(StoredArtifact {
                    sha256: r.try_get(0).map_err(bad)?,
                    content: r.try_get(1).map_err(bad)?,
                })
            },
        )
        .await
    }

    async fn record_gate(&self, attempt_id: i64, pass: bool, reason: &str) -> Result<()> {
        let what = format!("attempt {attempt_id}");
        let me = self.me(&what)?;
        let sql = fenced(
            ATTEMPT_TASK,
            "$4::text",
            "UPDATE attempts SET step = 'gated', gate_pass = $2, gate_reason = $3 WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&attempt_id, &pass, &reason, &me])
            .await
            .map(drop)
    }

    async fn set_step(&self, attempt_id: i64, step: Step) -> Result<()> {
        let what = format!("attempt {attempt_id}");
        let me = self.me(&what)?;
        let sql = fenced(
            ATTEMPT_TASK,
            "$3::text",
            "UPDATE attempts SET step = $2 WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&attempt_id, &step.as_str(), &me])
            .await
            .map(drop)
    }

    async fn record_transition(&self, t: &NewTransition<'_>) -> Result<Option<i64>> {
        let what = format!("run {}", t.run_id);
        let me = self.me(&what)?;
        let req = lease::new_id();
        let sql = format!(
            "WITH ok AS (SELECT {} AS ok),
             t AS (INSERT INTO transitions (run_id, attempt_id, from_stage, kind, to_stage, reason, at_ms, req)
                   SELECT $1, $2, $3, $4, $5, $6, $7, $10 WHERE (SELECT ok FROM ok)
                   ON CONFLICT (req) DO NOTHING RETURNING id),
             d AS (UPDATE attempts SET step = 'done' WHERE id = $2 AND EXISTS (SELECT 1 FROM t)),
             w AS (INSERT INTO alerts (run_id, transition_id, stage, alert, status, at_ms)
                   SELECT $1, t.id, $3, $8::text, 'pending', $7 FROM t WHERE $8::text IS NOT NULL RETURNING id)
             SELECT (SELECT ok FROM ok), coalesce((SELECT max(id) FROM w),
                 (SELECT a.id FROM alerts a JOIN transitions x ON x.id = a.transition_id WHERE x.req = $10))",
            fence(RUN_TASK, "$9::text")
        );
        self.write(
            &what,
            &sql,
            &[
                &t.run_id,
                &t.attempt_id,
                &t.from,
                &t.kind.as_str(),
                &t.to,
                &t.reason,
                &now_ms(),
                &t.alert,
                &me,
                &req,
            ],
        )
        .await
    }

    async fn transitions(&self, run_id: i64) -> Result<Vec<Transition>> {
        self.rows(
            "SELECT id, attempt_id, from_stage, kind, to_stage, reason FROM transitions WHERE run_id = $1 ORDER BY id",
            &[&run_id],
            rows::transition_row,
        )
        .await
    }

    async fn position(&self, run_id: i64) -> Result<Position> {
        let p = self
            .row(
                "SELECT count(*), (SELECT to_stage FROM transitions WHERE run_id = $1 ORDER BY id DESC LIMIT 1)
                 FROM transitions WHERE run_id = $1",
                &[&run_id],
                |r| {
                    let bad = |e: tokio_postgres::Error| rows::Bad(e.to_string());
                    Ok(Position {
                        transitions: r.try_get(0).map_err(bad)?,
                        last_to: r.try_get(1).map_err(bad)?,
                    })
                },
            )
            .await?;
        Ok(p.unwrap_or(Position {
            transitions: 0,
            last_to: None,
        }))
    }

    async fn fail_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        self.count(
            "SELECT count(*) FROM transitions WHERE run_id = $1 AND from_stage = $2 AND kind = 'fail'",
            &[&run_id, &stage],
        )
        .await
    }

    async fn pending_alerts(&self, run_id: i64) -> Result<Vec<Alert>> {
        self.rows(
            "SELECT id, stage, alert, status, exit FROM alerts WHERE run_id = $1 AND status = 'pending' ORDER BY id",
            &[&run_id],
            rows::alert_row,
        )
        .await
    }

    async fn alerts(&self, run_id: i64) -> Result<Vec<Alert>> {
        self.rows(
            "SELECT id, stage, alert, status, exit FROM alerts WHERE run_id = $1 ORDER BY id",
            &[&run_id],
            rows::alert_row,
        )
        .await
    }

    async fn finish_alert(&self, alert_id: i64, ok: bool, exit: &str) -> Result<()> {
        let what = format!("alert {alert_id}");
        let me = self.me(&what)?;
        let status = if ok {
            AlertStatus::Ok
        } else {
            AlertStatus::Failed
        };
        let sql = fenced(
            "(SELECT r.task FROM alerts a JOIN runs r ON r.id = a.run_id WHERE a.id = $1)",
            "$4::text",
            "UPDATE alerts SET status = $2, exit = $3 WHERE id = $1 AND (SELECT ok FROM ok) RETURNING id",
        );
        self.write(&what, &sql, &[&alert_id, &status.as_str(), &exit, &me])
            .await
            .map(drop)
    }

    async fn llm_attempts(&self, pipeline: &str) -> Result<Vec<LlmAttempt>> {
        self.rows(
            "SELECT a.call_site, a.duration_ms, r.pipeline_hash FROM attempts a JOIN runs r ON r.id = a.run_id
             WHERE a.producer = 'llm' AND a.duration_ms IS NOT NULL AND r.pipeline_name = $1 ORDER BY a.id",
            &[&pipeline],
            rows::llm_row,
        )
        .await
    }

    async fn try_lock(
        &self,
        key: &LockKey,
        holder: &str,
    ) -> Result<std::result::Result<PgGuard, String>> {
        let what = lease::key_text(key);
        self.me(&what)?;
        let Some(me) = &self.inner.me else {
            return Err(self.inner.fenced(&what, "the store was opened for reading"));
        };
        Ok(self
            .inner
            .take_lock(me, key, holder)
            .await?
            .map(|guard| PgGuard {
                inner: self.inner.clone(),
                key: what,
                guard,
            }))
    }

    async fn lock_holder(&self, key: &LockKey) -> Result<Option<String>> {
        self.inner.holder_of(&lease::key_text(key)).await
    }

    async fn stage_locks(&self) -> Result<Vec<(String, Option<String>)>> {
        let keys = self
            .rows(
                "SELECT key FROM locks WHERE key LIKE 'stage:%' ORDER BY key",
                &[],
                |r| {
                    r.try_get::<_, String>(0)
                        .map_err(|e| rows::Bad(e.to_string()))
                },
            )
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let holder = self.inner.holder_of(&key).await?;
            let stage = key.strip_prefix("stage:").unwrap_or(&key).to_string();
            out.push((stage, holder));
        }
        Ok(out)
    }

    async fn enqueue(&self, t: &NewQueuedTask<'_>) -> Result<Option<i64>> {
        self.enqueue_row(t).await
    }

    async fn queue(&self, state: Option<QueueState>) -> Result<Vec<QueuedTask>> {
        self.queue_list(state).await
    }

    async fn queued_task(&self, task: &str) -> Result<Option<QueuedTask>> {
        self.queue_one(task).await
    }

    async fn take_queued_for(&self, labels: &[String]) -> Result<Option<QueuedTask>> {
        self.claim(labels).await
    }

    async fn release_queued(&self, task: &str, needs: &[String]) -> Result<bool> {
        self.release_row(task, needs).await
    }

    async fn move_queued(
        &self,
        task: &str,
        from: QueueState,
        to: QueueState,
        error: Option<&str>,
    ) -> Result<bool> {
        self.move_queued_row(task, from, to, error).await
    }

    async fn request_approval(&self, r: &NewApprovalRequest<'_>) -> Result<i64> {
        self.request_approval_row(r).await
    }

    async fn approvals(&self, task: Option<&str>) -> Result<Vec<Approval>> {
        self.approvals_of(task).await
    }

    async fn approval_of_attempt(&self, attempt_id: i64) -> Result<Option<Approval>> {
        self.approval_of_attempt_row(attempt_id).await
    }

    async fn decide_approval(
        &self,
        request_id: i64,
        d: &NewDecision<'_>,
    ) -> Result<DecisionOutcome> {
        self.decide_row(request_id, d).await
    }

    async fn request_cancel(&self, task: &str) -> Result<bool> {
        self.request_cancel_row(task).await
    }

    async fn cancel_requests(&self) -> Result<Vec<String>> {
        self.cancel_request_rows().await
    }

    async fn recoverable(&self) -> Result<Vec<QueuedTask>> {
        // Tasks whose service died are claimed by `take_queued` once its
        // lease has expired; none is resumed merely because it is running.
        Ok(Vec::new())
    }

    async fn services(&self) -> Result<Vec<ServiceRecord>> {
        PostgresStore::services(self).await
    }

    fn healthy(&self) -> bool {
        self.reachable() && !self.inner.lost.load(Ordering::SeqCst)
    }

    fn spent(&self) -> Duration {
        Duration::from_nanos(self.inner.pool.spent.load(Ordering::Relaxed))
    }
}
