//! The embedded run store: SQLite (bundled) at `STATE/orch.db`, WAL mode.
//!
//! The engine records each step before it acts on it, so a killed `orch`
//! can be resumed from the rows alone. Durability is at process-crash level:
//! WAL with `synchronous=NORMAL` never loses a committed row when the
//! process dies (only an OS crash can drop the last commits), at a fraction
//! of the cost of a sync per step.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the run store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot take {path}: {source}")]
    Guard {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an orch run store ({detail})")]
    Foreign { path: PathBuf, detail: String },
    #[error("the run store {path} has schema version {found}, newer than this orch understands ({SCHEMA_VERSION}); upgrade orch")]
    Newer { path: PathBuf, found: i64 },
    #[error("the run store {path} is unreadable or damaged: {source}")]
    Damaged {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the run store {path} is locked by another process: {source}")]
    Locked {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Time spent in store calls, for `ORCH_PROFILE`.
    spent: std::rc::Rc<std::cell::Cell<Duration>>,
}

/// Adds the time until it is dropped to the store's `spent`.
struct Timer {
    started: std::time::Instant,
    spent: std::rc::Rc<std::cell::Cell<Duration>>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.spent.set(self.spent.get() + self.started.elapsed());
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub task: String,
    pub pipeline_path: String,
    pub pipeline_hash: String,
    pub pipeline_text: String,
    pub status: String,
    pub outcome: Option<String>,
    pub end_name: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

/// Where an attempt is in its life; each is recorded before the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The row exists; the producer may or may not have been spawned.
    Started,
    /// The producer ended; exit and verdict are recorded.
    Exited,
    /// The artifact is on disk (written by orch or the agent).
    Artifact,
    /// The gate's decision is recorded.
    Gated,
    /// The transition is recorded (or the attempt was deferred).
    Done,
    /// `orch` stopped while the producer ran; the attempt is not finished.
    Interrupted,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Exited => "exited",
            Step::Artifact => "artifact",
            Step::Gated => "gated",
            Step::Done => "done",
            Step::Interrupted => "interrupted",
        }
    }
    fn parse(s: &str) -> Step {
        match s {
            "started" => Step::Started,
            "exited" => Step::Exited,
            "artifact" => Step::Artifact,
            "gated" => Step::Gated,
            "done" => Step::Done,
            _ => Step::Interrupted,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: i64,
    pub run_id: i64,
    pub task: String,
    pub stage: String,
    pub attempt: i64,
    /// Transitions the run had taken when the attempt began: attempts with
    /// the same visit belong to one stay in the stage.
    pub visit: i64,
    pub call_site: String,
    pub producer: String,
    pub producer_name: String,
    pub argv: Vec<String>,
    pub defers: i64,
    pub step: Step,
    pub pgid: Option<i64>,
    pub exit_code: Option<i64>,
    pub exit: Option<String>,
    pub verdict: Option<String>,
    pub leaked: bool,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub log_path: String,
    pub artifact_sha256: Option<String>,
    pub gate_pass: Option<bool>,
    pub gate_reason: Option<String>,
    pub tail: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRow {
    pub id: i64,
    pub attempt_id: Option<i64>,
    pub from_stage: String,
    pub kind: String,
    pub to_stage: String,
    pub reason: String,
}

/// Where a run is: how many transitions it took and where the last led.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub transitions: i64,
    pub last_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    pub stage: String,
    pub alert: String,
    pub status: String,
}

/// A new attempt, as recorded before its producer starts.
pub struct NewAttempt<'a> {
    pub run_id: i64,
    pub task: &'a str,
    pub stage: &'a str,
    pub attempt: i64,
    pub visit: i64,
    pub call_site: &'a str,
    pub producer: &'a str,
    pub producer_name: &'a str,
    pub argv: &'a [String],
    pub defers: i64,
    pub log_path: &'a str,
}

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    pipeline_path TEXT NOT NULL,
    pipeline_hash TEXT NOT NULL,
    pipeline_text TEXT NOT NULL,
    vars TEXT NOT NULL,
    worktree TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    end_name TEXT,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX runs_by_task ON runs(task, id);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    task TEXT NOT NULL,
    stage TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    visit INTEGER NOT NULL,
    call_site TEXT NOT NULL,
    producer TEXT NOT NULL,
    producer_name TEXT NOT NULL,
    argv TEXT NOT NULL,
    defers INTEGER NOT NULL,
    step TEXT NOT NULL,
    pgid INTEGER,
    exit_code INTEGER,
    exit TEXT,
    verdict TEXT,
    leaked INTEGER NOT NULL DEFAULT 0,
    leaks TEXT,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    duration_ms INTEGER,
    log_path TEXT NOT NULL,
    artifact_sha256 TEXT,
    gate_pass INTEGER,
    gate_reason TEXT,
    tail TEXT
);
CREATE INDEX attempts_by_run ON attempts(run_id, id);
CREATE INDEX attempts_by_stage ON attempts(run_id, stage);
CREATE TABLE transitions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    attempt_id INTEGER REFERENCES attempts(id),
    from_stage TEXT NOT NULL,
    kind TEXT NOT NULL,
    to_stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX transitions_by_run ON transitions(run_id, id);
