//! The SQLite schema, versioned by `PRAGMA user_version`, and the checks
//! that a database is an orch store this build understands.

use rusqlite::Connection;
use std::path::Path;

use crate::StoreError;

/// The schema version this build writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // 2: what identifies a producer's process group beyond its number.
    r#"
ALTER TABLE attempts ADD COLUMN pg_leader_start INTEGER;
ALTER TABLE attempts ADD COLUMN pg_boot_id TEXT;
ALTER TABLE attempts ADD COLUMN pg_host TEXT;
ALTER TABLE attempts ADD COLUMN pg_token TEXT;
"#,
    // 3: the pipeline's own name (a roadmap ranks a pipeline by its runs),
    // and what a run's account must say beyond its steps (consents given on
    // resume).
    r#"
ALTER TABLE runs ADD COLUMN pipeline_name TEXT;
CREATE TABLE run_notes (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    text TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX run_notes_by_run ON run_notes(run_id, id);
"#,
    // 4 (the service): the durable task queue, in submission order. A task
    // name is queued once: a name that exists here or has runs is refused.
    r#"
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL UNIQUE,
    vars TEXT NOT NULL,
    worktree TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    submitted_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER
);
CREATE INDEX queue_by_state ON queue(state, id);
"#,
    // 5 (approvals): a person's decision. A request per approval attempt;
    // at most one decision per request (UNIQUE), so a second is refused.
    r#"
CREATE TABLE approval_requests (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    attempt_id INTEGER NOT NULL UNIQUE REFERENCES attempts(id),
    task TEXT NOT NULL,
    stage TEXT NOT NULL,
    approval TEXT NOT NULL,
    approvers TEXT NOT NULL,
    show TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX approval_requests_by_task ON approval_requests(task, id);
CREATE TABLE approval_decisions (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL UNIQUE REFERENCES approval_requests(id),
    decision TEXT NOT NULL,
    decider TEXT NOT NULL,
    comment TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"#,
    // 6 (labels): the labels a released task's next stage needs (a JSON
    // list; NULL: none). Only a service holding them all takes the task.
    r#"
ALTER TABLE queue ADD COLUMN needs TEXT;
"#,
];

/// The schema of version [`SCHEMA_VERSION`] in one script, for a new store:
/// running the migrations one by one costs a fresh store (every `orch run`
/// of a new state directory) SQLite re-reading its schema after each
/// `ALTER TABLE`. A test checks it equals the migrations' result.
const CURRENT: &str = r#"
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
    finished_ms INTEGER,
    pipeline_name TEXT
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
    tail TEXT,
    pg_leader_start INTEGER,
    pg_boot_id TEXT,
    pg_host TEXT,
    pg_token TEXT
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
CREATE TABLE run_notes (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    text TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX run_notes_by_run ON run_notes(run_id, id);
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL UNIQUE,
    vars TEXT NOT NULL,
    worktree TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    submitted_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    needs TEXT
);
CREATE INDEX queue_by_state ON queue(state, id);
CREATE TABLE approval_requests (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    attempt_id INTEGER NOT NULL UNIQUE REFERENCES attempts(id),
    task TEXT NOT NULL,
    stage TEXT NOT NULL,
    approval TEXT NOT NULL,
    approvers TEXT NOT NULL,
    show TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX approval_requests_by_task ON approval_requests(task, id);
CREATE TABLE approval_decisions (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL UNIQUE REFERENCES approval_requests(id),
    decision TEXT NOT NULL,
    decider TEXT NOT NULL,
    comment TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"#;

/// The store's schema version, or why it is not a store this build can use
/// (`Ok(refusal)`), or an SQLite error (`Err`).
pub(super) fn check_ours(
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
            supported: SCHEMA_VERSION,
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

pub(super) fn open_error_at(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| super::open_error(path, source)
}

/// Recognises the database as ours (before writing anything to it: the
/// switch to WAL rewrites the file header), then migrates it under one
/// write lock so that processes opening a fresh store at once cannot both
/// migrate it.
pub(super) fn set_up(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let damaged = open_error_at(path);
    let refusal = |e: Result<StoreError, rusqlite::Error>| match e {
        Ok(refusal) => refusal,
        Err(source) => damaged(source),
    };
    {
        // One read transaction, so the version and the tables are read from
        // the same state even while another process migrates.
        let snapshot = conn.unchecked_transaction().map_err(&damaged)?;
        check_ours(&snapshot, path).map_err(refusal)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&damaged)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&damaged)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&damaged)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&damaged)?;
    // Read again under the lock: another process may have migrated.
    let version = check_ours(&tx, path).map_err(refusal)?;
    if version == 0 {
        tx.execute_batch(CURRENT).map_err(&damaged)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(&damaged)?;
    }
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let v = i as i64 + 1;
        if version != 0 && version < v {
            tx.execute_batch(m).map_err(&damaged)?;
            tx.pragma_update(None, "user_version", v)
                .map_err(&damaged)?;
        }
    }
    tx.commit().map_err(&damaged)?;
    // A quick check that the tables we need are readable.
    conn.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
        .map_err(&damaged)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's and index's columns, in order, with their declared
    /// types, constraints and defaults.
    fn shape(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let names: Vec<(String, String)> = conn
            .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .expect("read the schema");
        for (kind, name) in names {
            let pragma = if kind == "index" {
                "index_info"
            } else {
                "table_info"
            };
            let cols: Vec<String> = conn
                .prepare(&format!("PRAGMA {pragma}('{name}')"))
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        let row: Vec<String> = (0..r.as_ref().column_count())
                            .map(|i| format!("{:?}", r.get_ref(i)))
                            .collect();
                        Ok(row.join(","))
                    })?
                    .collect::<Result<_, _>>()
                })
                .expect("read the columns");
            out.push(format!("{kind} {name}: {}", cols.join(" | ")));
        }
        out
    }

    #[test]
    fn a_new_store_has_the_schema_the_migrations_build() {
        let fresh = Connection::open_in_memory().expect("a database");
        fresh.execute_batch(CURRENT).expect("the current schema");
        let migrated = Connection::open_in_memory().expect("a database");
        for m in MIGRATIONS {
            migrated.execute_batch(m).expect("a migration");
        }
        let (a, b) = (shape(&fresh), shape(&migrated));
        assert!(a.len() > 8, "tables and indexes: {a:?}");
        assert_eq!(a, b);
    }
}
