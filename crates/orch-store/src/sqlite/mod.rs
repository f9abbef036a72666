//! The embedded store: SQLite (bundled) at `STATE/orch.db`, WAL mode, locks
//! as OS file locks under `STATE/locks/`.
//!
//! Durability is at process-crash level: WAL with `synchronous=NORMAL` never
//! loses a committed row when the process dies (only an OS crash can drop
//! the last commits), at a fraction of the cost of a sync per step.
//!
//! One connection behind a mutex serves every task of the process: each
//! call is short and never held across an await.

mod approvals;
mod queue;
mod rows;
mod schema;

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::lock::{self, Lock};
use crate::records::*;
use crate::{now_ms, LockKey, Result, RunStore, StoreError};
use rows::{attempt_row, run_row, ATTEMPT_SELECT, RUN_SELECT};
use schema::SCHEMA_VERSION;

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The database file this store opened: a file deleted or replaced
    /// under a run is noticed before the next step is written to it.
    identity: FileId,
    locks: PathBuf,
    /// Nanoseconds spent in store calls, for `ORCH_PROFILE`.
    spent: AtomicU64,
}

/// The connection, and the time until it is released added to `spent`.
struct Held<'a> {
    conn: MutexGuard<'a, Connection>,
    started: Instant,
    spent: &'a AtomicU64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let ns = self.started.elapsed().as_nanos() as u64;
        self.spent.fetch_add(ns, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

fn json(v: &[String], what: &'static str) -> Result<String> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode { what, source })
}

fn box_err(e: rusqlite::Error) -> crate::error::Source {
    Box::new(e)
}

/// Maps an SQLite error met on the store at `path` to what it means.
fn classify(path: &Path, source: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let path = path.to_path_buf();
    let code = source.sqlite_error_code();
    let source_box = || box_err(source);
    match code {
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Locked {
            path,
            source: source_box(),
        },
        Some(C::NotADatabase) => StoreError::Foreign {
            path,
            detail: "not an SQLite database".into(),
        },
        Some(C::DiskFull) => StoreError::DiskFull {
            path,
            source: source_box(),
        },
        Some(C::ReadOnly) => StoreError::ReadOnly {
            path,
            source: source_box(),
        },
        Some(C::CannotOpen) => StoreError::CantOpen {
            path,
            source: source_box(),
        },
        Some(C::SystemIoFailure) => StoreError::Io {
            path,
            source: source_box(),
        },
        _ => StoreError::Damaged {
            path,
            source: source_box(),
        },
    }
}

/// Maps an SQLite error met while opening `path` to what it means.
fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    classify(path, source)
}

/// What identifies a file: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(FileId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// `Err(reason)` when this process may not write `path` (missing files are
/// someone else's concern).
fn refuse_unwritable(path: &Path) -> std::result::Result<(), String> {
    use nix::errno::Errno;
    match nix::unistd::access(path, nix::unistd::AccessFlags::W_OK) {
        Err(e @ (Errno::EACCES | Errno::EROFS | Errno::EPERM)) => {
            Err(format!("{}: {}", path.display(), e.desc()))
        }
        _ => Ok(()),
    }
}

