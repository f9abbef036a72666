//! `POST /api/v1/tasks/{task}/approval`: a person decides a task's pending
//! approval request. The decider's name is the one `--tokens-file` gives
//! the caller's token (never a name from the body); the checks and the
//! commit are those of `orch approve` ([`orch_engine::approval::decide_task`]).
//! A waiting task whose request is decided is queued again at once.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use orch_engine::approval::DecideError;
use orch_engine::decide::Refusal;
use orch_store::{Approval, Decision, QueueState};

use crate::api::{body_bytes, task_name};
use crate::error::{self, ApiError};
use crate::scheduler::App;
use crate::Store;

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verb {
    Approve,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verb,
    #[serde(default)]
    comment: String,
}

fn refused(task: &str, who: &str, r: Refusal) -> ApiError {
    let status = match r {
        Refusal::NotApprover { .. } => StatusCode::FORBIDDEN,
        Refusal::NoPending => StatusCode::NOT_FOUND,
        Refusal::AlreadyDecided(_) | Refusal::Expired { .. } => StatusCode::CONFLICT,
    };
    ApiError::new(status, format!("cannot decide task {task} as {who}: {r}"))
}

pub(crate) async fn decide<S: Store>(
    State(app): State<Arc<App<S>>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let task = task_name(p)?;
    let auth = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let Some(who) = app.deciders.who(auth).map(str::to_string) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token names no decider: deciding needs a token listed in --tokens-file",
        ));
    };
    let bytes = body_bytes(&headers, body).await?;
    let b: DecisionBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed body: {e}")))?;
    let (decision, id) = decide_as(&app, &task, &who, b.decision, &b.comment).await?;
    Ok(error::json(
        StatusCode::CREATED,
        &json!({
            "task": task,
            "decision": decision.artifact_value(),
            "by": who,
            "comment": b.comment,
            "id": id,
        }),
    ))
}

/// Records `who`'s decision on the task's pending request (the checks and
/// the commit of `orch approve`) and queues the waiting task again; the API
/// and the dashboard's form both decide through this.
pub(crate) async fn decide_as<S: Store>(
    app: &App<S>,
    task: &str,
    who: &str,
    verb: Verb,
    comment: &str,
) -> Result<(Decision, i64), ApiError> {
    let decision = match verb {
        Verb::Approve => Decision::Approved,
        Verb::Reject if comment.trim().is_empty() => {
            return Err(ApiError::bad_request(
                "a rejection needs a comment saying why",
            ))
        }
        Verb::Reject => Decision::Rejected,
    };
    let id = orch_engine::approval::decide_task(&*app.store, task, who, decision, comment)
        .await
        .map_err(|e| match e {
            DecideError::Refused(r) => refused(task, who, r),
            DecideError::Store(e) => ApiError::from(e),
        })?;
    tracing::info!(
        task,
        decider = who,
        decision = decision.as_str(),
        "approval decided"
    );
    // Committed: the waiting task resumes now rather than at the next tick.
    // The decision stands whatever happens next, so the answer says so: a
    // failed move is logged, and the clock (`requeue_decided`) queues the
    // decided task again on one of its next ticks.
    match app
        .store
        .move_queued(task, QueueState::Waiting, QueueState::Queued, None)
        .await
    {
        Ok(true) => app.board.wake(),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            task,
            error = %e,
            "the decision is recorded but the task could not be queued again now; the clock retries"
        ),
    }
    Ok((decision, id))
}

/// The task's request waiting for a decision, with the time left.
pub(crate) async fn pending_of<S: Store>(
    app: &App<S>,
    task: &str,
) -> orch_store::Result<Option<(Approval, std::time::Duration)>> {
    let now = orch_store::now_ms();
    Ok(orch_engine::approval::pending(&*app.store, Some(task), now)
        .await?
        .pop())
}

/// Every request waiting for a decision, for `GET /queue`.
pub(crate) async fn pending<S: Store>(app: &App<S>) -> Result<Vec<Value>, ApiError> {
    let now = orch_store::now_ms();
    Ok(orch_engine::approval::pending(&*app.store, None, now)
        .await?
        .iter()
        .map(|(a, left)| pending_json(a, left.as_millis() as u64))
        .collect())
}

fn pending_json(a: &Approval, left_ms: u64) -> Value {
    json!({
        "task": a.request.task,
        "stage": a.request.stage,
        "approval": a.request.approval,
        "approvers": a.request.approvers,
        "show": a.request.show,
        "requested": orch_store::rfc3339(a.request.requested_ms),
        "expires": orch_store::rfc3339(a.request.expires_ms),
        "left_ms": left_ms,
    })
}