CREATE INDEX transitions_by_stage ON transitions(run_id, from_stage, kind);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    transition_id INTEGER NOT NULL REFERENCES transitions(id),
    stage TEXT NOT NULL,
    alert TEXT NOT NULL,
    status TEXT NOT NULL,
    exit TEXT,
    at_ms INTEGER NOT NULL
);
"#];

/// The store's schema version, or why it is not a store this build can use
/// (`Ok(refusal)`), or an SQLite error (`Err`).
fn check_ours(
    conn: &Connection,
    path: &Path,
) -> std::result::Result<i64, std::result::Result<StoreError, rusqlite::Error>> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(Err)?;
    if version > SCHEMA_VERSION {
        return Err(Ok(StoreError::Newer {
            path: path.to_path_buf(),
            found: version,
        }));
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(Err)?;
        if tables > 0 {
            return Err(Ok(StoreError::Foreign {
                path: path.to_path_buf(),
                detail: format!(
                    "it holds {tables} table{} but no orch schema version",
                    if tables == 1 { "" } else { "s" }
                ),
            }));
        }
    }
    Ok(version)
}

fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Store {
    /// Opens (creating or migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let p = path.to_path_buf();
        // Processes opening one store at once set it up one after the other:
        // SQLite refuses some of these steps (the switch to WAL, a migration)
        // to a second process instead of waiting. An OS file lock, released
        // when its holder dies.
        let guard_path = PathBuf::from(format!("{}.open-lock", path.display()));
        let _guard = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .and_then(|f| f.lock().map(|_| f))
            .map_err(|source| StoreError::Guard {
                path: guard_path.clone(),
                source,
            })?;
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: p.clone(),
            source,
        })?;
        let damaged = |source: rusqlite::Error| {
            if is_locked(&source) {
                StoreError::Locked {
                    path: p.clone(),
                    source,
                }
            } else if matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase)
            ) {
                StoreError::Foreign {
                    path: p.clone(),
                    detail: "not an SQLite database".into(),
                }
            } else {
                StoreError::Damaged {
                    path: p.clone(),
                    source,
                }
            }
        };
        conn.busy_timeout(Duration::from_secs(5)).map_err(damaged)?;
        // Recognise a store that is not ours before writing anything to it
        // (switching to WAL rewrites the file header).
        // One read transaction, so the version and the tables are read from
        // the same state even while another process migrates.
        {
            let snapshot = conn.unchecked_transaction().map_err(damaged)?;
            check_ours(&snapshot, &p).map_err(|e| match e {
                Ok(refusal) => refusal,
                Err(source) => damaged(source),
            })?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(damaged)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(damaged)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(damaged)?;
        // Read the version and migrate under one write lock, so that
        // processes opening a fresh store at once cannot both migrate it.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(damaged)?;
        // Read again under the lock: another process may have migrated.
        let version = check_ours(&tx, &p).map_err(|e| match e {
            Ok(refusal) => refusal,
            Err(source) => damaged(source),
        })?;
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let v = i as i64 + 1;
            if version < v {
                tx.execute_batch(m).map_err(damaged)?;
                tx.pragma_update(None, "user_version", v).map_err(damaged)?;
            }
        }
        tx.commit().map_err(damaged)?;
        // A quick check that the tables we need are readable.
        conn.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
            .map_err(damaged)?;
        Ok(Store {
            conn,
            path: p,
            spent: Default::default(),
        })
    }

    fn timer(&self) -> Timer {
        Timer {
            started: std::time::Instant::now(),
            spent: self.spent.clone(),
        }
    }

    /// Total time spent in store calls so far.
    pub fn spent(&self) -> Duration {
        self.spent.get()
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        if is_locked(&source) {
            StoreError::Locked {
                path: self.path.clone(),
                source,
            }
        } else {
            StoreError::Damaged {
                path: self.path.clone(),
                source,
            }
        }
    }

    pub fn latest_run(&self, task: &str) -> Result<Option<RunRow>> {
        let _t = self.timer();
        self.one(
            "SELECT id, task, pipeline_path, pipeline_hash, pipeline_text, status, outcome, end_name, started_ms, finished_ms
             FROM runs WHERE task = ?1 ORDER BY id DESC LIMIT 1",
            [task],
            run_row,
        )
    }

    pub fn runs(&self, task: Option<&str>) -> Result<Vec<RunRow>> {
        let _t = self.timer();
        self.all(
            "SELECT id, task, pipeline_path, pipeline_hash, pipeline_text, status, outcome, end_name, started_ms, finished_ms
                 FROM runs WHERE (?1 IS NULL OR task = ?1) ORDER BY id",
            [task],
            run_row,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_run(
        &self,
        task: &str,
        pipeline_path: &str,
        pipeline_hash: &str,
        pipeline_text: &str,
        vars_json: &str,
        worktree: &str,
        host: &str,
    ) -> Result<i64> {
        let _t = self.timer();
        self.conn
            .execute(
                "INSERT INTO runs (task, pipeline_path, pipeline_hash, pipeline_text, vars, worktree, status, pid, host, started_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9)",
                params![
                    task,
                    pipeline_path,
                    pipeline_hash,
                    pipeline_text,
                    vars_json,
                    worktree,
                    std::process::id(),
                    host,
                    now_ms()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_run_status(&self, run_id: i64, status: &str) -> Result<()> {
        let _t = self.timer();
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, pid = ?3 WHERE id = ?1",
                params![run_id, status, std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn finish_run(&self, run_id: i64, outcome: &str, end_name: &str) -> Result<()> {
        let _t = self.timer();
        self.conn
            .execute(
                "UPDATE runs SET status = 'finished', outcome = ?2, end_name = ?3, finished_ms = ?4 WHERE id = ?1",
                params![run_id, outcome, end_name, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn attempts(&self, run_id: i64) -> Result<Vec<AttemptRow>> {
        let _t = self.timer();
        self.all(
            &format!("{ATTEMPT_SELECT} WHERE run_id = ?1 ORDER BY id"),
            [run_id],
            attempt_row,
        )
    }

    /// The run's latest attempt.
    pub fn last_attempt(&self, run_id: i64) -> Result<Option<AttemptRow>> {
        let _t = self.timer();
        self.one(
            &format!("{ATTEMPT_SELECT} WHERE run_id = ?1 ORDER BY id DESC LIMIT 1"),
            [run_id],
            attempt_row,
        )
    }

    pub fn attempt(&self, id: i64) -> Result<Option<AttemptRow>> {
        let _t = self.timer();
        self.one(
            &format!("{ATTEMPT_SELECT} WHERE id = ?1"),
            [id],
            attempt_row,
        )
    }

    /// Attempts of a stage in a run (attempt numbers run 1..=count).
    pub fn attempt_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        let _t = self.timer();
        self.one(
            "SELECT count(*) FROM attempts WHERE run_id = ?1 AND stage = ?2",
            params![run_id, stage],
            |r| r.get(0),
        )
        .map(Option::unwrap_or_default)
    }

    /// Rollbacks (`fail` transitions) a stage took in a run.
    pub fn fail_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        let _t = self.timer();
        self.one(
            "SELECT count(*) FROM transitions WHERE run_id = ?1 AND from_stage = ?2 AND kind = 'fail'",
            params![run_id, stage],
            |r| r.get(0),
        )
        .map(Option::unwrap_or_default)
    }

    pub fn position(&self, run_id: i64) -> Result<Position> {
        let _t = self.timer();
        self.one(
            "SELECT count(*), (SELECT to_stage FROM transitions WHERE run_id = ?1 ORDER BY id DESC LIMIT 1)
             FROM transitions WHERE run_id = ?1",
            [run_id],
            |r| {
                Ok(Position {
                    transitions: r.get(0)?,
                    last_to: r.get(1)?,
                })
            },
        )
        .map(|p| {
            p.unwrap_or(Position {
                transitions: 0,
                last_to: None,
            })
        })
    }

    /// Every row of a cached statement.
    fn all<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(p, f)
            .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.err(e));
        rows
    }

    /// One row (or none) of a cached statement.
    fn one<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.query_row(p, f).optional().map_err(|e| self.err(e))
    }

    pub fn transitions(&self, run_id: i64) -> Result<Vec<TransitionRow>> {
        let _t = self.timer();
        self.all(
            "SELECT id, attempt_id, from_stage, kind, to_stage, reason FROM transitions WHERE run_id = ?1 ORDER BY id",
            [run_id],
            |r| {
                Ok(TransitionRow {
                    id: r.get(0)?,
                    attempt_id: r.get(1)?,
                    from_stage: r.get(2)?,
                    kind: r.get(3)?,
                    to_stage: r.get(4)?,
                    reason: r.get(5)?,
                })
            },
        )
    }

    pub fn pending_alerts(&self, run_id: i64) -> Result<Vec<AlertRow>> {
        let _t = self.timer();
        self.all(
            "SELECT id, stage, alert, status FROM alerts WHERE run_id = ?1 AND status = 'pending' ORDER BY id",
            [run_id],
            |r| {
                Ok(AlertRow {
                    id: r.get(0)?,
                    stage: r.get(1)?,
                    alert: r.get(2)?,
                    status: r.get(3)?,
                })
            },
        )
    }

    pub fn insert_attempt(&self, a: &NewAttempt<'_>) -> Result<i64> {
        let _t = self.timer();
        let argv = serde_json::to_string(a.argv).unwrap_or_else(|_| "[]".into());
        self.exec(
                "INSERT INTO attempts (run_id, task, stage, attempt, call_site, producer, producer_name, argv, defers, step, started_ms, log_path, visit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'started', ?10, ?11, ?12)",
                params![
                    a.run_id,
                    a.task,
                    a.stage,
                    a.attempt,
                    a.call_site,
                    a.producer,
                    a.producer_name,
                    argv,
                    a.defers,
                    now_ms(),
                    a.log_path,
                    a.visit
                ],
            )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_pgid(&self, attempt_id: i64, pgid: u32) -> Result<()> {
        let _t = self.timer();
        self.exec(
            "UPDATE attempts SET pgid = ?2 WHERE id = ?1",
            params![attempt_id, pgid],
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record_exit(
        &self,
        attempt_id: i64,
        exit_code: Option<i32>,
        exit: &str,
        verdict: &str,
        leaks: &[String],
        duration: Duration,
        tail: &[String],
    ) -> Result<()> {
        let _t = self.timer();
        self.exec(
            "UPDATE attempts SET step = 'exited', exit_code = ?2, exit = ?3, verdict = ?4, leaked = ?5, leaks = ?6,
                 finished_ms = ?7, duration_ms = ?8, tail = ?9 WHERE id = ?1",
            params![
                attempt_id,
                exit_code,
                exit,
                verdict,
                !leaks.is_empty(),
                serde_json::to_string(leaks).unwrap_or_default(),
                now_ms(),
                duration.as_millis() as i64,
                tail.join("\n")
            ],
        )
    }

    pub fn record_artifact(&self, attempt_id: i64, sha256: Option<&str>) -> Result<()> {
        let _t = self.timer();
        self.exec(
            "UPDATE attempts SET step = 'artifact', artifact_sha256 = ?2 WHERE id = ?1",
            params![attempt_id, sha256],
        )
    }

    pub fn record_gate(&self, attempt_id: i64, pass: bool, reason: &str) -> Result<()> {
        let _t = self.timer();
        self.exec(
            "UPDATE attempts SET step = 'gated', gate_pass = ?2, gate_reason = ?3 WHERE id = ?1",
            params![attempt_id, pass, reason],
        )
    }

    pub fn set_step(&self, attempt_id: i64, step: Step) -> Result<()> {
        let _t = self.timer();
        self.exec(
            "UPDATE attempts SET step = ?2 WHERE id = ?1",
            params![attempt_id, step.as_str()],
        )
    }

    /// Records a transition, closes its attempt and queues its alert, in one
    /// transaction: after a crash either all of it happened or none did.
    #[allow(clippy::too_many_arguments)]
    pub fn record_transition(
        &self,
        run_id: i64,
        attempt_id: Option<i64>,
        from: &str,
        kind: &str,
        to: &str,
        reason: &str,
        alert: Option<&str>,
    ) -> Result<Option<i64>> {
        let _t = self.timer();
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            tx.prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute(p))
                .map_err(|e| self.err(e))
        };
        exec(
            "INSERT INTO transitions (run_id, attempt_id, from_stage, kind, to_stage, reason, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![run_id, attempt_id, from, kind, to, reason, now_ms()],
        )?;
        let transition_id = tx.last_insert_rowid();
        if let Some(a) = attempt_id {
            exec(
                "UPDATE attempts SET step = 'done' WHERE id = ?1",
                params![a],
            )?;
        }
        let mut alert_id = None;
        if let Some(alert) = alert {
            exec(
                "INSERT INTO alerts (run_id, transition_id, stage, alert, status, at_ms) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                params![run_id, transition_id, from, alert, now_ms()],
            )?;
            alert_id = Some(tx.last_insert_rowid());
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(alert_id)
    }

    /// Every finished LLM attempt in the store: (call-site, duration in ms).
    pub fn llm_attempts(&self) -> Result<Vec<(String, i64)>> {
        let _t = self.timer();
        self.all(
            "SELECT call_site, duration_ms FROM attempts WHERE producer = 'llm' AND duration_ms IS NOT NULL ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    pub fn finish_alert(&self, alert_id: i64, ok: bool, exit: &str) -> Result<()> {
        let _t = self.timer();
        self.exec(
            "UPDATE alerts SET status = ?2, exit = ?3 WHERE id = ?1",
            params![alert_id, if ok { "ok" } else { "failed" }, exit],
        )
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(p))
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

const ATTEMPT_SELECT: &str = "SELECT id, run_id, task, stage, attempt, call_site, producer, producer_name, argv, defers, step, pgid,
    exit_code, exit, verdict, leaked, started_ms, finished_ms, duration_ms, log_path, artifact_sha256, gate_pass, gate_reason, tail, visit
    FROM attempts";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        task: r.get(1)?,
        pipeline_path: r.get(2)?,
        pipeline_hash: r.get(3)?,
        pipeline_text: r.get(4)?,
        status: r.get(5)?,
        outcome: r.get(6)?,
        end_name: r.get(7)?,
        started_ms: r.get(8)?,
        finished_ms: r.get(9)?,
    })
}

fn attempt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptRow> {
    let argv: String = r.get(8)?;
    let step: String = r.get(10)?;
    let tail: Option<String> = r.get(23)?;
    Ok(AttemptRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        task: r.get(2)?,
        stage: r.get(3)?,
        attempt: r.get(4)?,
        visit: r.get(24)?,
        call_site: r.get(5)?,
        producer: r.get(6)?,
        producer_name: r.get(7)?,
        argv: serde_json::from_str(&argv).unwrap_or_default(),
        defers: r.get(9)?,
        step: Step::parse(&step),
        pgid: r.get(11)?,
        exit_code: r.get(12)?,
        exit: r.get(13)?,
        verdict: r.get(14)?,
        leaked: r.get(15)?,
        started_ms: r.get(16)?,
        finished_ms: r.get(17)?,
        duration_ms: r.get(18)?,
        log_path: r.get(19)?,
        artifact_sha256: r.get(20)?,
        gate_pass: r.get(21)?,
        gate_reason: r.get(22)?,
        tail: tail
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default(),
    })
}