/// `path` as an SQLite URI (`file:` and the path, percent-encoded).
fn uri_of(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

impl SqliteStore {
    /// Opens (creating or migrating) the store of a state directory.
    pub fn open_dir(state_dir: &Path) -> Result<SqliteStore> {
        SqliteStore::open(&state_dir.join("orch.db"))
    }

    /// The store of `state_dir` for reading, opened read-only (see
    /// [`SqliteStore::open_read_only`]); `None` when nothing was ever
    /// recorded there (no database is created by looking).
    pub fn open_existing(state_dir: &Path) -> Result<Option<SqliteStore>> {
        match std::fs::metadata(state_dir) {
            Ok(m) if !m.is_dir() => {
                return Err(StoreError::NotADirectory {
                    path: state_dir.to_path_buf(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(state_dir, e)),
        }
        let db = state_dir.join("orch.db");
        match std::fs::metadata(&db) {
            Ok(_) => SqliteStore::open_read_only(&db),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&db, e)),
        }
    }

    /// Opens the store at `path` for reading only: no open-lock, no
    /// migration, no switch of journal mode, nothing written. A store that
    /// needs a migration is refused (`Older`); `None` when the database
    /// holds no schema yet (a run is creating it).
    ///
    /// Without write access to the database or its directory, a store
    /// whose write-ahead log is empty is opened immutable, so that SQLite
    /// creates no `-shm` file (one created read-only would break the runs
    /// of whoever may write the store); one with pending commits in its
    /// log is refused, saying why.
    pub(crate) fn open_read_only(path: &Path) -> Result<Option<SqliteStore>> {
        use rusqlite::OpenFlags;
        let p = path.to_path_buf();
        let dir = path.parent().unwrap_or(Path::new("."));
        let may_write = refuse_unwritable(dir)
            .and_then(|_| refuse_unwritable(path))
            .is_ok();
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let shm = PathBuf::from(format!("{}-shm", path.display()));
        let pending = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
        let mut uri = uri_of(path) + "?mode=ro";
        if !may_write {
            if !pending {
                uri.push_str("&immutable=1");
            } else if !shm.exists() {
                return Err(StoreError::ReadOnly {
                    path: p,
                    source: format!(
                        "its write-ahead log {} holds commits not yet in the database, and reading them without write access would create {} read-only; read it once with write access",
                        wal.display(),
                        shm.display()
                    )
                    .into(),
                });
            }
        }
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(&p, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| classify(&p, e))?;
        let version = {
            let snapshot = conn.unchecked_transaction().map_err(|e| classify(&p, e))?;
            let version = schema::check_ours(&snapshot, &p).map_err(|e| match e {
                Ok(refusal) => refusal,
                Err(source) => classify(&p, source),
            })?;
            if version == 0 {
                return Ok(None);
            }
            if version < SCHEMA_VERSION {
                return Err(StoreError::Older {
                    path: p,
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            snapshot
                .query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
                .map_err(|e| classify(&p, e))?;
            version
        };
        let _ = version;
        let identity = file_id(path).map_err(|e| io_error(path, e))?;
        Ok(Some(SqliteStore {
            conn: Mutex::new(conn),
            path: p,
            identity,
            locks: dir.join("locks"),
            spent: AtomicU64::new(0),
        }))
    }

    /// Opens (creating or migrating) the store at `path`; its locks live in
    /// `locks/` beside it.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let p = path.to_path_buf();
        // Without write access SQLite would open the database read-only and
        // fail at the first step (after creating a read-only `-shm` that
        // breaks later runs): refuse before touching anything.
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Err(reason) = refuse_unwritable(dir).and_then(|_| refuse_unwritable(path)) {
            return Err(StoreError::ReadOnly {
                path: p,
                source: format!("no write permission on {reason}").into(),
            });
        }
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
            source: box_err(source),
        })?;
        let damaged = |source| open_error(&p, source);
        conn.busy_timeout(Duration::from_secs(5)).map_err(damaged)?;
        schema::set_up(&mut conn, &p)?;
        let identity = file_id(path).map_err(|e| io_error(path, e))?;
        let locks = dir.join("locks");
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: p,
            identity,
            locks,
            spent: AtomicU64::new(0),
        })
    }

    /// The connection; a panic elsewhere while it was held does not make
    /// the rows unreadable (SQLite rolled back whatever was half done).
    fn conn(&self) -> Held<'_> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Held {
            conn,
            started: Instant::now(),
            spent: &self.spent,
        }
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        classify(&self.path, source)
    }

    /// The database file must still be the one this store opened: SQLite
    /// goes on writing to a deleted file, and every step written there
    /// would be lost.
    fn check_identity(&self) -> Result<()> {
        let replaced = |detail: &str| StoreError::Replaced {
            path: self.path.clone(),
            detail: detail.into(),
        };
        match file_id(&self.path) {
            Ok(id) if id == self.identity => Ok(()),
            Ok(_) => Err(replaced("another file is at its path now")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(replaced("the file is gone")),
            Err(e) => Err(io_error(&self.path, e)),
        }
    }

    /// Every row of a cached statement.
    fn all<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
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
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.query_row(p, f).optional().map_err(|e| self.err(e))
    }

    fn count(&self, sql: &str, p: impl rusqlite::Params) -> Result<i64> {
        self.one(sql, p, |r| r.get(0))
            .map(Option::unwrap_or_default)
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        self.check_identity()?;
        self.conn()
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(p))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Inserts and returns the new row's id, under one hold of the
    /// connection (another task's insert cannot come between).
    fn insert(&self, sql: &str, p: impl rusqlite::Params) -> Result<i64> {
        self.check_identity()?;
        let conn = self.conn();
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(p))
            .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }

    fn lock_path(&self, key: &LockKey) -> PathBuf {
        match key {
            LockKey::Task(t) => self.locks.join(format!("task.{t}.lock")),
            LockKey::Stage(s) => self.locks.join(format!("stage.{s}.lock")),
        }
    }

    fn transition_tx(&self, t: &NewTransition<'_>) -> Result<Option<i64>> {
        self.check_identity()?;
        let conn = self.conn();
        let tx = conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            tx.prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute(p))
                .map_err(|e| self.err(e))
        };
        exec(
            "INSERT INTO transitions (run_id, attempt_id, from_stage, kind, to_stage, reason, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.run_id,
                t.attempt_id,
                t.from,
                t.kind.as_str(),
                t.to,
                t.reason,
                now_ms()
            ],
        )?;
        let transition_id = tx.last_insert_rowid();
        if let Some(a) = t.attempt_id {
            exec(
                "UPDATE attempts SET step = 'done' WHERE id = ?1",
                params![a],
            )?;
        }
        let mut alert_id = None;
        if let Some(alert) = t.alert {
            exec(
                "INSERT INTO alerts (run_id, transition_id, stage, alert, status, at_ms) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                params![t.run_id, transition_id, t.from, alert, now_ms()],
            )?;
            alert_id = Some(tx.last_insert_rowid());
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(alert_id)
    }
}

