//! SQL rows to domain records. A stored state this build does not know is a
//! conversion error, reported as a damaged store, never a default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::Row;

use crate::records::*;

pub(super) const RUN_SELECT: &str = "SELECT id, task, pipeline_path, pipeline_hash, pipeline_text, status, outcome, end_name, started_ms, finished_ms,
    pipeline_name, vars, worktree
    FROM runs";

pub(super) const ATTEMPT_SELECT: &str = "SELECT id, run_id, task, stage, attempt, call_site, producer, producer_name, argv, defers, step, pgid,
    exit_code, exit, verdict, leaked, started_ms, finished_ms, duration_ms, log_path, artifact_sha256, gate_pass, gate_reason, tail, visit,
    pg_leader_start, pg_boot_id, pg_host, pg_token
    FROM attempts";

/// A column holding one of a closed set of spellings.
struct Spelled<T>(T);

impl<T: std::str::FromStr<Err = UnknownSpelling>> FromSql for Spelled<T> {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        s.parse()
            .map(Spelled)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

fn spelled<T: std::str::FromStr<Err = UnknownSpelling>>(
    r: &Row<'_>,
    i: usize,
) -> rusqlite::Result<T> {
    r.get::<_, Spelled<T>>(i).map(|s| s.0)
}

fn spelled_opt<T: std::str::FromStr<Err = UnknownSpelling>>(
    r: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<T>> {
    r.get::<_, Option<Spelled<T>>>(i).map(|s| s.map(|s| s.0))
}

pub(super) fn run_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        task: r.get(1)?,
        pipeline_path: r.get(2)?,
        pipeline_hash: r.get(3)?,
        pipeline_text: r.get(4)?,
        status: spelled(r, 5)?,
        outcome: spelled_opt(r, 6)?,
        end_name: r.get(7)?,
        started_ms: r.get(8)?,
        finished_ms: r.get(9)?,
        pipeline_name: r.get(10)?,
        vars: json_map(r, 11)?,
        worktree: r.get(12)?,
    })
}

fn json_map(r: &Row<'_>, i: usize) -> rusqlite::Result<std::collections::BTreeMap<String, String>> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn json_list(r: &Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A nullable JSON list: NULL reads as empty.
fn json_list_opt(r: &Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    match r.get::<_, Option<String>>(i)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        }),
    }
}

fn group(r: &Row<'_>) -> rusqlite::Result<Option<GroupRecord>> {
    let Some(pgid) = r.get::<_, Option<i64>>(11)? else {
        return Ok(None);
    };
    Ok(Some(GroupRecord {
        pgid,
        leader_start: r.get(25)?,
        boot_id: r.get(26)?,
        host: r.get(27)?,
        token: r.get(28)?,
    }))
}

pub(super) fn attempt_row(r: &Row<'_>) -> rusqlite::Result<Attempt> {
    let tail: Option<String> = r.get(23)?;
    Ok(Attempt {
        id: r.get(0)?,
        run_id: r.get(1)?,
        task: r.get(2)?,
        stage: r.get(3)?,
        attempt: r.get(4)?,
        visit: r.get(24)?,
        call_site: r.get(5)?,
        producer: spelled(r, 6)?,
        producer_name: r.get(7)?,
        argv: json_list(r, 8)?,
        defers: r.get(9)?,
        step: spelled(r, 10)?,
        group: group(r)?,
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

pub(super) fn transition_row(r: &Row<'_>) -> rusqlite::Result<Transition> {
    Ok(Transition {
        id: r.get(0)?,
        attempt_id: r.get(1)?,
        from_stage: r.get(2)?,
        kind: spelled(r, 3)?,
        to_stage: r.get(4)?,
        reason: r.get(5)?,
    })
}

pub(super) fn alert_row(r: &Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: r.get(0)?,
        stage: r.get(1)?,
        alert: r.get(2)?,
        status: spelled(r, 3)?,
        exit: r.get(4)?,
    })
}

pub(super) const QUEUE_SELECT: &str =
    "SELECT id, task, vars, worktree, state, error, submitted_ms, started_ms, finished_ms, needs FROM queue";

pub(super) fn queued_row(r: &Row<'_>) -> rusqlite::Result<QueuedTask> {
    Ok(QueuedTask {
        id: r.get(0)?,
        task: r.get(1)?,
        vars: json_map(r, 2)?,
        worktree: r.get(3)?,
        state: spelled(r, 4)?,
        error: r.get(5)?,
        submitted_ms: r.get(6)?,
        started_ms: r.get(7)?,
        finished_ms: r.get(8)?,
        needs: json_list_opt(r, 9)?,
    })
}

pub(super) const APPROVAL_SELECT: &str =
    "SELECT r.id, r.run_id, r.attempt_id, r.task, r.stage, r.approval, r.approvers, r.show, r.requested_ms, r.expires_ms,
    d.id, d.decision, d.decider, d.comment, d.at_ms
    FROM approval_requests r LEFT JOIN approval_decisions d ON d.request_id = r.id";

/// A row of [`APPROVAL_SELECT`]: a request and its decision, if any.
pub(super) fn approval_row(r: &Row<'_>) -> rusqlite::Result<Approval> {
    let request = ApprovalRequest {
        id: r.get(0)?,
        run_id: r.get(1)?,
        attempt_id: r.get(2)?,
        task: r.get(3)?,
        stage: r.get(4)?,
        approval: r.get(5)?,
        approvers: json_list(r, 6)?,
        show: json_list(r, 7)?,
        requested_ms: r.get(8)?,
        expires_ms: r.get(9)?,
    };
    let decision = match r.get::<_, Option<i64>>(10)? {
        None => None,
        Some(id) => Some(ApprovalDecision {
            id,
            request_id: request.id,
            decision: spelled(r, 11)?,
            decider: r.get(12)?,
            comment: r.get(13)?,
            at_ms: r.get(14)?,
        }),
    };
    Ok(Approval { request, decision })
}
