//! PostgreSQL rows to domain records. A stored state this build does not
//! know is an error (a damaged or newer store), never a default.

use tokio_postgres::Row;

use crate::records::*;
use crate::StoreError;

pub(super) const RUN_SELECT: &str = "SELECT id, task, pipeline_path, pipeline_hash, pipeline_text, status, outcome, end_name, started_ms, finished_ms,
    pipeline_name, vars, worktree
    FROM runs";

pub(super) const ATTEMPT_SELECT: &str = "SELECT id, run_id, task, stage, attempt, call_site, producer, producer_name, argv, defers, step, pgid,
    exit_code, exit, verdict, leaked, started_ms, finished_ms, duration_ms, log_path, artifact_sha256, gate_pass, gate_reason, tail, visit,
    pg_leader_start, pg_boot_id, pg_host, pg_token
    FROM attempts";

pub(super) const QUEUE_SELECT: &str =
    "SELECT id, task, vars, worktree, state, error, submitted_ms, started_ms, finished_ms, needs FROM queue";

/// A row that does not read as a record.
pub(super) struct Bad(pub String);

type R<T> = std::result::Result<T, Bad>;

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> R<T> {
    r.try_get(i).map_err(|e| Bad(format!("column {i}: {e}")))
}

fn spelled<T: std::str::FromStr<Err = UnknownSpelling>>(r: &Row, i: usize) -> R<T> {
    let s: String = get(r, i)?;
    s.parse().map_err(|e: UnknownSpelling| Bad(e.to_string()))
}

fn spelled_opt<T: std::str::FromStr<Err = UnknownSpelling>>(r: &Row, i: usize) -> R<Option<T>> {
    let s: Option<String> = get(r, i)?;
    s.map(|s| s.parse().map_err(|e: UnknownSpelling| Bad(e.to_string())))
        .transpose()
}

fn json<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> R<T> {
    let s: String = get(r, i)?;
    serde_json::from_str(&s).map_err(|e| Bad(format!("column {i}: {e}")))
}

pub(super) fn run_row(r: &Row) -> R<Run> {
    Ok(Run {
        id: get(r, 0)?,
        task: get(r, 1)?,
        pipeline_path: get(r, 2)?,
        pipeline_hash: get(r, 3)?,
        pipeline_text: get(r, 4)?,
        status: spelled(r, 5)?,
        outcome: spelled_opt(r, 6)?,
        end_name: get(r, 7)?,
        started_ms: get(r, 8)?,
        finished_ms: get(r, 9)?,
        pipeline_name: get(r, 10)?,
        vars: json(r, 11)?,
        worktree: get(r, 12)?,
    })
}

fn group(r: &Row) -> R<Option<GroupRecord>> {
    let Some(pgid) = get::<Option<i64>>(r, 11)? else {
        return Ok(None);
    };
    Ok(Some(GroupRecord {
        pgid,
        leader_start: get(r, 25)?,
        boot_id: get(r, 26)?,
        host: get(r, 27)?,
        token: get(r, 28)?,
    }))
}

pub(super) fn attempt_row(r: &Row) -> R<Attempt> {
    let tail: Option<String> = get(r, 23)?;
    Ok(Attempt {
        id: get(r, 0)?,
        run_id: get(r, 1)?,
        task: get(r, 2)?,
        stage: get(r, 3)?,
        attempt: get(r, 4)?,
        visit: get(r, 24)?,
        call_site: get(r, 5)?,
        producer: spelled(r, 6)?,
        producer_name: get(r, 7)?,
        argv: json(r, 8)?,
        defers: get(r, 9)?,
        step: spelled(r, 10)?,
        group: group(r)?,
        exit_code: get(r, 12)?,
        exit: get(r, 13)?,
        verdict: get(r, 14)?,
        leaked: get(r, 15)?,
        started_ms: get(r, 16)?,
        finished_ms: get(r, 17)?,
        duration_ms: get(r, 18)?,
        log_path: get(r, 19)?,
        artifact_sha256: get(r, 20)?,
        gate_pass: get(r, 21)?,
        gate_reason: get(r, 22)?,
        tail: tail
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

pub(super) fn transition_row(r: &Row) -> R<Transition> {
    Ok(Transition {
        id: get(r, 0)?,
        attempt_id: get(r, 1)?,
        from_stage: get(r, 2)?,
        kind: spelled(r, 3)?,
        to_stage: get(r, 4)?,
        reason: get(r, 5)?,
    })
}

pub(super) fn alert_row(r: &Row) -> R<Alert> {
    Ok(Alert {
        id: get(r, 0)?,
        stage: get(r, 1)?,
        alert: get(r, 2)?,
        status: spelled(r, 3)?,
        exit: get(r, 4)?,
    })
}

pub(super) fn queued_row(r: &Row) -> R<QueuedTask> {
    Ok(QueuedTask {
        id: get(r, 0)?,
        task: get(r, 1)?,
        vars: json(r, 2)?,
        worktree: get(r, 3)?,
        state: spelled(r, 4)?,
        error: get(r, 5)?,
        submitted_ms: get(r, 6)?,
        started_ms: get(r, 7)?,
        finished_ms: get(r, 8)?,
        needs: match get::<Option<String>>(r, 9)? {
            None => Vec::new(),
            Some(s) => serde_json::from_str(&s).map_err(|e| Bad(format!("column 9: {e}")))?,
        },
    })
}

pub(super) fn llm_row(r: &Row) -> R<LlmAttempt> {
    Ok(LlmAttempt {
        call_site: get(r, 0)?,
        duration_ms: get(r, 1)?,
        pipeline_hash: get(r, 2)?,
    })
}

pub(super) fn note_row(r: &Row) -> R<RunNote> {
    Ok(RunNote {
        at_ms: get(r, 0)?,
        text: get(r, 1)?,
    })
}

pub(super) const APPROVAL_SELECT: &str =
    "SELECT r.id, r.run_id, r.attempt_id, r.task, r.stage, r.approval, r.approvers, r.show, r.requested_ms, r.expires_ms,
    d.id, d.decision, d.decider, d.comment, d.at_ms
    FROM approval_requests r LEFT JOIN approval_decisions d ON d.request_id = r.id";

/// A row of [`APPROVAL_SELECT`]: a request and its decision, if any.
pub(super) fn approval_row(r: &Row) -> R<Approval> {
    let request = ApprovalRequest {
        id: get(r, 0)?,
        run_id: get(r, 1)?,
        attempt_id: get(r, 2)?,
        task: get(r, 3)?,
        stage: get(r, 4)?,
        approval: get(r, 5)?,
        approvers: json(r, 6)?,
        show: json(r, 7)?,
        requested_ms: get(r, 8)?,
        expires_ms: get(r, 9)?,
    };
    let decision = match get::<Option<i64>>(r, 10)? {
        None => None,
        Some(id) => Some(ApprovalDecision {
            id,
            request_id: request.id,
            decision: spelled(r, 11)?,
            decider: get(r, 12)?,
            comment: get(r, 13)?,
            at_ms: get(r, 14)?,
        }),
    };
    Ok(Approval { request, decision })
}

/// A row that did not read, as the store's error.
pub(super) fn damaged(url: &str, bad: Bad) -> StoreError {
    StoreError::Damaged {
        path: std::path::PathBuf::from(url),
        source: bad.0.into(),
    }
}