impl RunStore for SqliteStore {
    type Guard = Lock;

    async fn latest_run(&self, task: &str) -> Result<Option<Run>> {
        self.one(
            &format!("{RUN_SELECT} WHERE task = ?1 ORDER BY id DESC LIMIT 1"),
            [task],
            run_row,
        )
    }

    async fn runs(&self, task: Option<&str>) -> Result<Vec<Run>> {
        self.all(
            &format!("{RUN_SELECT} WHERE (?1 IS NULL OR task = ?1) ORDER BY id"),
            [task],
            run_row,
        )
    }

    async fn create_run(&self, r: &NewRun<'_>) -> Result<i64> {
        let vars = serde_json::to_string(r.vars).map_err(|source| StoreError::Encode {
            what: "the variables",
            source,
        })?;
        self.insert(
            "INSERT INTO runs (task, pipeline_path, pipeline_hash, pipeline_text, vars, worktree, status, pid, host, started_ms, pipeline_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10)",
            params![
                r.task,
                r.pipeline_path,
                r.pipeline_hash,
                r.pipeline_text,
                vars,
                r.worktree,
                std::process::id(),
                r.host,
                now_ms(),
                r.pipeline_name
            ],
        )
    }

    async fn set_run_status(&self, run_id: i64, status: RunStatus) -> Result<()> {
        self.exec(
            "UPDATE runs SET status = ?2, pid = ?3 WHERE id = ?1",
            params![run_id, status.as_str(), std::process::id()],
        )
    }

