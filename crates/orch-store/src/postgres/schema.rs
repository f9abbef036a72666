//! The PostgreSQL schema, versioned in the database (`orch_meta`), and the
//! checks that a schema is an orch store this build understands: a newer
//! version or a schema holding someone else's tables is refused, as the
//! SQLite store refuses them.

use tokio_postgres::Client;

use super::pool::Pool;
use crate::{Result, StoreError};

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` takes a store from version `i` to `i + 1`. The records
/// are those of the SQLite store; `services` and `locks` are what many
/// services need: leases and the locks tied to them. `req` (and
/// `claim_req`) is the id of the request that wrote a row: a statement
/// retried after its connection broke (it may have committed) finds its
/// row instead of writing it twice.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task TEXT NOT NULL,
    pipeline_path TEXT NOT NULL,
    pipeline_hash TEXT NOT NULL,
    pipeline_text TEXT NOT NULL,
    pipeline_name TEXT,
    vars TEXT NOT NULL,
    worktree TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    end_name TEXT,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    req TEXT UNIQUE
);
CREATE INDEX runs_by_task ON runs(task, id);
CREATE TABLE attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    task TEXT NOT NULL,
    stage TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    visit BIGINT NOT NULL,
    call_site TEXT NOT NULL,
    producer TEXT NOT NULL,
    producer_name TEXT NOT NULL,
    argv TEXT NOT NULL,
    defers BIGINT NOT NULL,
    step TEXT NOT NULL,
    pgid BIGINT,
    pg_leader_start BIGINT,
    pg_boot_id TEXT,
    pg_host TEXT,
    pg_token TEXT,
    exit_code BIGINT,
    exit TEXT,
    verdict TEXT,
    leaked BOOLEAN NOT NULL DEFAULT false,
    leaks TEXT,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    duration_ms BIGINT,
    log_path TEXT NOT NULL,
    artifact_sha256 TEXT,
    gate_pass BOOLEAN,
    gate_reason TEXT,
    tail TEXT,
    req TEXT UNIQUE
);
CREATE INDEX attempts_by_run ON attempts(run_id, id);
CREATE INDEX attempts_by_stage ON attempts(run_id, stage);
CREATE TABLE transitions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    attempt_id BIGINT REFERENCES attempts(id),
    from_stage TEXT NOT NULL,
    kind TEXT NOT NULL,
    to_stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    req TEXT UNIQUE
);
CREATE INDEX transitions_by_run ON transitions(run_id, id);
CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    transition_id BIGINT NOT NULL REFERENCES transitions(id),
    stage TEXT NOT NULL,
    alert TEXT NOT NULL,
    status TEXT NOT NULL,
    exit TEXT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX alerts_by_run ON alerts(run_id, id);
CREATE TABLE run_notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    text TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    req TEXT UNIQUE
);
CREATE INDEX run_notes_by_run ON run_notes(run_id, id);
CREATE TABLE services (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    labels TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE queue (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task TEXT NOT NULL UNIQUE,
    vars TEXT NOT NULL,
    worktree TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    owner TEXT,
    claim_req TEXT UNIQUE,
    submitted_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT
);
CREATE INDEX queue_by_state ON queue(state, id);
CREATE TABLE locks (
    key TEXT PRIMARY KEY,
    owner TEXT,
    guard TEXT,
    holder TEXT,
    taken_at TIMESTAMPTZ
);
"#,
    // 2 (approvals): a person's decision. A request per approval attempt;
    // at most one decision per request (UNIQUE), so a second is refused.
    r#"
CREATE TABLE approval_requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    attempt_id BIGINT NOT NULL UNIQUE REFERENCES attempts(id),
    task TEXT NOT NULL,
    stage TEXT NOT NULL,
    approval TEXT NOT NULL,
    approvers TEXT NOT NULL,
    show TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX approval_requests_by_task ON approval_requests(task, id);
CREATE TABLE approval_decisions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT NOT NULL UNIQUE REFERENCES approval_requests(id),
    decision TEXT NOT NULL,
    decider TEXT NOT NULL,
    comment TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    req TEXT UNIQUE
);
"#,
    // 3 (labels): the labels a released task's next stage needs (a JSON
    // list; NULL: none). A service claims only tasks whose needs it holds.
    r#"
ALTER TABLE queue ADD COLUMN needs TEXT;
"#,
    // 4 (artifacts): the bytes of each attempt's artifact (bounded by the
    // engine), so that a service on another host can restore a file an
    // earlier attempt wrote into another service's task directory.
    r#"
CREATE TABLE artifacts (
    attempt_id BIGINT PRIMARY KEY REFERENCES attempts(id),
    sha256 TEXT NOT NULL,
    content BYTEA NOT NULL
);
"#,
    // 5 (cancel): a cancel asked for through another service than the one
    // holding the running task; the holder looks for it and cancels.
    r#"
ALTER TABLE queue ADD COLUMN cancel_requested_ms BIGINT;
"#,
];

/// The schema's version, or why it is not a store this build can use.
async fn check_ours(client: &impl tokio_postgres::GenericClient, pool: &Pool) -> Result<i64> {
    let path = || std::path::PathBuf::from(&pool.target.shown);
    let q = |e| pool.err(e);
    let meta: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'orch_meta')", &[])
        .await
        .map_err(q)?
        .get(0);
    if !meta {
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .map_err(q)?
            .get(0);
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path(),
                detail: format!(
                    "its schema holds {tables} table{} but no orch schema version",
                    if tables == 1 { "" } else { "s" }
                ),
            });
        }
        return Ok(0);
    }
    let row = client
        .query_opt(
            "SELECT value FROM orch_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(q)?;
    let found = row
        .and_then(|r| r.get::<_, String>(0).parse::<i64>().ok())
        .ok_or_else(|| StoreError::Foreign {
            path: path(),
            detail: "its orch_meta table holds no schema version".into(),
        })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::Newer {
            path: path(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Creates the schema (if the URL names one) and migrates it, under a
/// transaction-scoped advisory lock so that services starting at once do
/// not both migrate.
pub(super) async fn set_up(pool: &Pool) -> Result<()> {
    let mut client: Client = pool.dedicated().await?;
    let q = |e| pool.err(e);
    if let Some(s) = &pool.target.schema {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
            .await
            .map_err(q)?;
    }
    let tx = client.transaction().await.map_err(q)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/orch-migrate'))",
        &[],
    )
    .await
    .map_err(q)?;
    let version = check_ours(&tx, pool).await?;
    if version == 0 {
        tx.batch_execute("CREATE TABLE orch_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .await
            .map_err(q)?;
    }
    for (i, m) in MIGRATIONS.iter().enumerate() {
        if (i as i64) >= version {
            tx.batch_execute(m).await.map_err(q)?;
        }
    }
    if version < SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO orch_meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&SCHEMA_VERSION.to_string()],
        )
        .await
        .map_err(q)?;
    }
    tx.commit().await.map_err(q)?;
    Ok(())
}

/// For reading only: the schema's version, refusing an older one (a read
/// does not migrate); `None` when nothing was ever recorded there.
pub(super) async fn check_existing(pool: &Pool) -> Result<Option<()>> {
    let client = pool.dedicated().await?;
    let version = check_ours(&client, pool).await?;
    if version == 0 {
        return Ok(None);
    }
    if version < SCHEMA_VERSION {
        return Err(StoreError::Older {
            path: std::path::PathBuf::from(&pool.target.shown),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Some(()))
}