    async fn set_run_bindings(
        &self,
        run_id: i64,
        vars: &std::collections::BTreeMap<String, String>,
        worktree: &str,
    ) -> Result<()> {
        let vars = serde_json::to_string(vars).map_err(|source| StoreError::Encode {
            what: "the variables",
            source,
        })?;
        self.exec(
            "UPDATE runs SET vars = ?2, worktree = ?3 WHERE id = ?1",
            params![run_id, vars, worktree],
        )
    }

    async fn relocate_logs(&self, run_id: i64, from: &str, to: &str) -> Result<()> {
        let prefix = format!("{}/", from.trim_end_matches('/'));
        let to = format!("{}/", to.trim_end_matches('/'));
        self.exec(
            "UPDATE attempts SET log_path = ?3 || substr(log_path, length(?2) + 1)
             WHERE run_id = ?1 AND substr(log_path, 1, length(?2)) = ?2",
            params![run_id, prefix, to],
        )
    }

    async fn add_run_note(&self, run_id: i64, text: &str) -> Result<()> {
        self.exec(
            "INSERT INTO run_notes (run_id, text, at_ms) VALUES (?1, ?2, ?3)",
            params![run_id, text, now_ms()],
        )
    }

    async fn run_notes(&self, run_id: i64) -> Result<Vec<RunNote>> {
        self.all(
            "SELECT at_ms, text FROM run_notes WHERE run_id = ?1 ORDER BY id",
            [run_id],
            |r| {
                Ok(RunNote {
                    at_ms: r.get(0)?,
                    text: r.get(1)?,
                })
            },
        )
    }

    async fn finish_run(&self, run_id: i64, outcome: Outcome, end: &str) -> Result<()> {
        self.exec(
            "UPDATE runs SET status = 'finished', outcome = ?2, end_name = ?3, finished_ms = ?4 WHERE id = ?1",
            params![run_id, outcome.as_str(), end, now_ms()],
        )
    }

    async fn attempts(&self, run_id: i64) -> Result<Vec<Attempt>> {
        self.all(
            &format!("{ATTEMPT_SELECT} WHERE run_id = ?1 ORDER BY id"),
            [run_id],
            attempt_row,
        )
    }

    async fn last_attempt(&self, run_id: i64) -> Result<Option<Attempt>> {
        self.one(
            &format!("{ATTEMPT_SELECT} WHERE run_id = ?1 ORDER BY id DESC LIMIT 1"),
            [run_id],
            attempt_row,
        )
    }

    async fn last_attempts(&self) -> Result<Vec<Attempt>> {
        self.all(
            &format!(
                "{ATTEMPT_SELECT} WHERE id IN (SELECT MAX(id) FROM attempts GROUP BY run_id) ORDER BY id"
            ),
            (),
            attempt_row,
        )
    }

    async fn attempt(&self, id: i64) -> Result<Option<Attempt>> {
        self.one(
            &format!("{ATTEMPT_SELECT} WHERE id = ?1"),
            [id],
            attempt_row,
        )
    }

    async fn attempt_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        self.count(
            "SELECT count(*) FROM attempts WHERE run_id = ?1 AND stage = ?2",
            params![run_id, stage],
        )
    }

    async fn insert_attempt(&self, a: &NewAttempt<'_>) -> Result<i64> {
        let argv = json(a.argv, "the argv")?;
        self.insert(
            "INSERT INTO attempts (run_id, task, stage, attempt, call_site, producer, producer_name, argv, defers, step, started_ms, log_path, visit)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'started', ?10, ?11, ?12)",
            params![
                a.run_id,
                a.task,
                a.stage,
                a.attempt,
                a.call_site,
                a.producer.as_str(),
                a.producer_name,
                argv,
                a.defers,
                now_ms(),
                a.log_path,
                a.visit
            ],
        )
    }

    async fn record_group(&self, attempt_id: i64, g: &GroupRecord) -> Result<()> {
        self.exec(
            "UPDATE attempts SET pgid = ?2, pg_leader_start = ?3, pg_boot_id = ?4, pg_host = ?5, pg_token = ?6 WHERE id = ?1",
            params![attempt_id, g.pgid, g.leader_start, g.boot_id, g.host, g.token],
        )
    }

    async fn record_exit(&self, attempt_id: i64, e: &ExitRecord<'_>) -> Result<()> {
        let leaks = json(e.leaks, "the leaks")?;
        self.exec(
            "UPDATE attempts SET step = 'exited', exit_code = ?2, exit = ?3, verdict = ?4, leaked = ?5, leaks = ?6,
                 finished_ms = ?7, duration_ms = ?8, tail = ?9 WHERE id = ?1",
            params![
                attempt_id,
                e.exit_code,
                e.exit,
                e.verdict,
                !e.leaks.is_empty(),
                leaks,
                now_ms(),
                e.duration.as_millis() as i64,
                e.tail.join("\n")
            ],
        )
    }

    async fn record_artifact(&self, attempt_id: i64, sha256: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE attempts SET step = 'artifact', artifact_sha256 = ?2 WHERE id = ?1",
            params![attempt_id, sha256],
        )
    }

    async fn record_gate(&self, attempt_id: i64, pass: bool, reason: &str) -> Result<()> {
        self.exec(
            "UPDATE attempts SET step = 'gated', gate_pass = ?2, gate_reason = ?3 WHERE id = ?1",
            params![attempt_id, pass, reason],
        )
    }

    async fn set_step(&self, attempt_id: i64, step: Step) -> Result<()> {
        self.exec(
            "UPDATE attempts SET step = ?2 WHERE id = ?1",
            params![attempt_id, step.as_str()],
        )
    }

    async fn record_transition(&self, t: &NewTransition<'_>) -> Result<Option<i64>> {
        self.transition_tx(t)
    }

    async fn transitions(&self, run_id: i64) -> Result<Vec<Transition>> {
        self.all(
            "SELECT id, attempt_id, from_stage, kind, to_stage, reason FROM transitions WHERE run_id = ?1 ORDER BY id",
            [run_id],
            rows::transition_row,
        )
    }

    async fn position(&self, run_id: i64) -> Result<Position> {
        // Once per step of the run: a store deleted under it stops it here
        // at the latest.
        self.check_identity()?;
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

    async fn fail_count(&self, run_id: i64, stage: &str) -> Result<i64> {
        self.count(
            "SELECT count(*) FROM transitions WHERE run_id = ?1 AND from_stage = ?2 AND kind = 'fail'",
            params![run_id, stage],
        )
    }

    async fn pending_alerts(&self, run_id: i64) -> Result<Vec<Alert>> {
        self.all(
            "SELECT id, stage, alert, status, exit FROM alerts WHERE run_id = ?1 AND status = 'pending' ORDER BY id",
            [run_id],
            rows::alert_row,
        )
    }

    async fn alerts(&self, run_id: i64) -> Result<Vec<Alert>> {
        self.all(
            "SELECT id, stage, alert, status, exit FROM alerts WHERE run_id = ?1 ORDER BY id",
            [run_id],
            rows::alert_row,
        )
    }

    async fn finish_alert(&self, alert_id: i64, ok: bool, exit: &str) -> Result<()> {
        let status = if ok {
            AlertStatus::Ok
        } else {
            AlertStatus::Failed
        };
        self.exec(
            "UPDATE alerts SET status = ?2, exit = ?3 WHERE id = ?1",
            params![alert_id, status.as_str(), exit],
        )
    }

    async fn llm_attempts(&self, pipeline: &str) -> Result<Vec<LlmAttempt>> {
        self.all(
            "SELECT a.call_site, a.duration_ms, r.pipeline_hash FROM attempts a JOIN runs r ON r.id = a.run_id
             WHERE a.producer = 'llm' AND a.duration_ms IS NOT NULL AND r.pipeline_name = ?1 ORDER BY a.id",
            [pipeline],
            |r| {
                Ok(LlmAttempt {
                    call_site: r.get(0)?,
                    duration_ms: r.get(1)?,
                    pipeline_hash: r.get(2)?,
                })
            },
        )
    }

    async fn try_lock(
        &self,
        key: &LockKey,
        holder: &str,
    ) -> Result<std::result::Result<Lock, String>> {
        let path = self.lock_path(key);
        std::fs::create_dir_all(&self.locks).map_err(|source| StoreError::Lock {
            path: self.locks.clone(),
            source,
        })?;
        lock::try_lock(&path, holder).map_err(|source| StoreError::Lock { path, source })
    }

    async fn lock_holder(&self, key: &LockKey) -> Result<Option<String>> {
        Ok(lock::holder(&self.lock_path(key)))
    }

    async fn stage_locks(&self) -> Result<Vec<(String, Option<String>)>> {
        Ok(lock::stage_locks(&self.locks))
    }

    async fn enqueue(&self, t: &NewQueuedTask<'_>) -> Result<Option<i64>> {
        self.enqueue_tx(t)
    }

    async fn queue(&self, state: Option<QueueState>) -> Result<Vec<QueuedTask>> {
        self.queue_list(state)
    }

    async fn queued_task(&self, task: &str) -> Result<Option<QueuedTask>> {
        self.queue_one(task)
    }

    async fn take_queued_for(&self, labels: &[String]) -> Result<Option<QueuedTask>> {
        self.take_queued_tx(labels)
    }

    async fn release_queued(&self, task: &str, needs: &[String]) -> Result<bool> {
        self.release_queued_row(task, needs)
    }

    async fn move_queued(
        &self,
        task: &str,
        from: QueueState,
        to: QueueState,
        error: Option<&str>,
    ) -> Result<bool> {
        self.move_queued_row(task, from, to, error)
    }

    async fn request_approval(&self, r: &NewApprovalRequest<'_>) -> Result<i64> {
        self.request_approval_tx(r)
    }

    async fn approvals(&self, task: Option<&str>) -> Result<Vec<Approval>> {
        self.approvals_of(task)
    }

    async fn approval_of_attempt(&self, attempt_id: i64) -> Result<Option<Approval>> {
        self.approval_of_attempt_row(attempt_id)
    }

    async fn decide_approval(
        &self,
        request_id: i64,
        d: &NewDecision<'_>,
    ) -> Result<DecisionOutcome> {
        self.decide_tx(request_id, d)
    }

    fn spent(&self) -> Duration {
        Duration::from_nanos(self.spent.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_errors_say_what_is_wrong_with_the_store() {
        let path = Path::new("/state/orch.db");
        let said = |code| classify(path, failure(code)).to_string();
        let full = said(rusqlite::ffi::SQLITE_FULL);
        assert!(
            full.contains("/state/orch.db") && full.contains("disk full"),
            "{full}"
        );
        let ro = said(rusqlite::ffi::SQLITE_READONLY);
        assert!(ro.contains("it is read-only"), "{ro}");
        let cant = said(rusqlite::ffi::SQLITE_CANTOPEN);
        assert!(
            cant.contains("cannot open the run store /state/orch.db"),
            "{cant}"
        );
        let io = said(rusqlite::ffi::SQLITE_IOERR);
        assert!(io.contains("I/O error on the run store"), "{io}");
        for s in [full, ro, cant, io] {
            assert!(!s.contains("damaged"), "{s}");
        }
        assert!(said(rusqlite::ffi::SQLITE_CORRUPT).contains("damaged"));
    }

    #[test]
    fn a_read_only_open_of_an_unmigrated_store_is_refused_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("orch-store-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("orch.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let before = std::fs::read(&db).unwrap();
        let refused = SqliteStore::open_existing(&dir)
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("older than this orch's") && e.contains("orch.db")),
            "{refused:?}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "not migrated");
        assert!(!dir.join("orch.db.open-lock").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
